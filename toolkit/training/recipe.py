"""Recipes: TRL config YAML files, parsed by TRL's own parser, plus validated `--set key=value` overrides.

A recipe is plain `ScriptArguments` + `SFTConfig` / `DPOConfig` + `ModelConfig` keys, so
`trl sft --config RECIPE` runs it too. Which trainer a recipe wants comes from its folder: the method
whose recipes folder it is (`Method.recipes`, e.g. recipes/cot/, recipes/self-refine/ for preference)
declares it (`Method.trainer`); `trl sft --config` hands every key it does not know to `accelerate
launch`, which rejects it ("unrecognized arguments"), so a `trainer:` key would break TRL's own CLI.

hubtool's own settings (named `HUBTOOL_*`, declared by the trainer: `Trainer.settings`) are not TRL
keys either: a recipe holds them in TRL's `env:` mapping, which `trl sft --config` exports as
environment variables and otherwise ignores, and `--set HUBTOOL_NAME=VALUE` overrides them. hubtool
reads them from the recipe file and the overrides, never from the process environment.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.builders.method import TRAINERS, Trainer
from toolkit.errors import UserError, did_you_mean
from toolkit.methods import method_for_recipe_folder, methods
from toolkit.resources import resource_dir
from toolkit.yamlsafe import safe_load

log = logging.getLogger(__name__)

SETTING_PREFIX = "HUBTOOL_"


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe: TRL's three argument dataclasses, and what is needed to reproduce them."""

    path: Path
    trainer: Trainer  # its `config` ("sft" | "dpo") is the TRL config family it was parsed with
    script: Any  # trl.ScriptArguments
    training: Any  # trl.SFTConfig | trl.DPOConfig
    model: Any  # trl.ModelConfig
    text: str  # the file as read, for the provenance record
    sha256: str
    overrides: dict[str, str] = field(default_factory=dict)
    adjustments: dict[str, Any] = field(default_factory=dict)  # what hubtool changed, e.g. for a CPU
    settings: dict[str, Any] = field(default_factory=dict)  # the trainer's HUBTOOL_* settings, parsed; unset ones absent


def resolve_recipe(name: str | Path) -> Path:
    """A recipe file: a path, or the name of a shipped recipe, `cot/smollm2-135m-lora` (`.yaml`
    optional; a leading `recipes/` is accepted, so the README's paths work from any directory). A
    method's recipes folder outside recipes/ (`Method.recipes`) is found by its name the same way."""
    path = Path(name).expanduser()
    if path.is_file() or path.is_absolute():
        return path
    shipped = resource_dir("recipes")
    relative = Path(*path.parts[1:]) if path.parts[:1] == ("recipes",) and len(path.parts) > 1 else path
    method = method_for_recipe_folder(relative.parts[0]) if len(relative.parts) > 1 else None
    folder = method.recipes_dir.parent if method else shipped
    for candidate in (folder / relative, folder / f"{relative}.yaml"):
        if candidate.is_file():
            return candidate
    raise UserError(
        f"recipe {name} does not exist, as a file or as a shipped recipe; shipped: {', '.join(shipped_recipes())}"
    )


def shipped_recipes() -> list[str]:
    """The names of the recipes of every method's recipes folder (folder/variant), for `hubtool train
    NAME` (not recipes/accelerate/: those configure the launcher)."""
    return sorted({f"{m.recipe_folder}/{p.stem}" for m in methods() for p in m.recipes_dir.glob("*.yaml")})


def trainers() -> dict[str, Trainer]:
    """Every trainer `--trainer` may name: TRL's SFT and DPO, and each method's own."""
    return {**TRAINERS, **{m.trainer.name: m.trainer for m in methods()}}


def trainer_for(path: str | Path, trainer: str | None = None) -> Trainer:
    """The trainer named explicitly, else the trainer of the method whose recipes folder holds the
    recipe (judged by the folder's name, so a copy in a folder of the same name trains the same way)."""
    if trainer is not None:
        known = trainers()
        if trainer not in known:
            raise UserError(f"unknown trainer {trainer!r}; choose one of {', '.join(known)}")
        return known[trainer]
    folder = Path(path).resolve().parent.name
    method = method_for_recipe_folder(folder)
    if method is not None:
        return method.trainer
    known_folders = ", ".join(f"{m.recipe_folder}/ ({m.trainer.name})" for m in methods())
    raise UserError(
        f"cannot tell the trainer of {path} from its folder {folder!r}; put it in a method folder "
        f"({known_folders}) or pass --trainer {'|'.join(trainers())}"
    )


