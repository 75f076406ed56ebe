"""`file:PATH` sources and `data_files`: local .jsonl/.json/.csv/.parquet files read as rows."""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.sources.base import CATEGORIES, LoadedSource, SourceInfo, _Fields, _Where
from toolkit.sources.mapping import _mapped_problems


def _load_file(spec: str, path_text: str, split: str, limit: int | None, fields: _Fields) -> LoadedSource:
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise UserError(f"{path_text!r} is a folder; name one .jsonl/.json/.csv/.parquet file in {spec!r}")
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
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _read_parquet(path: Path) -> list[Any]:
    import pyarrow  # pyarrow is slow to import (~150 ms): only for a parquet file
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as e:
        raise UserError(f"{path.name} is not a readable parquet file ({e}); fix the file") from None
