"""Seed instructions: any source with an instruction field, no gold answer needed.

`file:PATH` and `hf:ORG/NAME` (with `--data-files` offline) are read as rows: the instruction is
`--question-field` (default: the first of instruction / prompt / question that the rows have), and
Alpaca's optional `input` (`--input-field`) is appended to it. `gym:TASK` and the catalogue's
`hf:NAME` benchmarks load as usual: their questions are the seeds. Ids are the sources' own
(hash of source, revision/config, split, index), so a re-run or a raised `--limit` keeps them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.records import Problem, stable_id
from toolkit.sources import LoadedSource, SourceInfo, load_source

INSTRUCTION_FIELDS = ("instruction", "prompt", "question")
ANSWER_TYPE = "none"  # instruction following has no gold answer


def load_seeds(config: Any) -> LoadedSource:
    kind, _, name = (config.source or "").partition(":")
    if kind == "gym" or (kind == "hf" and "/" not in name):

        return load_source(config.source, **config.source_options())
    if kind not in ("file", "hf") or not name.strip():
        raise UserError(f"unknown source {config.source!r}; use file:PATH, hf:ORG/NAME (--data-files offline), "
                        "gym:TASK or hf:NAME")  # fmt: skip
    for option in ("answer_field", "choices_field", "answer_type"):
        if getattr(config, option) is not None:
            raise UserError(f"--{option.replace('_', '-')}: seed instructions have no gold answer; drop it")
    name = name.strip()
    if kind == "file":
        from toolkit.sources.files import _read_file

        path = Path(name).expanduser()
        if not path.is_file():
            raise UserError(f"file {name!r} does not exist; check the path in {config.source!r}")
        rows, source, version, hub_id = _read_file(path), path.name, "", None
    else:
        rows, source, version, hub_id = _hub_rows(config, name), name, config.revision or config.subset or "", name
    problems = _problems(rows, config, source, version)
    info = SourceInfo(spec=config.source, kind=kind, name=source, hub_id=hub_id, config=config.subset,
                      split=config.split, revision=config.revision, license=None, answer_type=ANSWER_TYPE,
                      task_category="instruction following", citation=None,
                      url=f"https://huggingface.co/datasets/{hub_id}" if hub_id else None)  # fmt: skip
    return LoadedSource(info, problems)


def _hub_rows(config: Any, name: str) -> Any:
    if config.data_files:
        from toolkit.sources.files import _read_files

        return _read_files(config.data_files)
    from toolkit.sources.hub import _hub_rows as hub_rows

    return hub_rows(name, config.subset, config.split, config.revision)


def _problems(rows: Any, config: Any, source: str, version: str) -> list[Problem]:
    columns = list(getattr(rows, "column_names", None) or sorted({k for row in rows for k in row}))
    field = config.question_field or next((f for f in INSTRUCTION_FIELDS if f in columns), None)
    if field is None or field not in columns:
        wanted = config.question_field or " / ".join(INSTRUCTION_FIELDS)
        raise UserError(f"{config.source} has no field {wanted!r}; available: {', '.join(columns)}; "
                        "pass --question-field")  # fmt: skip
    if config.input_field is not None and config.input_field not in columns:
        raise UserError(f"{config.source} has no field {config.input_field!r} (--input-field); available: "
                        f"{', '.join(columns)}")  # fmt: skip
    problems = []
    for index, row in enumerate(rows):
        if config.limit is not None and index >= config.limit:
            break
        text = str(row.get(field) or "").strip()
        extra = str(row.get(config.input_field) or "").strip() if config.input_field else ""
        if extra:
            text = f"{text}\n\n{extra}"
        if not text:
            raise UserError(f"row {index} of {config.source} has an empty {field!r}; fix the row")
        problems.append(Problem(id=stable_id(source, version, config.split, index), source=source, question=text,
                                gold="", answer_type=ANSWER_TYPE, meta={"index": index}))  # type: ignore[arg-type]  # fmt: skip
    return problems
