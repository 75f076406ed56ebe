"""Hooks shared by every hubtool task: the prompt, the two answer filters, the vote and the score.

Every task reads its documents through `toolkit.evaluate.docs` (the builders' own reading of each
benchmark) into one shape, so these hooks read the same fields everywhere:

    question     the question text (options are not in it; they are rendered from `choices`)
    choices      option texts in letter order (A, B, ...) for multiple choice, else []
    gold         the canonical gold answer: a number, an option letter, "yes"/"no", or a label
    answer_type  "number" | "option" | "yesno" | "label"
    rationale    a worked solution when the benchmark has one, else "" (few-shot targets only)

The prompt is the one the CoT builder trains students on, and extraction and checking go through
`toolkit.answers`, so an eval score means exactly what the toolkit's checker means by "correct".
"""

from __future__ import annotations

from lm_eval.api.filter import Filter

from toolkit import answers
from toolkit.evaluate.hooks import MISS, doc_to_text_for, extract, score, vote

__all__ = ["MISS", "AnswerFilter", "VoteFilter", "doc_to_target", "doc_to_text", "doc_to_text_ranaldi", "extract",
           "process_results", "vote"]  # fmt: skip

# The user turn: the CoT builder's prompt, rendered as a build renders it, so students are scored on what
# they saw. One per shipped prompt (the `_ranaldi` tasks); `hubtool eval --prompt` swaps in any other.
doc_to_text = doc_to_text_for("cot")
doc_to_text_ranaldi = doc_to_text_for("ranaldi-cot")


def doc_to_target(doc: dict) -> str:
    """A few-shot answer: the benchmark's worked solution (if any) ending in the house convention."""
    rationale = (doc.get("rationale") or "").strip()
    return answers.ensure_answer_line(rationale, doc["gold"]) if rationale else f"The answer is {doc['gold']}."


class AnswerFilter(Filter):
    """Replaces each generation by the answer extracted from it (or MISS); keeps every repeat."""

    def __init__(self, mode: str = "strict", **kwargs) -> None:
        if mode not in ("strict", "flexible"):
            raise ValueError(f"AnswerFilter mode must be 'strict' or 'flexible', not {mode!r}")
        self.mode = mode
        super().__init__(**kwargs)

    def apply(self, resps, docs):
        return [[extract(text, doc, self.mode) for text in group] for group, doc in zip(resps, docs)]


class VoteFilter(Filter):
    """Collapses each document's repeats (already extracted) into their majority answer."""

    def apply(self, resps, docs):
        return [vote(list(group)) for group in resps]


def process_results(doc: dict, results: list[str]) -> dict[str, float]:
    """exact_match = the toolkit's checker on the filtered answer; a miss scores 0."""
    return score(doc, results[0])
