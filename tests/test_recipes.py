"""Every shipped recipe parses with TRL's own parser; overrides and bad recipes fail early, in one line."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from tests.assertions import assert_one_line, raises_one_line
from toolkit.errors import UserError
from toolkit.training import load_recipe, parse_overrides, trainer_for

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TRAINING_RECIPES = sorted(p for p in RECIPES.glob("*/*.yaml") if p.parent.name != "accelerate")
ACCELERATE = sorted((RECIPES / "accelerate").glob("*.yaml"))
SMOKE = RECIPES / "cot" / "smollm2-135m-lora-smoke.yaml"


def _ids(paths):
    return [str(p.relative_to(RECIPES)) for p in paths]


def _trl_parse(path: Path, trainer: str, *extra: str):
    """What `trl sft|dpo --config PATH` does, minus the launch: TRL's parser, unknown keys as errors."""
    from trl import DPOConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    config = SFTConfig if trainer == "sft" else DPOConfig
    parser = TrlParser((ScriptArguments, config, ModelConfig))
    return parser.parse_args_and_config(["--config", str(path), *extra], fail_with_unknown_args=True)


def _cpu_recipe(path: Path) -> bool:
    return "smollm2" in path.name or path.parent.name == "self-refine" and path.name.startswith("dpo-")


def _cpu_args(path: Path) -> list[str]:
    """GPU recipes ask for bf16, which transformers refuses without a GPU unless use_cpu is set. A CPU
    recipe gets nothing: its own `use_cpu` and `bf16` are what the tests check."""
    import torch

    return [] if torch.cuda.is_available() or _cpu_recipe(path) else ["--use_cpu", "true"]


def test_the_shipped_set_is_there():
    names = set(_ids(TRAINING_RECIPES))
    for method in ("cot", "self-refine"):
        assert (RECIPES / method / "README.md").is_file()
    assert {"cot/smollm2-135m-lora.yaml", "cot/smollm2-135m-lora-smoke.yaml", "cot/llama-8b-lora.yaml",
            "cot/llama-8b-qlora.yaml", "cot/llama-8b-full.yaml", "self-refine/dpo-lora.yaml",
            "self-refine/dpo-lora-smoke.yaml", "self-refine/llama-8b-lora.yaml", "self-refine/llama-8b-qlora.yaml",
            "self-refine/llama-8b-full.yaml"} <= names  # fmt: skip
    assert {p.name for p in ACCELERATE} >= {"ddp.yaml", "zero3.yaml"}


# What the papers say, once: Ranaldi & Freitas, EACL 2024 (SFT) and EMNLP 2024 (self-refine DPO).
PAPER = {
    "cot/ranaldi-eacl24.yaml": {
        "num_train_epochs": 4, "learning_rate": 2e-5, "weight_decay": 1e-4, "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03, "load_in_4bit": True, "use_peft": True, "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.1,
    },
    "self-refine/ranaldi-selfrefine24.yaml": {
        "learning_rate": 1e-6, "warmup_steps": 100, "max_steps": 1000, "effective_batch": 128,
        "load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False,
    },
}  # fmt: skip


def _value(key: str, script, training, model):
    if key == "effective_batch":
        return training.per_device_train_batch_size * training.gradient_accumulation_steps
    for args in (training, model, script):
        if hasattr(args, key):
            value = getattr(args, key)
            return getattr(value, "value", value)  # enums (lr_scheduler_type) by their value
    raise KeyError(key)


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=_ids(TRAINING_RECIPES))
def test_recipe_parses_with_trls_own_parser(path: Path):
    trainer = trainer_for(path).config
    script, training, model = _trl_parse(path, trainer, *_cpu_args(path))
    assert script.dataset_name and model.model_name_or_path and training.output_dir
    assert training.report_to in ([], "none", ["none"])  # no tracker is ever started by surprise
    if _cpu_recipe(path):
        # CPU recipes: fp32, no CUDA, no worker processes, small batches (parsed with no --use_cpu added)
        assert training.use_cpu and not training.bf16 and training.dataloader_num_workers == 0
        assert training.per_device_train_batch_size <= 8
        assert training.max_steps <= 3 if "smoke" in path.name else 100 <= training.max_steps <= 500
    if model.load_in_4bit:
        assert model.use_peft  # QLoRA trains an adapter on the frozen 4-bit base
    if training.load_best_model_at_end:
        assert training.save_strategy == training.eval_strategy != "no"  # the best checkpoint must be saved


