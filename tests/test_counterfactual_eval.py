"""Counterfactual distillation's eval tasks (eval_tasks/counterfactual/): resolved by lm-eval's
TaskManager, loaders on local files shaped like the Hub rows and the CAD tsv files, scoring and
contrast-set consistency through lm-eval itself (a scripted model), and the report's columns."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from tests.conftest import load_module
from toolkit.evaluate import report as R
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "counterfactual" / "eval"
TASKS = ["hubtool_cf_imdb", "hubtool_cf_sst2", "hubtool_cf_imdb_cad", "hubtool_cf_snli", "hubtool_cf_mnli",
         "hubtool_cf_snli_cad"]  # fmt: skip


@pytest.fixture(scope="module")
def loaded(manager):
    return {t.config.task: t for t in T.load_tasks(manager, TASKS, DATA)}


@pytest.fixture(scope="module")
def hooks():
    return load_module(ROOT / "eval_tasks" / "counterfactual" / "utils.py", "hubtool_cf_eval_hooks")


def test_tasks_and_suites_resolve(manager):
    from toolkit.sources.catalogue import labelled_benchmarks

    catalog = T.catalog(manager)
    assert set(TASKS) <= set(catalog.tasks)
    assert {f"hubtool_cf_{name}" for name in labelled_benchmarks()} <= set(TASKS)  # each one loads below
    assert catalog.suites["robust_sentiment"] == ("hubtool_cf_imdb", "hubtool_cf_sst2", "hubtool_cf_imdb_cad")
    assert catalog.suites["robust_nli"] == ("hubtool_cf_snli", "hubtool_cf_mnli", "hubtool_cf_snli_cad")
    assert catalog.in_domain["robust_sentiment"] == ("hubtool_cf_imdb",)
    assert catalog.in_domain["robust_nli"] == ("hubtool_cf_snli",)
    assert T.select_tasks(catalog, ["robust_sentiment"], []) == list(catalog.suites["robust_sentiment"])


def test_loaders_read_hub_shaped_rows_into_the_shared_doc_shape(loaded):
    from toolkit.answers import normalize_answer

    docs = {name: list(task.eval_docs) for name, task in loaded.items()}
    for name, rows in docs.items():
        for doc in rows:
            assert doc["answer_type"] == "label" and normalize_answer(doc["gold"], "label", doc["choices"]) == doc["gold"]
            prompt = loaded[name].doc_to_text(doc)
            assert doc["question"] in prompt and "Possible answers: " + ", ".join(doc["choices"]) in prompt
            assert loaded[name].doc_to_target(doc) == f"The answer is {doc['gold']}."
    assert [d["gold"] for d in docs["hubtool_cf_sst2"]] == ["positive", "negative"]  # the -1 row is dropped
    assert len(docs["hubtool_cf_snli"]) == 3 and docs["hubtool_cf_mnli"][1]["gold"] == "contradiction"
    assert {d["gold"] for d in docs["hubtool_cf_imdb"][:2]} == {"negative", "positive"}  # shuffled: --limit sees both
    assert docs["hubtool_cf_snli"][0]["question"] == "Premise: A dog runs across a snowy field.\nHypothesis: An animal is outside."
    cad = docs["hubtool_cf_imdb_cad"]
    assert [(d["group"], d["group_size"], d["gold"]) for d in cad] == [
        ("cad-imdb-13", 2, "negative"), ("cad-imdb-13", 2, "positive"),
        ("cad-imdb-46", 2, "negative"), ("cad-imdb-46", 2, "positive")]  # fmt: skip
    snli = docs["hubtool_cf_snli_cad"]
    assert [d["group"] for d in snli] == ["cad-snli-0"] * 5 + ["cad-snli-1"] * 5
    assert [d["gold"] for d in snli[:5]] == ["entailment", "neutral", "contradiction", "neutral", "contradiction"]
    assert snli[3]["question"].startswith("Premise: A man is holding a guitar on stage.")


# -- one reading of the labelled benchmarks: the build's source and the eval task's hook -----------
def test_label_order_is_the_hubs_class_label_order():
    """Written out by hand from the Hub's features (ClassLabel names, in id order), not read from the code."""
    from toolkit.sources.catalogue import labelled_benchmarks, labelled_info

    assert sorted(labelled_benchmarks()) == ["imdb", "mnli", "snli", "sst2"]
    assert labelled_info("imdb").labels == ("negative", "positive")
    assert labelled_info("sst2").labels == ("negative", "positive")
    assert labelled_info("snli").labels == ("entailment", "neutral", "contradiction")
    assert labelled_info("mnli").labels == ("entailment", "neutral", "contradiction")


