"""Answer extraction and checking, shared by the builders and the lm-eval task hooks.

The house convention: every chain-of-thought rationale ends with `The answer is X.` Strict
extraction finds that statement (or a final `\\boxed{X}`); the flexible fallback finds the last
number, option letter, yes/no word or label in the text. Every value is brought to one canonical
string per answer type by `normalize_answer`, so a prediction and a gold compare as strings, except
numbers, which compare by value (a float fast path first, math-verify for LaTeX expressions).
Where a text states answers is `toolkit.answer_statements`; how a builder reads a whole completion
(one answer or two, by which rule, with or without reasoning, the row it may become) is
`toolkit.answer_reading`.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from toolkit.answer_numbers import (
    EXPR_HINT as _EXPR_HINT,
)
from toolkit.answer_numbers import (
    MAX_EXPRESSION as _MAX_EXPRESSION,
)
from toolkit.answer_numbers import (
    NUMBER as _NUMBER,
)
from toolkit.answer_numbers import (
    as_float as _as_float,
)
from toolkit.answer_numbers import (
    canonical_number as _canonical_number,
)
from toolkit.answer_numbers import (
    expressions_equal as _expressions_equal,
)
from toolkit.answer_numbers import (
    is_number_with_units as _is_number_with_units,
)
from toolkit.answer_numbers import (
    is_numeric_expression as _is_numeric_expression,
)
from toolkit.answer_statements import boxed_spans as _boxed_spans
from toolkit.answer_statements import statement_spans
from toolkit.errors import UserError
from toolkit.records import AnswerType

ANSWER_PREFIX = "The answer is"

_TEXT_CMD = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_INTEGER = re.compile(r"-?\d+")
_YESNO_WORD = re.compile(r"\b(yes|no|true|false)\b", re.I)
_YESNO = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
# A leading option letter: "(b) ...", "option b", "B. ...", "B: ...", "B) ...", "B ...".
_LEAD_LETTER = re.compile(
    r"[(\[]([A-Za-z])[)\]]|(?i:option|choice)[\s:]*([A-Za-z])\b|([A-Z])(?=[.:)\]]|\s|$)"
)
# Flexible option mentions. None matches a bare capital, so the article in "A farmer has ..." is
# never read as option A; a letter needs brackets, bold, a line of its own, or a cue word.
_OPTION_MENTIONS = (
    re.compile(r"\(([A-Za-z])\)"),  # (C)
    re.compile(r"(?<![\w(])([A-Z])\)"),  # C)
    re.compile(r"\*\*\(?([A-Z])\)?\*\*"),  # **C**
    re.compile(r"(?i:\b(?:option|choice))\s+\(?([A-Za-z])\b"),  # option C
    re.compile(r"(?i:\banswer\b)[^\w\n]{0,6}(?:(?i:is)[^\w\n]{1,6})?([A-Z])(?![\w'’])"),  # answer: C
    re.compile(r"(?m)^[^\w\n]*([A-Z])[^\w\n]*$"),  # a line that is only "C." or "(C)"
)
# A trailing answer statement on a rationale's last line, from where it starts to the line's end.
_TRAILING = re.compile(
    r"[\s*_#>]*(?:(?:the\s+)?(?:final\s+|correct\s+)?answer[*_]*(?:\s+is\b|\s*:)|final\s+answer\b|#{4}).*$",
    re.I,
)
_CONNECTIVE = re.compile(r"[\s,;:]*(?:\b(?:so|thus|therefore|hence|and|finally|overall)\b[\s,;:]*)*$", re.I)


@dataclass(frozen=True, slots=True)
class Extraction:
    """An extracted answer: `value` is canonical (see `normalize_answer`); `strict` is True when
    it came from the "The answer is X" convention or a `\\boxed{X}`."""

    value: str
    strict: bool


def option_letters(n: int) -> tuple[str, ...]:
    """The letters that name n options: ("A", "B", ...)."""
    if not 0 <= n <= 26:
        raise UserError(f"{n} options cannot be named by the letters A-Z; use at most 26 choices.")
    return tuple(string.ascii_uppercase[:n])


def format_answer_line(answer: str) -> str:
    """The convention's closing line: "The answer is X."."""
    return f"{ANSWER_PREFIX} {answer.strip().rstrip('.')}."


