"""Counterfactual distillation's prompts: how each prompt shows an input, named for what it is.

A prompt that calls a movie review "the question" gets reviews rewritten into questions, so every
template is told `input_name` (question, review, premise-hypothesis pair, text) and shows the input
under it (`shown`). The student prompt ends, as every hubtool prompt, with "The answer is ___." and
the label set in words beside it: no line of it reads as a finished answer a student could copy
("The answer is negative or positive.", or one spelled-out alternative a student copies whatever it read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit import answers, prompts
from toolkit.methods.counterfactual import edits
from toolkit.methods.counterfactual.edits import Label
from toolkit.records import Problem
from toolkit.sources.catalogue import SENTIMENT_LABELS

PROMPT_DIRS = (Path(__file__).parent / "prompts",)  # the method's own templates (toolkit.prompts looks there too)
SHOWN = {"question", "choices", "labels", "input_name", "shown"}  # how every prompt shows the input (`_shown`)
STUDENT_VARIABLES = SHOWN | {"answer_hint"}
EDIT_VARIABLES = SHOWN | {"label", "target"}
VIEW_VARIABLES = SHOWN | {"answer", "answer_value", "refute", "answer_hint"}


def answer_hint(problem: Problem) -> str:
    """What fills the prompt's blank: the label set in words ("negative or positive"), as for every method."""
    return prompts.answer_hint(problem.answer_type, problem.choices)


def input_name(problem: Problem) -> str:
    """What the input is, in the prompts' words: an NLI pair, a review (a sentiment label set), a
    text (another label set), else a question. A prompt that calls a review "the question" gets
    reviews rewritten into questions."""
    if problem.answer_type != "label":
        return "question"
    if problem.question.lstrip().startswith("Premise:") and "\nHypothesis:" in problem.question:
        return "premise-hypothesis pair"  # toolkit.sources.labelled.nli_question's shape
    if {c.casefold() for c in problem.choices} == set(SENTIMENT_LABELS):
        return "review"
    return "text"


def _shown(problem: Problem) -> dict[str, Any]:
    """How a prompt shows an input: under its name, with its options (multiple choice) or its label set."""
    option = problem.answer_type == "option"
    name = input_name(problem)
    shown = problem.question if name == "premise-hypothesis pair" else f"{name.capitalize()}: {problem.question}"
    return {"question": problem.question, "input_name": name, "shown": shown,
            "choices": list(zip(answers.option_letters(len(problem.choices)), problem.choices)) if option else [],
            "labels": list(problem.choices) if problem.answer_type == "label" else []}  # fmt: skip


def student_messages(problem: Problem, template: str = "counterfactual_cot") -> tuple[dict[str, str], ...]:
    """What a row's prompt holds and the eval tasks ask: the question, no hint of its answer."""
    text = prompts.render(template, dirs=PROMPT_DIRS, **_shown(problem), answer_hint=answer_hint(problem))
    return ({"role": "user", "content": text},)


def edit_messages(problem: Problem, target: Label, template: str) -> tuple[dict[str, str], ...]:
    gold = edits.gold_label(problem)
    text = prompts.render(template, dirs=PROMPT_DIRS, **_shown(problem), label=gold.shown if gold else problem.gold, target=target.shown)
    return ({"role": "user", "content": text},)


def view_messages(problem: Problem, refute: Label | None, template: str) -> tuple[dict[str, str], ...]:
    gold = edits.gold_label(problem)
    text = prompts.render(template, dirs=PROMPT_DIRS, **_shown(problem), answer=gold.shown if gold else problem.gold,
                          answer_value=gold.value if gold else problem.gold, refute=refute.shown if refute else "",
                          answer_hint=answer_hint(problem))  # fmt: skip
    return ({"role": "user", "content": text},)