# benchmark -> the fixture's rows as (label id in the file, the label a reader must give it); -1: skipped
LABELLED_ROWS = {
    "imdb": [(0, "negative"), (0, "negative"), (1, "positive"), (1, "positive")],
    "sst2": [(1, "positive"), (0, "negative"), (-1, None)],
    "snli": [(0, "entailment"), (1, "neutral"), (2, "contradiction"), (-1, None)],
    "mnli": [(0, "entailment"), (2, "contradiction")],
}


@pytest.mark.parametrize("name", sorted(LABELLED_ROWS))
def test_a_row_gets_the_same_label_in_a_build_and_in_the_eval_task(name, loaded):
    """A local file shaped like the Hub dataset: the counterfactual builder's source (`hf:NAME` with
    --data-files) and the eval task (`hubtool eval --data-dir`) give each row the same label."""
    import json

    from toolkit.methods.counterfactual import CounterfactualConfig
    from toolkit.methods.counterfactual.labelled import load_problems
    from toolkit.sources.catalogue import labelled_info

    path = DATA / f"cf_{name}.jsonl"
    raw = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["label"] for r in raw] == [label_id for label_id, _ in LABELLED_ROWS[name]]
    expected = [label for _, label in LABELLED_ROWS[name] if label is not None]
    split = labelled_info(name).eval_split
    config = CounterfactualConfig(source=f"hf:{name}", split=split, data_files=str(path), out="x")
    built = load_problems(config).problems
    assert [p.gold for p in built] == expected and all(p.answer_type == "label" for p in built)
    docs = list(loaded[f"hubtool_cf_{name}"].eval_docs)  # imdb's are shuffled: compare by question
    assert sorted((d["question"], d["gold"], tuple(d["choices"])) for d in docs) == sorted(
        (p.question, p.gold, p.choices) for p in built)  # fmt: skip


def test_a_labelled_source_takes_its_own_mapping_and_label_order_only():
    from toolkit.sources.labelled import load_labelled

    path = str(DATA / "cf_imdb.jsonl")
    # the mapping written out before the catalogue knew imdb (README, experiments/): the same problems
    old = load_labelled("hf:stanfordnlp/imdb", labels=("negative", "positive"), split="test", data_files=path,
                        question_field="text", answer_field="label", answer_type="label")  # fmt: skip
    new = load_labelled("hf:imdb", split="test", data_files=path)
    assert old.problems == new.problems and new.info.hub_id == "stanfordnlp/imdb"
    with raises_one_line(match="pass --labels negative,positive") as err:
        load_labelled("hf:imdb", labels=("positive", "negative"), split="test", data_files=path)
    assert "\n" not in str(err.value)
    with raises_one_line(match="drop --question-field"):
        load_labelled("hf:imdb", split="test", data_files=path, question_field="title")
    with raises_one_line(match="no labelled split 'unsupervised'"):
        load_labelled("hf:imdb", split="unsupervised", data_files=path)


def test_cad_snli_refuses_rows_out_of_order(hooks):
    import datasets

    rows = [{"sentence1": f"p{i}", "sentence2": "h", "gold_label": "neutral"} for i in range(5)]
    with pytest.raises(ValueError, match="CAD-SNLI row order"):
        hooks.process_snli_cad(datasets.Dataset.from_list(rows))
    with pytest.raises(ValueError, match="is not originals"):
        hooks.process_snli_cad(datasets.Dataset.from_list(rows[:4]))


