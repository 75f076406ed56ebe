"""Counterfactual distillation on the fake teacher: every validation rule, the funnel adding up,
honest rows, label sources, the card, the CLI, the recipes and `hubtool train --where`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from tests.fakes import FakeTeacher, build, render_card, rows
from toolkit.answer_reading import stated_answer
from toolkit.cli import main
from toolkit.methods.counterfactual import CounterfactualConfig, edits, student_messages
from toolkit.records import Problem
from toolkit.rundir import read_manifest
from toolkit.teachers.base import Completion
from toolkit.teachers.fake import user_text

ROOT = Path(__file__).resolve().parents[1]

# One yes/no problem per rule: the case name is in the question, and the fake teacher below
# answers each kind of prompt (edit, blind judge, multi-view rationale) by it.
CASES = {
    "ok": "yes",  # a minimal edit, judged to the target, rationales verified
    "keeps": "yes",  # the judge still gives the old label: a counterfactual that keeps its label
    "far": "no",  # the edit rewrites the whole question: too far from x
    "same": "yes",  # the edit is x again (case and spacing aside): identical
    "wrongview": "no",  # the counterfactual's rationales argue for the wrong label
    "unsure": "yes",  # the judge states no answer: no majority for anything
    "empty": "no",  # the teacher replies nothing usable
    "cut": "yes",  # the edit is cut off by max_new_tokens
}


def question(case: str) -> str:
    return f"Case {case}: the red box is on the small table. Is the box red?"


def edit_reply(case: str, q: str) -> str | Completion:
    if case == "far":
        return "Counterfactual: Write a completely different question about green elephants in space instead?"
    if case == "same":
        return f"Counterfactual:  {q.upper()}"
    if case == "empty":
        return "Counterfactual:"
    if case == "cut":
        return Completion("Counterfactual: the blue", "length", 10, 3)
    return f"Sure.\nCounterfactual: {q.replace('red box', 'blue box')}\nThe answer is now different."


def fake(request, sample: int) -> str | Completion:
    text = user_text(request)
    q = re.search(r"Question: (.*)", text)[1]
    case = re.search(r"Case (\w+)", q)[1]
    edited = "blue box" in q
    if "Write a counterfactual" in text:
        return edit_reply(case, q)
    if "The correct answer is" in text:  # a view: the teacher was told the label
        label = re.search(r'"The answer is (\w+)\."', text)[1]
        if case == "wrongview" and edited:
            label = "yes" if label == "no" else "no"  # argues for the other label
        return f"The box colour decides it.\nThe answer is {label}."
    # the blind judge (the student prompt)
    if case == "unsure":
        return "I cannot tell."
    truth = CASES[case] if not edited or case == "keeps" else ("no" if CASES[case] == "yes" else "yes")
    return f"Looking at the colour.\nThe answer is {truth}."


@pytest.fixture
def yesno_file(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"question": question(c), "answer": a}) + "\n" for c, a in CASES.items()))
    return path


def run_cases(tmp_path, yesno_file, teacher=None, judge=None, **config):
    teacher = teacher or FakeTeacher(fake)
    out = tmp_path / "run"
    manifest = build("counterfactual", out, teachers={"teacher": teacher, "judge": judge or teacher},
                     source=f"file:{yesno_file}", **config)  # fmt: skip
    return manifest, rows(out), out


def test_every_validation_rule_drops_what_it_should_and_the_funnel_adds_up(tmp_path, yesno_file):
    manifest, kept, _ = run_cases(tmp_path, yesno_file)
    c = manifest.counts
    assert c["problems"] == len(CASES) and c["targets"] == len(CASES) and c["failed"] == 0
    # each rule, once
    assert (c["cf_truncated"], c["cf_unparsable"], c["cf_identical"], c["cf_too_far"]) == (1, 1, 1, 1)
    assert (c["cf_kept_old_label"], c["cf_judge_unreadable"], c["cf_no_rationale"], c["cf_verified"]) == (1, 1, 1, 1)
    assert c["cf_judged_other"] == 0  # "unsure": no judge reply states an answer, so no vote was cast
    # the funnel adds up, stage by stage
    assert c["cf_generated"] == c["cf_truncated"] + c["cf_unparsable"] + c["cf_format"] + c["cf_identical"] + \
        c["cf_label_leak"] + c["cf_instructions"] + c["cf_too_far"] + c["cf_minimal"]  # fmt: skip
    assert c["cf_minimal"] == c["cf_kept_old_label"] + c["cf_judged_other"] + c["cf_judge_unreadable"] + \
        c["cf_judge_failed"] + c["cf_judged"]  # fmt: skip
    assert c["cf_judged"] == c["cf_spare"] + c["cf_no_rationale"] + c["cf_verified"]
    assert c["samples"] == c["correct"] + c["wrong_label"] + c["contradicting"] + c["no_answer"] + c["truncated"]
    assert c["kept"] == c["correct"] == len(kept) == c["kept_original"] + c["kept_counterfactual"]
    funnel = {s["stage"]: s for s in manifest.stats["funnel"]}
    assert [s["count"] for s in manifest.stats["funnel"]] == [8, 4, 2, 2, 1]
    for before, after in zip(manifest.stats["funnel"], manifest.stats["funnel"][1:]):
        assert before["count"] - sum(after["dropped"].values()) == after["count"]
    assert funnel["minimal"]["dropped"]["too_far"] == 1
    # every original keeps its two views (support, and refute of the one other label); only "ok" adds a counterfactual
    assert c["originals_kept"] == len(CASES) and c["kept_original"] == 2 * len(CASES)
    counterfactual = [r for r in kept if r["is_counterfactual"]]
    assert {r["view"] for r in counterfactual} == {"support", "refute:yes"}
    assert {r["original_question"] for r in counterfactual} == {question("ok")}
    assert c["wrong_label"] == 2  # the "wrongview" counterfactual's two rationales


def test_rows_are_honest_and_link_originals_to_counterfactuals(tmp_path, yesno_file):
    manifest, kept, _ = run_cases(tmp_path, yesno_file)
    by_pair = {}
    for r in kept:
        text = r["completion"][0]["content"]
        assert text.endswith(f"The answer is {r['target_label']}.") and r["pred"] == r["target_label"] == r["gold"]
        assert stated_answer(text, "yesno").value == r["target_label"] and r["correct"]
        prompt = r["prompt"][0]["content"]
        assert r["question"] in prompt and "correct answer" not in prompt  # the student gets no hint
        assert r["view"] == "support" or r["view"].startswith("refute:") and r["view"] != f"refute:{r['gold']}"
        by_pair.setdefault(r["pair_id"], []).append(r)
    (pair,) = [rs for rs in by_pair.values() if any(r["is_counterfactual"] for r in rs)]
    original = [r for r in pair if not r["is_counterfactual"]]
    edited = [r for r in pair if r["is_counterfactual"]]
    assert {r["id"] for r in original} == {r["pair_id"] for r in pair} != {r["id"] for r in edited}
    for r in edited:
        assert r["question"] == question("ok").replace("red box", "blue box")
        assert (r["original_label"], r["target_label"]) == ("yes", "no") and r["original_question"] == question("ok")
        assert 0 < r["edit_ratio"] <= 0.3 and r["edit_idx"] == 0
        assert r["judge_votes"] == ["no", "no", "no"] and r["judge"] == "fake:fake-model@r1"
    for r in original:
        assert r["edit_ratio"] == 0 and r["judge_votes"] == [] and r["edit_idx"] is None and r["judge"] is None
    assert manifest.stats["examples"][0]["counterfactual"] == question("ok").replace("red box", "blue box")
    histogram = manifest.stats["edit_ratio_histogram"]
    assert sum(v["measured"] for v in histogram.values()) == 6  # every edit but the empty and the cut-off one
    assert histogram["0.0-0.1"] == {"measured": 5, "kept": 1}  # the identical one and four one-word edits


def test_a_separate_judge_relabels_blind_and_the_teacher_never_judges(tmp_path, yesno_file):
    teacher, judge = FakeTeacher(fake), FakeTeacher(fake, model="judge-model")
    _, kept, _ = run_cases(tmp_path, yesno_file, teacher=teacher, judge=judge)
    assert judge.calls and all("Let's think step by step" in user_text(r) for r in judge.calls)
    assert not any("Let's think step by step" in user_text(r) for r in teacher.calls)
    assert all("red box" not in user_text(r) or "Case ok" not in user_text(r) for r in judge.calls)  # it sees x' only
    assert {r["judge"] for r in kept if r["is_counterfactual"]} == {"fake:judge-model@r1"}


def test_candidates_the_first_that_passes_is_kept_the_rest_are_spare(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"question": question("ok"), "answer": "yes"}) + "\n")
    replies = ["Counterfactual: a question about something else entirely, long and unrelated to boxes?",
               f"Counterfactual: {question('ok').replace('red box', 'blue box')}",
               f"Counterfactual: {question('ok').replace('red box', 'blue box').replace('small', 'big')}"]

    def answer(request, j):
        return replies[j] if "Write a counterfactual" in user_text(request) else fake(request, j)

    manifest, kept, _ = run_cases(tmp_path, path, teacher=FakeTeacher(answer), candidates=3)
    c = manifest.counts
    assert (c["cf_generated"], c["cf_too_far"], c["cf_judged"], c["cf_spare"], c["cf_verified"]) == (3, 1, 2, 1, 1)
    assert {r["edit_idx"] for r in kept if r["is_counterfactual"]} == {1}


MC = [{"question": "Where is milk kept cold?", "choices": ["oven", "refrigerator", "garden", "drawer"], "answer": "B"}]


def mc_teacher(options: str | None):
    def answer(request, j):
        text = user_text(request)
        if "Write a counterfactual" in text:
            return f"Counterfactual: Where is milk kept hot?{options or ''}"
        if "The correct answer is" in text:
            return "The edited question asks for it.\nThe answer is " + re.search(r"The answer is (\w)", text)[1] + "."
        return "Only an oven gives heat here.\nThe answer is A."  # the judge: every edit asks for the oven

    return FakeTeacher(answer)


@pytest.mark.parametrize(("options", "dropped"), [
    ("\nOptions:\n(A) oven\n(B) refrigerator\n(C) garden\n(D) drawer", 0),  # options repeated intact: fine
    ("\n(A) stove\n(B) refrigerator\n(C) garden\n(D) drawer", 1),  # an option changed: the format check drops it
    (None, 0),  # options left out: kept as they were
])
def test_multiple_choice_edits_must_keep_the_options(tmp_path, options, dropped):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps(MC[0]) + "\n")
    teacher = mc_teacher(options)
    manifest, kept, _ = run_cases(tmp_path, path, teacher=teacher, targets="one", choices_field="choices", max_edit=1.0)
    assert manifest.counts["cf_format"] == dropped
    views = sorted(r["view"] for r in kept if not r["is_counterfactual"])
    assert views == ["refute:A", "refute:C", "refute:D", "support"]  # one refute view per wrong option


def test_targets_and_refute_views_are_all_one_or_a_count_and_stable(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text(json.dumps(MC[0]) + "\n")
    teacher = mc_teacher(None)
    for how, n in (("all", 3), ("one", 1), ("2", 2)):
        manifest, _, _ = run_cases(tmp_path, path, teacher=teacher, targets=how, refute_views="1",
                                   choices_field="choices", overwrite=True)  # fmt: skip
        assert manifest.counts["targets"] == n
    problem = Problem(id="p", source="s", question="q", gold="B", answer_type="option", choices=("a", "b", "c", "d"))
    others = edits.other_labels(problem)
    assert [x.value for x in others] == ["A", "C", "D"]
    assert edits.pick(others, "2", 0, "p") == edits.pick(others, "2", 0, "p")  # seeded: a re-run picks the same
    assert edits.pick(others, "0", 0, "p") == [] and edits.pick(others, "all", 0, "p") == others


def test_a_rebuild_answers_from_the_cache_with_the_same_rows(tmp_path, yesno_file):
    teacher = FakeTeacher(fake)
    _, first, _ = run_cases(tmp_path, yesno_file, teacher=teacher)
    calls = len(teacher.calls)
    manifest, again, _ = run_cases(tmp_path, yesno_file, teacher=teacher)
    assert len(teacher.calls) == calls and again == first and manifest.usage["teacher,judge"]["calls"] == 0


# -- labels ---------------------------------------------------------------------------------------
def test_label_field_and_labels_map_class_ids_and_show_the_label_set(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"text": "A dull film.", "sentiment": 0}, {"text": "A lovely film.", "sentiment": 1},
        {"text": "No gold here.", "sentiment": -1}]))  # fmt: skip

    def answer(request, j):
        text = user_text(request)
        if "Write a counterfactual" in text:
            return "Counterfactual: " + re.search(r"Review: (.*)", text)[1].replace("dull", "fine").replace("lovely", "dire")
        if "The correct answer is" in text:
            return "The tone of the review decides it.\nThe answer is " + re.search(r"The answer is (\w+)", text)[1] + "."
        return "The tone of the review decides it.\nThe answer is " + ("positive" if "fine" in text else "negative") + "."

    manifest, kept, _ = run_cases(tmp_path, path, teacher=FakeTeacher(answer), question_field="text",
                                  label_field="sentiment", labels=("negative,positive",), max_edit=0.5)  # fmt: skip
    assert manifest.source["answer_type"] == "label" and manifest.counts["problems"] == 2  # the -1 row is skipped
    assert {(r["question"], r["gold"]) for r in kept if not r["is_counterfactual"]} == {
        ("A dull film.", "negative"), ("A lovely film.", "positive")}
    assert "Possible answers: negative, positive" in kept[0]["prompt"][0]["content"]
    assert {(r["question"], r["gold"]) for r in kept if r["is_counterfactual"]} == {
        ("A fine film.", "positive"), ("A dire film.", "negative")}


def test_label_answers_without_a_set_are_yesno_or_need_labels():
    from toolkit.methods.counterfactual.labelled import labelled

    gym = Problem(id="g", source="gym:syllogism", question="Does it follow?", gold="Yes", answer_type="label")
    assert (labelled(gym, (), 0).answer_type, labelled(gym, (), 0).gold) == ("yesno", "yes")
    with raises_one_line(match="pass the set with --labels"):
        labelled(Problem(id="x", source="s", question="q", gold="maybe", answer_type="label"), (), 0)
    with raises_one_line(match="finite label space"):
        labelled(Problem(id="n", source="s", question="q", gold="7", answer_type="number"), (), 0)
    with raises_one_line(match="not one of --labels"):
        labelled(Problem(id="l", source="s", question="q", gold="5", answer_type="label"), ("a", "b"), 0)


@pytest.mark.parametrize(("fields", "message"), [
    ({"targets": "none"}, "--targets must be all, one or a count"),
    ({"targets": "0"}, "--targets must be all, one or a count"),
    ({"refute_views": "some"}, "--refute-views must be all or a count"),
    ({"max_edit": 0.0}, "--max-edit must be a number > 0"),
    ({"judge_votes": 0}, "--judge-votes must be at least 1"),
    ({"judge_temperature": -1.0}, "--judge-temperature"),
    ({"label_field": "y", "answer_field": "z"}, "--label-field or --answer-field"),
    ({"labels": ("a,a",)}, "two or more distinct labels"),
    ({"labels": ("a,b",), "answer_type": "yesno"}, "drop --answer-type yesno"),
])
def test_config_errors_speak_to_the_user(fields, message):
    with raises_one_line(match=message):
        CounterfactualConfig(source="gym:syllogism", out="x", **fields)


def test_judge_defaults_to_the_teacher_and_labels_split_on_commas():
    config = CounterfactualConfig(source="gym:syllogism", out="x", teacher="fake:right", labels=("neg, pos", "mid"))
    assert config.judge == "fake:right" and config.labels == ("neg", "pos", "mid")


# -- pure helpers -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("original", "edited", "ratio"), [
    ("the box is red", "the box is red", 0.0),
    ("the box is red", "the box is blue", 0.25),
    ("the box is red", "the box isn't red", 0.75),  # is -> isn ' t: one substitution, two insertions
    ("a b c d e f g h i j", "a b c d e f g h i", 0.1),
    ("short", "a much longer sentence than before", 6.0),
])
def test_edit_ratio_is_token_edit_distance_over_original_tokens(original, edited, ratio):
    assert edits.edit_ratio(original, edited) == ratio


YESNO = Problem(id="p", source="s", question="Is the box red?", gold="yes", answer_type="yesno")
OPTION = Problem(id="q", source="s", question="Where?", gold="B", answer_type="option", choices=("oven", "fridge"))


@pytest.mark.parametrize(("reply", "problem", "text", "why"), [
    ("Counterfactual: Is the box blue?", YESNO, "Is the box blue?", None),
    ("Here you go.\n**Counterfactual:** Is the box blue?\nThe answer is no.", YESNO, "Is the box blue?", None),
    ("```\nIs the box blue?\n```", YESNO, "Is the box blue?", None),  # no marker: the whole reply
    ('Counterfactual: "Is the box blue?"', YESNO, "Is the box blue?", None),
    ("Counterfactual:   ", YESNO, "", "unparsable"),
    ("", YESNO, "", "unparsable"),
    ("Counterfactual: Where hot?\nOptions:\n(A) oven\n(B) fridge", OPTION, "Where hot?", None),
    ("Counterfactual: Where hot?\n(A) stove\n(B) fridge", OPTION, "Where hot?", "format"),
    ("Counterfactual: Where hot?\n(A) oven", OPTION, "Where hot?", "format"),  # an option dropped
])
def test_parse_edit(reply, problem, text, why):
    edit = edits.parse_edit(reply, problem)
    assert (edit.text, edit.problem) == (text, why)


@pytest.mark.parametrize(("votes", "decided"), [
    (["no", "no", "yes"], "target"), (["yes", "yes", "no"], "original"),
    (["no", "", ""], "unreadable"),  # one readable vote of three is no verdict
    (["no", "yes"], "other"), (["no"], "target"), ([], "unreadable"),
    (["no", "", "no"], "target"),  # two readable votes of three, both the target
    (["no", "no", "yes", "", ""], "target"),  # a majority of the readable votes
])
def test_majority_of_blind_votes(votes, decided):
    assert edits.verdict(YESNO, votes, "no") == decided


@pytest.mark.parametrize(("original", "edited", "identical"), [
    # Qwen2.5-Coder-0.5B's "counterfactual" of a positive review, which its own blind judge then called negative
    ("I laughed the whole way through; easily the best comedy of the year.",
     "I laughed the whole way through, easily the best comedy of the year.", True),
    ("Is the box red?", "is the  box RED?", True),
    ("What is 3 + 4?", "What is 3 - 4?", False),  # an operator is content
    ("A dull film.", "A fine film.", False),
])  # fmt: skip
def test_an_edit_of_punctuation_alone_is_no_edit(original, edited, identical):
    assert edits.is_identical(original, edited) is identical


def test_histogram_bins():
    assert edits.histogram_bin(0.0) == "0.0-0.1" and edits.histogram_bin(0.1) == "0.1-0.2"
    assert edits.histogram_bin(1.0) == "0.9-1.0" and edits.histogram_bin(1.5) == ">1.0"
    assert edits.histogram_bins()[0] == "0.0-0.1" and edits.histogram_bins()[-1] == ">1.0" and len(edits.histogram_bins()) == 11


def test_the_student_prompt_is_the_eval_prompt_and_carries_no_answer():
    labelled = Problem(id="l", source="s", question="A dull film.", gold="negative", answer_type="label",
                       choices=("negative", "positive"))  # fmt: skip
    (message,) = student_messages(labelled)
    assert message["content"] == (
        "Review: A dull film.\nPossible answers: negative, positive\nWhich of the possible answers fits the review?\n\n"
        "Let's think step by step, writing out each step of your reasoning. Then write a last line of the form "
        "below, with negative or positive in place of the blank:\nThe answer is ___.")  # issue 20: no "The answer is negative or positive." for a student to copy
    assert "correct" not in message["content"]


# -- the card, the CLI, the recipes, training on a subset --------------------------------------------
def test_card_shows_funnel_histogram_and_pairs_and_parses_back(tmp_path, yesno_file):
    from huggingface_hub import DatasetCard


    _, _, out = run_cases(tmp_path, yesno_file)
    card = DatasetCard(render_card(out, repo_id="me/cf-cases"))
    meta, body = card.data.to_dict(), card.text
    assert meta["pretty_name"].startswith("Cf Cases: Counterfactual Distillation data from local file")
    assert "counterfactual" in meta["tags"] and meta["task_categories"] == ["text-generation", "question-answering"]
    for line in ("| generated | 8 | - |",
                 "| minimal | 4 | truncated 1, unparsable 1, format 0, identical 1, label_leak 0, instructions 0, "
                 "too_far 1 |",
                 "| judged target label | 2 | kept_old_label 1, judged_other 0, judge_unreadable 1, judge_failed 0 |",
                 "| selected (one per target) | 2 | spare 0 |",
                 "| rationale verified | 1 | no_rationale 1 |",
                 "| measured | 5 | 0 |", "| kept | 1 | 0 |",
                 "| 20 | 18 | 2 | 0 | 0 | 0 |"):  # fmt: skip
        assert line in body, line
    pair = f"| {question('ok')} | `yes` | {question('ok').replace('red box', 'blue box')} | `no` | 0.0588 | no, no, no |"
    assert pair in body
    assert "@inproceedings{feng-etal-2024-teaching-small" in body and "--preset" not in body.split("## How")[0]
    assert "hubtool train counterfactual/smollm2-135m-lora --set dataset_name=me/cf-cases" in body
    assert "--where is_counterfactual=false" in body
    for template in ("counterfactual_cot", "counterfactual_edit", "counterfactual_view"):
        assert f"The Jinja template `{template}`" in body


def test_cli_build_on_a_fake_script_with_the_paper_preset(tmp_path):
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"question": "Is the red box red?", "answer": "yes"}) + "\n")
    script = tmp_path / "teacher.jsonl"
    script.write_text("".join(json.dumps(line) + "\n" for line in [
        {"match": "Write a counterfactual", "replies": ["Counterfactual: Is the blue box red?"]},
        {"match": "The correct answer is yes", "replies": ["It says red.\nThe answer is yes."]},
        {"match": "The correct answer is no", "replies": ["It is blue.\nThe answer is no."]},
        {"match": "Question: Is the blue box red", "replies": ["Blue.\nThe answer is no."]},
    ]))  # fmt: skip
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "counterfactual", "--source", f"file:{source}",
                                       "--teacher", f"fake:{script}", "--preset", "feng-emnlp24", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "counterfactual: 1 problems, 4 samples, 4 correct (100.0%), 4 kept" in result.output
    manifest = read_manifest(out)
    assert manifest.preset == "feng-emnlp24" and manifest.config["judge"] == manifest.config["teacher"]
    assert [m.role for m in manifest.models] == ["teacher", "judge"]
    assert [(r["is_counterfactual"], r["view"]) for r in rows(out)] == [
        (False, "support"), (False, "refute:no"), (True, "support"), (True, "refute:yes")]
    help_text = CliRunner().invoke(main, ["build-dataset", "counterfactual", "--help"]).output
    for option in ("--targets", "--max-edit", "--judge", "--judge-votes", "--refute-views", "--labels", "--label-field"):
        assert option in help_text


COUNTERFACTUAL_RECIPES = sorted((ROOT / "recipes" / "counterfactual").glob("*.yaml"))


@pytest.mark.parametrize("path", COUNTERFACTUAL_RECIPES, ids=[p.name for p in COUNTERFACTUAL_RECIPES])
def test_recipes_parse_with_trls_parser_and_train_with_sft(path):
    import torch
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

    from toolkit.training import trainer_for

    # a GPU recipe's bf16 needs use_cpu on a CPU; a CPU recipe gets nothing added: its use_cpu is checked below
    cpu = [] if torch.cuda.is_available() or not path.name.startswith("gpu-") else ["--use_cpu", "true"]
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    script, training, model = parser.parse_args_and_config(["--config", str(path), *cpu], fail_with_unknown_args=True)
    assert trainer_for(path).config == "sft" and script.dataset_name.startswith("hubtool/counterfactual-")
    assert training.report_to in ([], "none", ["none"]) and path.name in (path.parent / "README.md").read_text()
    if path.name.startswith("gpu-"):
        assert training.bf16 and not model.use_peft and training.num_train_epochs == 3
    else:
        assert model.use_peft and training.use_cpu and not training.bf16


def test_where_trains_on_a_subset_by_column(tmp_path, yesno_file):
    from toolkit.training.data import load_training_data, parse_where

    _, kept, out = run_cases(tmp_path, yesno_file)
    everything = load_training_data(str(out), "sft")
    originals = load_training_data(str(out), "sft", where=parse_where(["is_counterfactual=false"]))
    assert everything.rows == len(kept) and originals.rows == sum(not r["is_counterfactual"] for r in kept) < len(kept)
    assert originals.columns == ("prompt", "completion") and originals.where == {"is_counterfactual": "false"}
    assert originals.rows_before == len(kept)
    with raises_one_line(match="has no column 'nope'"):
        load_training_data(str(out), "sft", where={"nope": "1"})
    with raises_one_line(match="no rows where view=sideways"):
        load_training_data(str(out), "sft", where={"view": "sideways"})
    with raises_one_line(match="not COLUMN=VALUE"):
        parse_where(["is_counterfactual"])


# -- issue 25 (8-11) and issue 20 (5): what a real small teacher wrote ---------------------------------
SYLLOGISM = ("Consider these statements:\n1. Some reptiles are not butterflies\n2. No butterflies are children\n\n"
             "Does it logically follow that:\nNo children are butterflies?\n(Answer Yes or No)")  # gym:syllogism, gold yes
SYLLOGISM_P = Problem(id="s", source="gym:syllogism", question=SYLLOGISM, gold="yes", answer_type="yesno")
REVIEW_P = Problem(id="r", source="imdb", question="A dull film with a weak plot.", gold="negative", answer_type="label",
                   choices=("negative", "positive"))  # fmt: skip
NO, POSITIVE = edits.Label("no", "no"), edits.Label("positive", "positive")


@pytest.mark.parametrize(("problem", "edited", "target", "leak", "changed"), [
    (SYLLOGISM_P, SYLLOGISM.replace("(Answer Yes or No)", "(Answer No)"), NO, True, True),  # all 3 edits on syllogism
    (SYLLOGISM_P, SYLLOGISM.replace("\n(Answer Yes or No)", ""), NO, False, True),  # the answer format dropped
    (SYLLOGISM_P, SYLLOGISM + "\nThe answer is no", NO, True, False),
    (SYLLOGISM_P, SYLLOGISM.replace("2. No butterflies", "2. All butterflies"), NO, False, False),  # content: fine
    (SYLLOGISM_P, SYLLOGISM.replace("Some reptiles", "No reptiles"), NO, False, False),  # "No" as a word: fine
    (SYLLOGISM_P, SYLLOGISM.replace("(Answer Yes or No)", "(answer yes or no)"), NO, False, False),  # case only
    (REVIEW_P, "A fine film with a strong plot.", POSITIVE, False, False),
    (REVIEW_P, "A positive film with a strong plot.", POSITIVE, True, False),  # the label word written in
    (REVIEW_P, "A fine film with a strong plot. Sentiment: positive", POSITIVE, True, False),
])
def test_an_edit_may_change_the_content_never_the_task_or_its_answer(problem, edited, target, leak, changed):
    assert edits.label_leak(problem, edited, target) is leak
    assert edits.instructions_changed(problem, edited) is changed


# Edits Qwen2.5-Coder-1.5B wrote for cpu-counterfactual (2026-12-07; conclusion changed, then the answer
# written into or after the format line): the format line is restored, the answer dropped.
EDITED = SYLLOGISM.replace("No children are butterflies?", "Some children are butterflies?")
RESTORED = EDITED


@pytest.mark.parametrize(("edited", "restored", "was"), [
    (EDITED.replace("(Answer Yes or No)", "(Answer No)"), RESTORED, True),
    (EDITED.replace("(Answer Yes or No)", "(Answer: No)"), RESTORED, True),
    (EDITED.replace("(Answer Yes or No)", "(Answer No or Yes)"), RESTORED, True),
    (EDITED.replace("(Answer Yes or No)", "No"), RESTORED, True),
    (EDITED.replace("(Answer Yes or No)", "(No)"), RESTORED, True),
    (EDITED + "\nYes", RESTORED, True),
    (EDITED + "\nNo.", RESTORED, True),
    (EDITED, EDITED, False),
    (EDITED.replace("\n(Answer Yes or No)", ""), EDITED.replace("\n(Answer Yes or No)", ""), False),  # dropped: left
    (EDITED.replace("(Answer Yes or No)", "Counterfactual answer: No."),
     EDITED.replace("(Answer Yes or No)", "Counterfactual answer: No."), False),  # another sentence: a leak, left
])
def test_an_answer_written_into_the_format_line_is_taken_out_and_the_line_restored(edited, restored, was):
    assert edits.restore_format(SYLLOGISM_P, edited) == (restored, was)
    assert edits.restore_format(REVIEW_P, "A fine film.\npositive") == ("A fine film.\npositive", False)  # no format line


def test_a_restored_edit_passes_and_a_bare_answer_line_no_longer_slips_through():
    from toolkit.methods.counterfactual import check_edit

    def check(reply):
        return check_edit(SYLLOGISM_P, Completion(text=f"Counterfactual: {reply}", finish_reason="stop"), 0.3, NO)[0]

    assert check(EDITED.replace("(Answer Yes or No)", "(Answer No)")) is None
    assert check(EDITED + "\nNo") is None  # before: kept with "No" as the input's last line
    assert check(SYLLOGISM + "\nNo") == "identical"  # only the answer added: no edit at all
    assert check(EDITED.replace("\n(Answer Yes or No)", "")) == "instructions"
    assert check(EDITED.replace("(Answer Yes or No)", "Counterfactual answer: No.")) == "label_leak"


def _syllogism_teacher(edit: str, judge_votes: list[str], support: str):
    """Replies shaped like Qwen2.5-Coder-0.5B's on gym:syllogism (issue 25, item 9)."""

    def answer(request, j):
        text = user_text(request)
        if "Write a counterfactual" in text:
            return f"Counterfactual: {edit}"
        if "The correct answer is" in text:
            if "not" in text.split("The correct answer is")[1].split("\n")[1]:  # a refute view
                label = re.search(r'"The answer is (\w+)\."', text)[1]
                return f"Statement 2 rules the other answer out, so it is not that one.\nThe answer is {label}."
            return support if "(Answer Yes or No)" not in text or "All butterflies" in text else \
                "No butterflies are children, so no children are butterflies.\nThe answer is yes."
        return judge_votes[j]  # the blind judge

    return FakeTeacher(answer)


