"""The mixed CoT/PoT loss: α from the recipe's `env:` mapping or `--set`, mode-balanced batches, the
loss as the formula says (on a tiny random model: fast), the recipes with TRL's own parser."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.methods import get_method
from toolkit.methods.mixed.training import MIXED_ALPHA, ModeBalancedSampler, mode_balanced_order, parse_alpha
from toolkit.training import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SMOKE = RECIPES / "mixed" / "smollm2-135m-lora-smoke.yaml"
MIXED_RECIPES = sorted((RECIPES / "mixed").glob("*.yaml"))


@pytest.mark.parametrize(("value", "alpha"), [(0.5, 0.5), ("0.3", 0.3), (1, 1.0), ("0", 0.0), ("none", None), ("", None)])
def test_parse_alpha(value, alpha):
    assert parse_alpha(value) == alpha


@pytest.mark.parametrize(("value", "message"), [("1.5", "out of range"), ("-0.1", "out of range"), ("half", "not a number")])
def test_bad_alpha_is_a_user_error(value, message):
    with raises_one_line(match=message):
        parse_alpha(value)


@pytest.mark.parametrize(("modes", "batch"), [(["cot", "pot"] * 10, 4), (["cot"] * 15 + ["pot"] * 5, 4),
                                               (["pot"] * 9 + ["cot"] * 3, 4), (["cot"] * 7 + ["pot"] * 7, 2)])  # fmt: skip
def test_every_batch_holds_the_modes_in_the_datas_proportion(modes, batch):
    order = mode_balanced_order(modes, seed=1)
    assert sorted(order) == list(range(len(modes)))  # every row once
    share = modes.count("pot") / len(modes)
    for start in range(0, len(order) - batch + 1, batch):
        pot = sum(modes[i] == "pot" for i in order[start : start + batch])
        assert abs(pot - share * batch) <= 1, (start, pot)
    assert order != mode_balanced_order(modes, seed=2)  # shuffled within a mode, by seed


def test_sampler_reshuffles_each_epoch_and_keeps_other_rows():
    sampler = ModeBalancedSampler(["cot", "pot", "cot", "pot", "other"], seed=0)
    first, second = list(sampler), list(sampler)
    assert len(sampler) == 5 and sorted(first) == sorted(second) == [0, 1, 2, 3, 4] and first[-1] == 4
    sampler.set_epoch(0)
    assert list(sampler) == first


@pytest.mark.parametrize("path", MIXED_RECIPES, ids=[p.name for p in MIXED_RECIPES])
def test_mixed_recipes_are_plain_trl_sft_configs_with_alpha_in_env(path):
    """`trl sft --config` reads the file (unknown keys fail) and only exports α; hubtool reads α."""
    import torch
    import yaml
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser

    cpu = [] if torch.cuda.is_available() else ["--use_cpu", "true"]
    parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
    script, training, model = parser.parse_args_and_config(["--config", str(path), *cpu], fail_with_unknown_args=True)
    assert script.dataset_name and not training.packing
    assert yaml.safe_load(path.read_text())["env"] == {MIXED_ALPHA: 0.5}


def test_load_recipe_reads_alpha_from_the_recipe_and_set(monkeypatch):
    monkeypatch.setenv(MIXED_ALPHA, "0.9")  # the environment is not a source of settings
    recipe = load_recipe(SMOKE, ["max_steps=1"])
    assert recipe.trainer.name == "mixed" and recipe.trainer.config == "sft" and recipe.settings == {MIXED_ALPHA: 0.5}
    assert load_recipe(SMOKE, [f"{MIXED_ALPHA}=0.25"]).settings == {MIXED_ALPHA: 0.25}
    plain = load_recipe(SMOKE, [f"{MIXED_ALPHA}=none"])
    assert plain.settings == {} and plain.overrides == {MIXED_ALPHA: "none"}
    cot = load_recipe(RECIPES / "cot" / "smollm2-135m-lora-smoke.yaml")
    assert cot.settings == {}


@pytest.mark.parametrize(("sets", "message"), [([f"{MIXED_ALPHA}=2"], "out of range"),
                                               (["HUBTOOL_MIXED_ALFA=0.5"], "unknown hubtool setting")])  # fmt: skip
def test_bad_settings_fail_before_any_model_loads(sets, message):
    with raises_one_line(match=message):
        load_recipe(SMOKE, sets)


def test_mixed_loss_needs_the_mode_column(tmp_path):
    from toolkit.training import train

    from .test_train import msg, write_dataset

    rows = [{"prompt": msg("user", f"What is {i} + 1?"), "completion": msg("assistant", f"The answer is {i + 1}.")}
            for i in range(4)]  # fmt: skip
    data = write_dataset(tmp_path / "plain", rows)
    with raises_one_line(match="no 'mode' column.*build-dataset mixed"):
        train(load_recipe(SMOKE, [f"dataset_name={data}"], output_dir=tmp_path / "out"))


# --- the trainer on a tiny random model ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, smol_path):
    """A 2-layer random Llama with the default model's tokenizer: trains in a blink."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("tiny")
    tokenizer = AutoTokenizer.from_pretrained(smol_path)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _mixed_rows(n: int = 8) -> list[dict]:
    from toolkit.methods.mixed import prompt_messages
    from toolkit.records import Problem

    rows = []
    for i in range(n):
        problem = Problem(id=f"p{i}", source="t", question=f"What is {i} + 2?", gold=str(i + 2), answer_type="number")
        mode = "cot" if i % 2 == 0 else "pot"
        text = f"{i} + 2 = {i + 2}.\nThe answer is {i + 2}." if mode == "cot" else f"```python\nans = {i} + 2\n```"
        rows.append({"prompt": list(prompt_messages(problem, mode)), "completion": [{"role": "assistant", "content": text}],
                     "mode": mode, "id": problem.id})  # fmt: skip
    return rows


