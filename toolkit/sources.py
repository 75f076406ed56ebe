"""Where problems come from: the `--source` of `hubtool build-dataset`.

- `hf:NAME`      a known benchmark (see `toolkit.catalogue`), from the Hub or from local `data_files`
- `hf:org/name`  any Hub dataset, mapped by `question_field`/`answer_field`/`choices_field`
- `gym:TASK`     a reasoning-gym task, generated from a fixed seed
- `file:PATH`    a local .jsonl/.json/.csv/.parquet file, mapped like `hf:org/name`

Every problem's id is `stable_id(source, revision-or-config, split, index)`, where source is the Hub
repo, the file's basename, or "gym:TASK" (with "seed=N" in place of a revision), so re-runs, resumes
and raised limits keep ids. `datasets` and `reasoning_gym` are imported only when a source needs them.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.catalogue import (
    BadRow,
    Benchmark,
    MissingField,
    benchmark_for_hub_id,
    benchmark_info,
    detect_answer_type,
    known_benchmarks,
    label_set,
    mapped_gold,
    parse_number,
    text,
)
from toolkit.errors import UserError, did_you_mean
from toolkit.records import ANSWER_TYPES, Problem, stable_id

__all__ = ["LoadedSource", "SourceInfo", "benchmark_info", "known_benchmarks", "load_source"]

log = logging.getLogger(__name__)

SPEC_FORMS = "hf:NAME (a known benchmark), hf:org/name, gym:TASK or file:PATH"
GYM_BLOCK = 500  # reasoning-gym's default dataset size; see _gym_entries
GYM_WORKER_IDLE_S = 120.0  # see _GymWorker
# Each split draws from its own seed range, so a gym test set is not the train set again.
GYM_SPLIT_OFFSETS = {"train": 0, "validation": 10_000_000, "test": 20_000_000}
GYM_URL = "https://github.com/open-thought/reasoning-gym"
GYM_CITATION = (
    "Stojanovski et al. (2025). REASONING GYM: Reasoning Environments for Reinforcement Learning with "
    "Verifiable Rewards. https://arxiv.org/abs/2505.24760"
)
CATEGORIES = {
    "number": "numeric answers",
    "option": "multiple choice",
    "yesno": "yes/no questions",
    "label": "labelled answers",
}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source is, for provenance and dataset cards."""

    spec: str
    kind: str  # "hf" | "gym" | "file"
    name: str
    hub_id: str | None
    config: str | None
    split: str
    revision: str | None
    license: str | None
    answer_type: str  # the type every problem has; "label" when a gym task mixes types
    task_category: str
    citation: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class LoadedSource:
    info: SourceInfo
    problems: list[Problem]


@dataclass(frozen=True, slots=True)
class _Fields:
    question: str
    answer: str
    choices: str | None
    answer_type: str | None
    explicit: bool  # any of them given: map the rows generically, not by the catalogue


@dataclass(frozen=True, slots=True)
class _Where:
    """Identity of the rows being converted, for ids and for error messages."""

    label: str
    source: str
    version: str
    split: str
    limit: int | None

    def id(self, index: int) -> str:
        return stable_id(self.source, self.version, self.split, index)


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


# ---- hf: ----------------------------------------------------------------------------------------


def _load_hf(
    spec: str,
    name: str,
    split: str,
    limit: int | None,
    config: str | None,
    revision: str | None,
    data_files: str | list[str] | None,
    fields: _Fields,
) -> LoadedSource:
    if "/" in name:
        bench = None if fields.explicit else benchmark_for_hub_id(name, config)
    else:
        bench = _catalogue_entry(name, fields.explicit)
    hub_id = bench.hub_id if bench else name
    config = config or (bench.config if bench else None)
    if bench and split not in bench.splits:
        raise UserError(f"{bench.name} has no labelled split {split!r}; available: {', '.join(bench.splits)}")
    rows = _read_files(data_files) if data_files else _hub_rows(hub_id, config, split, revision)
    origin = "local data_files" if data_files else hub_id
    where = _Where(f"{spec} ({origin}, split {split})", hub_id, revision or config or "", split, limit)
    if bench:
        problems, answer_type = _benchmark_problems(bench, rows, where), bench.answer_type
    else:
        problems, answer_type = _mapped_problems(rows, fields, where)
    return LoadedSource(
        SourceInfo(
            spec=spec,
            kind="hf",
            name=name,
            hub_id=hub_id,
            config=config,
            split=split,
            revision=revision,
            license=bench.license if bench else None,
            answer_type=answer_type,
            task_category=bench.task_category if bench else CATEGORIES[answer_type],
            citation=bench.citation if bench else None,
            url=f"https://huggingface.co/datasets/{hub_id}",
        ),
        problems,
    )


