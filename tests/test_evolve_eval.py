"""Evaluating IDEA-MCTS students: IFEval (eval_tasks/ifeval) resolved by lm-eval's TaskManager and scored
by lm-eval's own checker on local fixtures, offline; the report's tables; the pairwise judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from tests.conftest import load_module
from toolkit.evaluate import report as R
from toolkit.evaluate.judge import answers_by_doc, judge_models, parse_verdict
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "evolve"


@pytest.fixture(scope="module")
def ifeval(manager):
    [task] = T.load_tasks(manager, ["hubtool_ifeval"], FIXTURES)
    return task


@pytest.fixture(scope="module")
def hooks():
    return load_module(ROOT / "eval_tasks" / "ifeval" / "utils.py", "hubtool_ifeval_hooks")


def test_the_task_and_its_suite_resolve(manager):
    catalog = T.catalog(manager)
    assert "hubtool_ifeval" in catalog.tasks
    assert catalog.suites["verifiable_instructions"] == ("hubtool_ifeval",)
    assert catalog.in_domain["verifiable_instructions"] == ("hubtool_ifeval",)
    assert T.select_tasks(catalog, [], ["ifeval"]) == ["hubtool_ifeval"]


def test_local_docs_in_ifevals_shape(ifeval):
    docs = list(ifeval.eval_docs)
    assert [d["key"] for d in docs] == [9001, 9002, 9003, 9004, 9005]
    assert ifeval.doc_to_text(docs[0]) == docs[0]["prompt"]
    assert docs[3]["kwargs"][1]["end_phrase"] == "Any other questions?"
    assert ifeval.config.generation_kwargs["do_sample"] is False


@pytest.mark.parametrize(
    ("key", "reply", "strict", "loose", "per_instruction"),
    [
        (9001, "Your cat is safe with me. Come by any time.", True, True, [True]),
        (9001, "Hello, your cat is here.", False, False, [False]),
        (9002, "summer is my favourite season because the days are long and warm, the evenings are "
               "light until late, and there is always time to swim in the lake, read under a tree, eat fresh "
               "fruit from the market and walk home slowly with friends while the sun goes down.", True, True,
         [True, True]),  # fmt: skip
        (9002, "Summer is warm.", False, False, [False, False]),
        (9003, "* one\n* two\n* three", True, True, [True]),
        (9003, "* one\n* two", False, False, [False]),
        (9004, "Air scatters blue light most. So the sky looks blue. Any other questions?", True, True, [True, True]),
        (9004, "One. Two. Three. Four. Five. Any other questions?", False, False, [False, True]),
        (9005, "RIDE FAST with BIKE Town", True, True, [True]),
        (9005, "Ride with Bike Town", False, False, [False]),
        (9001, "**Your cat is safe** with me", True, True, [True]),
        (9004, "Sure!\nBlue light scatters most.\nAny other questions?", True, True, [True, True]),
        (9003, "", False, False, [False]),
    ],
)
def test_lm_evals_checker_scores_the_fixtures(ifeval, key, reply, strict, loose, per_instruction):
    doc = next(d for d in ifeval.eval_docs if d["key"] == key)
    scored = ifeval.process_results(doc, [reply])
    assert scored["prompt_level_strict_acc"] is strict and scored["prompt_level_loose_acc"] is loose
    assert scored["inst_level_strict_acc"] == per_instruction


def test_the_hooks_are_lm_evals_and_sentences_count_without_punkt_tab(hooks):
    from lm_eval.tasks.ifeval import utils as upstream

    doc = {"key": 1, "prompt": "p", "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert hooks.process_results(doc, ["no commas"]) == upstream.process_results(doc, ["no commas"])
    assert hooks.agg_inst_level_acc([[True, False], [True]]) == pytest.approx(2 / 3)
    assert hooks.count_sentences("The sky is blue. It scatters light! Any questions?") == 3
    if not hooks.PUNKT_MODEL:  # untrained Punkt knows no abbreviations (the README says so)
        assert hooks.count_sentences("Dr. Smith came. He sat.") == 3


def test_the_report_reads_ifevals_metrics_into_the_two_tables():
    rep = R.Report(tasks=["hubtool_ifeval", "hubtool_gsm8k"], in_domain={"hubtool_ifeval"})
    rep.add("student", {"results": {
        "hubtool_ifeval": {"prompt_level_strict_acc,none": 0.4, "prompt_level_loose_acc,none": 0.6,
                           "inst_level_strict_acc,none": 0.5},
        "hubtool_gsm8k": {"exact_match,strict-match": 0.1, "exact_match,flexible-extract": 0.2}},
        "n-samples": {"hubtool_ifeval": {"effective": 5}}})  # fmt: skip
    assert rep.scores["student"]["hubtool_ifeval"] == {"strict-match": 0.4, "flexible-extract": 0.6}
    assert rep.scores["student"]["hubtool_gsm8k"] == {"strict-match": 0.1, "flexible-extract": 0.2}
    text = R.markdown(rep)
    assert "| student | 40.0 | 10.0 | 40.0 | 10.0 |" in text and "IFEval: prompt-level strict accuracy" in text
    assert "Judged win rate" not in text


# --- the pairwise judge ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "verdict"), [("A is clearer.\n[[A]]", "A"), ("[[B]]", "B"), ("tie [[C]]", "C"),
                                               ("[[A]] ... on reflection [[ B ]]", "B"), ("A is better", None), ("", None)])
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) == verdict


def _samples(answers: dict[int, str]) -> list[dict]:
    """lm-eval's logged samples: one row per document and filter."""
    rows = []
    for doc_id, answer in answers.items():
        for f in ("strict-match", "flexible-extract"):
            rows.append({"doc_id": doc_id, "doc": {"prompt": f"Instruction {doc_id}"}, "filter": f,
                         "arguments": [["<chat>"]], "resps": [[answer]], "filtered_resps": [answer]})  # fmt: skip
    return rows


