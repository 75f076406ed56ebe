"""One reading of each benchmark: what a builder trains on is exactly what the eval task scores.

For every Hub benchmark, the builder's problems (`load_source("hf:NAME", data_files=FILE)`) and the
documents lm-eval's TaskManager makes for `hubtool_NAME` from the same file (as `hubtool eval
--data-dir` feeds it) must agree on question text, options, gold and answer type, and the user turn
the eval task sends must be the CoT builder's prompt. For every gym eval task, the documents must be
the builder's problems at the catalogue's evaluation split and seed. The files in
tests/fixtures/sources/ are shaped like the Hub's rows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit.builders.reasoning import prompt_messages
from toolkit.methods.cot import CoTConfig
from toolkit.sources import benchmark_info, known_benchmarks, load_source
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "sources"
BENCHMARKS = (
    "gsm8k", "svamp", "asdiv", "multiarith", "aqua_rat", "commonsense_qa", "strategyqa", "openbookqa",
    "piqa", "social_i_qa", "arc_easy", "arc_challenge", "hendrycks_math", "mmlu",
)  # fmt: skip
GYM_TASKS = sorted(
    p.stem.removeprefix("hubtool_")
    for p in (ROOT / "eval_tasks" / "reasoning_gym").glob("hubtool_gym_*.yaml")
    if not p.stem.endswith(("_maj8", "_ranaldi"))  # variants: the same documents, another prompt or a vote
)


def _fixture(name: str) -> Path:
    """tests/fixtures/sources/<name>_<split>.json[l]: one labelled split's rows."""
    (path,) = [p for p in FIXTURES.iterdir() if p.stem.rpartition("_")[0] == name]
    return path


@pytest.fixture(scope="module")
def tasks(manager, tmp_path_factory) -> dict:
    """Every base task; a Hub benchmark reads its fixture file as `hubtool eval --data-dir` would."""
    data_dir = tmp_path_factory.mktemp("data")
    for name in BENCHMARKS:  # --data-dir wants <benchmark>.jsonl; lm-eval's json reader takes arrays too
        shutil.copy(_fixture(name), T.local_data_file(data_dir, f"hubtool_{name}"))
    names = [f"hubtool_{name}" for name in (*BENCHMARKS, *GYM_TASKS)]
    return dict(zip(names, T.load_tasks(manager, names, data_dir), strict=True))


def _config(manager, task: str) -> dict:
    """The task's YAML as lm-eval reads it (includes resolved), before --data-dir swaps the data."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(manager.task_index[task].yaml_path, resolve_func=False)


def _build_prompt(problem) -> tuple[dict[str, str], ...]:
    """The messages `hubtool build-dataset cot` sends for a problem, with its default settings."""
    config = CoTConfig(source="gym:chain_sum")  # the source is required; it does not touch the prompt
    assert config.fewshot is None
    return prompt_messages(problem, config.template, (), config.system)


def _assert_scored_as_built(task, problems) -> None:
    docs = list(task.eval_docs)
    assert len(docs) == len(problems), "the task skips other rows than a build"
    for problem, doc in zip(problems, docs, strict=True):
        built = (problem.question, list(problem.choices), problem.gold, problem.answer_type)
        scored = (doc["question"], list(doc["choices"]), doc["gold"], doc["answer_type"])
        assert scored == built
        user_turn = {"role": "user", "content": task.doc_to_text(doc)}
        assert _build_prompt(problem) == (user_turn,)


def test_every_benchmark_and_gym_task_is_covered():
    assert sorted(known_benchmarks()) == sorted(BENCHMARKS)
    assert len(GYM_TASKS) >= 5 and "gym_syllogism" in GYM_TASKS


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_benchmark_is_scored_on_what_a_builder_builds(name, manager, tasks):
    bench, config = benchmark_info(name), _config(manager, f"hubtool_{name}")
    split = config["test_split"]
    problems = load_source(f"hf:{name}", split=split, data_files=str(_fixture(name))).problems
    _assert_scored_as_built(tasks[f"hubtool_{name}"], problems)
    # and off the fixtures, the same Hub data: the catalogue's repo and config
    assert (config["dataset_path"], config.get("dataset_name")) == (bench.hub_id, bench.config)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_eval_and_fewshot_splits_come_from_the_catalogue(name, manager):
    bench, config = benchmark_info(name), _config(manager, f"hubtool_{name}")
    assert config["test_split"] == bench.eval_split
    assert config.get("fewshot_split") == bench.fewshot_split
    assert "dataset_kwargs" not in config  # no revision or other loading trick beside the catalogue's


@pytest.mark.parametrize("task_name", GYM_TASKS)
def test_a_gym_task_is_scored_on_what_a_builder_builds(task_name, manager, tasks):
    from toolkit.sources import GYM_EVAL_SEED, GYM_EVAL_SIZE, GYM_EVAL_SPLIT

    gym = task_name.removeprefix("gym_")
    kwargs = _config(manager, f"hubtool_{task_name}")["dataset_kwargs"]
    assert kwargs == {"gym_task": gym, "gym_split": GYM_EVAL_SPLIT, "gym_seed": GYM_EVAL_SEED,
                      "gym_size": GYM_EVAL_SIZE}  # fmt: skip
    assert GYM_EVAL_SPLIT != "train"  # a build on the default split never trains on the eval problems
    problems = load_source(f"gym:{gym}", split=GYM_EVAL_SPLIT, seed=GYM_EVAL_SEED, limit=GYM_EVAL_SIZE).problems
    _assert_scored_as_built(tasks[f"hubtool_{task_name}"], problems)


@pytest.mark.parametrize("task_name", GYM_TASKS)
def test_a_prompt_variant_scores_the_same_documents(task_name, manager):
    base, variant = _config(manager, f"hubtool_{task_name}"), _config(manager, f"hubtool_{task_name}_ranaldi")
    assert variant["dataset_kwargs"] == base["dataset_kwargs"] and variant["test_split"] == base["test_split"]
    assert (base["metadata"]["prompt"], variant["metadata"]["prompt"]) == ("cot", "ranaldi-cot")


@pytest.mark.parametrize("task_name", GYM_TASKS)
def test_a_gym_task_has_one_answer_type(task_name, tasks):
    """Typed once: a build of the task on any split has the answer types its eval task scores with."""
    scored = {d["answer_type"] for d in tasks[f"hubtool_{task_name}"].eval_docs}
    built = load_source(f"gym:{task_name.removeprefix('gym_')}", limit=20).info.answer_type
    assert scored == {built}


def test_syllogism_is_a_yes_no_question_on_both_sides(tasks):
    docs = list(tasks["hubtool_gym_syllogism"].eval_docs)
    assert {d["answer_type"] for d in docs} == {"yesno"} and {d["gold"] for d in docs} == {"yes", "no"}
    assert load_source("gym:syllogism", limit=20).info.answer_type == "yesno"


@pytest.mark.parametrize("name", ["gsm8k", "aqua_rat"])
def test_worked_solutions_are_the_fewshot_targets(name, tasks):
    task = tasks[f"hubtool_{name}"]
    problems = load_source(f"hf:{name}", split="train", data_files=str(_fixture(name))).problems
    for problem, doc in zip(problems, task.eval_docs, strict=True):
        reference = problem.meta["reference_rationale"]
        assert reference and doc["rationale"] == reference and "<<" not in reference
        target = task.doc_to_target(doc)  # the house answer line in place of the benchmark's own
        assert target.startswith(reference.splitlines()[0]) and target.endswith(f"The answer is {problem.gold}.")
