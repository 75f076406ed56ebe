"""What a training run leaves beside its weights: a provenance record and a model card.

OUT/hubtool_train.json  dataset (name, revision, fingerprint, the prompt its rows hold), recipe (path,
                        sha256, overrides), model, LoRA shape, losses, timings, library versions
OUT/recipe.yaml         the recipe as it was read
OUT/README.md           model card: base model and dataset in the metadata, a link to the data

The record is this machine's own and keeps its paths; the card is for the world and names none
(toolkit.public_paths): the recipe by its shipped name (or its file name and hash), models by Hub
id or as "a local model", the output folder by its name.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.hub.names import is_repo_id
from toolkit.manifest import Manifest
from toolkit.methods import find_method
from toolkit.paths import MERGED
from toolkit.prompts import PromptRef
from toolkit.public_paths import LOCAL_MODEL, public_model, public_path, scrub
from toolkit.rundir import atomic_write, read_manifest

PROVENANCE = "hubtool_train.json"
RECIPE_COPY = "recipe.yaml"
TRAINER_NAMES = {
    "sft": "TRL SFTTrainer (supervised fine-tuning)",
    "dpo": "TRL DPOTrainer (direct preference optimization)",
}


def dataset_record(data) -> dict[str, Any]:
    r = data.resolved
    return {
        "name": r.name, "local": r.local, "path": str(r.path), "revision": r.revision,
        "fingerprint": r.fingerprint, "split": data.split, "rows": data.rows,
        "columns": list(data.columns), "dropped_columns": list(data.dropped),
        "where": data.where, "rows_before_where": data.rows_before if data.where else None,
        "prompt": prompt_record(r),
    }  # fmt: skip


def prompt_record(resolved) -> dict[str, Any] | None:
    """The prompt a dataset's rows were built with (see `toolkit.prompts.PromptRef`), from its manifest:
    the config entry its method names (`Method.student_prompt`; none where the rows are no template's
    rendering, as evolve's instructions). None when the manifest cannot be read or names none, and
    for preference rows that came with their own prompt."""
    manifest = _manifest(resolved)
    method = find_method(manifest.method) if manifest else None
    key = method.student_prompt if method else None
    if manifest is None or key is None or manifest.stats.get("prompts_from") == "dataset":
        return None
    name = manifest.config.get(key)
    text = manifest.prompt_templates.get(name) if isinstance(name, str) else None
    return PromptRef.of(name, text).to_dict() if text else None


def _manifest(resolved):
    """The dataset's manifest.json: beside the data, or in the Hub repo (a missing one is no error)."""
    try:
        if resolved.local:
            return read_manifest(resolved.path)
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(resolved.path, "manifest.json", repo_type="dataset", revision=resolved.revision)
        return Manifest.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), "manifest.json")
    except (UserError, OSError, ValueError):  # no manifest (a dataset hubtool did not build), offline, corrupt
        return None