def ensure_answer_line(rationale: str, answer: str) -> str:
    """The rationale, trimmed, ending with exactly one "The answer is X." line.

    Answer statements on the last lines ("The answer is ...", "Final answer: ...", "#### 42", a bare
    `\\boxed{42}`) are replaced; an answer statement inside the last line is cut with all after it.
    """
    lines = rationale.strip().splitlines()
    while lines:
        last = _strip_answer_statement(lines[-1])
        if last == lines[-1]:
            break
        if last.strip():
            lines[-1] = last
        else:
            lines.pop()
    text = "\n".join(lines).rstrip()
    line = format_answer_line(answer)
    return f"{text}\n{line}" if text else line


def _strip_answer_statement(line: str) -> str:
    """One line with its answer statement removed ("" when the line was only that)."""
    unboxed, outside = _split_boxed(line)
    if unboxed != line and not re.search(r"[^\W_]", outside):
        return ""  # the line was only a boxed value, like "$\boxed{42}$." or "\\[ \boxed{42} \\]"
    match = _TRAILING.search(unboxed)
    if not match:
        return unboxed
    head = _CONNECTIVE.sub("", unboxed[: match.start()]).rstrip()
    # "She has 7 left, so the answer is 7." keeps "She has 7 left." as a sentence.
    return head + "." if head and head[-1].isalnum() else head


def extract_answer(
    text: str | None, answer_type: AnswerType, choices: Sequence[str] = (), *, flexible: bool = True
) -> Extraction | None:
    """The answer in a model output: strict first, then (if `flexible`) the fallback."""
    value = extract_strict(text, answer_type, choices)
    if value is not None:
        return Extraction(value, strict=True)
    value = extract_flexible(text, answer_type, choices) if flexible else None
    return Extraction(value, strict=False) if value is not None else None


