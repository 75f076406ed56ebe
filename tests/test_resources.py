"""Shipped resources (card templates, recipes, eval tasks) found from any directory, and recipes
named short. The wheel install itself is tests/test_wheel.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.resources import RESOURCES, resource_dir
from toolkit.training.recipe import resolve_recipe, shipped_recipes

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", RESOURCES)
def test_a_checkout_reads_its_resources_in_place(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # not the working directory: the folder beside the package
    monkeypatch.delenv("HUBTOOL_EVAL_TASKS", raising=False)
    assert resource_dir(name) == ROOT / name


def test_eval_tasks_can_be_overridden_and_a_bad_override_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("HUBTOOL_EVAL_TASKS", str(tmp_path))
    assert resource_dir("eval_tasks") == tmp_path
    monkeypatch.setenv("HUBTOOL_EVAL_TASKS", str(tmp_path / "nope"))
    with raises_one_line(match=r"\$HUBTOOL_EVAL_TASKS is .*nope, which is not a folder"):
        resource_dir("eval_tasks")


def test_a_missing_resource_is_a_user_error(monkeypatch, tmp_path):
    import toolkit.resources as R

    monkeypatch.setattr(R, "_candidates", lambda name: [tmp_path / "_data" / name])
    with raises_one_line(match=r"hubtool's recipes/ is missing .*reinstall hubtool"):
        resource_dir("recipes")


@pytest.mark.parametrize(
    "name",
    ["cot/smollm2-135m-lora", "cot/smollm2-135m-lora.yaml", "recipes/cot/smollm2-135m-lora.yaml"],
)
def test_recipes_are_named_short_from_any_directory(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe(name) == ROOT / "recipes" / "cot" / "smollm2-135m-lora.yaml"


def test_a_recipe_file_on_disk_wins_over_a_shipped_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "cot" / "smollm2-135m-lora.yaml"
    mine.parent.mkdir()
    mine.write_text("max_steps: 1\n")
    assert resolve_recipe("cot/smollm2-135m-lora.yaml") == Path("cot/smollm2-135m-lora.yaml")


def test_an_unknown_recipe_lists_the_shipped_ones(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    shipped = shipped_recipes()
    assert "cot/smollm2-135m-lora-smoke" in shipped and "self-refine/dpo-lora" in shipped
    assert not any(name.startswith("accelerate/") for name in shipped)  # launcher configs, not recipes
    with raises_one_line(match=r"recipe cot/smolm2 does not exist.*shipped: .*cot/smollm2-135m-lora,"):
        resolve_recipe("cot/smolm2")


def test_cli_train_takes_a_short_name(monkeypatch, tmp_path):
    """Resolved before TRL parses anything: a bad override on a short name fails in one line."""
    from click.testing import CliRunner

    from toolkit.cli import main

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "cot/smollm2-135m-lora-smoke", "--set", "max_stepz=1"])
    # found, and read as an SFT recipe (its folder, cot/, names the trainer)
    assert result.exit_code == 1 and "unknown key 'max_stepz'" in result.output, result.output
    assert "not a TRL SFT or model key" in result.output
    result = CliRunner().invoke(main, ["train", "cot/nope"])
    assert result.exit_code == 1 and "shipped: " in result.output and "Traceback" not in result.output
