"""A fake teacher that ships, in the spirit of `llm`'s mock model: scripted completions, no model.

    fake:right        solves the arithmetic in the question ("Calculate 5 - 3 - 6.") and ends with
                      "The answer is X."; says it cannot solve anything else
    fake:wrong        the same reasoning with a wrong result (X + 1)
    fake:truncated    a rationale cut off mid-way (finish_reason "length")
    fake:unparsable   a reply with no answer in it
    fake:cycle        sample j of a request is right, wrong, truncated, unparsable for j % 4 = 0..3
    fake:FILE.jsonl   scripted: each line {"match": REGEX, "replies": [TEXT, ...]} (sample j gets
                      replies[j % len]; optional "finish_reason"), or {"match": REGEX, "error": TEXT}
                      (the call fails with TEXT); the first line whose regex is found in the last
                      user message answers; no match is a failed call

It reads only what a real teacher reads (the messages), so builds on it exercise the same checks.
Used by the fast tests of every build path, for dry runs of a pipeline, and through `FakeTeacher(answer)`
with a Python function for logic tests.
"""

from __future__ import annotations

import ast
import hashlib
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from toolkit.errors import UserError
from toolkit.teachers.base import (
    BackendOptions,
    BatchingTeacher,
    CallFailure,
    Completion,
    OnResult,
    Request,
    Result,
)
from toolkit.version import __version__

RULES = ("right", "wrong", "truncated", "unparsable", "cycle")
CYCLE = ("right", "wrong", "truncated", "unparsable")
_EXPRESSION = re.compile(r"[-+*/()\d.\s]*\d[-+*/()\d.\s]*")
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
Answer = Callable[[Request, int], "str | Completion | CallFailure"]


@dataclass(frozen=True, slots=True)
class ScriptLine:
    pattern: re.Pattern[str]
    replies: tuple[str, ...] = ()
    finish_reason: str = "stop"
    error: str | None = None


class FakeTeacher(BatchingTeacher):
    """Answers sample j of each request with `answer(request, j)`; records every request it got.
    Its answers depend on the sample index only, so a seed changes nothing."""

    backend = "fake"

    def __init__(self, answer: Answer, model: str = "fake-model", revision: str = "r1") -> None:
        super().__init__()
        self.model = model
        self.revision = revision
        self.answer = answer
        self.calls: list[Request] = []

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> FakeTeacher:
        if model in RULES:

            return cls(lambda request, j: rule_reply(model, request, j), model, f"hubtool-{__version__}")
        path = Path(model)
        if path.suffix == ".jsonl":
            script = read_script(path)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
            return cls(lambda request, j: script_reply(script, request, j), model, digest)
        raise UserError(f"fake teacher {model!r}: use one of {', '.join(RULES)}, or a script FILE.jsonl")

    def generate_batch(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        results: list[Result] = []
        for i, request in enumerate(requests):
            self.calls.append(request)
            outs = [self.answer(request, request.first_sample + j) for j in range(request.n)]
            failure = next((o for o in outs if isinstance(o, CallFailure)), None)
            result: Result = failure or [_completion(o, request) for o in outs]  # type: ignore[arg-type]
            results.append(result)
            if on_result:
                on_result(i, result)
        return results

    @property
    def samples_drawn(self) -> int:
        return sum(r.n for r in self.calls)


def _completion(out: str | Completion, request: Request) -> Completion:
    if isinstance(out, Completion):
        return out
    prompt = sum(len(m["content"].split()) for m in request.messages)
    return Completion(out, "stop", prompt, len(out.split()))


def user_text(request: Request) -> str:
    return next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")


# -- rules -------------------------------------------------------------------------------------
def rule_reply(rule: str, request: Request, sample: int) -> Completion:
    if rule == "cycle":
        rule = CYCLE[sample % len(CYCLE)]
    prompt = sum(len(m["content"].split()) for m in request.messages)
    found = solve_arithmetic(user_text(request))
    if rule == "unparsable" or found is None:
        text = "I am not sure how to solve this one."
        return Completion(text, "stop", prompt, len(text.split()))
    expression, value = found
    if rule == "truncated":
        text = f"Let's work out {expression} step by step. First we"
        return Completion(text, "length", prompt, len(text.split()))
    result = value if rule == "right" else value + 1
    text = f"Let's work out {expression} step by step.\n{expression} = {_number(result)}.\nThe answer is {_number(result)}."
    return Completion(text, "stop", prompt, len(text.split()))


def solve_arithmetic(text: str) -> tuple[str, Fraction] | None:
    """The longest arithmetic expression in `text` and its exact value, or None."""
    candidates = sorted((m.group().strip().rstrip(".=").strip() for m in _EXPRESSION.finditer(text)), key=len, reverse=True)
    for expression in candidates:
        if not re.search(r"\d\s*[-+*/]\s*[-(]?\s*\d|\d\s*[-+*/]\s*\(", expression):
            continue
        try:
            return expression, _eval(ast.parse(expression, mode="eval").body)
        except (SyntaxError, ValueError, ZeroDivisionError, KeyError):
            continue
    return None


def _eval(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        return _OPS[type(node.op)](_eval(node.left), _eval(node.right))
    raise ValueError("not arithmetic")


def _number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.6g}"


# -- scripts -----------------------------------------------------------------------------------
def read_script(path: Path) -> tuple[ScriptLine, ...]:
    """The lines of a fake script; every problem is reported with its line number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"fake script {path} cannot be read ({e})") from None
    script = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            pattern = re.compile(item["match"])
        except (json.JSONDecodeError, KeyError, TypeError, re.error) as e:
            raise UserError(f"{path} line {number}: not a script line ({e}); see `fake:` in the README") from None
        replies = item.get("replies", [])
        if isinstance(replies, str):
            replies = [replies]
        if not replies and "error" not in item:
            raise UserError(f"{path} line {number}: give 'replies' (a list of texts) or 'error'")
        script.append(ScriptLine(pattern, tuple(map(str, replies)), str(item.get("finish_reason", "stop")),
                                 None if item.get("error") is None else str(item["error"])))  # fmt: skip
    return tuple(script)


def script_reply(script: Sequence[ScriptLine], request: Request, sample: int) -> str | Completion | CallFailure:
    text = user_text(request)
    for line in script:
        if line.pattern.search(text):
            if line.error is not None:
                return CallFailure(line.error)
            reply = line.replies[sample % len(line.replies)]
            prompt = sum(len(m["content"].split()) for m in request.messages)
            return Completion(reply, line.finish_reason, prompt, len(reply.split()))
    return CallFailure(f"fake script: no line matches {text[:80]!r}")
