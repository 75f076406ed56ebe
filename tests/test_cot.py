"""The CoT builder's logic on a fake teacher: filtering, honest answer lines, resuming, extending."""

from __future__ import annotations

import json
import re

import pytest

from tests.assertions import raises_one_line
from toolkit import prompts
from toolkit.builders.reasoning import judge, prompt_messages
from toolkit.records import Problem
from toolkit.rundir import FAILED
from toolkit.teachers.base import CallFailure, Completion

from .fakes import FakeTeacher, build, rows


def _source(tmp_path, n=6):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i * 2}?", "answer": str(i * 3)}) + "\n" for i in range(n)))
    return f"file:{path}"


def _solver(request, j):
    """Sample 0 right (with a sloppy ending), sample 1 wrong, sample 2 garbage."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)", request.messages[-1]["content"])[0])
    return [f"{a} plus {b} makes {a + b}.\nFinal answer: {a + b}", f"I think it is {a + b + 1}. The answer is {a + b + 1}.", "hmm"][j % 3]


def _build(tmp_path, teacher, *, limit=None, keep="correct", samples=3, out="run"):
    return build("cot", tmp_path / out, teachers={"teacher": teacher}, source=_source(tmp_path), limit=limit,
                 samples=samples, keep=keep)  # fmt: skip


def test_keeps_correct_rationales_in_house_form(tmp_path):
    manifest = _build(tmp_path, FakeTeacher(_solver))
    kept = rows(tmp_path / "run")
    assert len(kept) == 6 and all(r["correct"] and r["sample_idx"] == 0 for r in kept)
    assert kept[1]["completion"][0]["content"] == "1 plus 2 makes 3.\nThe answer is 3."
    assert kept[1]["prompt"][-1]["role"] == "user" and "What is 1 + 2?" in kept[1]["prompt"][-1]["content"]
    c = manifest.counts
    assert (c["problems"], c["samples"], c["correct"], c["kept"], c["failed"], c["no_answer"]) == (6, 18, 6, 6, 0, 6)
    assert manifest.status == "complete" and manifest.teacher_identity == "fake:fake-model@r1"
    assert "Let's think step by step" in manifest.prompt_templates["cot"]
    assert len({r["id"] for r in kept}) == 6 and kept[0]["id"] != kept[1]["id"]


def test_keep_all_records_wrong_and_unparsed_samples_as_written(tmp_path):
    _build(tmp_path, FakeTeacher(_solver), keep="all")
    kept = rows(tmp_path / "run")
    assert len(kept) == 18
    garbage = [r for r in kept if r["sample_idx"] == 2]
    assert all(r["pred"] is None and not r["correct"] and r["completion"][0]["content"] == "hmm" for r in garbage)
    wrong = [r for r in kept if r["sample_idx"] == 1]
    assert wrong[2]["completion"][0]["content"] == "I think it is 7.\nThe answer is 7." and wrong[2]["pred"] == "7"


# --- honest data: no row ends with an answer line the model did not write ---------------------------

CASES = {  # completion text, finish_reason -> the row text, pred, correct (written by hand)
    "truncated": (("We add 2 and 3. The answer is 5 and then we check it by", "length"),
                  ("We add 2 and 3. The answer is 5 and then we check it by", "5", False)),
    "truncated_no_answer": (("We add 2 and 3 to get", "length"), ("We add 2 and 3 to get", None, False)),
    "unparsable": (("Two plus three is five.", "stop"), ("Two plus three is five.", None, False)),
    # two different answers: no answer, kept as written
    "multiple_answers": (("The answer is 6.\nWait, recount: 2 + 3 = 5.\nThe answer is 5.\nHope that helps!", "stop"),
                         ("The answer is 6.\nWait, recount: 2 + 3 = 5.\nThe answer is 5.\nHope that helps!", None, False)),
    # words after the answer stay: the statement is not the completion's last
    "boxed": (("2 + 3 = 5, so $\\boxed{5}$. Done!", "stop"), ("2 + 3 = 5, so $\\boxed{5}$. Done!", "5", True)),
    # a closing statement is put in house form, the reasoning before it kept
    "closing": (("We add 2 and 3 to get 5, so the answer is 5", "stop"), ("We add 2 and 3 to get 5.\nThe answer is 5.", "5", True)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_row_ends_with_an_answer_line_the_model_did_not_write(tmp_path, case):
    (text, finish), (expected, pred, correct) = CASES[case]
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps({"question": "What is 2 + 3?", "answer": "5"}) + "\n")
    teacher = FakeTeacher(lambda r, j: Completion(text, finish, 5, 9))
    for keep in ("all", "correct"):
        build("cot", tmp_path / keep, teachers={"teacher": teacher}, source=f"file:{path}", samples=1, keep=keep)
    [row] = rows(tmp_path / "all")
    assert (row["completion"][0]["content"], row["pred"], row["correct"]) == (expected, pred, correct)
    assert [r["completion"] for r in rows(tmp_path / "correct")] == ([row["completion"]] if correct else [])
    assert row["finish_reason"] == finish


def test_judge_marks_a_cut_off_right_answer_incorrect():
    problem = Problem("p", "s", "What is 2 + 3?", "5", "number")
    verdict = judge(problem, "The answer is 5, because", "length")
    assert (verdict.pred, verdict.correct, verdict.truncated, verdict.text) == ("5", False, True, "The answer is 5, because")


def test_truncated_samples_are_counted_and_dropped(tmp_path):
    manifest = build("cot", tmp_path / "run", teacher="fake:cycle", source="gym:chain_sum", limit=3, samples=4)
    c = manifest.counts
    assert (c["samples"], c["correct"], c["truncated"], c["no_answer"], c["kept"]) == (12, 3, 3, 3, 3)
    assert all(r["finish_reason"] == "stop" and r["correct"] for r in rows(tmp_path / "run"))


# --- resume, extend, failures ------------------------------------------------------------------------


def test_rerun_repeats_no_call_and_gives_the_same_rows(tmp_path):
    _build(tmp_path, FakeTeacher(_solver))
    first = rows(tmp_path / "run")
    again = FakeTeacher(_solver)
    manifest = _build(tmp_path, again)
    assert again.calls == [] and manifest.usage["teacher"]["samples_cached"] == 18
    assert rows(tmp_path / "run") == first


def test_raising_the_limit_only_generates_the_new_problems(tmp_path):
    _build(tmp_path, FakeTeacher(_solver), limit=2)
    more = FakeTeacher(_solver)
    _build(tmp_path, more, limit=5)
    asked = sorted(r.messages[-1]["content"] for r in more.calls)
    assert len(asked) == 3 and all(f"What is {i} + {2 * i}?" in q for i, q in zip(range(2, 5), asked))
    assert len(rows(tmp_path / "run")) == 5


def test_failed_calls_are_recorded_and_retried(tmp_path):
    broken = FakeTeacher(lambda r, j: CallFailure("HTTP 500") if "What is 3 +" in r.messages[-1]["content"] else _solver(r, j))
    manifest = _build(tmp_path, broken)
    assert manifest.counts["failed"] == 1 and manifest.usage["teacher"]["failed_calls"] == 1
    failed = [json.loads(line) for line in (tmp_path / "run" / FAILED).read_text().splitlines()]
    assert failed[0]["error"] == "HTTP 500" and "3 + 6" in failed[0]["question"] and failed[0]["role"] == "teacher"
    healed = FakeTeacher(_solver)
    manifest = _build(tmp_path, healed)
    assert len(healed.calls) == 1 and manifest.counts["failed"] == 0 and len(rows(tmp_path / "run")) == 6


def test_a_different_teacher_cannot_reuse_the_directory(tmp_path):
    _build(tmp_path, FakeTeacher(_solver))
    with raises_one_line(match="different build"):
        _build(tmp_path, FakeTeacher(_solver, model="other"))


def test_cot_template_renders_questions_options_and_exemplars():
    problem = Problem("p1", "x", "Which is a fruit?", "B", "option", ("stone", "apple"))
    shots = ({"question": "2+2?", "rationale": "2+2=4. The answer is 4."},)
    text = prompt_messages(problem, exemplars=shots, system="Be brief.")
    assert text[0] == {"role": "system", "content": "Be brief."}
    body = text[1]["content"]
    assert "(A) stone\n(B) apple" in body and "Answer: 2+2=4. The answer is 4." in body
    assert body.endswith("with the letter of the correct option in place of the blank:\nThe answer is ___.")
    with raises_one_line(match="undefined variables: question"):
        prompts.check_template("cot", {"choices", "exemplars", "answer_hint"})


def test_a_template_file_is_checked_before_any_call(tmp_path):
    bad = tmp_path / "mine.jinja"
    bad.write_text("Q: {{ questoin }}")
    teacher = FakeTeacher(_solver)
    with raises_one_line(match="undefined variables: questoin"):
        build("cot", tmp_path / "run", teachers={"teacher": teacher}, source=_source(tmp_path), template=str(bad))
    assert teacher.calls == [] and not (tmp_path / "run").exists()
    good = tmp_path / "good.jinja"
    good.write_text("Solve: {{ question }} ({{ answer_hint }})")
    manifest = build("cot", tmp_path / "run", teachers={"teacher": teacher}, source=_source(tmp_path), template=str(good))
    assert teacher.calls[0].messages[-1]["content"] == "Solve: What is 0 + 0? (the final number)"
    assert manifest.prompt_templates == {str(good): good.read_text()}


# --- issues 20.1 and 25: the teacher's text kept whole; how answers were read, counted -------------

CITIES = ["Michigan", "New York", "Paris", "Venice"]
# issue 20's answer-first completion, verbatim, and the same reasoning with the answer mid-way and last
VENICE = {
    "first": "The answer is D) Venice. Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA…",
    "middle": "Venice, Italy is known for its canals. The answer is D) Venice. A) Michigan and B) New York are in the "
              "USA, and C) Paris has the Seine but no canals to speak of.",
    "last": "Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA.\nThe answer is D) Venice.",
}  # fmt: skip
VENICE_ROWS = [
    VENICE["first"],
    VENICE["middle"],
    "Venice, Italy is known for its canals; A) Michigan and B) New York are in the USA.\nThe answer is D.",
]


def _city_source(tmp_path) -> str:
    path = tmp_path / "cities.jsonl"
    path.write_text(json.dumps({"question": "Which city is known for its canals?", "choices": CITIES, "answer": "D"}) + "\n")
    return f"file:{path}"


def test_cot_rows_keep_the_reasoning_wherever_the_answer_is_stated(tmp_path):
    replies = [VENICE["first"], VENICE["middle"], VENICE["last"]]
    teacher = FakeTeacher(lambda r, j: replies[j])
    for keep in ("correct", "all"):
        build("cot", tmp_path / keep, teachers={"teacher": teacher}, source=_city_source(tmp_path), choices_field="choices",
              samples=3, keep=keep)  # fmt: skip
        kept = rows(tmp_path / keep)
        assert [r["completion"][0]["content"] for r in kept] == VENICE_ROWS
        assert [(r["pred"], r["correct"]) for r in kept] == [("D", True)] * 3


# What the mixed (CoT side) and counterfactual builders do with the shared judge: mixed keeps
# `verdict.text` of a correct verdict as a row; counterfactual keeps `verdict.text` of a rationale that
# states the target label, and reads `verdict.pred` as the judge's vote ("" when None).
MIXED = Problem("m", "s", "Tom has 17 boxes of 23 pens and gives away 91 pens. How many are left?", "300", "number")
COUNTERFACTUAL = Problem("c", "s", "All cats are mammals. Tom is a cat. Is Tom a mammal? (Answer Yes or No)", "yes", "yesno")


@pytest.mark.parametrize(
    ("problem", "text", "row"),
    [
        (MIXED, "The answer is 300. 17 * 23 = 391 pens, and 391 - 91 = 300 are left.",
         "The answer is 300. 17 * 23 = 391 pens, and 391 - 91 = 300 are left."),
        (MIXED, "17 * 23 = 391 pens. The answer is 300. That is 391 - 91, the pens he kept.",
         "17 * 23 = 391 pens. The answer is 300. That is 391 - 91, the pens he kept."),
        (MIXED, "17 * 23 = 391 pens, and 391 - 91 = 300, so the answer is 300",
         "17 * 23 = 391 pens, and 391 - 91 = 300.\nThe answer is 300."),
        (COUNTERFACTUAL, "The answer is Yes. Tom is a cat, and every cat is a mammal, so Tom is one too.",
         "The answer is Yes. Tom is a cat, and every cat is a mammal, so Tom is one too."),
        (COUNTERFACTUAL, "Tom is a cat. The answer is yes, since every cat is a mammal; nothing says otherwise.",
         "Tom is a cat. The answer is yes, since every cat is a mammal; nothing says otherwise."),
        (COUNTERFACTUAL, "Tom is a cat, and every cat is a mammal.\nThe answer is yes.",
         "Tom is a cat, and every cat is a mammal.\nThe answer is yes."),
    ],
)  # fmt: skip
def test_the_shared_judge_keeps_the_reasoning_for_mixed_and_counterfactual(problem, text, row):
    verdict = judge(problem, text, "stop")
    assert (verdict.text, verdict.pred, verdict.correct, verdict.rule) == (row, problem.gold, True, "strict")
    assert (verdict.contradiction, verdict.reasoning, verdict.bare) == (False, True, False)


def test_the_shared_judge_reports_contradictions_and_bare_answers():
    # issue 25: a rationale that states two answers is no answer (a counterfactual vote of "")
    both = judge(COUNTERFACTUAL, "Therefore, the answer is No. … The answer is Yes.", "stop")
    assert (both.pred, both.correct, both.contradiction, both.bare) == (None, False, True, True)
    bare = judge(MIXED, "The answer is 300.", "stop")
    assert (bare.pred, bare.correct, bare.reasoning, bare.bare, bare.text) == ("300", True, False, True, "The answer is 300.")
    cut = judge(MIXED, "The answer is 300.", "length")
    assert (cut.correct, cut.bare) == (False, False)  # a cut-off sample is counted as truncated only


def _cases_source(tmp_path, golds) -> str:
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {g} + 0?", "answer": g}) + "\n" for g in golds))
    return f"file:{path}"


# issue 25's shapes: a bare answer (chain_sum, syllogism), a contradiction, a doubled final line
REPLIES = {
    "6": "The answer is 6.",
    "7": "Therefore, the answer is 8. … The answer is 7.",
    "2180": "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.\nThe answer is 2180.",
}


def _replies(request, j):
    return REPLIES[re.findall(r"What is (\d+) \+ 0", request.messages[-1]["content"])[0]]


def test_bare_answers_are_counted_and_left_out_by_default(tmp_path):
    source = _cases_source(tmp_path, ["6", "7", "2180"])
    manifest = build("cot", tmp_path / "run", teachers={"teacher": FakeTeacher(_replies)}, source=source, samples=1)
    c = manifest.counts
    assert (c["samples"], c["correct"], c["kept"], c["no_reasoning"], c["contradictions"], c["no_answer"]) == (3, 2, 1, 2, 1, 0)
    assert (c["accepted_strict"], c["accepted_fuzzy"]) == (2, 0)
    [row] = rows(tmp_path / "run")
    assert row["completion"][0]["content"] == "45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180."
    build("cot", tmp_path / "all", teachers={"teacher": FakeTeacher(_replies)}, source=source, samples=1, keep="all",
          bare="keep")  # fmt: skip
    assert [(r["completion"][0]["content"], r["pred"], r["correct"]) for r in rows(tmp_path / "all")] == [
        ("The answer is 6.", "6", True),
        ("Therefore, the answer is 8. … The answer is 7.", None, False),
        ("45 * 48 = 2160 and 2160 + 20 = 2180.\nThe answer is 2180.", "2180", True),
    ]


def test_ranaldi_preset_reads_answer_labels_and_keeps_the_teachers_text(tmp_path):
    # issue 25: "Answer: B" under the paper's prompt was read as no answer (16.7 % correct where 50 % were)
    from click.testing import CliRunner

    from toolkit.cli import main
    from toolkit.methods import get_method
    from toolkit.rundir import read_manifest

    path = tmp_path / "planets.jsonl"
    questions = {"Which planet is red?": "B", "Which planet is the hottest?": "A"}
    path.write_text("".join(json.dumps({"question": q, "choices": ["Venus", "Mars"], "answer": g}) + "\n"
                            for q, g in questions.items()))  # fmt: skip
    replies = ["Iron oxide dust covers its surface, so it is called the Red Planet.\nAnswer: B", "Answer: A"]
    script = tmp_path / "teacher.jsonl"
    script.write_text(json.dumps({"match": "red", "replies": [replies[0]]}) + "\n"
                      + json.dumps({"match": "hottest", "replies": [replies[1]]}) + "\n")  # fmt: skip
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--preset", "ranaldi-eacl24", "--source", f"file:{path}",
                                       "--choices-field", "choices", "--teacher", f"fake:{script}", "--out", str(out),
                                       "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    c = read_manifest(out).counts
    assert (c["samples"], c["correct"], c["kept"], c["no_reasoning"], c["accepted_strict"]) == (2, 2, 2, 1, 2)
    assert sorted(r["completion"][0]["content"] for r in rows(out)) == sorted(replies)  # as the teacher wrote them
    assert "bare answers and contradictions included" in get_method("cot").presets["ranaldi-eacl24"].about
    card = (out / "README.md").read_text()  # the card says the bare answers are kept
    assert "| `bare` | `keep` |" in card and "| `answer_line` | `verbatim` |" in card