def extract_strict(text: str | None, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The canonical answer of the last valid "The answer is X" statement or `\\boxed{X}`."""
    if not text or not text.strip():
        return None
    for value in reversed(_strict_candidates(text)):
        normalized = normalize_answer(value, answer_type, choices)
        if normalized is not None:
            return normalized
    return None


def _strict_candidates(text: str) -> list[str]:
    """Raw values of every answer statement and boxed value, in the order they appear."""
    return [value for _, _, value in statement_spans(text)]


def extract_flexible(text: str | None, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The fallback: the last number, option mention, yes/no word or label in the text."""
    if not text or not text.strip():
        return None
    if answer_type == "number":
        numbers = _NUMBER.findall(_plain_math(text))
        return _canonical_number(numbers[-1]) if numbers else None
    if answer_type == "option":
        return _last_option(text, choices)
    if answer_type == "yesno":
        words = _YESNO_WORD.findall(text)
        return _YESNO[words[-1].lower()] if words else None
    if answer_type == "label":
        index = _last_mention(text, tuple(choices)) if choices else None
        return _label_key(choices[index]) if index is not None else None
    if answer_type == "math":  # the last boxed value, else the last number
        spans = _boxed_spans(text)
        if spans:
            return normalize_answer(spans[-1][2], "math")
        numbers = _NUMBER.findall(_plain_math(text))
        return _canonical_number(numbers[-1]) if numbers else None
    raise ValueError(f"unknown answer type {answer_type!r}")


def normalize_answer(value: str | None, answer_type: AnswerType, choices: Sequence[str] = ()) -> str | None:
    """The canonical form of an answer value, or None when it is not a valid answer.

    number: "1234", "-3.5", "3/4" (units, "$", thousands commas, ".0" dropped) or a LaTeX
    expression math-verify can parse; option: the letter ("B"); yesno: "yes"/"no"; label: the
    lowercased label, one of `choices` when they are given; math: a number as for `number`, else the
    LaTeX as written (boxes, dollars, \\text and spacing removed), which `is_correct` compares with
    math-verify.
    """
    if value is None or not value.strip():
        return None
    return _normalize_cached(value, answer_type, tuple(choices))


@lru_cache(maxsize=4096)  # a build normalizes each gold once per sample, and its samples agree often
def _normalize_cached(value: str, answer_type: AnswerType, choices: tuple[str, ...]) -> str | None:
    if answer_type in ("number", "yesno", "math") and re.match(r"\W*not\b", _clean(value), re.I):
        return None  # "The answer is not 5, ..." rules an answer out; it does not state one
    first = _normalize_one(value, answer_type, choices)
    if first is None or _offers_another(value, answer_type, choices, first):
        return None
    return first


# "yes or no", "A/B", "A and C", "3 or 4": a statement that offers a second, different answer commits
# to neither. For numbers only "or": "3/4" is a fraction, "3 and 1/2" a mixed number.
_ALTERNATIVE = re.compile(r"\s*/\s*|\s+(?:and/)?or\s+|\s+and\s+", re.I)
_NUMERIC_ALTERNATIVE = re.compile(r"\s+or\s+", re.I)


def _offers_another(value: str, answer_type: AnswerType, choices: tuple[str, ...], first: str) -> bool:
    """Whether the value goes on to name another valid answer (`first` or `X`, in a few words)."""
    pattern = _NUMERIC_ALTERNATIVE if answer_type in ("number", "math") else _ALTERNATIVE
    match = pattern.search(value)
    if match is None:
        return False
    alternative = re.split(r"[,;:]", value[match.end() :], maxsplit=1)[0].strip()
    if not alternative or len(alternative.split()) > 3:  # "yes, since no fish or bird ..." goes on to reason
        return False
    second = _normalize_cached(alternative, answer_type, choices)
    return second is not None and second != first


def _normalize_one(value: str, answer_type: AnswerType, choices: tuple[str, ...]) -> str | None:
    if answer_type == "number":
        return _normalize_number(value)
    if answer_type == "option":
        return _normalize_option(value, choices)
    if answer_type == "yesno":
        match = re.match(r"\W*(yes|no|true|false)\b", _clean(value), re.I)
        return _YESNO[match[1].lower()] if match else None
    if answer_type == "label":
        return _normalize_label(value, choices)
    if answer_type == "math":
        cleaned = _clean(value)
        match = _NUMBER.match(cleaned)
        plain = _NUMBER.fullmatch(cleaned) or (match and _is_number_with_units(cleaned, match))  # "12,000", "3 apples"
        if plain or _EXPR_HINT.search(cleaned):  # "1,2" (two solutions) stays a list
            number = _normalize_number(value)
            if number is not None:
                return number
        expression = " ".join(_clean(value).split())
        return expression if 0 < len(expression) <= 2 * _MAX_EXPRESSION else None
    raise ValueError(f"unknown answer type {answer_type!r}")


def is_correct(pred: str | None, gold: str, answer_type: AnswerType, choices: Sequence[str] = ()) -> bool:
    """Whether an extracted prediction matches the gold answer (numbers by value: "0.5" == "1/2")."""
    pred_norm = normalize_answer(pred, answer_type, choices)
    gold_norm = normalize_answer(gold, answer_type, choices)
    if pred_norm is None or gold_norm is None:
        return False
    if answer_type == "math" and pred_norm != gold_norm:
        numeric = _as_float(pred_norm) is not None and _as_float(gold_norm) is not None
        if not numeric:  # intervals, expressions, words: math-verify, or the same text up to case
            return pred_norm.casefold() == gold_norm.casefold() or _expressions_equal(gold_norm, pred_norm)
    if answer_type not in ("number", "math") or pred_norm == gold_norm:
        return pred_norm == gold_norm
    if _INTEGER.fullmatch(pred_norm) and _INTEGER.fullmatch(gold_norm):
        return int(pred_norm) == int(gold_norm)  # exact: a float tolerance calls 10**11 + 1 right
    pred_float, gold_float = _as_float(pred_norm), _as_float(gold_norm)
    if pred_float is not None and gold_float is not None:
        # Plain numbers are settled here: math-verify (sympy) is ~1000x slower and adds nothing.
        return math.isclose(pred_float, gold_float, rel_tol=1e-6)
    return _expressions_equal(gold_norm, pred_norm)


# --- cleaning -------------------------------------------------------------------------------------


def _split_boxed(text: str) -> tuple[str, str]:
    """(the text with every `\\boxed{X}` replaced by X, the text outside the boxes)."""
    unwrapped, outside, last = [], [], 0
    for start, end, content in _boxed_spans(text):
        if start >= last:  # a box nested in a box is unwrapped with its parent
            unwrapped += [text[last:start], content]
            outside.append(text[last:start])
            last = end
    unwrapped.append(text[last:])
    outside.append(text[last:])
    return "".join(unwrapped), "".join(outside)


def _clean(value: str) -> str:
    """A raw value without boxes, LaTeX text wrappers, dollars, markdown and end punctuation."""
    spans = _boxed_spans(value)
    value = spans[-1][2] if spans else value
    value = _TEXT_CMD.sub(r"\1", _plain_math(value))
    value = value.replace("$", "").replace("**", "").replace("`", "").replace("\\%", "%")
    value = value.replace("\\!", "").replace("\\,", "").replace("\\ ", " ")
    return value.strip(" \t\n*_\"'“”‘’").rstrip(".,;:!?").strip()


def _plain_math(text: str) -> str:
    """Unicode minus to "-", "\\$" to "$", "-$5" to "-5", numeric \\frac{a}{b} to "a/b"."""
    text = text.replace("−", "-").replace("\\$", "$").replace("-$", "-")
    return _LATEX_FRAC.sub(r"\1/\2", text)


# --- per answer type ------------------------------------------------------------------------------


def _normalize_number(value: str) -> str | None:
    """A canonical plain number, or a LaTeX expression math-verify can parse."""
    # "19, since 12 + 7 = 19" and "12 + 7 = 19" both mean 19 ("1,250" has no space after the comma).
    cleaned = _clean(value).split(", ")[0].rsplit("=", 1)[-1].strip()
    match = _NUMBER.search(cleaned)
    if _EXPR_HINT.search(cleaned) and not _is_number_with_units(cleaned, match):
        expression = " ".join(cleaned.split())
        return expression if _is_numeric_expression(expression) else None
    return _canonical_number(match.group()) if match else None


def _valid_letters(choices: Sequence[str]) -> tuple[str, ...]:
    return option_letters(len(choices)) if choices else tuple(string.ascii_uppercase)


def _normalize_option(value: str, choices: Sequence[str]) -> str | None:
    """The letter of an option given as "B", "(b)", "option B", "B: text" or the option text."""
    cleaned = _clean(value)
    letters = _valid_letters(choices)
    alone = re.fullmatch(r"[(\[]?([A-Za-z])[)\]]?", cleaned)
    if alone:
        return alone[1].upper() if alone[1].upper() in letters else None
    index = _match_choice(cleaned, tuple(choices)) if choices else None
    if index is not None:
        return letters[index]
    lead = _LEAD_LETTER.match(cleaned)
    letter = next((g for g in lead.groups() if g), "").upper() if lead else ""
    return letter if letter in letters else None


def _match_choice(value: str, choices: tuple[str, ...]) -> int | None:
    """The index of the choice the value is, or starts with (the longest such)."""
    keys = _choice_keys(choices)
    key = _label_key(value)
    if key in keys:
        return keys.index(key)
    prefixed = [i for i, k in enumerate(keys) if k and re.match(re.escape(k) + r"(?!\w)", key)]
    return max(prefixed, key=lambda i: len(keys[i])) if prefixed else None


def _last_option(text: str, choices: Sequence[str]) -> str | None:
    """The last valid letter mention; failing that, the last mention of an option's text."""
    letters = _valid_letters(choices)
    found = [(m.start(), m[1].upper()) for pattern in _OPTION_MENTIONS for m in pattern.finditer(text)]
    for _, letter in sorted(found, reverse=True):
        if letter in letters:
            return letter
    index = _last_mention(text, tuple(choices)) if choices else None
    return letters[index] if index is not None else None


def _label_key(value: str) -> str:
    return " ".join(_clean(value).lower().split())


@lru_cache(maxsize=1024)
def _choice_keys(choices: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_label_key(choice) for choice in choices)


def _normalize_label(value: str, choices: Sequence[str]) -> str | None:
    """The lowercased label; with a label set, the member the value is or starts with."""
    if not choices:
        key = _label_key(value.split(", ")[0])  # "positive, since ..." is "positive"
        return key if re.search(r"\w", key) else None
    index = _match_choice(value, tuple(choices))
    return _label_key(choices[index]) if index is not None else None


@lru_cache(maxsize=1024)
def _mention_pattern(choices: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so "not entailment" is found whole rather than as "entailment".
    keys = sorted({k for k in _choice_keys(choices) if k}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(k) for k in keys) + r")(?!\w)", re.I)


def _last_mention(text: str, choices: tuple[str, ...]) -> int | None:
    """The index of the choice whose text is mentioned last, or None."""
    if not any(_choice_keys(choices)):
        return None
    mentions = _mention_pattern(choices).findall(text)
    return _choice_keys(choices).index(mentions[-1].lower()) if mentions else None