def _one(tmp_path, problem_question=SYLLOGISM, answer="Yes"):
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"question": problem_question, "answer": answer}) + "\n")
    return path


WRONG_PAIR_VOTES = ["It does not follow.\nThe answer is no.", "Let me look at the statements again.",
                    "Hence not.\nThe answer is no."]  # votes no, (none), no
ARGUES_YES = ("Statement 2 says no butterflies are children. Yes, it logically follows that no children are "
              "butterflies, since the relation is symmetric.\nThe answer is no.")


def test_the_wrong_labelled_pair_of_issue_25_is_rejected_and_counted(tmp_path):
    """Premises and conclusion unchanged, `(Answer Yes or No)` -> `(Answer No)`, votes no / (empty) / no, a support
    rationale that argues yes and ends `The answer is no.`: it was kept as a verified counterfactual. With the
    answer taken out of the format line the edit is the original again: dropped as identical."""
    teacher = _syllogism_teacher(SYLLOGISM.replace("(Answer Yes or No)", "(Answer No)"), WRONG_PAIR_VOTES, ARGUES_YES)
    manifest, kept, _ = run_cases(tmp_path, _one(tmp_path), teacher=teacher)
    c = manifest.counts
    assert (c["cf_generated"], c["cf_identical"], c["cf_minimal"], c["cf_verified"]) == (1, 1, 0, 0)
    assert not [r for r in kept if r["is_counterfactual"]] and all("(Answer No)" not in r["question"] for r in kept)
    assert manifest.stats["funnel"][1]["dropped"]["identical"] == 1


