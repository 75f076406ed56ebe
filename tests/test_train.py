"""Training by dataset name: input checks (fast), then SFT -> merge -> DPO on the real default model (slow)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.errors import UserError
from toolkit.training import load_recipe, train

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SFT_SMOKE = RECIPES / "cot" / "smollm2-135m-lora-smoke.yaml"
DPO_SMOKE = RECIPES / "self-refine" / "dpo-lora-smoke.yaml"
DATA_FILE = "data/train-00000-of-00001.parquet"


def write_dataset(folder: Path, rows: list[dict]) -> Path:
    """A local dataset folder, as `datasets.load_dataset(folder)` and the name resolver read it."""
    import datasets

    (folder / "data").mkdir(parents=True)
    datasets.Dataset.from_list(rows).to_parquet(str(folder / DATA_FILE))
    return folder


def msg(role: str, content: str) -> list[dict]:
    return [{"role": role, "content": content}]


def preference_rows(n: int = 4) -> list[dict]:
    rows = []
    for i in range(n):
        rows.append({
            "prompt": msg("user", f"What is {i} + {i + 2}?"),
            "chosen": msg("assistant", f"{i} + {i + 2} = {2 * i + 2}. The answer is {2 * i + 2}."),
            "rejected": msg("assistant", f"The answer is {2 * i + 5}."),
            "id": f"p{i}", "gold": str(2 * i + 2),
        })  # fmt: skip
    return rows


@pytest.fixture
def no_models(tmp_path, monkeypatch) -> Path:
    """A model cache that stays empty unless something loads (converts) the alias."""
    models = tmp_path / "models"
    monkeypatch.setenv("HUBTOOL_MODEL_CACHE", str(models))
    return models


# --- bad input fails before a model loads ---------------------------------------------------------


def test_sft_recipe_on_preference_data_names_the_expected_columns(tmp_path, no_models):
    data = write_dataset(tmp_path / "prefs", preference_rows())
    recipe = load_recipe(SFT_SMOKE, [f"dataset_name={data}", "model_name_or_path=smollm2-135m"])
    with raises_one_line(match=r"has columns prompt, chosen, rejected, id, gold, but a SFT recipe expects "
                                        r"prompt \+ completion .* or messages; it looks like DPO data, use a DPO"):  # fmt: skip
        train(recipe)
    assert not no_models.exists()


def test_dpo_recipe_on_sft_data(tmp_path, no_models):
    rows = [{"prompt": msg("user", "1+1?"), "completion": msg("assistant", "The answer is 2.")}]
    data = write_dataset(tmp_path / "sft", rows)
    recipe = load_recipe(DPO_SMOKE, [f"dataset_name={data}", "model_name_or_path=smollm2-135m"])
    with pytest.raises(
        UserError, match=r"a DPO recipe expects prompt \+ chosen \+ rejected .*use an SFT recipe"
    ):
        train(recipe)
    assert not no_models.exists()


def test_an_eval_split_is_held_out_of_train_when_the_dataset_has_none(tmp_path):
    from toolkit.training.data import training_splits

    prefs = write_dataset(tmp_path / "prefs", preference_rows(40))
    train, held = training_splits(str(prefs), "dpo", train_split="train", eval_split="test", seed=42)
    assert (train.rows, held.rows) == (38, 2)  # 5%
    assert not {r["prompt"][0]["content"] for r in held.dataset} & {r["prompt"][0]["content"] for r in train.dataset}
    again, held_again = training_splits(str(prefs), "dpo", train_split="train", eval_split="test", seed=42)
    assert held_again.dataset.to_list() == held.dataset.to_list()  # seeded
    assert training_splits(str(prefs), "dpo", train_split="train", eval_split=None, seed=42)[1] is None


def test_unknown_dataset_name_is_the_resolvers_error(no_models):
    recipe = load_recipe(
        SFT_SMOKE, ["dataset_name=nobody/no-such-dataset", "model_name_or_path=smollm2-135m"]
    )
    with raises_one_line(match=r"'nobody/no-such-dataset' is not in the local registry"):
        train(recipe)
    result = CliRunner().invoke(
        main, ["train", str(SFT_SMOKE), "--set", "dataset_name=nobody/no-such-dataset"]
    )
    assert result.exit_code == 1 and "no-such-dataset" in result.output and "Traceback" not in result.output
    assert not no_models.exists()


def test_empty_dataset_and_wrong_message_shape(tmp_path, no_models):
    import datasets

    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    features = datasets.Features({"prompt": datasets.Value("string"), "completion": datasets.Value("string")})
    datasets.Dataset.from_dict({"prompt": [], "completion": []}, features=features).to_parquet(
        str(empty / DATA_FILE)
    )
    with raises_one_line(match="has no rows in split 'train'"):
        train(load_recipe(SFT_SMOKE, [f"dataset_name={empty}"]))
    odd = write_dataset(tmp_path / "odd", [{"prompt": [{"text": "hi"}], "completion": [{"text": "yo"}]}])
    with pytest.raises(
        UserError, match=r"column 'prompt' holds list, expected a list of \{role, content\} messages"
    ):
        train(load_recipe(SFT_SMOKE, [f"dataset_name={odd}"]))
    assert not no_models.exists()


# --- end to end on the real default model ---------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while this module's models run: the 2 CPU cores are shared with other jobs, and
    OpenMP threads spinning for a busy core made every step 4-5x slower (measured: 47 vs 10 s/step)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cot_name(tmp_path_factory) -> str:
    """A CoT dataset built by the CoT builder with the embedded teacher, pushed to the local registry."""
    from tests.fakes import build
    from toolkit.api import push

    run = tmp_path_factory.mktemp("cot-run")
    build("cot", run, source="gym:basic_arithmetic", limit=4, samples=1, keep="all", max_new_tokens=48,
          teacher="transformers:smollm2-135m", overwrite=True)  # fmt: skip
    push(run, "tests/cot-arith")
    return "tests/cot-arith"


@pytest.fixture(scope="module")
def sft_out(cot_name, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "cot-student"
    args = ["train", str(SFT_SMOKE), "--set", f"dataset_name={cot_name}", "--set", "max_steps=2",
            "--output-dir", str(out), "--merge"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (
        "sft: 2 steps in" in result.output
        and f"on {cot_name} (4 rows) -> {out} (merged: {out}/merged)" in result.output
    )
    return out


def _generate(model, tokenizer) -> tuple[str, object]:
    """Greedy continuation of a chat prompt, and the prompt's logits."""
    import torch

    inputs = tokenizer.apply_chat_template(msg("user", "What is 12 + 7?"), add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)  # fmt: skip
    with torch.no_grad():
        logits = model(**inputs).logits
        ids = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    return tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True), logits


