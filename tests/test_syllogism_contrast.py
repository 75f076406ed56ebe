"""The offline contrast set for counterfactual distillation (toolkit.sources.syllogism_contrast): the
model check against textbook syllogisms, the edits, reasoning-gym's wrong labels, and the two eval tasks
read through lm-eval with a scripted model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_module
from toolkit.records import Problem
from toolkit.sources import eval_tasks as T
from toolkit.sources import load_source
from toolkit.sources.syllogism_contrast import (
    contrast_pair,
    contrast_set,
    follows,
    gym_answer_checks,
    parse_statement,
)
from toolkit.teachers.base import Request

from .fakes import FakeTeacher, build, render_card, rows

ROOT = Path(__file__).resolve().parents[1]


def S(text: str):
    statement = parse_statement(text)
    assert statement is not None, text
    return statement


# Textbook verdicts (traditional logic, every term non-empty), written by hand, not by the code.
@pytest.mark.parametrize(
    ("premises", "conclusion", "valid"),
    [
        (["All dogs are mammals", "All mammals are animals"], "All dogs are animals", True),  # Barbara
        (["All dogs are mammals", "No mammals are fish"], "No dogs are fish", True),  # Celarent
        (["All dogs are mammals", "No mammals are fish"], "Some dogs are not fish", True),  # its subaltern
        (["Some dogs are mammals", "All mammals are animals"], "Some dogs are animals", True),  # Darii
        (["All bees are mortals", "Some mortals are doctors"], "Some bees are doctors", False),  # undistributed middle
        (["All cats are mammals", "Some mammals are not dogs"], "Some cats are not dogs", False),  # the same
        (["All dogs are mammals", "All mammals are animals"], "All animals are dogs", False),  # illicit major
        (["No dogs are cats", "No cats are fish"], "No dogs are fish", False),  # two negative premises
        (["All mammals are dogs", "All mammals are animals"], "Some dogs are animals", True),  # Darapti (import)
        (["No lions are fish", "All fish are animals"], "No fish are lions", True),  # conversion of E
        (["All lions are cats", "All fish are animals"], "Some cats are lions", True),  # conversion per accidens
        (["All lions are cats", "All fish are animals"], "All cats are lions", False),
        (["Some lions are not cats", "All fish are animals"], "Some cats are not lions", False),
    ],
)
def test_the_model_check_gives_the_textbook_verdicts(premises, conclusion, valid):
    assert follows([S(p) for p in premises], S(conclusion)) is valid


def _problem(p1: str, p2: str, c: str, gold: str) -> Problem:
    question = (f"Consider these statements:\n1. {p1}\n2. {p2}\n\nDoes it logically follow that:\n{c}?\n"
                "(Answer Yes or No)")  # fmt: skip
    return Problem(id="p1", source="gym:syllogism", question=question, gold=gold, answer_type="yesno")


def test_an_edit_changes_one_quantifier_and_flips_the_answer():
    pair = contrast_pair(_problem("All dogs are mammals", "All mammals are animals", "All dogs are animals", "Yes"), 0)
    assert pair is not None and pair.original.gold == "yes" and pair.edit.gold == "no" and pair.edit.id == "p1-edit"
    before, after = pair.original.question.splitlines(), pair.edit.question.splitlines()
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(before) == len(after) and len(changed) == 1
    old, new = (S(line.split(". ", 1)[-1].rstrip("?")) for line in changed[0])
    assert old[1:] == new[1:] and old[0] != new[0]  # the terms stay, the quantifier changes
    # by hand: Barbara keeps "Yes" only with its conclusion weakened to "Some dogs are animals"
    assert new != S("Some dogs are animals")


def test_what_has_no_pair():
    assert contrast_pair(_problem("All dogs are mammals", "All mammals are animals", "All dogs are animals", "No"), 0) is None
    assert contrast_pair(Problem(id="x", source="s", question="Is 3 > 2?", gold="yes", answer_type="yesno"), 0) is None
    bad = _problem("Most dogs are mammals", "All mammals are animals", "All dogs are animals", "Yes")
    assert contrast_pair(bad, 0) is None and gym_answer_checks(bad) is None


def test_reasoning_gym_labels_some_fallacies_yes_and_the_set_leaves_them_out():
    problems = load_source("gym:syllogism", split="test", seed=31337, limit=124).problems
    wrong = [p for p in problems if gym_answer_checks(p) is False]
    assert len(wrong) == 14 and {(p.meta["gym_answer"], p.gold) for p in wrong} == {("Yes", "no")}  # the source's gold is the check's
    # e.g. (checked by hand) "All bees are mortals; some mortals are doctors; so some bees are doctors": No
    assert any("1. All bees are mortals\n2. Some mortals are doctors" in p.question for p in wrong)
    pairs, without = contrast_set(problems, seed=31337)
    assert (len(pairs), without) == (101, 23)
    kept = {pair.original.id for pair in pairs}
    assert not kept & {p.id for p in wrong}
    for pair in pairs:
        assert pair.original.gold != pair.edit.gold
        differing = [a != b for a, b in zip(pair.original.question.splitlines(), pair.edit.question.splitlines())]
        assert sum(differing) == 1
    assert contrast_set(problems, seed=31337) == (pairs, without)  # the same set every time


def test_the_two_eval_tasks_read_through_lm_eval(manager):
    from lm_eval import simple_evaluate

    from tests.test_counterfactual_eval import ScriptedLM

    tasks = T.load_tasks(manager, ["hubtool_cf_gym_syllogism", "hubtool_cf_gym_syllogism_contrast"])
    docs = {t.config.task: list(t.test_docs()) for t in tasks}
    ident, contrast = docs["hubtool_cf_gym_syllogism"], docs["hubtool_cf_gym_syllogism_contrast"]
    assert len(ident) == 200 and len(contrast) == 202
    assert all(gym_answer_checks(Problem(id="", source="", question=d["question"], gold=d["gold"], answer_type="yesno"))
               for d in ident)  # fmt: skip
    # the plain gym task's documents, less the wrong labels
    plain = {d["question"] for d in load_module(ROOT / "eval_tasks" / "reasoning_gym" / "utils.py", "gym_hooks")
             .load("syllogism", "test", 31337, 230)["test"]}  # fmt: skip
    assert {d["question"] for d in ident} <= plain
    assert [d["group"] for d in contrast[:4]] == [contrast[0]["group"]] * 2 + [contrast[2]["group"]] * 2

    class YesNo(ScriptedLM):
        def answer(self, doc):  # right on everything but the first pair's edit
            flip = {"yes": "no", "no": "yes"}
            wrong = doc["question"] == contrast[1]["question"]
            return f"Step by step.\nThe answer is {flip[doc['gold']] if wrong else doc['gold']}."

    results = simple_evaluate(model=YesNo(set()).lm, tasks=tasks, task_manager=manager, bootstrap_iters=0, limit=4)
    scores = results["results"]["hubtool_cf_gym_syllogism_contrast"]
    assert scores["exact_match,strict-match"] == 0.75 and scores["consistency,strict-match"] == 0.5
    assert results["results"]["hubtool_cf_gym_syllogism"]["exact_match,strict-match"] == 1.0
    assert "Possible answers" not in results["samples"]["hubtool_cf_gym_syllogism"][0]["arguments"][0][0]


def _sound(request: Request, j: int) -> str:
    """A teacher that reasons soundly: the model check's answer."""
    from toolkit.sources.syllogism_contrast import checked_answer

    question = request.messages[-1]["content"]
    start = question.index("Consider these statements:")
    answer = checked_answer(question[start:question.index("(Answer Yes or No)") + len("(Answer Yes or No)")])
    return f"The middle term decides it.\nThe answer is {answer.capitalize() if answer else 'unknown'}."


def test_a_build_keeps_a_sound_no_where_reasoning_gym_says_yes_and_its_card_says_so(tmp_path):
    # reasoning-gym answers "Yes" to 7 of its first 40 train syllogisms that do not follow (index 11: "All
    # ants are dolphins; some dolphins are not spiders" -> "some ants are not spiders"). Scored against that
    # label, a teacher that reasons soundly would lose those rows; one that fell for the fallacy would keep them.
    build("cot", tmp_path / "run", teachers={"teacher": FakeTeacher(_sound)}, source="gym:syllogism", limit=40,
          samples=1, keep="all")  # fmt: skip
    kept = rows(tmp_path / "run")
    assert len(kept) == 40 and all(r["correct"] for r in kept)
    ants = next(r for r in kept if "1. All ants are dolphins\n2. Some dolphins are not spiders" in r["question"])
    assert (ants["gold"], ants["pred"]) == ("no", "no")
    card = render_card(tmp_path / "run", repo_id="me/syllogism")
    assert ("Changed from the source: 7 of 40 problems have the answer of a model check, not reasoning-gym's (it "
            "calls some invalid syllogisms valid); `meta.gym_answer` keeps reasoning-gym's.") in " ".join(card.split())