def test_a_rationale_that_argues_the_other_label_is_not_verified(tmp_path):
    edit = SYLLOGISM.replace("2. No butterflies", "2. All butterflies")  # a real content edit: yes -> no
    teacher = _syllogism_teacher(edit, WRONG_PAIR_VOTES, ARGUES_YES)
    manifest, kept, _ = run_cases(tmp_path, _one(tmp_path), teacher=teacher)
    c = manifest.counts
    assert (c["cf_minimal"], c["cf_judged"], c["contradicting"], c["cf_verified"]) == (1, 1, 1, 1)
    views = sorted(r["view"] for r in kept if r["is_counterfactual"])
    assert views == ["refute:yes"]  # the support rationale argued yes and ended no: not a row


@pytest.mark.parametrize(("text", "label", "other"), [
    ("Therefore, the answer is No. … The answer is Yes.", "yes", True),  # issue 25 item 3, verbatim
    (ARGUES_YES, "no", True),
    ("No butterflies are children, so no children are butterflies.\nThe answer is yes.", "yes", False),
    ("The answer is not yes: statement 2 rules it out.\nThe answer is no.", "no", False),  # a refute view
])
def test_a_rationale_stating_two_answers_argues_the_other_label(text, label, other):
    assert edits.argues_other(SYLLOGISM_P, text, label) is other


