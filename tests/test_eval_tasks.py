"""The lm-eval tasks in eval_tasks/: generated files current, every task resolved by lm-eval's
TaskManager and run on a local fixture with the real default model, the answer filters on raw
generations, and plain `lm_eval --include_path eval_tasks` as a subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.evaluate import tasks as T

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "eval"


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cot_tasks() -> list[str]:
    """The generated CoT family (the shared doc shape and filters); tasks with their own folder and
    tests, such as ifeval/, are left out here."""
    generator = _module(ROOT / "eval_tasks" / "generate_tasks.py", "hubtool_generate_tasks")
    return sorted(p.stem for p in generator.outputs() if p.suffix == ".yaml" and p.parent.name != "groups")


@pytest.fixture(scope="module")
def manager():
    return T.task_manager()


@pytest.fixture(scope="module")
def catalog(manager):
    return T.catalog(manager)


@pytest.fixture(scope="module")
def hooks():
    return _module(ROOT / "eval_tasks" / "_common" / "utils.py", "hubtool_eval_hooks")


def test_generated_files_are_current():
    generator = _module(ROOT / "eval_tasks" / "generate_tasks.py", "hubtool_generate_tasks")
    stale = [str(p.relative_to(ROOT)) for p, text in generator.outputs().items() if not p.exists() or p.read_text() != text]
    assert not stale, f"re-run python eval_tasks/generate_tasks.py; stale: {stale}"


def test_task_manager_indexes_every_task_file(catalog, cot_tasks):
    on_disk = {p.stem for p in (ROOT / "eval_tasks").glob("*/hubtool_*.yaml") if p.parent.name != "groups"}
    assert set(catalog.tasks) == on_disk - {T.PREFIX + suite for suite in catalog.suites}  # a folder may hold its group
    assert len(cot_tasks) == 34  # 12 Hub benchmarks + 5 gym tasks, each with a _maj8 variant
    assert {t + "_maj8" for t in cot_tasks if not t.endswith("_maj8")} <= set(cot_tasks)


def test_suites_and_in_domain(catalog):
    assert catalog.suites["ood_from_gsm8k"] == ("hubtool_svamp", "hubtool_asdiv", "hubtool_multiarith")
    assert set(catalog.suites) >= {"math", "commonsense", "gym"}
    for suite, in_domain in catalog.in_domain.items():
        assert in_domain, f"suite {suite} names no in-domain task"
        if suite.startswith("ood_from_"):
            assert not set(in_domain) & set(catalog.suites[suite]), f"{suite} holds its own in-domain task"
    assert catalog.default_in_domain() == {"hubtool_gsm8k", "hubtool_commonsense_qa", "hubtool_gym_gsm_symbolic",
                                           "hubtool_ifeval"}  # fmt: skip


@pytest.fixture(scope="module")
def all_tasks(manager, cot_tasks):
    """Every CoT task, benchmarks reading the local fixtures instead of the Hub."""
    return T.load_tasks(manager, cot_tasks, FIXTURES)


def _docs(task) -> list[dict]:
    return list(task.eval_docs)


def test_every_task_loads_docs_in_the_shared_shape(all_tasks):
    from toolkit.answers import normalize_answer

    for task in all_tasks:
        docs = _docs(task)
        assert docs, task.config.task
        for doc in docs:
            choices = doc["choices"]
            assert normalize_answer(doc["gold"], doc["answer_type"], choices) == doc["gold"], (task.config.task, doc)
            if doc["answer_type"] == "option":
                assert len(choices) >= 2 and ord(doc["gold"]) - ord("A") < len(choices)
            prompt = task.doc_to_text(doc)
            assert doc["question"] in prompt and "The answer is" in prompt
            assert task.doc_to_target(doc).endswith(f"The answer is {doc['gold']}.")


def test_process_docs_edge_cases(all_tasks):
    by_name = {t.config.task: t for t in all_tasks}
    asdiv = _docs(by_name["hubtool_asdiv"])
    assert [d["gold"] for d in asdiv] == ["7", "12"]  # the "2:3" ratio is dropped, units are cut
    arc = _docs(by_name["hubtool_arc_easy"])
    assert [d["gold"] for d in arc] == ["B", "A"]  # numeric labels "1".."4" become letters
    aqua = _docs(by_name["hubtool_aqua_rat"])[0]
    assert aqua["choices"][:2] == ["4", "5"] and by_name["hubtool_aqua_rat"].doc_to_target(aqua).endswith(
        "= 6\nThe answer is C."
    )
    gsm = _docs(by_name["hubtool_gsm8k"])[0]
    assert "<<" not in gsm["rationale"] and gsm["gold"] == "7"
    assert _docs(by_name["hubtool_strategyqa"])[1]["gold"] == "no"


NUMBER = {"answer_type": "number", "choices": []}
OPTION = {"answer_type": "option", "choices": ["oven", "refrigerator", "garden"]}
YESNO = {"answer_type": "yesno", "choices": []}
MISS = "[invalid]"


@pytest.mark.parametrize(
    ("text", "doc", "strict", "flexible"),
    [
        ("3 + 4 = 7.\nThe answer is 7.", NUMBER, "7", "7"),  # strict hit
        ("3 + 4 makes 7 apples in all", NUMBER, MISS, "7"),  # flexible hit only
        ("I am not sure about this one.", NUMBER, MISS, MISS),  # miss
        ("", NUMBER, MISS, MISS),  # empty generation
        ("The answer is 5. Wait, 3 + 4 = 7. The answer is 7.", NUMBER, "7", "7"),  # several: the last
        ("The answer is 1,234.50 dollars.", NUMBER, "1234.5", "1234.5"),
        ("Milk goes in the fridge.\nThe answer is (B).", OPTION, "B", "B"),
        ("The answer is refrigerator.", OPTION, "B", "B"),  # option text, mapped to its letter
        ("It must be option (C)", OPTION, MISS, "C"),
        ("The answer is Yes.", YESNO, "yes", "yes"),
        ("Fish cannot climb, so no", YESNO, MISS, "no"),
    ],
)
def test_answer_filters_on_raw_generations(hooks, text, doc, strict, flexible):
    assert hooks.extract(text, doc, "strict") == strict
    assert hooks.extract(text, doc, "flexible") == flexible


@pytest.mark.parametrize(
    ("votes", "winner"),
    [(["7", MISS, "8", "8"], "8"), ([MISS, MISS], MISS), (["3", "4"], "3"), ([MISS, "4", "3", "3", "4"], "4")],
)
def test_majority_vote(hooks, votes, winner):
    assert hooks.vote(votes) == winner


def test_process_results_uses_the_toolkit_checker(hooks):
    doc = {"gold": "7", **NUMBER}
    assert hooks.process_results(doc, ["7.0"]) == {"exact_match": 1.0}
    assert hooks.process_results(doc, ["8"]) == {"exact_match": 0.0}
    assert hooks.process_results(doc, [MISS]) == {"exact_match": 0.0}


def test_configured_filters_through_lm_eval(all_tasks):
    """The filter pipelines as the YAML wires them, on lm-eval Instances (base and maj variant)."""
    from lm_eval.api.instance import Instance

    by_name = {t.config.task: t for t in all_tasks}
    doc = _docs(by_name["hubtool_commonsense_qa"])[0]  # gold B (refrigerator)
    cases = {
        "hubtool_commonsense_qa": (["In a refrigerator (B) for sure"], {"strict-match": MISS, "flexible-extract": "B"}),
        "hubtool_commonsense_qa_maj8": (
            ["The answer is A.", "The answer is B.", "(B)", "The answer is B.", "no idea"],
            {"strict-match": "B", "flexible-extract": "B"},
        ),
    }
    for name, (resps, expected) in cases.items():
        inst = Instance(request_type="generate_until", doc=doc, arguments=("", {}), idx=0)
        inst.resps = resps
        for ensemble in by_name[name]._filters:
            ensemble.apply([inst])
        assert inst.filtered_resps == expected, name


@pytest.mark.slow
def test_every_task_runs_with_the_default_model(manager, cot_tasks, small_torch, lm_eval_cli):
    """All 34 tasks, one document each, through lm-eval with the real default model.

    Self-consistency variants run with 2 samples instead of 8 to fit the CPU budget; their vote
    filters and metrics are the same code either way.
    """
    from lm_eval import simple_evaluate

    from toolkit.evaluate.models import load_lm, model_spec

    tasks = T.load_tasks(manager, cot_tasks, FIXTURES)
    for task in tasks:
        if task.config.repeats > 1:
            task.set_config("repeats", 2)
    lm = load_lm(model_spec("smollm2-135m"), batch_size=8)
    results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=1, apply_chat_template=True,
                              gen_kwargs={"max_gen_toks": 4}, bootstrap_iters=0)
    for name in cot_tasks:
        metrics = results["results"][name]
        for f in ("strict-match", "flexible-extract"):
            assert 0.0 <= metrics[f"exact_match,{f}"] <= 1.0, (name, metrics)
        samples = results["samples"][name]  # one row per document and filter
        assert sorted(s["filter"] for s in samples) == ["flexible-extract", "strict-match"]
        for sample in samples:
            assert len(sample["resps"][0]) == (2 if name.endswith("_maj8") else 1)
            assert sample["doc"]["question"] in sample["arguments"][0][0]  # the rendered chat prompt


@pytest.fixture(scope="module")
def lm_eval_cli(tmp_path_factory, smol_path):
    """Plain `lm_eval run --include_path eval_tasks` in a subprocess, started once and early.

    Most of its time is lm-eval indexing its own ~10k task files on one core, so the model test
    requests this fixture too: the two then run side by side instead of one after the other.
    """
    out = tmp_path_factory.mktemp("lm_eval_cli")
    cmd = [sys.executable, "-m", "lm_eval", "run", "--include_path", str(ROOT / "eval_tasks"),
           "--tasks", "hubtool_gym_chain_sum", "--model", "hf", "--model_args", f"pretrained={smol_path}",
           "--device", "cpu", "--limit", "2", "--apply_chat_template", "--gen_kwargs", "max_gen_toks=8",
           "--output_path", str(out), "--log_samples"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_plain_lm_eval_cli_runs_a_gym_task(lm_eval_cli):
    proc, out = lm_eval_cli
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    metrics = json.loads(results_file.read_text())["results"]["hubtool_gym_chain_sum"]
    assert {"exact_match,strict-match", "exact_match,flexible-extract"} <= metrics.keys()
    (samples_file,) = out.rglob("samples_hubtool_gym_chain_sum_*.jsonl")
    rows = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert sorted((r["doc_id"], r["filter"]) for r in rows) == [
        (0, "flexible-extract"), (0, "strict-match"), (1, "flexible-extract"), (1, "strict-match")
    ]
