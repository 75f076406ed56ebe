"""The same fake-teacher calls give the same rows: each of the five methods is built from scripted
replies and its rows compared to a golden file. The goldens were written on the code before the
methods moved into `toolkit/methods/` (issue 22); a refactor that changes a row fails here
(regenerate with UPDATE_GOLDEN=1 only for a change you meant)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from toolkit.rundir import RunDir
from toolkit.teachers.base import CallFailure, Completion
from toolkit.teachers.fake import user_text

from .fakes import FakeTeacher, build, render_card, rows
from .test_evolve import evolving  # the evolve tests' scripted evolver, scorer and answerer

GOLDEN = Path(__file__).parent / "golden" / "rows"
SEEDS = f"file:{Path(__file__).parent / 'fixtures' / 'evolve' / 'seeds.jsonl'}"


def _sums(tmp_path, n=4) -> str:
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i + 5}?", "answer": str(2 * i + 5)}) + "\n"
                            for i in range(n)))  # fmt: skip
    return f"file:{path}"


def _numbers(request) -> tuple[int, int]:
    a, b = re.findall(r"What is (\d+) \+ (\d+)", user_text(request))[0]
    return int(a), int(b)


def arithmetic(request, j):
    """Sample j: right, wrong, cut off, no answer (by j % 4); a call for the second problem fails once."""
    a, b = _numbers(request)
    if "(PoT)" in user_text(request):
        return [f"```python\nans = {a} + {b}\n```", f"ans = {a} - {b}", f"```python\nx = {b}\nans = x + {a}\n```"][j % 3]
    return [f"{a} plus {b} is {a + b}.\nThe answer is {a + b}.", f"I guess {a + b + 1}.\nThe answer is {a + b + 1}.",
            Completion(f"First, {a} plus", "length", 10, 3), "No idea."][j % 4]  # fmt: skip


def student(request, j):
    text = user_text(request)
    a, b = _numbers(request)
    if a == 3:
        return CallFailure("HTTP 500")
    if "step by step" not in text:
        return f"The answer is {a + b + 2}."
    return f"{a} + {b} = {a + b} (path {j})\nThe answer is {a + b}." if j % 2 == 0 else \
        f"{a} + {b} = {a * b} (path {j})\nThe answer is {a * b}."


CASES = {"ok": "yes", "keeps": "yes", "far": "no", "wrongview": "no", "cut": "yes"}


def _yesno(tmp_path) -> str:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"question": f"Case {c}: the red box is on the small table. Is the box red?",
                                        "answer": a}) + "\n" for c, a in CASES.items()))  # fmt: skip
    return f"file:{path}"


def counterfactual(request, j):
    text = user_text(request)
    q = re.search(r"Question: (.*)", text)[1]
    case = re.search(r"Case (\w+)", q)[1]
    edited = "blue box" in q
    if "Write a counterfactual" in text:
        if case == "far":
            return "Counterfactual: Write a completely different question about green elephants in space instead?"
        if case == "cut":
            return Completion("Counterfactual: the blue", "length", 10, 3)
        return f"Sure.\nCounterfactual: {q.replace('red box', 'blue box')}\nThe answer is now different."
    if "The correct answer is" in text:
        label = re.search(r'"The answer is (\w+)\."', text)[1]
        if case == "wrongview" and edited:
            label = "yes" if label == "no" else "no"
        return f"The box colour decides it (view {j}).\nThe answer is {label}."
    truth = CASES[case] if not edited or case == "keeps" else ("no" if CASES[case] == "yes" else "yes")
    return f"Looking at the colour.\nThe answer is {truth}."


BUILDS = {
    "cot": lambda tmp: build("cot", tmp / "run", teachers={"teacher": FakeTeacher(arithmetic)}, source=_sums(tmp),
                             samples=4, keep="all"),
    "preference": lambda tmp: build("preference", tmp / "run", teachers={"student": FakeTeacher(student, model="student")},
                                    student="fake:student", source=_sums(tmp), samples=4),
    "counterfactual": lambda tmp: build("counterfactual", tmp / "run", source=_yesno(tmp),
                                        teachers=dict.fromkeys(("teacher", "judge"), FakeTeacher(counterfactual))),
    "mixed": lambda tmp: build("mixed", tmp / "run", teachers={"teacher": FakeTeacher(arithmetic)}, source=_sums(tmp),
                               cot_samples=3, pot_samples=3, exec_timeout=2.0),
    "evolve": lambda tmp: build("evolve", tmp / "run", source=SEEDS, limit=3,
                                teachers=dict.fromkeys(("evolver", "scorer", "answerer"), FakeTeacher(evolving))),
}  # fmt: skip


@pytest.mark.parametrize("method", sorted(BUILDS))
def test_rows_match_the_golden_file(tmp_path, method):
    manifest = BUILDS[method](tmp_path)
    kept = [{k: v for k, v in row.items() if k != "exec_runtime_s"} for row in rows(tmp_path / "run")]  # a timing
    got = json.dumps({"counts": dict(sorted(manifest.counts.items())), "rows": kept},
                     indent=1, sort_keys=True, ensure_ascii=False, default=str) + "\n"  # fmt: skip
    golden = GOLDEN / f"{method}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(got)
    assert got == golden.read_text(), f"{method}'s rows changed; if intended: UPDATE_GOLDEN=1 pytest {__file__}"


@pytest.mark.parametrize("method", sorted(BUILDS))
def test_card_matches_the_golden_file(tmp_path, method):
    manifest = BUILDS[method](tmp_path)
    manifest.command = f"hubtool build-dataset {method} --teacher fake ..."  # not this test run's argv
    RunDir(tmp_path / "run").write_manifest(manifest)
    text = render_card(tmp_path / "run", repo_id=f"me/{method}-rows")
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)?", "TIME", text)  # when it ran, how long it took
    text = re.sub(r"(took|time|longest) [\d.]+ s", r"\1 N s", text)
    text = re.sub(r"train-[0-9a-f]{16}\.parquet", "train-HASH.parquet", text)  # mixed rows hold exec times
    text = _versions_masked(text)  # which libraries the card lists is the card's; their versions are this machine's
    golden = GOLDEN / f"card_{method}.md"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == _versions_masked(golden.read_text()), f"{method}'s card changed; if intended: UPDATE_GOLDEN=1 pytest {__file__}"


def _versions_masked(card: str) -> str:
    """The card with each version of its "Library versions" table as VERSION (a fresh install moves them)."""
    head, sep, rest = card.partition("### Library versions\n")
    table, blank, tail = rest.partition("\n\n")
    masked = re.sub(r"^\| ([^|]+) \| [^|]+ \|$", r"| \1 | VERSION |", table, flags=re.M)
    return head + sep + masked.replace("| package | VERSION |", "| package | version |") + blank + tail
