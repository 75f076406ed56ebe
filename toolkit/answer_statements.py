"""Where a completion states an answer: the statements strict reading accepts, found in plain text.

A statement is `The answer is X`, `the final/correct answer is X`, `Final Answer: X`, a line that
opens with `Answer: X` (the Ranaldi prompt ends `Answer:`, and models answer in kind), or a
`\\boxed{X}`. "answer is" inside a sentence about something else states nothing: `To determine
whether this answer is positive, ...`, `if the answer is yes, ...`. Pure text, no answer types:
`toolkit.answers` decides which raw values are valid answers.
"""

from __future__ import annotations

import re

# "the answer is", "the final answer is", "Final Answer:", "**Final Answer**:", "the answer to this
# arithmetic problem is" (SmolLM2-135M's way) ... (see `_statement_start`)
_STATEMENT = re.compile(
    r"\banswer[*_]*(?:\s+to\s+(?:the|this)\s+(?:[a-z-]+\s+){0,2}?"
    r"(?:question|problem|equation|puzzle|riddle|expression|calculation|sum))?\s+is\b[*_:]*"
    r"|\bfinal\s+answer[*_]*\s*:[*_]*",
    re.I,
)
# "Answer: B", "**Answer:** B", "Correct answer: D" opening a line.
_ANSWER_LABEL = re.compile(r"(?im)^[ \t*_#>-]*(?:(?:the\s+)?(?:correct|right)\s+)?answer[*_]*[ \t]*:[*_]*")
# What may stand before "answer is" in its sentence: a determiner and adjectives ("the correct", "my
# final") after a sentence start or a lead-in ("so", "therefore,", "indicate that"); never a condition.
_DETERMINER = re.compile(r"(?:\b(?:the|my|our)\s+)?(?:\b(?:final|correct|right|best|true|actual|overall|only)\s+)*$", re.I)
_LEAD_IN = re.compile(r"(?:[.!?:;,]|\b(?:so|thus|therefore|hence|then|and|finally|overall|that)\b)[\s*_#>\"'“‘(]*$", re.I)
_CONDITIONAL = re.compile(r"\b(?:whether|if|unless|when|once|check|checking)[\s*_\"'“‘]*$", re.I)
_MARKUP = " \t*_#>\"'“‘("
# A value ends at a line break or at a sentence end; "3.5." is a decimal point, then the end.
_ECHOED_CUE = re.compile(r"\s*let(?:'s|’s| us)\s+think\b", re.I)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def statement_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, raw value) of every answer statement and boxed value, in text order; `start` is
    where the statement begins ("the final answer is" from "the"), `end` where its value ends
    (before its full stop)."""
    found = [(start, _close_math(text, end), value) for start, end, value in boxed_spans(text)]
    marks = [(m, _statement_start(text, m.start())) for m in _STATEMENT.finditer(text)]
    # "Answer: Let's think step by step" is the Ranaldi prompt's cue echoed back, not an answer
    marks += [(m, m.start()) for m in _ANSWER_LABEL.finditer(text) if not _ECHOED_CUE.match(text, m.end())]
    for match, start in marks:
        if start is None:
            continue
        rest = text[match.end() :]
        value_start = match.end() + len(rest) - len(rest.lstrip())
        end = _SENTENCE_END.search(text, value_start)
        stop = end.start() if end else len(text)
        found.append((start, stop, text[value_start:stop]))
    return sorted(found, key=lambda item: item[0])


def _statement_start(text: str, at: int) -> int | None:
    """Where the statement whose "answer" is at `at` begins (at its determiner), or None when it is
    no statement: "whether this answer is", "if the answer is", "which answer is" state no answer."""
    sentence = max(i + 1 if (i := text.rfind(end, 0, at)) >= 0 else 0 for end in ("\n", ". ", "! ", "? "))
    start = _DETERMINER.search(text, sentence, at).start()  # type: ignore[union-attr] - it matches ""
    before = text[sentence:start]
    if _CONDITIONAL.search(before):
        return None
    owned = re.match(r"(?:the|my|our)\b", text[start:at], re.I)  # "I think the answer is 5" states 5
    return start if owned or not before.strip(_MARKUP) or _LEAD_IN.search(before) else None


def _close_math(text: str, end: int) -> int:
    """Past the `$`, `\\]`, `)` and `**` that close a boxed value's math on its line."""
    while end < len(text) and text[end] in "$\\])* ":
        end += 1
    return end


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every closed `\\boxed{...}`, nested braces included."""
    spans = []
    for match in _BOXED.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            spans.append((match.start(), i, text[match.end() : i - 1]))
    return spans
