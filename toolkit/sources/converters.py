"""One converter per known benchmark: a raw Hub row to (question, gold, choices, meta).

Schemas follow the Hub repos as the Hub served them in 2025; where a schema was uncertain, the
benchmark's `note` in the catalogue says so."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.answers import _boxed_spans, normalize_answer
from toolkit.sources.normalize import (
    LETTERS,
    BadRow,
    MissingField,
    option_letter,
    parse_choices,
    parse_number,
    parse_yesno,
    text,
)


@dataclass(frozen=True, slots=True)
class Row:
    """What a converter makes of one raw row."""

    question: str
    gold: str
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


# A converter returns None for a row it skips on purpose (a gold the benchmark itself leaves unusable).
Converter = Callable[[Mapping[str, Any]], Row | None]


# ---- row access ---------------------------------------------------------------------------------


def pick(row: Mapping[str, Any], name: str) -> Any:
    """row[name], or MissingField naming the columns the row does have."""
    if name not in row:
        raise MissingField((name,), sorted(row))
    return row[name]


def join_sentences(first: str, second: str) -> str:
    """Body + question, with the full stop some SVAMP/ASDiv bodies lack."""
    first = first.strip()
    if first and first[-1] not in ".?!":
        first += "."
    return f"{first} {second.strip()}".strip()


def number_gold(value: Any) -> str:
    gold = parse_number(value)
    if gold is None:
        raise BadRow(f"answer {value!r} is not a number")
    return gold


def present(**meta: Any) -> dict[str, Any]:
    """The meta entries that have a value."""
    return {k: v for k, v in meta.items() if v is not None}


def option_row(question: str, texts: list[str], gold: str, **meta: Any) -> Row:
    return Row(question, gold, tuple(texts), present(**meta))


# ---- converters, one per benchmark ---------------------------------------------------------------


_CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations: "48/2 = <<48/2=24>>24"


def _gsm8k(row: Mapping[str, Any]) -> Row:
    # answer: step-by-step rationale with <<calc>> annotations, then "#### 72" on the last line. The
    # rationale (the eval tasks' few-shot target) is kept as a person reads it, annotations removed.
    answer = text(pick(row, "answer"), "answer")
    rationale, sep, final = answer.rpartition("####")
    if not sep:
        raise BadRow("answer has no final '#### <number>' line")
    reference = _CALCULATOR.sub("", rationale).strip()
    return Row(text(pick(row, "question")), number_gold(final), meta={"reference_rationale": reference})


def _svamp(row: Mapping[str, Any]) -> Row:
    # ChilleD/SVAMP: ID, Body, Question, Equation, Answer (float64, 8.0), Type, question_concat.
    if "Body" in row and "Question" in row:
        question = join_sentences(text(row["Body"], "Body"), text(row["Question"], "Question"))
    else:
        question = text(pick(row, "question_concat"))
    meta = present(equation=row.get("Equation"), type=row.get("Type"), source_id=row.get("ID"))
    return Row(question, number_gold(pick(row, "Answer")), meta=meta)


def _asdiv(row: Mapping[str, Any]) -> Row | None:
    # answer carries its unit: "9 (apples)". A few ASDiv golds are not one number (ratios, several
    # values); those rows are skipped rather than guessed.
    raw = text(pick(row, "answer"), "answer")
    value, _, unit = raw.partition(" (")
    gold = parse_number(value)
    if gold is None:
        return None
    question = join_sentences(text(pick(row, "body"), "body"), text(pick(row, "question")))
    meta = present(
        unit=unit.rstrip(")") or None, solution_type=row.get("solution_type"), formula=row.get("formula")
    )
    return Row(question, gold, meta=meta)


def _multiarith(row: Mapping[str, Any]) -> Row:
    # final_ans is a string since the repo's "change dtype of final_ans to str" commit.
    return Row(text(pick(row, "question")), number_gold(pick(row, "final_ans")))


def _aqua_rat(row: Mapping[str, Any]) -> Row:
    # "raw" config: options ["A)21", "B)21.5", ...], correct "A", rationale.
    texts, labels = parse_choices(pick(row, "options"))
    gold = option_letter(pick(row, "correct"), texts, labels)
    if gold is None:
        raise BadRow(f"correct {row.get('correct')!r} is not one of the options' letters")
    return option_row(text(pick(row, "question")), texts, gold, reference_rationale=row.get("rationale"))


def _choices_dict(question_field: str) -> Converter:
    """CommonsenseQA, OpenBookQA and ARC: choices {label: [...], text: [...]} and answerKey."""

    def convert(row: Mapping[str, Any]) -> Row:
        texts, labels = parse_choices(pick(row, "choices"))
        # ARC labels some questions "1".."4" instead of "A".."D": the position decides the letter.
        gold = option_letter(pick(row, "answerKey"), texts, labels)
        if gold is None:
            raise BadRow(f"answerKey {row.get('answerKey')!r} is not one of the labels {labels}")
        return option_row(
            text(pick(row, question_field)),
            texts,
            gold,
            source_id=row.get("id"),
            concept=row.get("question_concept"),
            fact=row.get("fact1"),
        )

    return convert


def _strategyqa(row: Mapping[str, Any]) -> Row:
    # ChilleD/StrategyQA: qid, term, description, question, answer (bool), facts, decomposition.
    # Only question and answer are relied on; the rest rides along in meta when present.
    gold = parse_yesno(pick(row, "answer"))
    if gold is None:
        raise BadRow(f"answer {row.get('answer')!r} is not true/false or yes/no")
    keep = ("qid", "term", "description", "facts", "decomposition")
    return Row(text(pick(row, "question")), gold, meta=present(**{k: row.get(k) for k in keep}))


def _piqa(row: Mapping[str, Any]) -> Row:
    # label 0/1 picks sol1/sol2; the test split's labels are hidden (-1).
    label = str(pick(row, "label")).strip()
    if label not in ("0", "1"):
        raise BadRow(f"label {label!r} is not 0 or 1 (unlabelled split?)")
    texts = [text(pick(row, "sol1"), "sol1"), text(pick(row, "sol2"), "sol2")]
    return option_row(text(pick(row, "goal"), "goal"), texts, LETTERS[int(label)])


def _social_i_qa(row: Mapping[str, Any]) -> Row:
    # label "1"/"2"/"3" (older copies carry a trailing newline) picks answerA/B/C.
    label = str(pick(row, "label")).strip()
    if label not in ("1", "2", "3"):
        raise BadRow(f"label {label!r} is not 1, 2 or 3")
    texts = [text(pick(row, f"answer{c}"), f"answer{c}") for c in "ABC"]
    question = join_sentences(text(pick(row, "context"), "context"), text(pick(row, "question")))
    return option_row(question, texts, LETTERS[int(label) - 1])


def _math(row: Mapping[str, Any]) -> Row | None:
    # MATH: problem, solution (worked, the answer in its last \\boxed{}), level, type. A solution
    # without a box has no checkable gold and is skipped.

    solution = text(pick(row, "solution"), "solution")
    boxes = _boxed_spans(solution)
    gold = normalize_answer(boxes[-1][2], "math") if boxes else None
    if gold is None:
        return None
    meta = present(reference_rationale=solution, level=row.get("level"), subject=row.get("type"))
    return Row(text(pick(row, "problem"), "problem"), gold, meta=meta)


def _mmlu(row: Mapping[str, Any]) -> Row:
    # cais/mmlu: question, subject, choices (4 texts), answer (0-3).
    texts = [text(c, "choices") for c in pick(row, "choices")]
    answer = str(pick(row, "answer")).strip()
    if not answer.isdigit() or not 0 <= int(answer) < len(texts):
        raise BadRow(f"answer {answer!r} is not the index of one of the {len(texts)} choices")
    return option_row(text(pick(row, "question")), texts, LETTERS[int(answer)], subject=row.get("subject"))
