"""Row types: frozen dataclasses inside, exactly TRL's columns at the edge.

SFT rows are conversational prompt-completion (`prompt`: messages, `completion`: one assistant
message), so TRL trains on completions only; preference rows are `prompt`, `chosen`, `rejected`.
The metadata every row of a kind carries is declared once here; a method subclasses the row type
to add its own columns. The Arrow schema is derived from the annotations (`schema_of`), so a
build with zero rows is still a loadable, typed dataset.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, TypedDict


class Message(TypedDict):
    role: str
    content: str


Messages = list[Message]


@dataclass(frozen=True, slots=True, kw_only=True)
class SFTRow:
    """One supervised example and where it came from (the README's "TRL-native rows")."""

    prompt: Messages
    completion: Messages
    id: str  # stable problem id
    source: str
    question: str
    gold: str
    pred: str | None  # the answer the completion states ("The answer is X."), None if it states none
    correct: bool  # pred matches gold
    answer_type: str
    choices: list[str]
    teacher: str  # identity of the model that wrote the completion
    sample_idx: int
    finish_reason: str  # "length": cut off by max_new_tokens, kept as it came (never given an answer line)
    num_tokens: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PreferenceRow:
    """One preference pair; the metadata says what each side is."""

    prompt: Messages
    chosen: Messages
    rejected: Messages
    id: str
    source: str
    question: str
    gold: str
    answer_type: str
    choices: list[str]


def user(content: str) -> Messages:
    return [{"role": "user", "content": content}]


def assistant(content: str) -> Messages:
    return [{"role": "assistant", "content": content}]


# -- Arrow --------------------------------------------------------------------------------------
def schema_of(row_type: type):
    """The Arrow schema of a row dataclass, column by column in field order."""
    import pyarrow as pa

    hints = typing.get_type_hints(row_type)
    return pa.schema([(f.name, arrow_type(hints[f.name])) for f in dataclasses.fields(row_type)])


def arrow_type(hint: Any):
    import pyarrow as pa

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):  # X | None: nullable X (Arrow columns are nullable)
        (inner,) = [a for a in args if a is not type(None)]
        return arrow_type(inner)
    if origin in (list, tuple):
        return pa.list_(arrow_type(args[0]))
    if typing.is_typeddict(hint):
        return pa.struct([(name, arrow_type(t)) for name, t in typing.get_type_hints(hint).items()])
    if dataclasses.is_dataclass(hint):  # a nested record, e.g. per-row scores
        inner = typing.get_type_hints(hint)
        return pa.struct([(f.name, arrow_type(inner[f.name])) for f in dataclasses.fields(hint)])
    simple = {str: pa.string(), int: pa.int64(), float: pa.float64(), bool: pa.bool_()}
    if hint in simple:
        return simple[hint]
    raise TypeError(f"no Arrow type for row field type {hint!r}")


def to_record(row: Any) -> dict[str, Any]:
    """A row dataclass as the plain dict Arrow writes. Messages, lists and tuples pass as they are
    (Arrow reads them); only nested dataclasses are converted, by the fields known to hold them."""
    names, nested = _layout(type(row))
    record = {name: getattr(row, name) for name in names}
    for name in nested:
        record[name] = _plain(record[name])
    return record


@cache
def _layout(row_type: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The field names of a row type, and those whose type holds a dataclass (converted per row)."""
    hints = typing.get_type_hints(row_type)
    names = tuple(f.name for f in dataclasses.fields(row_type))
    return names, tuple(n for n in names if _holds_dataclass(hints[n]))


def _holds_dataclass(hint: Any) -> bool:
    if dataclasses.is_dataclass(hint):
        return True
    return any(_holds_dataclass(a) for a in typing.get_args(hint))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_record(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