def _catalogue_entry(name: str, mapped: bool) -> Benchmark:
    try:
        bench = benchmark_info(name)
    except UserError as e:
        raise UserError(f"{e}; or name any Hub dataset as hf:org/name") from None
    if mapped:
        raise UserError(
            f"hf:{name} has a fixed field mapping; drop the field/answer-type options, or map "
            f"{bench.hub_id} yourself as hf:{bench.hub_id}"
        )
    return bench


def _hub_rows(hub_id: str, config: str | None, split: str, revision: str | None) -> Any:
    """The split as a `datasets.Dataset`, with the Hub's failures turned into one-line UserErrors."""
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(hub_id, config, split=split, revision=revision)
    except DatasetNotFoundError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{hub_id!r} can't be loaded: {first}; check the name and revision") from None
    except ConnectionError:
        raise UserError(
            f"the Hugging Face Hub can't be reached to load {hub_id!r} (offline?); point "
            "data_files (--data-files) at a local copy, or use a gym: source"
        ) from None
    except ValueError as e:
        if str(e).startswith("Unknown split"):
            available = ", ".join(re.findall(r"'([^']+)'", str(e)))
            raise UserError(f"{hub_id} has no split {split!r}; available: {available}") from None
        if "BuilderConfig" in str(e) or "Config name is missing" in str(e):
            raise UserError(f"{hub_id}: {e}; pass --config") from None
        raise
    except RuntimeError as e:
        if "scripts are no longer supported" not in str(e):
            raise
        raise UserError(
            f"{hub_id} is a loading-script dataset, which datasets>=4 can't run; download its "
            "data files and pass them as data_files (--data-files)"
        ) from None


def _benchmark_problems(bench: Benchmark, rows: Sequence[Mapping[str, Any]], where: _Where) -> list[Problem]:
    _require_rows(rows, where)
    problems, skipped = [], 0
    for index, raw in enumerate(rows):
        if where.limit is not None and len(problems) >= where.limit:
            break
        try:
            row = bench.convert(raw)
        except MissingField as e:
            raise UserError(
                _missing(e.names, e.available, where, f"is this a copy of {bench.hub_id}?")
            ) from None
        except BadRow as e:
            raise UserError(f"row {index} of {where.label}: {e}; is this a copy of {bench.hub_id}?") from None
        if row is None:
            skipped += 1
            continue
        problems.append(
            Problem(
                id=where.id(index),
                source=where.source,
                question=row.question,
                gold=row.gold,
                answer_type=bench.answer_type,
                choices=row.choices,
                meta={"index": index, **row.meta},
            )
        )
    if skipped:
        log.warning("%s: skipped %d rows whose gold is unusable (%s)", where.label, skipped, bench.note)
    if not problems:
        raise UserError(f"{where.label} yielded no problems; check the split and data files")
    return problems


# ---- mapped sources: hf:org/name and file: --------------------------------------------------------


