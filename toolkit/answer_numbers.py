"""Numbers as answers: where a number is in a text (`NUMBER`), one canonical string per value
("1,234.50" -> "1234.5", "3/4" stays), its float for comparing by value, and LaTeX expressions read and
compared by math-verify (sympy) when a plain number cannot express them (`\\sqrt{3}`, `\\pi`).
The primitives of `toolkit.answers`, which cleans a value before it comes here."""

from __future__ import annotations

import re
import threading
from decimal import Decimal, InvalidOperation
from functools import lru_cache

# Thousands commas only in groups of three, so "3, 4" stays two numbers; no digit or dot before
# it, so "x2" and the ".3" of "1.2.3" are not numbers.
NUMBER = re.compile(
    r"(?<![\w.])-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,3}(?!\w)|/\d+)?"
)
# What a plain number cannot express; such values go to math-verify as LaTeX, if short.
EXPR_HINT = re.compile(r"\\(?:sqrt|pi|frac|dfrac|tfrac|cdot|times|infty)|\^|√|π")
MAX_EXPRESSION = 100
# Unit words after a number, "m^2" and "m/s" included; (?![a-zA-Z]) keeps it from backtracking.
UNITS = re.compile(r"(?:[\s/]*[a-zA-Z]+(?![a-zA-Z])(?:\^\{?\d\}?)?)*[\s.]*")


def is_number_with_units(text: str, match: re.Match[str] | None) -> bool:
    """Whether the text is a number and units, so "5 m^2" is 5 and not the product 5*m**2."""
    if match is None or EXPR_HINT.search(text[: match.start()]):
        return False
    return UNITS.fullmatch(text, match.end()) is not None


def is_numeric_expression(expression: str) -> bool:
    """Whether math-verify reads the LaTeX as a constant, like 2\\sqrt{3} (not x^2 or prose)."""
    if len(expression) > MAX_EXPRESSION:
        return False  # a real answer is short; sympy on a long degenerate output takes seconds
    parsed = parse(expression)
    return bool(parsed) and not getattr(parsed[0], "free_symbols", True)


def canonical_number(token: str) -> str | None:
    """ "1,234.50" -> "1234.5", "19.0" -> "19", "3/4" stays; None for "1/0"."""
    numerator, _, denominator = token.replace(",", "").partition("/")
    try:
        num = Decimal(numerator)
        den = Decimal(denominator) if denominator else None
    except InvalidOperation:
        return None
    if den is None:
        return format_decimal(num)
    return f"{format_decimal(num)}/{format_decimal(den)}" if den != 0 else None


def format_decimal(number: Decimal) -> str:
    # Formatting the Decimal, not an int, keeps every digit (no 28-digit context rounding) and
    # survives the 4300-digit int limit when a small model loops on digits.
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def as_float(canonical: str) -> float | None:
    numerator, _, denominator = canonical.partition("/")
    try:
        return float(numerator) / float(denominator) if denominator else float(numerator)
    except ValueError:
        return None


def math_verify_timeout() -> int | None:
    # math-verify times out with signal.alarm, which works only in the main thread.
    return 5 if threading.current_thread() is threading.main_thread() else None


@lru_cache(maxsize=65536)
def parse(expression: str) -> tuple:
    from math_verify import parse  # sympy is slow to import; only LaTeX answers need it

    # No fallback: an unparsable string such as "\\sqrt{" must not count as an answer.
    return tuple(
        parse(f"${expression}$", fallback_mode="no_fallback", parsing_timeout=math_verify_timeout())
    )


@lru_cache(maxsize=65536)
def expressions_equal(gold: str, pred: str) -> bool:
    from math_verify import verify

    gold_parsed, pred_parsed = parse(gold), parse(pred)
    if not gold_parsed or not pred_parsed:
        return False
    return verify(list(gold_parsed), list(pred_parsed), timeout_seconds=math_verify_timeout())