def test_an_unreadable_judge_reply_is_no_vote():
    from toolkit.methods.counterfactual import vote

    two = Completion("Therefore, the answer is No. … The answer is Yes.", "stop", 5, 9)  # issue 25 item 3, verbatim
    assert vote(SYLLOGISM_P, two) == "" and vote(SYLLOGISM_P, Completion("", "stop", 5, 0)) == ""
    assert vote(SYLLOGISM_P, Completion("It follows.\nThe answer is yes.", "stop", 5, 4)) == "yes"


def test_prompts_name_what_the_input_is():
    """Issue 25 item 10: the edit prompt called a movie review "the question"; the model rewrote reviews into
    questions (0 of 6 edits kept)."""
    from toolkit.methods.counterfactual import edit_messages, view_messages
    from toolkit.sources.labelled import nli_question

    (edit,) = edit_messages(REVIEW_P, POSITIVE, "counterfactual_edit")
    assert edit["content"].startswith("Here is a review and its correct answer.\n\nReview: A dull film with a weak plot.")
    assert "question" not in edit["content"].replace("(not a question about it)", "")
    assert "Write a counterfactual version of the review:" in edit["content"]
    (view,) = view_messages(REVIEW_P, POSITIVE, "counterfactual_view")
    assert "find what in the review rules it out" in view["content"] and "question" not in view["content"]
    nli = Problem(id="n", source="snli", question=nli_question("A man sleeps.", "A person rests."), gold="entailment",
                  answer_type="label", choices=("entailment", "neutral", "contradiction"))  # fmt: skip
    (edit,) = edit_messages(nli, edits.Label("neutral", "neutral"), "counterfactual_edit")
    assert edit["content"].startswith("Here is a premise-hypothesis pair and its correct answer.\n\nPremise: A man sleeps.")
    (edit,) = edit_messages(SYLLOGISM_P, NO, "counterfactual_edit")
    assert edit["content"].startswith("Here is a question and its correct answer.\n\nQuestion: Consider these")