def _mapped_problems(
    rows: Sequence[Mapping[str, Any]], fields: _Fields, where: _Where
) -> tuple[list[Problem], str]:
    _require_rows(rows, where)
    columns = _columns(rows)
    for name in (fields.question, fields.answer, fields.choices):
        if name is not None and name not in columns:
            raise UserError(_missing((name,), columns, where))
    golds = _column(rows, fields.answer)
    choices = _column(rows, fields.choices) if fields.choices else None
    answer_type = fields.answer_type or detect_answer_type(golds, choices)
    if answer_type == "option" and choices is None:
        raise UserError(f"answer type option needs the options: pass --choices-field for {where.label}")
    labels = label_set(golds) if answer_type == "label" and choices is None else ()
    problems = []
    for index, raw in enumerate(rows):
        if where.limit is not None and index >= where.limit:
            break
        try:
            question = text(raw.get(fields.question))
            gold, options = mapped_gold(
                answer_type, raw.get(fields.answer), raw.get(fields.choices) if fields.choices else None
            )
        except BadRow as e:
            raise UserError(
                f"row {index} of {where.label}: {e}; fix the row or pass another --answer-type"
            ) from None
        problems.append(
            Problem(
                id=where.id(index),
                source=where.source,
                question=question,
                gold=gold,
                answer_type=answer_type,  # type: ignore[arg-type]  # one of ANSWER_TYPES
                choices=options or labels,
                meta={"index": index},
            )
        )
    return problems, answer_type


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    names = getattr(rows, "column_names", None)
    return list(names) if names is not None else sorted({k for row in rows for k in row})


def _column(rows: Sequence[Mapping[str, Any]], name: str) -> list[Any]:
    if hasattr(rows, "column_names"):  # a datasets.Dataset reads one column without decoding rows
        return list(rows[name])  # type: ignore[call-overload]
    return [row.get(name) for row in rows]


def _missing(names: tuple[str, ...], available: list[str], where: _Where, fix: str = "") -> str:
    wanted = " or ".join(repr(n) for n in names)
    fix = fix or "pass --question-field/--answer-field/--choices-field"
    return f"{where.label} has no field {wanted}; available: {', '.join(available)}; {fix}"


def _require_rows(rows: Sequence[Any], where: _Where) -> None:
    if len(rows) == 0:
        raise UserError(f"{where.label} has no rows; check the file or split")


# ---- file: and data_files -------------------------------------------------------------------------


def _load_file(spec: str, path_text: str, split: str, limit: int | None, fields: _Fields) -> LoadedSource:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise UserError(f"file {path_text!r} does not exist; check the path in {spec!r}")
    where = _Where(spec, path.name, "", split, limit)
    problems, answer_type = _mapped_problems(_read_file(path), fields, where)
    return LoadedSource(
        SourceInfo(
            spec=spec,
            kind="file",
            name=path.name,
            hub_id=None,
            config=None,
            split=split,
            revision=None,
            license=None,
            answer_type=answer_type,
            task_category=CATEGORIES[answer_type],
            citation=None,
            url=None,
        ),
        problems,
    )


def _read_files(data_files: str | os.PathLike[str] | list[str]) -> list[dict[str, Any]]:
    """All rows of the given files in order; a path may be a glob ("data/train-*.parquet")."""
    import glob

    items = [data_files] if isinstance(data_files, str | os.PathLike) else list(data_files)
    rows: list[dict[str, Any]] = []
    for item in items:
        pattern = os.path.expanduser(str(item))
        paths = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not paths or not all(os.path.isfile(p) for p in paths):
            raise UserError(f"data file {str(item)!r} does not exist; check the path")
        for p in paths:
            rows.extend(_read_file(Path(p)))
    return rows


def _read_file(path: Path) -> list[dict[str, Any]]:
    readers = {
        ".jsonl": _read_jsonl,
        ".ndjson": _read_jsonl,
        ".json": _read_json,
        ".csv": _read_csv,
        ".parquet": _read_parquet,
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"can't read {path.name}: unknown file type; use .jsonl, .json, .csv or .parquet")
    try:
        rows = reader(path)
    except UnicodeDecodeError:
        raise UserError(f"{path.name} is not UTF-8 text; re-save it as UTF-8") from None
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UserError(f"{path.name}: record {n} is not an object with named fields; fix the file")
    return rows


def _read_jsonl(path: Path) -> list[Any]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(
                        f"{path.name}: line {n} is not valid JSON ({e.msg}); fix the file"
                    ) from None
    return rows


