"""What a real small teacher writes, replayed through the builders (issue 25).

`tests/fixtures/real/qwen2.5-coder-0.5b-instruct.jsonl` holds every call of a set of small builds with
Qwen2.5-Coder-0.5B-Instruct served by llama.cpp (cot on gym syllogism and chain_sum, cot under the
ranaldi-eacl24 preset on multiple-choice questions, mixed on basic_arithmetic, counterfactual on movie
reviews, evolve), before and after the fixes of issues 20 and 25, recorded with the prompts as sent
(`tests/fixtures/real/README.md` says how). The fake teacher's tidy replies never showed what these do:
`Answer: B`, answers stated first, "Therefore, the answer is X." on its own line, answers without any
reasoning, doubled answer lines, reviews rewritten into questions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fakes import build, rows
from toolkit.builders.reasoning import judge
from toolkit.records import Problem
from toolkit.teachers.fake import FakeTeacher

FIXTURE = Path(__file__).parent / "fixtures" / "real" / "qwen2.5-coder-0.5b-instruct.jsonl"
RECORDS = [json.loads(line) for line in FIXTURE.open(encoding="utf-8")]
# The kinds of call whose completions are chains of thought read by the shared judge.
REASONED = ("cot", "ranaldi_cot", "mixed_cot", "cf_student", "cf_view")
STEP_BY_STEP = "Let's think step by step, writing out each step of your reasoning."
_STATEMENT_LINE = re.compile(r"answer\b.{0,30}\bis\b|^\W*answer\W*:|final answer", re.I)


def _problem(p: dict) -> Problem:
    return Problem(id="real", source=p["source"], question=p["question"], gold=p["gold"],
                   answer_type=p["answer_type"], choices=tuple(p.get("choices") or ()))  # fmt: skip


def _completions(*kinds: str):
    for rec in RECORDS:
        if rec["kind"] in kinds and "problem" in rec:
            for choice in rec["choices"]:
                yield _problem(rec["problem"]), choice["text"], choice["finish_reason"] or "stop"


def _one(text_part: str) -> tuple[Problem, str, str]:
    """The one recorded completion holding `text_part` (quoted from the fixture by hand)."""
    found = [c for c in _completions(*REASONED) if text_part in c[1]]
    assert len(found) >= 1, f"no recorded completion holds {text_part!r}"
    return found[0]


def test_the_regression_set_covers_every_method():
    kinds = {rec["kind"] for rec in RECORDS}
    assert {"cot", "ranaldi_cot", "mixed_cot", "mixed_pot", "cf_edit", "cf_student", "cf_view",
            "evolve_evolver", "evolve_scorer"} <= kinds  # fmt: skip
    assert sum(len(rec["choices"]) for rec in RECORDS) >= 150


def test_no_row_loses_a_line_the_teacher_reasoned():
    """Every line of every real completion that is not an answer statement is in the row (issue 20 item 1)."""
    checked = 0
    for problem, text, finish in _completions(*REASONED):
        row, previous = judge(problem, text, finish).text, ""
        for line in text.strip().splitlines():
            # an answer statement may be put in house form, with its value on the next line ("...is:\nYes")
            statement = _STATEMENT_LINE.search(line) or (_STATEMENT_LINE.search(previous) and previous.rstrip().endswith(":"))
            if line.strip() and not statement:
                assert line.strip() in row, f"lost {line!r} from:\n{text}\n--- row:\n{row}"
                checked += 1
            previous = line if line.strip() else previous
    assert checked > 500


def test_a_row_states_at_most_one_answer_line_and_reads_back_as_itself():
    for problem, text, finish in _completions(*REASONED):
        verdict = judge(problem, text, finish)
        if verdict.truncated or verdict.pred is None:
            continue
        again = judge(problem, verdict.text, "stop")
        assert (again.pred, again.correct) == (verdict.pred, verdict.correct), verdict.text
        assert verdict.text.count("\nThe answer is ") <= 1, verdict.text


# Hand-labelled: (a piece of the recorded completion, gold as recorded, what it states, correct, bare)
@pytest.mark.parametrize(("piece", "pred", "correct", "bare"), [
    ("the most likely location where you would find a stapler is in office.\nAnswer: B", "B", True, False),
    ("Therefore, all engineers are indeed philosophers.\n\nThe answer is Yes.", "yes", True, False),
    ("The answer is -11152.\n\nTherefore, The final answer is -11152.", "-11152", False, False),
    ("Therefore, the final answer is \\(\\boxed{-4}\\).", "-4", True, False),
    ('So, the last line of the answer is: "The answer is -4".', "-4", True, False),
    ("4 - 1 - 7 = -2\nThe answer is -2.", "-2", False, False),
    ("57 + 87 + 70 = 214\n\nThe answer is 214.", "214", True, False),
])  # fmt: skip
def test_what_real_completions_state(piece, pred, correct, bare):
    problem, text, finish = _one(piece)
    verdict = judge(problem, text, finish)
    assert (verdict.pred, verdict.correct, verdict.bare) == (pred, correct, bare), text


def test_a_bare_answer_is_read_and_marked_bare():
    bare = [(p, t) for p, t, _ in _completions("cot") if t.strip() == "The answer is Yes."]
    assert len(bare) >= 5  # the syllogism teacher's favourite reply
    for problem, text in bare:
        verdict = judge(problem, text, "stop")
        assert (verdict.pred, verdict.correct, verdict.bare) == ("yes", problem.gold == "yes", True)


# --- replayed through the builders ---------------------------------------------------------------------
def _replay(kind: str) -> FakeTeacher:
    """Answers a prompt with the recorded completions of the same kind of call on the same question."""
    by_question: dict[str, list[str]] = {}
    for rec in RECORDS:
        if rec["kind"] == kind and "problem" in rec:
            by_question.setdefault(rec["problem"]["question"], []).extend(c["text"] for c in rec["choices"])

    def answer(request, j):
        user = request.messages[-1]["content"]
        texts = next((t for q, t in by_question.items() if q in user), None)
        return texts[j % len(texts)] if texts else "I cannot tell."

    return FakeTeacher(answer)


def _source(tmp_path: Path, source: str) -> str:
    problems = {rec["problem"]["question"]: rec["problem"] for rec in RECORDS
                if "problem" in rec and rec["problem"]["source"] == source}  # fmt: skip
    path = tmp_path / f"{source.replace(':', '_')}.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": p["gold"]}) + "\n" for q, p in problems.items()))
    return f"file:{path}"


@pytest.mark.parametrize("source", ["gym:syllogism", "gym:chain_sum"])
def test_cot_rows_from_real_completions_all_reason_and_are_right(tmp_path, source):
    manifest = build("cot", tmp_path / "run", teachers={"teacher": _replay("cot")}, samples=4,
                     source=_source(tmp_path, source), answer_type="yesno" if "syllogism" in source else "number")  # fmt: skip
    kept = rows(tmp_path / "run") if manifest.rows else []
    assert manifest.counts["no_reasoning"] > 0  # the real teacher does answer bare; they are counted...
    for row in kept:  # ...and left out: every row reasons, and is right
        assert not judge(_problem({**row, "choices": row["choices"]}), row["completion"][0]["content"], "stop").bare
        assert row["correct"] and row["pred"] == row["gold"]
    card = (tmp_path / "run" / "README.md").read_text()
    assert "bare answers" in card


def _exact_replay() -> FakeTeacher:
    """Answers a prompt exactly as the real teacher did when the same prompt was recorded."""
    from toolkit.teachers.base import CallFailure

    by_prompt: dict[str, list[str]] = {}
    for rec in RECORDS:
        by_prompt.setdefault(rec["messages"][-1]["content"], []).extend(c["text"] for c in rec["choices"])

    def answer(request, j):
        # recorded under the previous wording of the step-by-step line (measured against it: see the README)
        asked = request.messages[-1]["content"].replace(STEP_BY_STEP, "Let's think step by step.")
        texts = by_prompt.get(asked)
        return texts[j % len(texts)] if texts else CallFailure("not in the recorded set")

    return FakeTeacher(answer)


def test_mixed_on_real_completions_keeps_every_solved_problem(tmp_path):
    """Issue 25 item 6: the balance kept 3 of 4 solved problems; no problem loses its only rows."""
    manifest = build("mixed", tmp_path / "run", teachers={"teacher": _exact_replay()}, answer_type="number",
                     source=_source(tmp_path, "gym:basic_arithmetic"), max_new_tokens=256)  # fmt: skip
    c, kept = manifest.counts, rows(tmp_path / "run")
    assert c["failed"] == 0 and c["solved_problems"] == 4 and c["kept_problems"] == 4
    assert len({r["id"] for r in kept}) == 4 and {r["mode"] for r in kept} == {"cot", "pot"}
    for row in (r for r in kept if r["mode"] == "cot"):
        verdict = judge(_problem(row), row["completion"][0]["content"], "stop")
        assert verdict.correct and not verdict.bare


def test_counterfactual_on_real_completions_keeps_no_leaked_or_unedited_pair(tmp_path):
    """Issue 25 items 8-11 on what the real teacher wrote for six one-line reviews."""
    source = tmp_path / "reviews.jsonl"
    reviews = {rec["problem"]["question"]: rec["problem"]["gold"] for rec in RECORDS
               if "problem" in rec and rec["problem"]["source"] == "reviews"}  # fmt: skip
    source.write_text("".join(json.dumps({"text": q, "label": g}) + "\n" for q, g in reviews.items()))
    replay = _exact_replay()
    manifest = build("counterfactual", tmp_path / "run", teachers={"teacher": replay, "judge": replay},
                     source=f"file:{source}", question_field="text", label_field="label",
                     labels=("negative", "positive"), max_new_tokens=256)  # fmt: skip
    c = manifest.counts
    # Hand-read from the fixture: "...the ending predictable. The correct answer is positive, but let's change it"
    # writes the label into the review; "through; easily" -> "through, easily" changes nothing but a comma.
    assert c["cf_label_leak"] == 1 and c["cf_identical"] >= 2
    # No edit of this teacher survives: the build says so instead of promising counterfactuals (item 11).
    assert manifest.stats["kept"]["counterfactuals"] == 0 and c["kept_original"] == c["kept"] > 0
    assert manifest.stats["what"].startswith("original examples only")
    assert manifest.stats["warnings"][0].startswith("0 of 6 counterfactuals were kept")
