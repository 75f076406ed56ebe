"""Canonical golds: numbers without commas or trailing zeros, "yes"/"no", option letters A, B, ...;
and the errors a row that can't be normalised raises."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

LETTERS = string.ascii_uppercase


class BadRow(ValueError):
    """A row that cannot become a problem; the message says why."""


class MissingField(KeyError):
    """A row lacks every one of the named fields."""

    def __init__(self, names: tuple[str, ...], available: list[str]) -> None:
        super().__init__(names)
        self.names = names
        self.available = available


def text(value: Any, what: str = "question") -> str:
    """Non-empty text, stripped; BadRow otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise BadRow(f"{what} is empty or not text: {value!r}")
    return value.strip()


_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?")
_FRACTION = re.compile(r"[+-]?\d+/\d+")
_YES = {"yes", "true", "y"}
_NO = {"no", "false", "n"}
_PREFIX = re.compile(r"\s*\(?([A-Z])\s*[).:]\s*")


def parse_number(value: Any) -> str | None:
    """Canonical text of a numeric gold ("1,000" -> "1000", 8.0 -> "8", "$3.50" -> "3.5"), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        return None
    s = value.strip().replace("$", "").rstrip(".").strip()
    if _FRACTION.fullmatch(s):
        return s.lstrip("+")
    if not s or not _NUMBER.fullmatch(s) or not any(c.isdigit() for c in s):
        return None
    try:
        d = Decimal(s.replace(",", ""))
    except InvalidOperation:
        return None
    out = format(d.normalize(), "f")
    return "0" if out in ("-0", "+0") else out


def parse_yesno(value: Any) -> str | None:
    """Booleans and yes/no/true/false text as "yes" or "no"; None for anything else."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        s = value.strip().lower()
        return "yes" if s in _YES else "no" if s in _NO else None
    return None


def parse_choices(value: Any) -> tuple[list[str], list[str]]:
    """Option texts in order, and their labels ([] when unlabelled).

    Takes {"label": [...], "text": [...]}, a list of texts (prefixes like "A)" are split off), a
    list of {"label", "text"} dicts, or any of those as JSON text (a CSV cell).
    """
    if isinstance(value, str) and value.strip()[:1] in "[{":
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise BadRow(f"choices are not valid JSON: {e}") from None
    if isinstance(value, Mapping) and "text" in value:
        texts, labels = list(value["text"]), [str(x).strip() for x in value.get("label") or []]
    elif isinstance(value, list | tuple) and value and all(isinstance(v, Mapping) for v in value):
        texts, labels = [v.get("text") for v in value], [str(v.get("label", "")).strip() for v in value]
    elif isinstance(value, list | tuple) and value:
        texts, labels = _split_prefixes([str(v) for v in value])
    else:
        raise BadRow(f"choices {value!r} are not a list or a {{label, text}} mapping")
    if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
        raise BadRow(f"choices {value!r} include an empty option")
    if len(texts) > len(LETTERS) or (labels and len(labels) != len(texts)):
        raise BadRow(f"choices {value!r} have mismatched labels or too many options")
    return [t.strip() for t in texts], labels


def _split_prefixes(items: list[str]) -> tuple[list[str], list[str]]:
    # Only when every option carries its own letter in order ("A)21", "B)21.5"): a text that merely
    # starts with "A." must stay whole.
    matches = [_PREFIX.match(s) for s in items]
    if all(m and m.group(1) == LETTERS[i] for i, m in enumerate(matches)):
        return [s[m.end() :] for s, m in zip(items, matches, strict=True)], list(LETTERS[: len(items)])
    return items, []


def option_letter(gold: Any, texts: list[str], labels: list[str]) -> str | None:
    """The letter (A, B, ...) of the gold option: by label, by letter, or by exact text; else None."""
    if not isinstance(gold, str):
        return None
    g = gold.strip()
    if labels and g in labels:
        return LETTERS[labels.index(g)]
    if len(g) == 1 and g.upper() in LETTERS[: len(texts)]:
        return g.upper()
    return LETTERS[texts.index(g)] if g in texts else None