def _read_json(path: Path) -> list[Any]:
    """A JSON array of records, {"<any key>": [records]}, or JSON lines saved as .json."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            return _read_jsonl(path)
        raise UserError(f"{path.name} is not valid JSON ({e.msg} at line {e.lineno}); fix the file") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else None
    if not isinstance(data, list):
        raise UserError(f"{path.name} holds no list of records; save it as a JSON array or JSON lines")
    return data


def _read_csv(path: Path) -> list[Any]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as e:
        raise UserError(f"{path.name} is not a readable parquet file ({e}); fix the file") from None


# ---- gym: ---------------------------------------------------------------------------------------


def _load_gym(spec: str, task: str, split: str, limit: int | None, seed: int) -> LoadedSource:
    if split not in GYM_SPLIT_OFFSETS:
        raise UserError(f"gym sources have no split {split!r}; available: {', '.join(GYM_SPLIT_OFFSETS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    base_seed = seed + GYM_SPLIT_OFFSETS[split]
    made = _GYM_WORKER.generate(task, base_seed, limit or GYM_BLOCK)
    where = _Where(spec, f"gym:{task}", f"seed={seed}", split, limit)
    problems = [_gym_problem(task, base_seed, i, entry, where) for i, entry in enumerate(made["entries"])]
    types = {p.answer_type for p in problems}
    return LoadedSource(
        SourceInfo(
            spec=spec,
            kind="gym",
            name=task,
            hub_id=None,
            config=None,
            split=split,
            revision=None,
            license="apache-2.0",
            answer_type=types.pop() if len(types) == 1 else "label",
            task_category=f"reasoning-gym {made['category']}",
            citation=GYM_CITATION,
            url=GYM_URL,
        ),
        problems,
    )


class _GymWorker:
    """Runs reasoning-gym under PYTHONHASHSEED=0, so a task's items are the same in every process.

    Some gym tasks iterate over sets of strings (isomorphic_strings, ransom_note, word_ladder, ...),
    whose order follows the per-process hash seed: generated here, their questions would change from
    run to run, and a resumed build would miss its teacher cache. Unless this process already runs
    with hash randomization off, one child Python does the generating; it serves later loads too,
    and exits after GYM_WORKER_IDLE_S without one, so a long build does not keep it around.
    """

    def __init__(self, idle_s: float = GYM_WORKER_IDLE_S) -> None:
        self.idle_s = idle_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def generate(self, task: str, base_seed: int, count: int) -> dict[str, Any]:
        request = {"task": task, "base_seed": base_seed, "count": count}
        if sys.flags.hash_randomization == 0:
            return _gym_generate(**request)
        with self._lock:
            line = self._ask(request) or self._ask(request)  # once more, if it had just idled out
        if not line:
            raise RuntimeError("the reasoning-gym worker process died; its error is on stderr above")
        reply = json.loads(line)
        if "error" in reply:
            raise UserError(reply["error"])
        if "bug" in reply:
            raise RuntimeError(f"reasoning-gym failed in the worker process:\n{reply['bug']}")
        return reply["ok"]

    def _ask(self, request: dict[str, Any]) -> str:
        proc = self._start()
        try:
            proc.stdin.write(json.dumps(request) + "\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
            line = proc.stdout.readline()  # type: ignore[union-attr]
        except BrokenPipeError:
            line = ""
        if not line:
            # It idled out (or died) as we asked: reap it, so the retry starts a fresh one instead of
            # writing to a process that has closed its pipes but not yet exited.
            proc.kill()
            proc.wait()
            self._proc = None
        return line

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            root = str(Path(__file__).resolve().parents[1])  # the child imports this very toolkit
            path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from toolkit.sources import _gym_serve; _gym_serve({self.idle_s!r})",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env={**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": path},
            )
            atexit.register(self._stop, self._proc)
        return self._proc

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.close()  # the worker's read loop ends and it exits
            proc.wait(timeout=10)


_GYM_WORKER = _GymWorker()


def _gym_serve(idle_s: float) -> None:
    """The worker's main loop: one JSON request per stdin line, one JSON reply per stdout line."""
    import select
    import traceback

    replies, sys.stdout = sys.stdout, sys.stderr  # a task that prints must not corrupt the replies
    while select.select([sys.stdin], [], [], idle_s)[0]:
        line = sys.stdin.readline()
        if not line:
            return
        try:
            reply = {"ok": _gym_generate(**json.loads(line))}
        except UserError as e:
            reply = {"error": str(e)}
        except Exception:  # a bug: its traceback travels back to the parent
            reply = {"bug": traceback.format_exc()}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def _gym_generate(task: str, base_seed: int, count: int) -> dict[str, Any]:
    """Entries 0..count-1 of a task as JSON-ready dicts, plus the task's category."""
    import reasoning_gym
    from reasoning_gym.factory import DATASETS

    if task not in DATASETS:
        known = ", ".join(sorted(DATASETS))
        raise UserError(
            f"unknown reasoning-gym task {task!r}{did_you_mean(task, list(DATASETS))}; known: {known}"
        )
    entries = [
        {
            "question": str(e["question"]),
            "answer": None if e.get("answer") is None else str(e["answer"]),
            "metadata": _jsonable(e.get("metadata") or {}),
        }
        for e in _gym_entries(reasoning_gym, task, base_seed, count)
    ]
    category = DATASETS[task][0].__module__.split(".")[1]  # reasoning_gym.<category>.<module>
    return {"category": category, "entries": entries}