def training_prompt(model: str | Path):
    """The prompt a hubtool-trained model was trained on (`toolkit.prompts.PromptRef`), read from its
    record (OUT/hubtool_train.json; a merged copy in OUT/merged reads its parent's); None otherwise."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    for where in (folder, folder.parent) if folder.name == MERGED else (folder,):
        path = where / PROVENANCE
        if path.is_file():
            try:
                found = (json.loads(path.read_text(encoding="utf-8")).get("dataset") or {}).get("prompt")
                return PromptRef.from_dict(found) if found else None
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return None
    return None


def peft_record(model_args) -> dict[str, Any] | None:
    if not model_args.use_peft:
        return None
    return {
        "method": "QLoRA" if (model_args.load_in_4bit or model_args.load_in_8bit) else "LoRA",
        "r": model_args.lora_r, "alpha": model_args.lora_alpha, "dropout": model_args.lora_dropout,
        "target_modules": model_args.lora_target_modules,
    }  # fmt: skip


def write_outputs(out: str | Path, record: dict[str, Any], recipe_text: str) -> None:
    """The provenance JSON, the recipe copy and the card, each written atomically."""
    out = Path(out)
    atomic_write(out / PROVENANCE, json.dumps(record, indent=2, ensure_ascii=False, default=str).encode())
    atomic_write(out / RECIPE_COPY, recipe_text.encode())
    atomic_write(out / "README.md", model_card(record).encode())


def dataset_link(dataset: dict[str, Any]) -> str:
    """A Hub link, or where the local copy was (a registry entry, or a plain folder)."""
    name = dataset["name"]
    if not dataset.get("local"):
        return f"[{name}](https://huggingface.co/datasets/{name})"
    if is_repo_id(name) and not Path(name).is_dir():
        return f"`{name}` (hubtool's local registry; `hubtool push --hub` publishes it)"
    return f"a local folder `{public_path(str(dataset['path']))}`"


def base_model_text(model: dict[str, Any]) -> str:
    """The base model by Hub id, and what it was loaded from: no path of this machine."""
    base = public_model(str(model["base_model"]))
    source = public_model(str(model.get("path") or ""))
    if source in ("", base):
        return f"`{base}`"
    if source == LOCAL_MODEL:
        return f"`{base}` (loaded from a local copy)"
    return f"`{base}` (loaded from hubtool's `{source}`)"


def recipe_text(recipe: dict[str, Any]) -> str:
    """A shipped recipe by its name (`cot/smollm2-135m-lora`), a user's own by its file name; both
    with their hash."""
    name = public_path(str(recipe["path"])) if str(recipe["path"]).startswith(("/", "~")) else str(recipe["path"])
    return f"`{name}` (sha256 `{recipe['sha256'][:12]}`)"


def model_card(record: dict[str, Any]) -> str:
    """A Hub model card (`ModelCardData` metadata the Hub indexes), then how the model was made and
    how to load it."""
    from huggingface_hub import ModelCard, ModelCardData


    ds, model, peft, tr = record["dataset"], record["model"], record["peft"], record["training"]
    tags = ["hubtool", "trl", record["trainer"], *(["lora"] if peft else [])]
    hub_base = is_repo_id(model["base_model"]) and not Path(model["base_model"]).exists()
    hub_data = is_repo_id(ds["name"]) and not Path(ds["name"]).exists()  # the Hub indexes ids, not local paths
    meta = ModelCardData(base_model=model["base_model"] if hub_base else None, datasets=[ds["name"]] if hub_data else None,
                         library_name="peft" if peft else "transformers", pipeline_tag="text-generation", tags=tags)  # fmt: skip
    rows = [
        ("trainer", TRAINER_NAMES[record["trainer"]]),
        ("dataset", f"{dataset_link(ds)}, split `{ds['split']}`, {ds['rows']} rows" + _where(ds)),
        ("dataset revision", f"`{ds.get('revision') or '-'}`, fingerprint `{ds.get('fingerprint') or '-'}`"),
        ("prompt", _prompt(ds)),
        ("base model", base_model_text(model)),
        ("recipe", f"{recipe_text(record['recipe'])}, copied to `{RECIPE_COPY}`"),
        ("overrides", ", ".join(f"`{k}={scrub(str(v))}`" for k, v in record["recipe"]["overrides"].items()) or "none"),
        ("adapter", f"{peft['method']} r={peft['r']} alpha={peft['alpha']} dropout={peft['dropout']}" if peft else "none (full fine-tune)"),
        ("steps", f"{tr['global_steps']} in {tr['seconds']:.0f} s ({tr['seconds_per_step']:.2f} s/step)"),
        ("final train loss", f"{tr['train_loss']:.4f}" if tr.get("train_loss") is not None else "-"),
    ]  # fmt: skip
    loss = record.get("loss")
    if loss:
        rows.append(("loss", f"{loss['kind']}: `{loss['formula']}`, alpha {loss['alpha']}, {loss['batches']} batches"))
    if model.get("note"):
        rows.append(("note", scrub(model["note"])))
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return str(ModelCard(
        f"---\n{meta.to_yaml()}\n---\n\n"
        f"# {Path(record['output_dir']).name}\n\n"
        f"A student model trained by hubtool on reasoning distilled from a teacher, with {TRAINER_NAMES[record['trainer']]}.\n\n"
        f"| | |\n|---|---|\n{table}\n\n"
        f"The full record (library versions, losses, every setting) is in `{PROVENANCE}`.\n\n"
        f"## Use\n\n{_usage(record)}\n"
    ))


def _prompt(dataset: dict[str, Any]) -> str:
    found = dataset.get("prompt")
    if not found:
        return "not recorded by the dataset (`hubtool eval` asks with each task's own prompt)"
    return f"{PromptRef.from_dict(found).describe()}: what the rows ask; `hubtool eval` asks with it by default"


def _where(dataset: dict[str, Any]) -> str:
    where = dataset.get("where")
    if not where:
        return ""
    shown = ", ".join(f"`{c}={v}`" for c, v in where.items())
    return f" (of {dataset['rows_before_where']}: only those where {shown})"


def _usage(record: dict[str, Any]) -> str:
    out = Path(record["output_dir"]).name  # the folder this card is in
    if record["peft"]:
        load = f'from peft import AutoPeftModelForCausalLM\nmodel = AutoPeftModelForCausalLM.from_pretrained("{out}")'
    else:
        load = f'from transformers import AutoModelForCausalLM\nmodel = AutoModelForCausalLM.from_pretrained("{out}")'
    text = f"```python\n{load}\n```\n"
    merged = record["outputs"].get("merged")
    if merged:
        merged = f"{out}/{Path(merged).name}" if Path(merged).parent == Path(record["output_dir"]) else public_path(merged)
        text += (
            f"\nFull merged weights (plain transformers, vLLM, lm-eval) are in `{merged}`:\n\n"
            f"```bash\nlm_eval --model hf --model_args pretrained={merged} --tasks gsm8k\n```\n"
        )
    elif record["peft"]:
        text += "\nRe-run the training with `--merge` for full weights that vLLM and lm-eval load directly.\n"
    return text
