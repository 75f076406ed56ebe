"""What every hubtool eval task does with a document and a generation, in one place: the doc as a
`Problem`, one answer out of a generation (strict / flexible), the majority vote, the score. The task
folders' `utils.py` files (lm-eval loads them by path, `!function utils.X`) import these, so the CoT,
PoT and self-consistency tasks read and score answers exactly alike, and exactly as the builders do.
"""

from __future__ import annotations

from collections import Counter

from toolkit import answers
from toolkit.records import Problem

MISS = "[invalid]"  # what a filter yields when nothing could be extracted (lm-eval's convention)


def doc_problem(doc: dict) -> Problem:
    """A task document (the shared doc shape) as the builders' `Problem`."""
    return Problem(id=str(doc.get("id", "")), source="eval", question=doc["question"], gold=doc["gold"],
                   answer_type=doc["answer_type"], choices=tuple(doc.get("choices") or ()))  # fmt: skip


def extract(text: str, doc: dict, mode: str) -> str:
    """One answer from one generation: `strict` reads only "The answer is X."; `flexible` falls back."""
    choices = tuple(doc.get("choices") or ())
    if mode == "strict":
        value = answers.extract_strict(text, doc["answer_type"], choices)
    else:
        found = answers.extract_answer(text, doc["answer_type"], choices, flexible=True)
        value = found.value if found else None
    return MISS if value is None else value


def vote(values: list[str]) -> str:
    """The most frequent answer; misses do not vote, ties go to the earliest."""
    valid = [v for v in values if v != MISS]
    if not valid:
        return MISS
    counts = Counter(valid)
    best = max(counts.values())
    return next(v for v in valid if counts[v] == best)


def score(doc: dict, pred: str) -> dict[str, float]:
    """exact_match = the toolkit's checker on the answer; a miss scores 0."""
    if pred == MISS:
        return {"exact_match": 0.0}
    choices = tuple(doc.get("choices") or ())
    return {"exact_match": float(answers.is_correct(pred, doc["gold"], doc["answer_type"], choices))}