def test_answers_by_doc_takes_each_document_once():
    assert answers_by_doc(_samples({0: "x", 1: "y"})) == {0: ("Instruction 0", "x"), 1: ("Instruction 1", "y")}
    assert answers_by_doc([{"doc_id": 3, "doc": {}, "arguments": [["raw prompt"]], "resps": [[]]}]) == {3: ("raw prompt", "")}


def test_judge_compares_each_model_with_the_first_in_both_orders(tmp_path):
    script = tmp_path / "judge.jsonl"
    script.write_text("\n".join(json.dumps(x) for x in [
        {"match": r"\[Answer A\]\nGOOD", "replies": ["A follows it. [[A]]"]},
        {"match": r"\[Answer B\]\nGOOD", "replies": ["B follows it. [[B]]"]},
        {"match": r"Instruction 2", "replies": ["I cannot decide."]},
        {"match": ".", "replies": ["Same. [[C]]"]}]) + "\n")  # fmt: skip
    samples = {
        "base": {"hubtool_ifeval": _samples({0: "meh", 1: "GOOD one", 2: "meh", 3: "meh"})},
        "student": {"hubtool_ifeval": _samples({0: "GOOD", 1: "meh", 2: "meh", 3: "meh"})},
        "other": {"hubtool_ifeval": _samples({0: "meh", 1: "meh"})},
    }
    judged, records = judge_models(f"fake:{script}", samples, ["hubtool_ifeval"], cache_path=str(tmp_path / "c.sqlite"))
    by_model = {j.model: j for j in judged}
    s = by_model["student"]
    # doc 0: student wins both orders; doc 1: loses both; doc 2: no verdict (2 unparsed ties); doc 3: 2 ties
    assert (s.docs, s.wins, s.losses, s.ties, s.unparsed) == (4, 2, 2, 4, 2) and s.win_rate == 0.5
    assert s.reference == "base" and s.judge.startswith("fake:")
    o = by_model["other"]
    assert (o.docs, o.wins, o.losses, o.ties) == (2, 0, 2, 2) and o.win_rate == pytest.approx(0.25)
    assert len(records) == 12 and {r["model_is"] for r in records} == {"A", "B"}
    rep = R.Report(tasks=["hubtool_ifeval"], in_domain=set(), judged=[j.to_dict() for j in judged])
    assert "| ifeval | student | base | fake:" in R.markdown(rep) and "| 4 | 2 | 4 | 2 | 2 | 50.0 |" in R.markdown(rep)


def test_eval_refuses_a_judge_without_two_models_or_with_a_bad_spec(tmp_path):
    from toolkit.evaluate import EvalOptions, run_eval

    with raises_one_line(match="at least two --model"):
        run_eval(["smollm2-135m"], tmp_path, tasks=["ifeval"], options=EvalOptions(judge="fake:right"))
    with raises_one_line(match="backend"):
        run_eval(["a", "b"], tmp_path, tasks=["ifeval"], options=EvalOptions(judge="nope:model"))
