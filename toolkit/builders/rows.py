"""The edge where rows become TRL's columns, with explicit Arrow schemas.

SFT rows are conversational prompt-completion (`prompt`: messages, `completion`: one assistant
message), so TRL trains on completions only. Preference rows are `prompt`, `chosen`, `rejected`.
Explicit schemas keep a build with zero kept rows a loadable (empty) dataset.
"""

from __future__ import annotations

from typing import Any


def _types():
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa, pa.list_(message)


# Metadata every SFT row carries (DESIGN.md, "TRL-native rows").
SFT_META = (
    ("id", "string"), ("source", "string"), ("question", "string"), ("gold", "string"), ("pred", "string"),
    ("correct", "bool"), ("answer_type", "string"), ("choices", "list<string>"), ("teacher", "string"),
    ("sample_idx", "int32"), ("finish_reason", "string"), ("num_tokens", "int32"),
)  # fmt: skip


def _arrow(pa, kind: str):
    if kind == "list<string>":
        return pa.list_(pa.string())
    return pa.bool_() if kind == "bool" else getattr(pa, kind)()


def sft_schema(extra: tuple[tuple[str, str], ...] = ()):
    """prompt + completion + SFT metadata + a builder's own columns (name, arrow type name)."""
    pa, messages = _types()
    fields = [("prompt", messages), ("completion", messages)]
    fields += [(name, _arrow(pa, kind)) for name, kind in (*SFT_META, *extra)]
    return pa.schema(fields)


def preference_schema(extra: tuple[tuple[str, str], ...] = ()):
    pa, messages = _types()
    fields = [("prompt", messages), ("chosen", messages), ("rejected", messages)]
    fields += [(name, _arrow(pa, kind)) for name, kind in extra]
    return pa.schema(fields)


def user(content: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


def assistant(content: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": content}]
