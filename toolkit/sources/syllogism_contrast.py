"""A contrast set made by rule: each reasoning-gym syllogism beside a minimal edit with the other answer.

Counterfactual distillation (Feng et al., EMNLP 2024) is scored on contrast sets: an input and a
minimal edit of it whose label differs (Kaushik et al., 2020; Gardner et al., 2020). The human-written
ones (CAD-IMDb, CAD-SNLI) are on the Hub; this one is made offline. A gym syllogism states two premises
and asks whether a conclusion follows; its edit changes one quantifier ("All" -> "Some", ...) of one
statement, chosen at random among the changes that flip the answer.

Answers come from a model check, not from reasoning-gym's checker: a conclusion follows when it holds
in every assignment of the three terms to the regions of a Venn diagram in which the premises hold and
no term is empty (the traditional reading, existential import, under which "All A are B" gives "Some B
are A", as reasoning-gym intends). reasoning-gym's own rules call some undistributed-middle arguments
valid ("All bees are mortals; some mortals are doctors" -> "some bees are doctors": Yes); 14 of the
first 124 test problems carry such a wrong "Yes" (every contradicted answer is a "Yes"; the check's "No"
holds under either reading). The gym source gives those problems the check's answer (`checked_answer`);
a problem whose reasoning-gym answer was contradicted has no pair here, so the set stays the one first
scored (eval_tasks/counterfactual, version 1.0), and every label of it is exact.

    Consider these statements:           Consider these statements:
    1. All dogs are mammals              1. All dogs are mammals
    2. All mammals are animals           2. Some mammals are animals
    Does it logically follow that:       Does it logically follow that:
    All dogs are animals?  -> Yes        All dogs are animals?  -> No
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, replace

from toolkit.records import Problem

QUESTION = re.compile(r"Consider these statements:\n1\. (?P<p1>[^\n]+)\n2\. (?P<p2>[^\n]+)\n\nDoes it logically follow "
                      r"that:\n(?P<c>[^\n]+)\?\n\(Answer Yes or No\)")  # fmt: skip
STATEMENT = re.compile(r"(?P<q>All|No|Some) (?P<s>\w+) are (?P<neg>not )?(?P<p>\w+)")


QUANTIFIERS = ("All", "No", "Some", "Some-not")
Statement = tuple[str, str, str]  # (quantifier, subject, predicate), the terms as the question writes them


@dataclass(frozen=True)
class Contrast:
    original: Problem
    edit: Problem
    changed: str  # which statement was edited: "premise 1", "premise 2" or "conclusion"


def parse_statement(text: str) -> Statement | None:
    m = STATEMENT.fullmatch(text.strip())
    if m is None or (m["neg"] and m["q"] != "Some"):
        return None
    return ("Some-not" if m["neg"] else m["q"]), m["s"], m["p"]


def statement_text(statement: Statement) -> str:
    quantifier, subject, predicate = statement
    return f"Some {subject} are not {predicate}" if quantifier == "Some-not" else f"{quantifier} {subject} are {predicate}"


def _holds(statement: Statement, extension: dict[str, frozenset[int]]) -> bool:
    quantifier, subject, predicate = statement
    s, p = extension[subject], extension[predicate]
    return {"All": s <= p, "No": not s & p, "Some": bool(s & p), "Some-not": bool(s - p)}[quantifier]


def follows(premises: list[Statement], conclusion: Statement) -> bool:
    """True when the conclusion holds wherever the premises do, every term non-empty (existential import)."""
    terms = sorted({t for st in [*premises, conclusion] for t in st[1:]})
    regions = list(itertools.product((0, 1), repeat=len(terms)))  # which terms a region lies inside
    for filled in itertools.product((0, 1), repeat=len(regions)):
        extension = {t: frozenset(r for r, (region, on) in enumerate(zip(regions, filled)) if on and region[i])
                     for i, t in enumerate(terms)}  # fmt: skip
        if all(extension.values()) and all(_holds(p, extension) for p in premises) and not _holds(conclusion, extension):
            return False
    return True


def _question(p1: Statement, p2: Statement, c: Statement) -> str:
    return (f"Consider these statements:\n1. {statement_text(p1)}\n2. {statement_text(p2)}\n\nDoes it logically "
            f"follow that:\n{statement_text(c)}?\n(Answer Yes or No)")  # fmt: skip


def _parsed(question: str) -> list[Statement] | None:
    """Premise 1, premise 2 and the conclusion of a gym syllogism question; None for any other text."""
    m = QUESTION.fullmatch(question.strip())
    parsed = [parse_statement(m[k]) for k in ("p1", "p2", "c")] if m else [None]
    return None if any(p is None for p in parsed) else parsed  # type: ignore[return-value]


def checked_answer(question: str) -> str | None:
    """"yes" or "no" for a gym syllogism question, by the model check; None when it is not one."""
    parsed = _parsed(question)
    return None if parsed is None else ("yes" if follows(parsed[:2], parsed[2]) else "no")


def gym_answer_checks(problem: Problem) -> bool | None:
    """Whether the model check agrees with reasoning-gym's own answer (`meta["gym_answer"]`, else the
    gold) to a gym syllogism; None when the question is not one."""
    answer = checked_answer(problem.question)
    if answer is None:
        return None
    return answer == str(problem.meta.get("gym_answer", problem.gold)).strip().lower()


def contrast_pair(problem: Problem, seed: int) -> Contrast | None:
    """The problem and one edit with the other answer; None when the question is not a gym syllogism,
    when the check contradicts reasoning-gym's answer, or when no one-quantifier change flips it."""
    parsed = _parsed(problem.question)
    if parsed is None or not gym_answer_checks(problem):
        return None
    answer = follows(parsed[:2], parsed[2])
    names = ("premise 1", "premise 2", "conclusion")
    flips = []
    for i, (quantifier, subject, predicate) in enumerate(parsed):
        for other in QUANTIFIERS:
            if other == quantifier:
                continue
            statements = list(parsed)
            statements[i] = (other, subject, predicate)
            if follows(statements[:2], statements[2]) != answer:
                flips.append((names[i], statements))
    if not flips:
        return None
    changed, statements = random.Random(f"{seed}:{problem.id}").choice(flips)
    edit = replace(problem, id=f"{problem.id}-edit", question=_question(*statements), gold="no" if answer else "yes")
    return Contrast(replace(problem, gold="yes" if answer else "no"), edit, changed)


def contrast_set(problems: list[Problem], seed: int = 0) -> tuple[list[Contrast], int]:
    """Contrast pairs for the problems that have one, and how many had none."""
    pairs = [contrast_pair(p, seed) for p in problems]
    return [p for p in pairs if p is not None], sum(p is None for p in pairs)
