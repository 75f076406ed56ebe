"""Reading a whole completion, as the builders judge it: the one answer it states, by which rule, whether
it reasons at all, and the text a row may hold.

- strict: an answer statement (`toolkit.answer_statements`) whose value is a valid answer.
- fuzzy, options only (the Ranaldi papers' matching: a regex, then difflib >= 0.6 against the option
  texts): a statement's value, or a short last line, that is near an option's text ("The answer is
  Venise."), or a last line that is only an option letter.
- A completion that states two different answers (`Therefore, the answer is No. ... The answer is
  Yes.`) states none: `value` is None, `contradiction` True. Hedges ("yes or no") state none already.
- `reasoning`: at least MIN_REASONING_WORDS words, numbers or operators besides its answer
  statements; `The answer is 6.` alone is an answer, not a demonstration of reasoning.

The row text keeps everything the model wrote about this question (a base model prompted few-shot
that goes on to `Question: <another one>` is cut there). Only where the answer statement closes the
completion is it rewritten as the house line `The answer is X.` (`answer_line="house"`; `"verbatim"` keeps it as
written), and an identical answer line right before it is dropped (`The answer is 2180.` twice is one
line). An answer stated first or mid-way keeps the reasoning after it, as written; a statement inside
a sentence (`...indicate that the answer is negative.`) stays whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from toolkit.answer_statements import statement_spans
from toolkit.answers import format_answer_line, is_correct, normalize_answer, option_letters
from toolkit.records import AnswerType

FUZZY_RATIO = 0.6  # the papers' difflib threshold
MIN_REASONING_WORDS = 3  # ours: "The answer is 6." has none, "3 + 3 = 6." has five (numbers and operators)
RESTATEMENT_WORDS = 4  # "#### 19", "(B) 42 apples": a line restating the answer; a longer one says more
FUZZY_LINE_WORDS = 6  # a last line this short may be an option's text; a longer one is a sentence
AnswerLine = Literal["house", "verbatim"]
Rule = Literal["strict", "fuzzy"]
_MARKUP = " \t*_#>\"'“‘("
_CLOSING = " \t.!*_#>$\\[](){}\"'”’`"
_CONNECTIVE = re.compile(r"[\s,;:]*(?:\b(?:so|thus|therefore|hence|and|finally|overall)\b[\s,;:]*)*$", re.I)
# Where a statement's value stops naming the answer and starts giving reasons ("yes, because ...").
_REASONS = re.compile(r"[,;](?=\s)|\s(?:because|since|as|given|for|so|which)\b", re.I)  # not "1,250"
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"[^\W_]+|[-+*/=×÷^<>]")  # what reasoning is counted in: words, numbers, operators
_NEXT_EXEMPLAR = re.compile(r"\n\s*(?:Question|Q)\s*:", re.I)
_LONE_LETTER = re.compile(r"[(\[]?([A-Za-z])[)\].:]?")


@dataclass(frozen=True, slots=True)
class Reading:
    """What a completion says: `value` canonical (None when it states no answer, or two), `rule` how
    it was read, `stated` every different answer it states, `text` what a row may hold."""

    value: str | None
    rule: Rule | None
    stated: tuple[str, ...]
    reasoning: bool
    text: str

    @property
    def contradiction(self) -> bool:
        return len(self.stated) > 1


def read_completion(text: str | None, answer_type: AnswerType, choices: Sequence[str] = (), *,
                    answer_line: AnswerLine = "house") -> Reading:  # fmt: skip
    text = _this_answer(text or "")
    spans = statement_spans(text)
    valid = [(s, e, v, raw) for s, e, raw in spans if (v := normalize_answer(raw, answer_type, choices)) is not None]
    stated = _distinct([v for _, _, v, _ in valid], answer_type, choices)
    reasoning = _reasoning_words(text, spans) >= MIN_REASONING_WORDS
    if len(stated) > 1:
        return Reading(None, None, stated, reasoning, text)
    found, rule = (valid[-1], "strict") if valid else (_fuzzy(text, spans, answer_type, choices), "fuzzy")
    if found is None:
        return Reading(None, None, (), reasoning, text)
    start, end, value, raw = found
    gives_reasons = (reasons := _REASONS.search(raw)) is not None and _WORD.search(raw, reasons.end())
    row = text if gives_reasons else _row_text(text, start, end, value, answer_type, choices, answer_line)
    return Reading(value, rule, (value,), reasoning, row)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Stated:
    """The answer a completion states and the completion as a row may hold it (the model's text, a
    closing answer statement in house form)."""

    value: str
    text: str


def stated_answer(text: str | None, answer_type: AnswerType, choices: Sequence[str] = ()) -> Stated | None:
    """The one answer the completion states (`The answer is X`, `Answer: X`, `\\boxed{X}`, an
    option's text), or None when it states none or two different ones: then nothing may be appended
    to it, because an answer line the model did not write would teach a conclusion it did not reach."""
    reading = read_completion(text, answer_type, choices)
    return Stated(reading.value, reading.text) if reading.value is not None else None


def _this_answer(text: str) -> str:
    """The completion up to where it starts the next exemplar (`\nQuestion: ...`), as a base model
    prompted few-shot does: what follows answers another question, not this one."""
    text = text.strip()
    run_on = _NEXT_EXEMPLAR.search(text)
    return text[: run_on.start()].rstrip() if run_on else text


def option_by_text(value: str, choices: Sequence[str]) -> str | None:
    """The letter of the one option whose text is nearest the value, if its difflib ratio >= 0.6."""
    key = _key(value)
    ratios = [SequenceMatcher(None, key, _key(choice)).ratio() for choice in choices]
    best = max(ratios, default=0.0)
    if not key or best < FUZZY_RATIO or ratios.count(best) > 1:
        return None
    return option_letters(len(choices))[ratios.index(best)]


def _key(value: str) -> str:
    return " ".join(_WORD.findall(value.casefold()))


def _distinct(values: list[str], answer_type: AnswerType, choices: Sequence[str]) -> tuple[str, ...]:
    """The values in order, each once ("0.5" and "1/2" are one answer)."""
    kept: list[str] = []
    for value in values:
        if not any(is_correct(value, seen, answer_type, choices) for seen in kept):
            kept.append(value)
    return tuple(kept)


def _fuzzy(text: str, spans: list[tuple[int, int, str]], answer_type: AnswerType,
           choices: Sequence[str]) -> tuple[int, int, str, str] | None:  # fmt: skip
    """(start, end, letter, raw) of the last statement, or else the short last line, naming an option."""
    if answer_type != "option" or not choices:
        return None
    for start, end, raw in reversed(spans):
        letter = option_by_text(raw, choices)
        if letter:
            return start, end, letter, raw
    line_start = text.rfind("\n") + 1
    line = text[line_start:].strip(_CLOSING)
    if not line or len(line.split()) > FUZZY_LINE_WORDS:
        return None
    alone = _LONE_LETTER.fullmatch(line)
    if alone:
        letter = alone[1].upper()
        return (line_start, len(text), letter, line) if letter in option_letters(len(choices)) else None
    letter = option_by_text(line, choices)
    return (line_start, len(text), letter, line) if letter else None


def _reasoning_words(text: str, spans: list[tuple[int, int, str]]) -> int:
    """Words outside the answer statements, counting the reasons a statement gives after its value."""
    pieces, last = [], 0
    for start, end, raw in spans:
        if start < last:  # "Answer: the answer is 5" holds two statements in one
            continue
        reasons = _REASONS.search(raw)
        pieces += [text[last:start], raw[reasons.start() :] if reasons else ""]
        last = end
    pieces.append(text[last:])
    return len(_TOKEN.findall(" ".join(pieces)))


def _row_text(text: str, start: int, end: int, value: str, answer_type: AnswerType, choices: Sequence[str],
              answer_line: AnswerLine) -> str:  # fmt: skip
    """The completion with its closing answer statement in house form (see the module's docstring)."""
    if not _closes(text[end:], value, answer_type, choices):
        return text  # reasoning follows the answer (answer-first or mid-way): all of it stays
    line_start = text.rfind("\n", 0, start) + 1
    before = _without_repeats(text[:line_start], value, answer_type, choices)
    head = text[line_start:start]
    if answer_line == "verbatim":
        closing = text[line_start:].rstrip()
    elif not _CONNECTIVE.sub("", head).strip(_MARKUP):  # its own line, maybe after "Therefore,"
        closing = format_answer_line(value)
    else:
        clause = _CONNECTIVE.sub("", head).rstrip()  # "She has 7 left, so the answer is 7"
        if clause == head.rstrip() and not clause.endswith((".", "!", "?")):
            return text  # inside a sentence ("...indicate that the answer is negative."): whole, as written
        closing = f"{clause}{'.' if clause[-1].isalnum() else ''}\n{format_answer_line(value)}"
    return f"{before}\n{closing}" if before else closing


def _closes(tail: str, value: str, answer_type: AnswerType, choices: Sequence[str]) -> bool:
    """Whether what follows an answer statement only closes it: punctuation, markup, or the same
    answer again on its own line (`#### 19`)."""
    for line in tail.splitlines():
        bare = line.strip(_CLOSING)
        if not bare:
            continue
        if len(_WORD.findall(bare)) > RESTATEMENT_WORDS or normalize_answer(bare, answer_type, choices) != value:
            return False
    return True


def _without_repeats(before: str, value: str, answer_type: AnswerType, choices: Sequence[str]) -> str:
    """The text before the closing statement's line, less the lines right above it that only state
    the same answer again."""
    lines = before.rstrip().split("\n")
    while lines and _only_states(lines[-1], value, answer_type, choices):
        lines.pop()
    return "\n".join(lines).rstrip()


def _only_states(line: str, value: str, answer_type: AnswerType, choices: Sequence[str]) -> bool:
    spans = statement_spans(line)
    if not spans or line[: spans[0][0]].strip(_MARKUP):
        return False
    _, end, raw = spans[-1]
    return normalize_answer(raw, answer_type, choices) == value and _closes(line[end:], value, answer_type, choices)
