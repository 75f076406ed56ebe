"""Program-of-thought completions: the program in a reply, and what running it says.

`extract_program` is pure and never raises: it takes a model's reply and returns the Python
program in it, or None when there is none. The rules, in order (table-tested in tests/test_mixed.py):

1. Fenced blocks (```python, ```py, ```python3; unlabelled ``` blocks only when no block is
   labelled Python). One block is the program. Several (a helper, then its use) are joined in
   order when the join compiles; otherwise the last block that compiles and sets `ans`, else the
   last block. A fence left open (a reply cut off mid-block) runs to the end of the text.
2. No fence: the whole reply when it compiles; otherwise the longest run of whole lines that
   compiles and assigns `ans` (prose before and after the code is left out).

`judge_program` turns a sandbox run into a verdict: `verified` when the run ended with an `ans`
that matches gold, else the kind of failure. A program that tried to get out of the sandbox (a call
the sandbox refused: a signal to another process, a socket, a fork, SysV IPC, ...; see
`ExecResult.escape_attempts`) is never verified, whatever its `ans`: it is counted as `escape_<kind>`.
A numeric `ans` must be one number (a list, a tuple or several lines of candidates is no answer) and
is compared at the gold's precision: rounded (half up) to as many decimals as the gold has, it must
equal the gold (gold 0.33 takes 1/3, gold 7 takes 7.0000001); a gold fraction or expression is
compared by value under the shared checker (`toolkit.answers.is_correct`), as other answer types are.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from fractions import Fraction

from toolkit import answers
from toolkit.records import Problem

PYTHON_LANGS = frozenset({"python", "python3", "py", "py3", "ipython"})
_FENCE = re.compile(r"```[ \t]*([\w+.#-]*)[^\n]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)
_ASSIGNS_ANS = re.compile(r"^\s*(?:ans\s*(?::[^=\n]*)?[-+*/%]?=(?!=)|ans\s*,|.*,\s*ans\s*=)", re.M)
MAX_SCAN_LINES = 80  # the line-span search is quadratic; longer unfenced replies are taken whole or not at all

# Why a sampled program is not kept, beside the sandbox's own outcomes (toolkit.sandbox.OUTCOMES).
NOT_RUN = ("truncated", "no_program")
# A program that tried to get out, by what it tried (the first of these it did); never training data.
ESCAPE_KINDS = ("escape_process", "escape_network", "escape_signal", "escape_ipc", "escape_memory", "escape_limits",
                "escape_system")  # fmt: skip
FAILURE_KINDS = ("truncated", "no_program", "syntax", "exception", "timeout", "killed", "memory", "no_answer",
                 "output_limit", "bad_answer", "wrong", *ESCAPE_KINDS)  # fmt: skip
# One number as a program's `ans` renders it (toolkit.sandbox.answer) or a string may hold it.
_ONE_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?(?:[eE][-+]?\d+)?(?:/\d+)?|[-+]?\.\d+")
_PLAIN_GOLD = re.compile(r"-?\d+(\.\d+)?")


def extract_program(text: str | None) -> str | None:
    """The Python program in a reply (see module doc), stripped; None when there is none."""
    if not text or not text.strip():
        return None
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    if blocks:
        python = [body for lang, body in blocks if lang in PYTHON_LANGS]
        chosen = python or [body for lang, body in blocks if not lang]
        return _from_blocks([_dedent(b) for b in chosen if b.strip()]) if chosen else None
    return _from_bare(text)


def _from_blocks(blocks: list[str]) -> str | None:
    if not blocks:
        return None
    if len(blocks) == 1:
        return blocks[0]
    joined = "\n\n".join(blocks)
    if _compiles(joined):
        return joined
    setting = [b for b in blocks if _compiles(b) and _ASSIGNS_ANS.search(b)]
    return setting[-1] if setting else blocks[-1]


def _from_bare(text: str) -> str | None:
    whole = _dedent(text)
    if _compiles(whole):
        return whole
    lines = text.strip().splitlines()
    if len(lines) > MAX_SCAN_LINES:
        return None
    best: str | None = None
    for start in range(len(lines)):
        for end in range(len(lines), start, -1):
            if best is not None and end - start <= best.count("\n") + 1:
                break  # no longer than what we have
            span = _dedent("\n".join(lines[start:end]))
            if _ASSIGNS_ANS.search(span) and _compiles(span):
                best = span
                break
    return best


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code).strip()


def _compiles(code: str) -> bool:
    if not code.strip():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for "\d" in a model's string literals
            compile(code, "<pot>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def as_completion(program: str) -> str:
    """How a kept program is written in a row: the program alone, in one ```python block."""
    return f"```python\n{program}\n```"


@dataclass(frozen=True, slots=True)
class ProgramVerdict:
    """One sampled program, judged: `kind` is "verified" or one of FAILURE_KINDS."""

    kind: str
    program: str | None
    value: str | None = None  # what `ans` held (canonical), when the run ended with one
    outcome: str | None = None  # the sandbox's outcome, when the program ran
    runtime_s: float | None = None
    error: str = ""

    @property
    def verified(self) -> bool:
        return self.kind == "verified"


def judge_program(problem: Problem, program: str | None, result, finish_reason: str) -> ProgramVerdict:
    """A verdict for one reply: its program, the sandbox `result` of running it (None when it was
    not run: a cut-off reply, or no program in it) and whether `ans` matches gold."""
    if finish_reason == "length":
        return ProgramVerdict("truncated", program)
    if program is None or result is None:
        return ProgramVerdict("no_program", program)
    base = {"program": program, "outcome": result.outcome, "runtime_s": result.runtime_s, "error": result.error}
    attempts = getattr(result, "escape_attempts", {})
    if attempts:
        kind = next(k for k in ESCAPE_KINDS if k.removeprefix("escape_") in attempts or k == "escape_system")
        tried = ", ".join(f"{n} {k}" for k, n in sorted(attempts.items()))
        return ProgramVerdict(kind, value=result.value, **{**base, "error": f"the sandbox refused calls: {tried}"})
    if result.outcome != "ok":
        return ProgramVerdict(result.outcome, **base)
    right = matches_gold(result.value, problem)
    if right is None:
        return ProgramVerdict("no_answer", value=result.value, **{**base, "error": f"ans is not one answer: {result.value!r}"[:300]})
    return ProgramVerdict("verified" if right else "wrong", value=result.value, **base)


def matches_gold(value: str | None, problem: Problem) -> bool | None:
    """Whether a program's `ans` (canonical string) matches gold; None when it is not one answer."""
    if value is None:
        return None
    if problem.answer_type != "number":
        return None if _several(value) else answers.is_correct(value, problem.gold, problem.answer_type,
                                                               problem.choices)  # fmt: skip
    pred = _one_number(value)
    if pred is None:
        return None
    gold = answers.normalize_answer(problem.gold, "number")
    plain = _PLAIN_GOLD.fullmatch(gold or "")
    if plain is None:  # a fraction or an expression: by value
        return answers.is_correct(_fraction_text(pred), problem.gold, "number")
    decimals = len(plain.group(1)) - 1 if plain.group(1) else 0
    return _rounded(pred, decimals) == Decimal(gold)


def program_answer(result, answer_type: str, choices=()) -> str | None:
    """The one answer a sandbox run gave, canonical (for scoring a student's program the way a
    teacher's is judged): None when it failed, tried to get out, or left several candidates."""
    if result is None or not result.ok or getattr(result, "escape_attempts", {}):
        return None
    if answer_type == "number":
        return None if _one_number(result.value) is None else answers.normalize_answer(result.value, "number")
    return None if _several(result.value) else answers.normalize_answer(result.value, answer_type, choices)


def _several(value: str) -> bool:
    """A list, tuple or set of candidates, or one per line."""
    return "\n" in value.strip() or (value[:1] in "[({" and value[-1:] in "])}" and "," in value)


def _one_number(value: str) -> Fraction | None:
    text = value.strip()
    if not _ONE_NUMBER.fullmatch(text):
        return None
    numerator, _, denominator = text.replace(",", "").partition("/")
    try:
        number = Fraction(Decimal(numerator))
        return number / int(denominator) if denominator else number
    except (InvalidOperation, ValueError, ZeroDivisionError, OverflowError):
        return None


def _rounded(number: Fraction, decimals: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = max(60, len(str(abs(number.numerator) // number.denominator)) + decimals + 10)
        exact = Decimal(number.numerator) / Decimal(number.denominator)
        return exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _fraction_text(number: Fraction) -> str:
    return str(number.numerator) if number.denominator == 1 else f"{number.numerator}/{number.denominator}"
