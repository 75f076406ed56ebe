"""Labelled benchmarks (imdb, sst2, snli, mnli): the one reading of their rows.

A row's label is a Hub ClassLabel id; `labelled_problems` turns it into the label's name with the
catalogue's label order (`toolkit.sources.catalogue.LABELLED`). Counterfactual distillation's source
(`load_labelled`, through `toolkit.methods.counterfactual.labelled`) and its eval tasks
(eval_tasks/counterfactual/utils.py) both call it, so label id i means the same label in a build and
in a score. Rows without a gold (-1: snli's annotators did not agree, sst2's hidden test labels) are
skipped on both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.sources import load_source
from toolkit.sources.base import LoadedSource, SourceInfo, _Where
from toolkit.sources.catalogue import LabelledBenchmark, labelled_benchmarks, labelled_info
from toolkit.sources.files import _read_files
from toolkit.sources.hub import _hub_rows
from toolkit.sources.mapping import _missing, _require_rows
from toolkit.sources.normalize import BadRow, text

log = logging.getLogger(__name__)


def nli_question(premise: str, hypothesis: str) -> str:
    """How an NLI pair is one question, in the rows and in the eval tasks alike."""
    return f"Premise: {premise.strip()}\nHypothesis: {hypothesis.strip()}"


def labelled_source(spec: str, config: str | None = None) -> LabelledBenchmark | None:
    """The labelled entry `spec` names (`hf:imdb` or `hf:stanfordnlp/imdb`), or None for any other source."""
    kind, _, name = spec.strip().partition(":")
    if kind != "hf":
        return None
    if name in labelled_benchmarks():
        return labelled_info(name)
    found = [labelled_info(n) for n in labelled_benchmarks() if labelled_info(n).hub_id == name]
    return found[0] if found and (config is None or found[0].config == config) else None


def label_of(bench: LabelledBenchmark, value: Any) -> str | None:
    """The label a row's gold stands for: a ClassLabel id (or a label's name); None for -1 (no gold)."""
    key = str(value).strip()
    if key.lstrip("-").isdigit():
        index = int(key)
        if index == -1:
            return None
        if 0 <= index < len(bench.labels):
            return bench.labels[index]
    for label in bench.labels:
        if label.casefold() == key.casefold():
            return label
    raise BadRow(f"label {value!r} is neither an id of nor one of {', '.join(bench.labels)}")


def question_of(bench: LabelledBenchmark, row: Mapping[str, Any]) -> str:
    """The row's text column, or its premise and hypothesis as one question."""
    texts = [text(row[f], f) for f in bench.text_fields]
    return nli_question(*texts) if len(texts) == 2 else texts[0]


def labelled_problems(
    name: str, rows: Sequence[Mapping[str, Any]], split: str, *, revision: str | None = None,
    limit: int | None = None, label: str = "",
) -> list[Problem]:  # fmt: skip
    """The problems a labelled benchmark's raw rows (a `datasets.Dataset` or a list of dicts) make:
    question, gold label name, the label set as choices, answer type "label". `limit` counts rows,
    skipped ones included, so raising it keeps every id."""
    bench = labelled_info(name)
    where = _Where(label or f"hf:{name} (split {split})", bench.hub_id, revision or bench.config or "", split, limit)
    _require_rows(rows, where)
    problems, skipped = [], 0
    for index, raw in enumerate(rows):
        if limit is not None and index >= limit:
            break
        missing = [f for f in (*bench.text_fields, "label") if f not in raw]
        if missing:
            raise UserError(_missing((missing[0],), sorted(raw), where, f"is this a copy of {bench.hub_id}?"))
        try:
            question, gold = question_of(bench, raw), label_of(bench, raw["label"])
        except BadRow as e:
            raise UserError(f"row {index} of {where.label}: {e}; is this a copy of {bench.hub_id}?") from None
        if gold is None:
            skipped += 1
            continue
        problems.append(Problem(id=where.id(index), source=where.source, question=question, gold=gold,
                                answer_type="label", choices=bench.labels, index=index))  # fmt: skip
    if skipped:
        log.warning("%s: skipping %d problems without a gold label (-1)", where.label, skipped)
    return problems


def load_labelled(spec: str, *, labels: tuple[str, ...] = (), **options: Any) -> LoadedSource:
    """`load_source(spec, **options)`, except that a labelled benchmark is read by `labelled_problems`.

    For a labelled benchmark the options may restate its own mapping (`--question-field text
    --label-field label --labels negative,positive`, as written before the catalogue knew it) but not
    change it: another label order would make label id i another label than the eval tasks score.
    """
    bench = labelled_source(spec, options.get("config"))
    if bench is None:
        return load_source(spec, **options)
    text_field = bench.text_fields if len(bench.text_fields) == 1 else ()
    restated = {"question_field": (None, *text_field), "answer_field": (None, "label"),
                "answer_type": (None, "label"), "choices_field": (None,)}  # fmt: skip
    for option, allowed in restated.items():
        if options.get(option) not in allowed:
            raise UserError(
                f"{spec} is the labelled benchmark {bench.name}, read as {' + '.join(bench.text_fields)} -> label; "
                f"drop --{option.replace('_', '-')}"
            )
    if labels and tuple(label.casefold() for label in labels) != bench.labels:
        raise UserError(
            f"{bench.name}'s labels are {', '.join(bench.labels)} (its Hub label ids in order, as the eval tasks "
            f"score them); pass --labels {','.join(bench.labels)} or leave --labels out"
        )
    split, revision, data_files = options.get("split", "train"), options.get("revision"), options.get("data_files")
    if split not in bench.splits:
        raise UserError(f"{bench.name} has no labelled split {split!r}; available: {', '.join(bench.splits)}")
    rows = _read_files(data_files) if data_files else _hub_rows(bench.hub_id, bench.config, split, revision)
    origin = "local data_files" if data_files else bench.hub_id
    label = f"{spec} ({origin}, split {split})"
    problems = labelled_problems(bench.name, rows, split, revision=revision, limit=options.get("limit"), label=label)
    if not problems:
        raise UserError(f"{label} yielded no labelled problems; check the split and data files")
    info = SourceInfo(spec=spec, kind="hf", name=spec.partition(":")[2], hub_id=bench.hub_id, config=bench.config,
                      split=split, revision=revision, license=bench.license, answer_type="label",
                      task_category=bench.task_category, citation=bench.citation,
                      url=f"https://huggingface.co/datasets/{bench.hub_id}")  # fmt: skip
    return LoadedSource(info, problems)