def read_recipe(path: str | Path) -> tuple[str, dict[str, Any]]:
    """The recipe's text and its YAML mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe {path} does not exist; shipped recipes: {', '.join(shipped_recipes())}")
    text = path.read_text()
    config = safe_load(text, f"recipe {path}")
    if not isinstance(config, dict):
        raise UserError(
            f"recipe {path} must be a YAML mapping of TRL config keys, got {type(config).__name__}"
        )
    return text, config


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`key=value` strings -> {key: value}; a later key wins."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UserError(f"--set {item!r} is not KEY=VALUE; write e.g. --set max_steps=10")
        out[key] = value
    return out


def load_recipe(
    path: str | Path,
    overrides: list[str] | tuple[str, ...] | dict[str, str] = (),
    *,
    output_dir: str | Path | None = None,
    trainer: str | None = None,
) -> Recipe:
    """Parse a recipe (a path or a shipped recipe's name) and its overrides with TRL's parser; every
    error is a UserError, before any model loads."""
    path = resolve_recipe(path)
    text, config = read_recipe(path)
    chosen = trainer_for(path, trainer)
    sets = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides)
    if output_dir is not None:
        sets["output_dir"] = str(output_dir)
    given = dict(sets)  # as recorded: hubtool settings included
    settings, sets, parser = _checked(path, config, sets, chosen)
    adjustments = _device_adjustments(config, sets)
    argv = ["--config", str(path), *_argv(parser, {**sets, **adjustments})]
    try:
        with warnings.catch_warnings():
            # transformers 5.x renames gradient_checkpointing to activation_checkpointing and warns; the
            # recipes keep the old name, which every supported transformers (>= 4.56) reads.
            warnings.filterwarnings("ignore", message="`gradient_checkpointing", category=FutureWarning)
            script, training, model = parser.parse_args_and_config(argv)
    except ValueError as e:  # raised by the dataclasses' __post_init__ checks and by TrlParser
        raise UserError(f"recipe {path}: {_one_line(e)}") from None
    _check_parsed(path, script, model)
    return Recipe(
        path=Path(path), trainer=chosen, script=script, training=training, model=model, text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(), overrides=given,
        adjustments=adjustments, settings=settings,
    )  # fmt: skip


def check_recipe(
    path: str | Path, overrides: list[str] | tuple[str, ...] = (), *, trainer: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The checks of `load_recipe` that do not depend on this machine (names, keys, value types, hubtool
    settings), for a command that runs elsewhere (`--print-launch`): TRL's dataclasses would also test
    this machine for bf16 and CUDA. Returns the recipe file and its keys with the overrides applied."""
    path = resolve_recipe(path)
    _text, config = read_recipe(path)
    _settings, sets, parser = _checked(path, config, parse_overrides(overrides), trainer_for(path, trainer))
    _check_values(parser, sets, "--set")  # load_recipe leaves these to TRL's parser, which runs there
    return path, {**config, **sets}


def _checked(path: Path, config: dict[str, Any], sets: dict[str, str], trainer: Trainer):
    """The checks of a recipe's keys, values and settings against its trainer's TRL parser: the
    hubtool settings read, the overrides left for TRL, the parser."""
    settings = read_settings(config.get("env"), sets, f"recipe {path}", trainer)
    sets = {k: v for k, v in sets.items() if not _is_setting(k)}
    parser = _parser(trainer.config)
    known = {a.dest for a in parser._actions} | {"env"}  # TrlParser consumes `env` itself
    _check_keys(config, known, f"recipe {path}", trainer.config)
    _check_keys(sets, known, "--set", trainer.config)
    _check_values(parser, config, f"recipe {path}")
    return settings, sets, parser


def _is_setting(key: str) -> bool:
    return key.upper().startswith(SETTING_PREFIX)


def read_settings(env: Any, sets: dict[str, str], where: str, trainer: Trainer) -> dict[str, Any]:
    """The trainer's settings: the recipe's `env:` entries named HUBTOOL_*, then `--set HUBTOOL_*=...`,
    each checked by its parser (`Trainer.settings`); a HUBTOOL_ name the trainer does not declare is an
    error, other env entries are TRL's."""
    known = dict(trainer.settings)
    if env is not None and not isinstance(env, dict):
        raise UserError(f"{where}: `env` must be a mapping of names to values, not {type(env).__name__}")
    raw = {str(k).upper(): (v, where) for k, v in (env or {}).items() if _is_setting(str(k))}
    raw |= {k.upper(): (v, "--set") for k, v in sets.items() if _is_setting(k)}
    settings: dict[str, Any] = {}
    for name, (value, origin) in raw.items():
        if name not in known:
            raise UserError(f"{origin}: unknown hubtool setting {name!r}{did_you_mean(name, list(known))}; known "
                            f"to the {trainer.name} trainer: {', '.join(known) or 'none'}")  # fmt: skip
        module, _, function = known[name].partition(":")
        parsed = getattr(importlib.import_module(module), function)(value)
        if parsed is not None:
            settings[name] = parsed
    return settings


def _parser(kind: Literal["sft", "dpo"]):
    """TRL's parser for the trainer, with argparse's exit-on-error turned into a UserError."""
    from trl import DPOConfig, ModelConfig, ScriptArguments, SFTConfig, TrlParser

    config = SFTConfig if kind == "sft" else DPOConfig
    parser = TrlParser((ScriptArguments, config, ModelConfig))

    def error(message: str):
        message = message.removeprefix("argument ").rstrip(".")
        raise UserError(f"bad recipe value for {message}; fix it in the recipe or the --set")

    parser.error = error  # argparse would print usage and exit; we want one line
    return parser


def _check_keys(keys, known: set[str], where: str, kind: Literal["sft", "dpo"]) -> None:
    for key in keys:
        if key in known:
            continue
        other = "dpo" if kind == "sft" else "sft"
        if key in {a.dest for a in _parser(other)._actions}:
            why = f"it is a {other.upper()} key, and this recipe trains with {kind.upper()}"
        else:
            why = f"it is not a TRL {kind.upper()} or model key"
        raise UserError(f"{where}: unknown key {key!r}{did_you_mean(key, sorted(known))}; {why}")


def _check_values(parser, config: dict[str, Any], where: str) -> None:
    """Type-check the recipe's scalar values: argparse converts only string defaults, and never checks choices."""
    actions = {a.dest: a for a in parser._actions}
    for key, value in config.items():
        action = actions.get(key)
        if action is None or value is None or isinstance(value, (dict, list)):
            continue
        text = str(value)
        try:
            converted = action.type(text) if callable(action.type) else text
        except (TypeError, ValueError):
            kind = getattr(action.type, "__name__", "value")
            raise UserError(f"{where}: {key}: {value!r} is not a valid {kind}; fix the value") from None
        if action.choices and converted not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise UserError(f"{where}: {key}: {value!r} is not one of {choices}")


def _argv(parser, values: dict[str, Any]) -> list[str]:
    """Overrides as command-line tokens, so argparse converts and type-checks them like `trl sft --key v`."""
    nargs = {a.dest: a.nargs for a in parser._actions}
    argv: list[str] = []
    for key, value in values.items():
        argv.append(f"--{key}")
        if nargs.get(key) in ("+", "*"):  # list-valued keys: --set lora_target_modules=q_proj,v_proj
            argv.extend(_list_items(key, value))
        else:
            argv.append(str(value))
    return argv


def _list_items(key: str, value: Any) -> list[str]:
    """A list value as `a,b` or a YAML list `[a, b]`; anything else half-bracketed is a UserError
    now, not a module name PEFT fails on after the model has loaded."""
    import yaml

    if isinstance(value, list | tuple):
        items = list(value)
    elif str(value).strip().startswith("["):
        try:
            items = yaml.safe_load(str(value))
        except yaml.YAMLError:
            items = None
        if not isinstance(items, list):
            raise UserError(f"--set {key}={value}: not a list; write {key}=a,b or {key}='[a, b]'")
    else:
        items = [v.strip() for v in str(value).split(",") if v.strip()]
    bad = [v for v in items if isinstance(v, dict | list) or any(c in str(v) for c in "[]{}'\"")]
    if bad or not items:
        raise UserError(f"--set {key}={value}: each item must be a plain name; write {key}=a,b or {key}='[a, b]'")
    return [str(v) for v in items]


def _device_adjustments(config: dict[str, Any], sets: dict[str, str]) -> dict[str, str]:
    """Without a CUDA GPU: no 4/8-bit loading, fp32 unless the recipe insists on bf16, and `use_cpu`
    unless there is an Apple GPU (transformers refuses bf16 on a CPU that `use_cpu` does not name)."""
    import torch

    if torch.cuda.is_available():
        return {}
    chosen = {**config, **sets}
    if any(str(chosen.get(k, "")).lower() == "true" for k in ("load_in_4bit", "load_in_8bit")):
        raise UserError(
            "load_in_4bit / load_in_8bit (QLoRA) need a CUDA GPU; on this machine use a LoRA recipe, "
            "or --set load_in_4bit=false"
        )
    adjustments: dict[str, str] = {}
    if not _mps_available(torch) and str(chosen.get("use_cpu", "")).lower() != "true":
        adjustments["use_cpu"] = "true"
    if "bf16" not in chosen:  # TRL defaults bf16 to True
        adjustments["bf16"] = "false"
    if adjustments:
        settings = ", ".join(f"{k}={v}" for k, v in adjustments.items())
        log.warning("no CUDA GPU found: %s", settings)
    return adjustments


def _mps_available(torch) -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def _check_parsed(path: str | Path, script, model) -> None:
    if not script.dataset_name:
        raise UserError(f"recipe {path} names no dataset_name; add one or pass --set dataset_name=ORG/NAME")
    if not model.model_name_or_path:
        raise UserError(
            f"recipe {path} names no model_name_or_path; add one or pass --set model_name_or_path=..."
        )


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