def _gym_entries(reasoning_gym: Any, task: str, base_seed: int, count: int) -> Iterator[Mapping[str, Any]]:
    """Entries 0..count-1, each independent of `count`.

    reasoning-gym does not promise that: some tasks build their items up front from the dataset
    size (acre), and some draw from the global `random` (list_functions). So items come from
    fixed-size blocks seeded `base_seed + block * GYM_BLOCK` (for the usual Random(seed + idx) tasks
    that is exactly gym's own item), each made with the global `random` seeded per item.
    """
    dataset, block = None, -1
    for index in range(count):
        b, offset = divmod(index, GYM_BLOCK)
        if b != block:
            block, block_seed = b, base_seed + b * GYM_BLOCK
            with _seeded_global_random(f"{task}:{block_seed}"):
                dataset = _create_gym(reasoning_gym, task, block_seed)
        with _seeded_global_random(f"{task}:{base_seed}:{index}"):
            yield dataset[offset]  # type: ignore[index]


def _create_gym(reasoning_gym: Any, task: str, seed: int) -> Any:
    try:
        return reasoning_gym.create_dataset(task, seed=seed, size=GYM_BLOCK)
    except (AssertionError, TypeError, ValueError) as e:
        raise UserError(
            f"reasoning-gym can't build {task!r} with its default settings ({e}); pick another task"
        ) from None


@contextmanager
def _seeded_global_random(key: str) -> Iterator[None]:
    import random

    state = random.getstate()
    random.seed(key)  # str seeds hash with sha512: the same in every process
    try:
        yield
    finally:
        random.setstate(state)


def _gym_problem(task: str, base_seed: int, index: int, entry: Mapping[str, Any], where: _Where) -> Problem:
    answer = entry.get("answer")
    if answer is None or not str(answer).strip():
        raise UserError(
            f"gym task {task!r} has no single gold answer (reasoning-gym checks it with a "
            "verifier); pick a task with a fixed answer"
        )
    raw = str(answer)
    number = parse_number(raw)
    meta = {
        "index": index,
        "gym_task": task,
        "gym_seed": base_seed,  # the split's seed; for most tasks the item is create_dataset(task, seed=...)[index]
        "gym_answer": raw,
        "gym_metadata": entry["metadata"],
    }
    return Problem(
        id=where.id(index),
        source=where.source,
        question=entry["question"],
        gold=number or raw.strip(),
        answer_type="number" if number is not None else "label",
        meta=meta,
    )


_DROP = object()


def _jsonable(value: Any) -> Any:
    """The JSON-serialisable part of gym metadata: what json.dumps cannot write is dropped."""
    if isinstance(value, Mapping):
        out = {str(k): _jsonable(v) for k, v in value.items() if isinstance(k, str | int | float | bool)}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, list | tuple):
        items = [_jsonable(v) for v in value]
        return _DROP if any(v is _DROP for v in items) else items
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    return value if value is None or isinstance(value, bool | int | str) else _DROP
