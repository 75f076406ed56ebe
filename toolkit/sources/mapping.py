"""Mapped sources (`hf:org/name`, `file:PATH`): rows become problems through the fields the user
names, with the answer type detected from all the golds when not given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.sources.base import _Fields, _Where
from toolkit.sources.normalize import BadRow, option_letter, parse_choices, parse_number, parse_yesno, text

MAX_LABELS = 20  # a label column with more distinct values is free text, not a label set


def detect_answer_type(golds: list[Any], choices: list[Any] | None) -> str:
    """option where each gold names one of its row's choices; else number, yes/no, or label."""
    if choices is not None and all(_is_option(g, c) for g, c in zip(golds, choices, strict=True)):
        return "option"
    if all(parse_number(g) is not None for g in golds):
        return "number"
    if all(parse_yesno(g) is not None for g in golds):
        return "yesno"
    return "label"


def _is_option(gold: Any, choices: Any) -> bool:
    try:
        texts, labels = parse_choices(choices)
    except BadRow:
        return False
    return gold is not None and option_letter(str(gold), texts, labels) is not None


def mapped_gold(answer_type: str, value: Any, choices: Any) -> tuple[str, tuple[str, ...]]:
    """The canonical gold of one row, and the row's options (for option and label answers)."""
    texts, labels = parse_choices(choices) if choices is not None else ([], [])
    if answer_type == "option":
        gold = option_letter(str(value), texts, labels) if value is not None else None
    elif answer_type == "number":
        gold = parse_number(value)
    elif answer_type == "yesno":
        gold = parse_yesno(value)
    else:
        gold = str(value).strip() if value is not None else None
        if gold and texts and gold not in texts:
            raise BadRow(f"label {gold!r} is not one of the options {texts}")
    if not gold:
        among = f" among the options {texts}" if answer_type == "option" else ""
        raise BadRow(f"answer {value!r} is not a valid {answer_type}{among}")
    return gold, tuple(texts) if answer_type in ("option", "label") else ()


def label_set(golds: list[Any]) -> tuple[str, ...]:
    """The sorted distinct golds of a label column, or () when there are too many to be a set."""
    distinct = sorted({str(g).strip() for g in golds if g is not None and str(g).strip()})
    return tuple(distinct) if len(distinct) <= MAX_LABELS else ()


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
                index=index,
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
