"""The per-paper experiment files (experiments/<paper>.yaml, GPU-scale, not run here): a dry run plans
every step, and every step resolves: each build's config with its preset, each recipe with its
overrides through TRL's parser, each eval's suites, tasks and in-domain set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from toolkit.experiments import load_experiment, run_experiment
from toolkit.experiments.spec import substitute

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ["ranaldi-eacl24", "ranaldi-selfrefine24", "li-mixed", "feng-counterfactual", "idea-mcts"]


def _resolve_build(step, outputs: dict[str, str], tmp_path: Path) -> None:
    from toolkit.builders.config import resolve_config
    from toolkit.methods import get_method

    method = get_method(step.spec["build"])
    flags = dict(substitute(step.spec.get("with") or {}, outputs)) | {"out": str(tmp_path / step.id)}
    assert set(flags) <= {f.name for f in dataclasses.fields(method.config)}, step.id
    config, preset, _ = resolve_config(method.config, flags=flags, preset=step.spec.get("preset"), presets=method.presets)
    assert isinstance(config, method.config) and preset == step.spec.get("preset"), step.id


def _resolve_train(step, outputs: dict[str, str], tmp_path: Path) -> None:
    from toolkit.experiments.runner import recipe_path
    from toolkit.training import load_recipe

    sets = {k: str(v) for k, v in substitute(step.spec.get("set") or {}, outputs).items()}
    sets["dataset_name"] = outputs.get(step.spec["dataset"], step.spec["dataset"])
    recipe = load_recipe(recipe_path(step.spec["train"]), sets, output_dir=tmp_path / step.id)
    assert recipe is not None, step.id


def _resolve_eval(step, manager) -> None:
    from toolkit.evaluate.models import eval_backend
    from toolkit.sources import eval_tasks as T

    catalog = T.catalog(manager)
    names = T.select_tasks(catalog, list(step.spec.get("suites", [])), list(step.spec.get("tasks", [])))
    in_domain = T.resolve_in_domain(catalog, step.spec.get("in_domain"), list(step.spec.get("suites", [])))
    assert names and in_domain <= set(names) and eval_backend(step.spec.get("backend", "transformers")), step.id


@pytest.mark.parametrize("paper", PAPERS)
def test_a_papers_experiment_dry_runs_and_every_step_resolves(paper, tmp_path, manager, monkeypatch):
    from toolkit.training import recipe

    # GPU recipes parsed as TRL parses them (QLoRA allowed; bf16 accepted on a CPU with use_cpu, as test_recipes)
    monkeypatch.setattr(recipe, "_device_adjustments", lambda config, sets: {"use_cpu": "true"})
    path = ROOT / "experiments" / f"{paper}.yaml"
    lines: list[str] = []
    plan = run_experiment(path, workdir=tmp_path / "work", dry_run=True, echo=lines.append)
    experiment = load_experiment(path)
    assert plan.actions == {s.id: "run" for s in experiment.steps} and plan.report is None
    assert len(lines) == len(experiment.steps)
    kinds = {s.kind for s in experiment.steps}
    assert kinds == {"build", "push", "train", "eval"}, paper
    for step in experiment.steps:
        if step.kind == "build":
            _resolve_build(step, plan.outputs, tmp_path)
        elif step.kind == "train":
            _resolve_train(step, plan.outputs, tmp_path)
        elif step.kind == "eval":
            _resolve_eval(step, manager)
            assert all(isinstance(m, str) and m for m in substitute(step.spec["eval"], plan.outputs).values())


@pytest.mark.parametrize("paper", ["li-mixed", "feng-counterfactual", "idea-mcts"])
def test_a_papers_file_says_it_is_gpu_scale_and_names_its_headline_numbers(paper):
    header = (ROOT / "experiments" / f"{paper}.yaml").read_text().split("\nname:")[0]
    assert "GPU-SCALE: not run here" in header and "Headline numbers it aims at" in header


def test_li_mixed_has_the_papers_three_arms_and_modes():
    experiment = load_experiment(ROOT / "experiments" / "li-mixed.yaml")
    builds = {s.id: s.spec for s in experiment.steps if s.kind == "build"}
    assert builds["mixed"]["preset"] == "li-emnlp24"
    assert (builds["cot-only"]["with"]["pot_samples"], builds["pot-only"]["with"]["cot_samples"]) == (0, 0)
    assert experiment.step("eval").spec["eval"] == {
        "base": "meta-llama/Llama-2-7b-chat-hf", "cot-only": "{cot-student}/merged",
        "pot-only": "{pot-student}/merged", "mixed": "{mixed-student}/merged"}  # fmt: skip
    assert experiment.eval["suites"] == ["mixed_math"]  # GSM8K, SVAMP, ASDiv x CoT, PoT, voted