def record_merged_is_none(out: Path) -> bool:
    return json.loads((out / "hubtool_train.json").read_text())["outputs"]["merged"] is None


def _record(out: Path) -> dict:
    record = json.loads((out / "hubtool_train.json").read_text())
    losses = record["training"]["losses"]
    assert losses and all(math.isfinite(x) for x in losses) and record["training"]["losses_finite"]
    assert math.isfinite(record["training"]["train_loss"]) and record["training"]["seconds_per_step"] > 0
    for lib in ("torch", "transformers", "trl", "peft", "datasets"):
        assert record["versions"][lib]
    return record


@pytest.mark.slow
def test_sft_by_name_writes_adapter_record_card_and_merged_weights(sft_out, cot_name):
    from huggingface_hub import ModelCard

    from toolkit.hub import resolve_dataset

    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md",
                 "recipe.yaml", "merged/config.json", "merged/model.safetensors", "merged/tokenizer.json"):  # fmt: skip
        assert (sft_out / name).is_file(), name
    record = _record(sft_out)
    assert record["trainer"] == "sft" and record["training"]["global_steps"] == 2
    ds = record["dataset"]
    assert (
        ds["name"] == cot_name and ds["local"] and ds["fingerprint"] == resolve_dataset(cot_name).fingerprint
    )
    assert ds["columns"] == ["prompt", "completion"] and {"id", "gold", "correct"} <= set(
        ds["dropped_columns"]
    )
    assert record["recipe"]["sha256"] == hashlib.sha256(SFT_SMOKE.read_bytes()).hexdigest()
    assert record["recipe"]["overrides"] == {
        "dataset_name": cot_name,
        "max_steps": "2",
        "output_dir": str(sft_out),
    }
    assert (sft_out / "recipe.yaml").read_text() == SFT_SMOKE.read_text()
    assert record["model"]["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record["peft"] == {
        "method": "LoRA",
        "r": 8,
        "alpha": 16,
        "dropout": 0.1,
        "target_modules": "all-linear",
    }
    # the loss is on the completion only: TRL masked every prompt token
    tokens = record["training"]["loss_tokens"]
    assert tokens["completion_only"] and 0 < tokens["trained_fraction"] < 1
    card = ModelCard.load(sft_out / "README.md")
    assert card.data.datasets == [cot_name] and card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "peft" and "sft" in card.data.tags and "local registry" in card.text


