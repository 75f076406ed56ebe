"""`ans` as one canonical string, computed inside the sandboxed child (the value may be hostile).

Numbers follow `toolkit.answers.normalize_answer`'s canonical form, so a rendered `ans` compares
with a gold answer as a string: "42", "-3.5", "3/4", no trailing zeros. The rendering never calls
int -> str on an int longer than the answer limit: that conversion is quadratic in CPython and
refused past 4300 digits since 3.11.
"""

from __future__ import annotations

import math
import numbers
import sys
from decimal import Decimal
from fractions import Fraction

_LOG10_2 = math.log10(2)


class BadAnswer(Exception):
    """`ans` exists but has no acceptable rendering; the message says why, on one line."""


def _plain_decimal(number: Decimal) -> str:
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _int(value: int, max_chars: int) -> str:
    digits = int(value.bit_length() * _LOG10_2) + 1
    if digits > max_chars:
        raise BadAnswer(f"ans is an integer of about {digits} digits (answer limit {max_chars} characters)")
    limit = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0
    if limit and digits >= limit:  # an answer limit above CPython's 4300 digits was asked for
        sys.set_int_max_str_digits(digits + 1)
    return str(value)


def _float(value: float) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return _plain_decimal(Decimal(repr(value)))


def _unwrap_numpy(value: object) -> object:
    """A numpy scalar (or 0-d array) as the Python number it holds; anything else unchanged."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def render(value: object, max_chars: int) -> str:
    """The canonical string of `value`, or BadAnswer."""
    value = _unwrap_numpy(value)
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return _int(value, max_chars)
    if isinstance(value, float):
        text = _float(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            text = _float(float(value))
        elif abs(value.adjusted()) > max_chars:  # formatting 1E+999999999 would fill memory
            raise BadAnswer(f"ans is a Decimal with exponent {value.adjusted()} (answer limit {max_chars})")
        else:
            text = _plain_decimal(value)
    elif isinstance(value, Fraction | numbers.Rational):  # sympy.Rational registers as one
        num, den = int(value.numerator), int(value.denominator)
        text = _int(num, max_chars) if den == 1 else f"{_int(num, max_chars)}/{_int(den, max_chars)}"
    elif isinstance(value, numbers.Integral):
        text = _int(int(value), max_chars)
    elif isinstance(value, numbers.Real):  # sympy.Float and other real-number types
        text = _float(float(value))
    elif isinstance(value, str):
        text = value
    else:  # lists, complex numbers, sympy expressions: their str(), if short
        text = str(value)
        if not isinstance(text, str):
            raise BadAnswer(f"str(ans) returned {type(text).__name__}, not str")
    if len(text) > max_chars:
        raise BadAnswer(f"ans renders to {len(text)} characters (answer limit {max_chars})")
    return text