def test_the_loss_is_alpha_weighted_per_mode_means(tmp_path, tiny_model, small_torch):
    import torch

    from toolkit.training.data import training_splits
    from toolkit.training.model import resolve_student
    from toolkit.training.run import build_trainer

    from .test_train import write_dataset

    data_dir = write_dataset(tmp_path / "mixed", _mixed_rows())
    recipe = load_recipe(SMOKE, [f"dataset_name={data_dir}", f"model_name_or_path={tiny_model}", "use_peft=false",
                                 f"{MIXED_ALPHA}=0.3"], output_dir=tmp_path / "out")  # fmt: skip
    data, _ = training_splits(str(data_dir), "sft", train_split="train", eval_split=None, seed=0,
                              extra=get_method("mixed").trainer.columns)
    trainer = build_trainer(recipe, data, resolve_student(str(tiny_model)))
    assert type(trainer).__name__ == "MixedSFTTrainer" and trainer.mode_counts == Counter(cot=4, pot=4)
    batch = next(iter(trainer.get_train_dataloader()))
    assert sorted(batch["mode_id"].tolist()) == [0, 0, 1, 1]  # a batch of 4: two of each mode
    model = trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch))
        expected = 0.0
        for mode_id, weight in ((0, 0.3), (1, 0.7)):
            rows = batch["mode_id"] == mode_id
            out = model(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows],
                        labels=batch["labels"][rows])  # fmt: skip
            expected += weight * out.loss
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)
    assert (batch["labels"][:, 0] == -100).all()  # the prompt carries no loss


def test_a_mixed_run_records_its_loss(tmp_path, tiny_model, small_torch):
    from toolkit.training import train

    from .test_train import write_dataset

    data_dir = write_dataset(tmp_path / "mixed", _mixed_rows())
    result = train(load_recipe(SMOKE, [f"dataset_name={data_dir}", f"model_name_or_path={tiny_model}", "max_steps=2"],
                               output_dir=tmp_path / "out"))  # fmt: skip
    record = json.loads((tmp_path / "out" / "hubtool_train.json").read_text())
    assert record["loss"]["alpha"] == 0.5 and record["loss"]["rows_per_mode"] == {"cot": 4, "pot": 4}
    assert record["recipe"]["settings"] == {MIXED_ALPHA: 0.5} and "mode" in record["dataset"]["columns"]
    history = result.record["training"]["log_history"]
    assert any("loss_cot" in h and "loss_pot" in h for h in history)
    assert "alpha * L_cot + (1 - alpha) * L_pot" in (tmp_path / "out" / "README.md").read_text()
