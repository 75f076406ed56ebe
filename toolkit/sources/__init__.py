"""Where problems come from: the `--source` of `hubtool build-dataset`.

- `hf:NAME`      a known benchmark (see `toolkit.sources.catalogue`), from the Hub or from local `data_files`
- `hf:org/name`  any Hub dataset, mapped by `question_field`/`answer_field`/`choices_field`
- `gym:TASK`     a reasoning-gym task, generated from a fixed seed
- `file:PATH`    a local .jsonl/.json/.csv/.parquet file, mapped like `hf:org/name`

The labelled benchmarks (`hf:imdb`, `hf:sst2`, `hf:snli`, `hf:mnli`: a label set stored as Hub
ClassLabel ids) are read by `toolkit.sources.labelled`, the counterfactual method's source and its eval
tasks alike.

Every problem's id is `stable_id(source, revision-or-config, split, index)`, where source is the Hub
repo, the file's basename, or "gym:TASK" (with "seed=N" in place of a revision), so re-runs, resumes
and raised limits keep ids. `datasets` and `reasoning_gym` are imported only when a source needs them.
"""

from __future__ import annotations

import os
from typing import Any

from toolkit.errors import UserError
from toolkit.records import ANSWER_TYPES
from toolkit.sources.base import LoadedSource, SourceInfo, _Fields
from toolkit.sources.catalogue import (
    GYM_EVAL_SEED,
    GYM_EVAL_SIZE,
    GYM_EVAL_SPLIT,
    GYM_EVAL_TASKS,
    benchmark_info,
    known_benchmarks,
)
from toolkit.sources.files import _load_file
from toolkit.sources.gym import GYM_ANSWER_TYPES, _load_gym
from toolkit.sources.gym import _gym_serve as _gym_serve  # the gym worker's main loop, re-exported
from toolkit.sources.gym import _GymWorker as _GymWorker  # re-exported for the tests
from toolkit.sources.hub import _load_hf, benchmark_problems

__all__ = [
    "GYM_ANSWER_TYPES",
    "GYM_EVAL_SEED",
    "GYM_EVAL_SIZE",
    "GYM_EVAL_SPLIT",
    "GYM_EVAL_TASKS",
    "LoadedSource",
    "SourceInfo",
    "benchmark_info",
    "benchmark_problems",
    "known_benchmarks",
    "load_source",
]

SPEC_FORMS = "hf:NAME (a known benchmark), hf:org/name, gym:TASK or file:PATH"


def load_source(
    spec: str,
    *,
    split: str = "train",
    limit: int | None = None,
    config: str | None = None,
    revision: str | None = None,
    data_files: str | list[str] | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    answer_type: str | None = None,
    choices_field: str | None = None,
    seed: int = 0,
) -> LoadedSource:
    """Load the problems of `spec`; `limit` keeps the first N in source order.

    `data_files` points `hf:NAME` or `hf:org/name` at local copies (same ids as the Hub rows).
    Without `answer_type`, a mapped source's type is detected from all its golds, so raising the
    limit never changes it. A gym source without a limit yields reasoning-gym's default 500.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise UserError(f"limit must be a positive number, got {limit!r}; pass --limit 1 or more")
    if answer_type is not None and answer_type not in ANSWER_TYPES:
        raise UserError(f"unknown answer type {answer_type!r}; use one of {', '.join(ANSWER_TYPES)}")
    kind, name = _parse_spec(spec)
    options = {
        "question_field": question_field,
        "answer_field": answer_field,
        "choices_field": choices_field,
        "answer_type": answer_type,
    }
    if kind == "gym":
        _reject(kind, config=config, revision=revision, data_files=data_files, **options)
        return _load_gym(spec, name, split, limit, seed)
    fields = _Fields(
        question_field or "question",
        answer_field or "answer",
        choices_field,
        answer_type,
        explicit=any(v is not None for v in options.values()),
    )
    if kind == "file":
        _reject(kind, config=config, revision=revision, data_files=data_files)
        return _load_file(spec, name, split, limit, fields)
    return _load_hf(spec, name, split, limit, config, revision, data_files, fields)


def _parse_spec(spec: str) -> tuple[str, str]:
    kind, sep, name = spec.strip().partition(":")
    if sep and kind in ("hf", "gym", "file") and name.strip():
        return kind, name.strip()
    hint = ""
    if not sep and spec in known_benchmarks():
        hint = f" (did you mean 'hf:{spec}'?)"
    elif not sep and os.path.isfile(spec):
        hint = f" (did you mean 'file:{spec}'?)"
    raise UserError(f"unknown source {spec!r}; use {SPEC_FORMS}{hint}")


def _reject(kind: str, **options: Any) -> None:
    for option, value in options.items():
        if value is not None:
            raise UserError(f"{kind}: sources take no {option.replace('_', '-')}; drop it")
