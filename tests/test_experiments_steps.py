"""Experiment steps say what the CLI can: an eval step names the judge of the judged suites
(`hubtool eval --judge`), a train step trains on a subset of the rows (`hubtool train --where`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.experiments import load_experiment
from toolkit.experiments import runner as runner_mod

from .test_experiments import _write

JUDGE = "openai:gpt-4o-mini@https://api.openai.com/v1"


def _step(tmp_path: Path, spec: dict, step_id: str):
    experiment = load_experiment(_write(tmp_path, spec))
    return experiment, next(s for s in experiment.steps if s.id == step_id)


def test_an_eval_step_passes_its_judge_and_the_judges_token_budget_to_the_eval(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(runner_mod, "run_eval", lambda models, out, **kw: seen.update(kw))
    spec = {"name": "x", "steps": {"eval": {"eval": {"base": "smollm2-135m"}, "suites": ["idea_mcts"],
                                            "judge": JUDGE, "judge_max_new_tokens": 1024}}}  # fmt: skip
    experiment, step = _step(tmp_path, spec, "eval")
    runner_mod._eval(experiment, step, {}, tmp_path / "work")
    assert (seen["options"].judge, seen["options"].judge_max_new_tokens) == (JUDGE, 1024)


def test_an_eval_step_without_a_judge_keeps_the_evals_defaults(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(runner_mod, "run_eval", lambda models, out, **kw: seen.update(kw))
    spec = {"name": "x", "steps": {"eval": {"eval": {"base": "smollm2-135m"}, "tasks": ["gym_chain_sum"]}}}
    experiment, step = _step(tmp_path, spec, "eval")
    runner_mod._eval(experiment, step, {}, tmp_path / "work")
    assert (seen["options"].judge, seen["options"].judge_max_new_tokens) == (None, 256)


def test_a_train_step_trains_on_the_rows_its_where_selects_as_train_where_does(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(runner_mod, "train", lambda recipe, **kw: seen.update(kw))
    data = tmp_path / "data"
    data.mkdir()
    spec = {"name": "x", "steps": {"ablation": {"train": "counterfactual/smollm2-135m-lora-smoke", "dataset": str(data),
                                                "where": {"is_counterfactual": False, "label": "positive"}}}}  # fmt: skip
    experiment, step = _step(tmp_path, spec, "ablation")
    runner_mod._train(experiment, step, {}, tmp_path / "work")
    assert seen["where"] == {"is_counterfactual": "false", "label": "positive"}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"where": "is_counterfactual=false"}, r"step 'a': where: 'is_counterfactual=false' is not a mapping"),
        ({"where": {"is_counterfactual": [False, True]}}, r"where: 'is_counterfactual': \[False, True\] is not COLUMN"),
        ({"where": {"is_counterfactual": None}}, r"where: 'is_counterfactual': None is not COLUMN"),
    ],
)
def test_a_train_steps_where_is_checked_before_anything_runs(tmp_path, step, message):
    data = tmp_path / "data"
    data.mkdir()
    spec = {"name": "x", "steps": {"a": {"train": "counterfactual/smollm2-135m-lora-smoke", "dataset": str(data), **step}}}
    with raises_one_line(match=message):
        load_experiment(_write(tmp_path, spec))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"judge": "nosuch:gpt-4"}, r"step 'e': judge: .*nosuch"),
        ({"judge": 4}, r"step 'e': judge: 4 is not text"),
        ({"judge_max_new_tokens": 0}, r"step 'e': judge_max_new_tokens: 0 is not at least 1"),
        ({"judge_max_new_tokens": "many"}, r"judge_max_new_tokens: 'many' is not an integer"),
    ],
)
def test_an_eval_steps_judge_is_checked_before_anything_runs(tmp_path, step, message):
    spec = {"name": "x", "steps": {"e": {"eval": {"base": "smollm2-135m"}, "suites": ["idea_mcts"], **step}}}
    with raises_one_line(match=message):
        load_experiment(_write(tmp_path, spec))


def test_the_papers_files_name_the_judge_and_the_ablation_arm():
    root = Path(__file__).resolve().parents[1] / "experiments"
    mcts = load_experiment(root / "idea-mcts.yaml").step("eval").spec
    assert (mcts["judge"], mcts["judge_max_new_tokens"]) == ("openai:gpt-4@https://api.openai.com/v1", 1024)
    feng = load_experiment(root / "feng-counterfactual.yaml")
    assert feng.step("no-cf-student").spec == {"train": "counterfactual/gpu-360m-full", "dataset": "cf-data",
                                               "where": {"is_counterfactual": False}}  # fmt: skip
    assert feng.step("eval").spec["eval"] == {"base": "HuggingFaceTB/SmolLM2-360M-Instruct",
                                              "without-counterfactuals": "{no-cf-student}", "counterfactual": "{student}"}  # fmt: skip


def test_a_dry_run_says_which_rows_a_train_step_keeps(tmp_path):
    lines: list[str] = []
    runner_mod.run_experiment(Path(__file__).resolve().parents[1] / "experiments" / "feng-counterfactual.yaml",
                              workdir=tmp_path / "work", dry_run=True, echo=lines.append)  # fmt: skip
    assert "[no-cf-student] train: run  counterfactual/gpu-360m-full on cf-data where is_counterfactual=false" in lines


# --- the report of judged suites -----------------------------------------------------------------------
def _judged_eval(folder: Path) -> None:
    """What `hubtool eval` leaves for two models on gym_chain_sum (exact match) and the judged suites."""
    for label, right in (("base", [1, 0]), ("sft", [1, 1])):
        (folder / label).mkdir(parents=True)
        rows = [{"doc_id": d, "filter": f, "exact_match": float(r)} for d, r in enumerate(right)
                for f in ("strict-match", "flexible-extract")]  # fmt: skip
        (folder / label / "samples_hubtool_gym_chain_sum.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / label / "samples_hubtool_alpaca_eval.jsonl").write_text(json.dumps({"doc_id": 0, "resps": []}) + "\n")
    suite = [
        {"task": "hubtool_alpaca_eval", "model": "sft", "judge": "openai:gpt-4", "kind": "reference_win_rate", "docs": 3,
         "judgments": 6, "unparsed": 1, "score": 0.5, "detail": {"wins": 2, "ties": 1, "losses": 2}},
        {"task": "hubtool_mt_bench", "model": "sft", "judge": "openai:gpt-4", "kind": "rating", "docs": 2,
         "judgments": 4, "unparsed": 0, "score": 6.25, "detail": {"turn 1": 7.0, "turn 2": 5.5}},
    ]  # fmt: skip
    meta = {"tasks": ["hubtool_gym_chain_sum", "hubtool_alpaca_eval", "hubtool_mt_bench"],
            "in_domain": ["hubtool_gym_chain_sum", "hubtool_alpaca_eval"],
            "judged_tasks": ["hubtool_alpaca_eval", "hubtool_mt_bench"], "suite_scores": suite, "notes": []}  # fmt: skip
    (folder / "scores.json").write_text(json.dumps(meta))


def test_the_report_shows_the_judged_suites_scores_and_keeps_them_out_of_exact_match(tmp_path):
    from toolkit.experiments.report import write_experiment_report

    spec = {"name": "judged", "about": "judged suites", "steps": {"eval": {
        "eval": {"base": "smollm2-135m", "sft": "smollm2-135m"}, "tasks": ["gym_chain_sum"], "suites": ["idea_mcts"]}}}
    experiment = load_experiment(_write(tmp_path, spec))
    _judged_eval(tmp_path / "evals")
    report = write_experiment_report(experiment, {"eval": str(tmp_path / "evals")}, {}, tmp_path / "report").read_text()
    assert "| alpaca_eval | sft | openai:gpt-4 | 3 | 6 | 1 | 50.0 | wins 2, ties 1, losses 2 |" in report
    assert "| mt_bench | sft | openai:gpt-4 | 2 | 4 | 0 | 6.25 | turn 1 7.00, turn 2 5.50 |" in report
    assert "| model | gym_chain_sum (ID) | ID avg |" in report  # no empty alpaca_eval / mt_bench columns
    results = json.loads((tmp_path / "report" / "results.json").read_text())["eval"]
    assert results["tasks"] == ["hubtool_gym_chain_sum"] and results["judged"][1]["score"] == 6.25


# --- no path of the machine in what a run writes -------------------------------------------------------
def test_a_run_in_a_home_folder_writes_no_part_of_its_path_into_the_report(tmp_path):
    from toolkit.evaluate.report import Report, write
    from toolkit.experiments.report import write_experiment_report

    home = tmp_path / "home" / "alice"
    work, student, data = home / "proj" / "work", home / "students" / "sft-7b", home / "eval-data"
    spec = {"name": "home", "about": "paths", "steps": {"eval": {
        "eval": {"base": "smollm2-135m", "sft": str(student)}, "tasks": ["gym_chain_sum"], "data_dir": str(data)}}}
    experiment = load_experiment(_write(tmp_path, spec))
    _judged_eval(work / "evals" / "eval")
    write_experiment_report(experiment, {"eval": str(work / "evals" / "eval")}, {}, work / "report")
    report = (work / "report" / "report.md").read_text()
    results = (work / "report" / "results.json").read_text()
    assert str(home) not in report + results and "alice" not in report + results
    assert "- `sft`: `sft-7b` as it is" in report and "data_dir=eval-data" in report
    assert json.loads(results)["eval"]["provenance"]["sft"]["model"] == "sft-7b"

    eval_dir = work / "evals" / "direct"
    eval_dir.mkdir(parents=True)
    notes = [f"data: local copies from {data}", f"model sft is {student}"]
    write(Report(tasks=["hubtool_gym_chain_sum"], in_domain=set(), notes=notes), eval_dir)
    written = (eval_dir / "report.md").read_text() + (eval_dir / "scores.json").read_text()
    assert str(home) not in written and "data: local copies from eval-data" in written
    assert "model sft is sft-7b" in written

    from toolkit.evaluate.run import _write_results

    _write_results(eval_dir / "sft", "sft", {"config": {"model_args": f"pretrained={student},dtype=auto"}, "results": {}})
    assert json.loads((eval_dir / "sft" / "results.json").read_text())["config"]["model_args"] == "pretrained=sft-7b,dtype=auto"