def test_consistency_counts_complete_groups_answered_right_throughout(hooks):
    doc = {"gold": "negative", "answer_type": "label", "choices": ["negative", "positive"], "group": "g", "group_size": 2}
    assert hooks.process_contrast(doc, ["negative"]) == {"exact_match": 1.0, "consistency": ("g", 2, True)}
    assert hooks.process_contrast(doc, ["positive"])["exact_match"] == 0.0
    assert hooks.process_contrast(doc, ["[invalid]"])["consistency"] == ("g", 2, False)
    items = [("a", 2, True), ("a", 2, True), ("b", 2, True), ("b", 2, False), ("c", 3, True)]  # c: cut by --limit
    assert hooks.consistency(items) == 0.5
    assert math.isnan(hooks.consistency([("c", 3, True)]))


class ScriptedLM:
    """A stand-in model for lm-eval: answers each document from a script (gold or not)."""

    def __init__(self, wrong: set[str]):
        from lm_eval.api.model import LM

        class _LM(LM):
            def generate_until(inner, requests, disable_tqdm=False):  # noqa: N805
                return [self.answer(r.doc) for r in requests]

            def loglikelihood(inner, requests, disable_tqdm=False):  # noqa: N805
                raise NotImplementedError

            def loglikelihood_rolling(inner, requests, disable_tqdm=False):  # noqa: N805
                raise NotImplementedError

        self.wrong = wrong
        self.lm = _LM()

    def answer(self, doc: dict) -> str:
        other = next(c for c in doc["choices"] if c != doc["gold"])
        return f"Thinking it over.\nThe answer is {other if doc['question'] in self.wrong else doc['gold']}."


def test_lm_eval_scores_right_wrong_and_consistency_hits_and_misses(manager):
    from lm_eval import simple_evaluate

    wrong = {"The dubbing was as good as I have seen.", "unflinchingly bleak and desperate"}  # one CAD pair's member, one sst2 doc
    tasks = T.load_tasks(manager, ["hubtool_cf_sst2", "hubtool_cf_imdb_cad"], DATA)
    results = simple_evaluate(model=ScriptedLM(wrong).lm, tasks=tasks, task_manager=manager, bootstrap_iters=0)
    sst2, cad = results["results"]["hubtool_cf_sst2"], results["results"]["hubtool_cf_imdb_cad"]
    for f in ("strict-match", "flexible-extract"):
        assert sst2[f"exact_match,{f}"] == 0.5  # a right and a wrong document
        assert cad[f"exact_match,{f}"] == 0.75 and cad[f"consistency,{f}"] == 0.5  # a consistency hit and a miss
    assert "consistency,strict-match" not in sst2

    report = R.Report(tasks=["hubtool_cf_sst2", "hubtool_cf_imdb_cad"], in_domain={"hubtool_cf_imdb"})
    report.add("student", results)
    table = R.markdown(report)
    assert "| model | cf_sst2 | cf_imdb_cad (contrast) | ID avg | OOD avg | consistency |" in table
    assert "| student | 50.0 | 75.0 | – | 50.0 | 50.0 |" in table  # the contrast set is in neither average


def test_report_without_contrast_tasks_is_unchanged():
    report = R.Report(tasks=["hubtool_gsm8k", "hubtool_svamp"], in_domain={"hubtool_gsm8k"})
    report.add("m", {"results": {"hubtool_gsm8k": {"exact_match,strict-match": 0.5},
                                 "hubtool_svamp": {"exact_match,strict-match": 0.25}}})  # fmt: skip
    table = R.markdown(report)
    assert "| model | gsm8k (ID) | svamp | ID avg | OOD avg |\n" in table and "consistency" not in table
    assert report.to_dict()["consistency"] == {}