@pytest.mark.slow
def test_sft_adapter_and_merged_weights_load_and_generate_the_same(sft_out):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from toolkit.teachers.models import resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(sft_out / "merged")
    merged_text, merged_logits = _generate(
        AutoModelForCausalLM.from_pretrained(sft_out / "merged"), tokenizer
    )
    # a pushed adapter must load anywhere: it names the Hub base, not this machine's converted copy
    base = json.loads((sft_out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base == "HuggingFaceTB/SmolLM2-135M-Instruct"
    base_path = resolve_model_path(base)  # offline: the embedded copy stands in
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), str(sft_out))
    adapter_text, adapter_logits = _generate(adapted, tokenizer)
    _, base_logits = _generate(AutoModelForCausalLM.from_pretrained(base_path), tokenizer)
    assert merged_text.strip() and merged_text == adapter_text
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-3)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-4)  # training changed the model


@pytest.mark.slow
def test_dpo_on_top_of_the_lora_student(sft_out, tmp_path):
    """The documented flow: DPO recipe with model_name_or_path = the SFT output (adapter only, not merged yet)."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    student = tmp_path / "cot-student"
    shutil.copytree(sft_out, student, ignore=shutil.ignore_patterns("merged"))
    prefs = write_dataset(tmp_path / "prefs", preference_rows())
    out = tmp_path / "dpo-student"
    (out / "merged").mkdir(parents=True)  # left by an earlier run: stale once the adapter is retrained
    (out / "merged" / "config.json").write_text("{}")
    args = ["train", str(DPO_SMOKE), "--set", f"model_name_or_path={student}", "--set", f"dataset_name={prefs}",
            "--set", "max_steps=2", "--output-dir", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert (student / "merged" / "config.json").is_file()  # the LoRA student was merged first
    assert not (out / "merged").exists() and record_merged_is_none(out)
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "recipe.yaml"):
        assert (out / name).is_file(), name
    record = _record(out)
    assert record["trainer"] == "dpo" and record["training"]["global_steps"] == 2
    assert record["dataset"]["columns"] == ["prompt", "chosen", "rejected"]
    assert record["dataset"]["dropped_columns"] == ["id", "gold"]
    assert record["model"]["path"] == str(student / "merged")
    assert (
        record["model"]["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )  # lineage through the student
    dpo_logs = [h for h in record["training"]["log_history"] if "rewards/chosen" in h]
    assert dpo_logs and all(math.isfinite(h["rewards/margins"]) for h in dpo_logs)
    adapter_base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(adapter_base) == student / "merged"
    text, _ = _generate(AutoPeftModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out))
    assert text.strip()