def test_zero_counterfactuals_kept_is_said_and_warned(tmp_path, caplog):
    """Issue 25 item 11: the card's headline promised counterfactual examples when 0 were kept."""
    teacher = _syllogism_teacher(SYLLOGISM.replace("(Answer Yes or No)", "(Answer No)"), WRONG_PAIR_VOTES, ARGUES_YES)
    with caplog.at_level("WARNING"):
        manifest, _, _ = run_cases(tmp_path, _one(tmp_path), teacher=teacher)
    stats = manifest.stats
    assert stats["kept"] == {"originals": 1, "counterfactuals": 0, "rows_original": 2, "rows_counterfactual": 0}
    assert stats["what"] == "original examples only (no counterfactual passed every check) with multi-view reasoning"
    assert stats["warnings"][0].startswith("0 of 1 counterfactuals were kept: the rows are originals only")
    assert "0 of 1 counterfactuals were kept" in caplog.text


def test_the_card_data_says_whether_the_judge_is_the_teacher(tmp_path, yesno_file, caplog):
    """Issue 20 item 5: a judge that is the teacher confirms its own edits."""
    with caplog.at_level("WARNING"):
        same, _, _ = run_cases(tmp_path / "same", yesno_file)
    assert same.stats["judge"]["is_teacher"] is True and "the judge is the teacher" in caplog.text
    assert any(w.startswith("the judge is the teacher") for w in same.stats["warnings"])
    other, _, _ = run_cases(tmp_path / "other", yesno_file, judge=FakeTeacher(fake, model="judge-model"))
    assert other.stats["judge"]["is_teacher"] is False and other.stats["warnings"] == []
    assert other.stats["what"] == "8 original and 1 counterfactual (label-flipped) examples with multi-view reasoning"