@pytest.mark.parametrize("recipe", sorted(PAPER))
def test_paper_recipes_have_the_papers_values(recipe):
    path = RECIPES / recipe
    parsed = _trl_parse(path, trainer_for(path).config, *_cpu_args(path))
    assert {key: _value(key, *parsed) for key in PAPER[recipe]} == PAPER[recipe]


@pytest.mark.parametrize("recipe", sorted(PAPER))
def test_every_value_of_a_paper_recipe_says_where_it_comes_from(recipe):
    path = RECIPES / recipe
    for line in path.read_text().splitlines():
        key = line.split(":")[0]
        if line and not line.startswith(("#", " ")) and key not in ("dataset_train_split", "output_dir"):
            assert "(paper)" in line or "(ours" in line or "replace with" in line, line
    paper_keys = {line.split(":")[0] for line in path.read_text().splitlines() if "(paper)" in line}
    assert set(PAPER[recipe]) - {"effective_batch"} <= paper_keys


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=_ids(TRAINING_RECIPES))
def test_readme_describes_every_recipe(path: Path):
    assert path.name in (path.parent / "README.md").read_text()


@pytest.mark.parametrize("path", ACCELERATE, ids=_ids(ACCELERATE))
def test_accelerate_config_loads_with_accelerate(path: Path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(str(path))  # raises on keys accelerate does not know
    raw = yaml.safe_load(path.read_text())
    for key in (
        "compute_environment",
        "distributed_type",
        "num_processes",
        "num_machines",
        "mixed_precision",
    ):
        assert key in raw, key
    assert config.num_processes > 1 and config.mixed_precision == "bf16"
    if path.name == "zero3.yaml":
        assert config.distributed_type == "DEEPSPEED" and raw["deepspeed_config"]["zero_stage"] == 3
    if path.name == "fsdp2.yaml":
        assert config.distributed_type == "FSDP" and raw["fsdp_config"]["fsdp_version"] == 2
    assert path.name in (RECIPES / "README.md").read_text()


def test_trls_parser_rejects_an_unknown_key(tmp_path):
    bad = tmp_path / "cot" / "r.yaml"
    bad.parent.mkdir()
    bad.write_text(SMOKE.read_text() + "max_seq_length: 512\n")  # the key TRL removed
    with pytest.raises(ValueError, match="max_seq_length"):
        _trl_parse(bad, "sft")
    with raises_one_line(match=r"unknown key 'max_seq_length'"):
        load_recipe(bad)


@pytest.mark.parametrize("path", TRAINING_RECIPES, ids=_ids(TRAINING_RECIPES))
def test_load_recipe_adapts_to_this_machine(path: Path):
    import torch

    if yaml.safe_load(path.read_text()).get("load_in_4bit") and not torch.cuda.is_available():
        with raises_one_line(match="need a CUDA GPU"):
            load_recipe(path)
        return
    recipe = load_recipe(path, ["max_steps=7"], output_dir="elsewhere")
    assert recipe.trainer == trainer_for(path) and recipe.training.max_steps == 7
    assert recipe.training.output_dir == "elsewhere" and recipe.overrides == {
        "max_steps": "7",
        "output_dir": "elsewhere",
    }
    if not torch.cuda.is_available():  # a CPU recipe says use_cpu itself; a GPU one is adjusted, and says so
        assert recipe.training.use_cpu
        assert recipe.adjustments.get("use_cpu") == (None if _cpu_recipe(path) else "true")


def test_gradient_checkpointing_is_read_without_a_deprecation_warning():
    """The recipes say `gradient_checkpointing` (every supported transformers reads it); transformers 5
    warns that it is renamed, a line the user cannot act on without breaking older installs."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        on = load_recipe("cot/llama-8b-lora")
        off = load_recipe("cot/smollm2-135m-lora")
    assert on.training.gradient_checkpointing is True and off.training.gradient_checkpointing is False


def test_overrides_are_parsed_and_typed():
    recipe = load_recipe(SMOKE, ["learning_rate=1e-3", "lora_target_modules=q_proj, v_proj", "use_peft=false",
                                 "max-steps=2", "max_steps=5", "model_name_or_path=smollm2-135m"])  # fmt: skip
    assert recipe.training.learning_rate == 1e-3 and recipe.training.max_steps == 5
    assert recipe.model.lora_target_modules == ["q_proj", "v_proj"] and recipe.model.use_peft is False
    assert recipe.model.model_name_or_path == "smollm2-135m"
    assert parse_overrides(["a=b=c", "x="]) == {"a": "b=c", "x": ""}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("max_stepz=3", r"--set: unknown key 'max_stepz' \(did you mean 'max_steps'\?\)"),
        ("beta=0.2", "it is a DPO key, and this recipe trains with SFT"),
        ("max_steps=three", "bad recipe value for --max_steps/--max-steps: invalid int value: 'three'"),
        ("learning_rate=fast", "invalid float value: 'fast'"),
        ("lr_scheduler_type=cosin", "invalid choice: 'cosin'"),
        ("bf16=maybe", "Truthy value expected"),
        ("max_steps", r"--set 'max_steps' is not KEY=VALUE"),
        ("=3", "is not KEY=VALUE"),
        ("fp16=true bf16=true", "At most one of fp16 and bf16"),  # a check in TrainingArguments.__post_init__
    ],
)
def test_bad_overrides_are_one_line_user_errors(override, message):
    with raises_one_line(match=message) as e:
        load_recipe(SMOKE, override.split(" "))
    assert "\n" not in str(e.value)


def test_a_dpo_recipe_rejects_sft_keys():
    with pytest.raises(
        UserError, match="'completion_only_loss'.*it is a SFT key, and this recipe trains with DPO"
    ):
        load_recipe(RECIPES / "self-refine" / "dpo-lora-smoke.yaml", ["completion_only_loss=true"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just\n- a list\n", "must be a YAML mapping of TRL config keys, got list"),
        ("model_name_or_path: [unclosed\n", "is not valid YAML"),
        ("max_steps: 2.5\n", r"max_steps: 2.5 is not a valid int"),
        ("lr_scheduler_type: sometimes\n", "lr_scheduler_type: 'sometimes' is not one of"),
        ("max_steps: 3\n", "names no dataset_name"),
    ],
)
def test_bad_recipe_files(tmp_path, text, message):
    path = tmp_path / "cot" / "bad.yaml"
    path.parent.mkdir()
    path.write_text(text)
    with raises_one_line(match=message):
        load_recipe(path)


def test_missing_recipe_and_unknown_folder(tmp_path):
    with raises_one_line(match="does not exist"):
        load_recipe(tmp_path / "cot" / "nope.yaml")
    loose = tmp_path / "mine.yaml"
    loose.write_text(SMOKE.read_text())
    with raises_one_line(match=r"cannot tell the trainer .* pass --trainer sft\|dpo"):
        load_recipe(loose)
    assert load_recipe(loose, trainer="sft").trainer.config == "sft"
    with raises_one_line(match="unknown trainer 'ppo'"):
        load_recipe(loose, trainer="ppo")


def test_cli_reports_a_bad_override_in_one_line_before_any_model_loads(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from toolkit.cli import main

    models = tmp_path / "models"  # an alias would be converted here if anything loaded a model
    monkeypatch.setenv("HUBTOOL_MODEL_CACHE", str(models))
    result = CliRunner().invoke(main, ["train", str(SMOKE), "--set", "model_name_or_path=smollm2-135m",
                                       "--set", "per_device_train_batch_size=big"])  # fmt: skip
    assert_one_line(result, "invalid int value: 'big'")
    assert not models.exists()


def test_module_entry_point_and_fast_help():
    """`python -m toolkit.train` is what accelerate launches; `hubtool train --help` imports no torch."""
    code = "import sys; from toolkit.cli import main; main(['train', '--help'])"
    out = subprocess.run([sys.executable, "-c", code + "\n"], capture_output=True, text=True)
    assert out.returncode == 0 and "--merge" in out.stdout
    probe = "import sys, toolkit.cli, toolkit.train, toolkit.training; print('torch' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip()
        == "False"
    )
    out = subprocess.run([sys.executable, "-m", "toolkit.train", str(SMOKE), "--set", "nope=1"],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 1 and "unknown key 'nope'" in out.stderr and "Traceback" not in out.stderr
