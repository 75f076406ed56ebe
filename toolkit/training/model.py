"""The student: what `model_name_or_path` means, and LoRA adapters folded into full checkpoints.

`model_name_or_path` may be
- an alias (`smollm2-135m`) or a local checkpoint folder: `toolkit.teachers.models.resolve_model_path`;
- a Hub id. If it is the original of an embedded model (HuggingFaceTB/SmolLM2-135M-Instruct) and the
  Hub is off and the id is not in the HF cache, the embedded copy is used, with a warning: that is
  how the CPU recipes run offline while `trl sft --config` runs the same file online;
- a LoRA output folder (adapter_config.json, no config.json), e.g. the CoT student a DPO recipe
  builds on. Its `merged/` folder (what `--merge` writes) is used, and written first if missing or
  older than the adapter, so the new adapter's base is a real checkpoint plain transformers loads.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError
from toolkit.paths import MERGED
from toolkit.teachers.models import ALIASES, embedded_fallback, model_revision, resolve_model_path
from toolkit.training.provenance import PROVENANCE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Student:
    requested: str  # what the recipe said
    path: str  # what from_pretrained gets
    base_model: str  # for the model card: a Hub id where one is known
    revision: str
    note: str = ""  # how `path` was derived, when it is not `requested`


def resolve_student(name: str) -> Student:
    """Resolve `name` to something `from_pretrained` loads as a full model (see module doc)."""
    path = Path(name).expanduser()
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        # absolute: the new adapter records this as its base, and must load from any directory
        return _merged_student(path.resolve())
    embedded = embedded_fallback(name)
    if embedded is not None:
        resolved = resolve_model_path(embedded)
        note = f"{name} is not in the HF cache and the Hub is offline: using the embedded {embedded} ({resolved})"
        log.warning(note)
        return Student(name, resolved, name, model_revision(embedded), note)
    resolved = resolve_model_path(name)
    if Path(resolved).is_dir():
        resolved = str(Path(resolved).resolve())  # recorded as the adapter's base: keep it absolute
    base = ALIASES[name].original if name in ALIASES else recorded_base(resolved) or name
    return Student(name, resolved, base, model_revision(name))


def _merged_student(adapter: Path) -> Student:
    target = adapter / MERGED
    if not _fresh(target, adapter):
        log.warning("merging the LoRA adapter in %s into its base -> %s (as --merge would)", adapter, target)
        merge_adapter(adapter, target)
    note = f"LoRA student {adapter}, merged into full weights at {target}"
    return Student(
        str(adapter), str(target), recorded_base(adapter) or str(target), model_revision(str(target)), note
    )


def _fresh(merged: Path, adapter: Path) -> bool:
    config, weights = merged / "config.json", adapter / "adapter_model.safetensors"
    if not config.is_file():
        return False
    return not weights.is_file() or config.stat().st_mtime >= weights.stat().st_mtime


def record_hub_base(adapter: str | Path, student: Student) -> None:
    """Write the Hub id of the base into a saved adapter when the base was an embedded alias of one,
    instead of the converted copy's local path: a pushed adapter must load anywhere (offline, the
    embedded copy stands in again, see `embedded_fallback`)."""
    path = Path(adapter) / "adapter_config.json"
    requested = student.requested
    originals = {spec.original for spec in ALIASES.values()}
    original = ALIASES[requested].original if requested in ALIASES else requested if requested in originals else None
    if original is None or not path.is_file():
        return
    config = json.loads(path.read_text())
    config["base_model_name_or_path"] = original
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def adapter_base(adapter: str | Path) -> str:
    """The base model a saved PEFT adapter was trained on."""
    path = Path(adapter) / "adapter_config.json"
    try:
        base = json.loads(path.read_text()).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path} is unreadable ({e}); retrain the adapter") from None
    if not base:
        raise UserError(f"{path} names no base_model_name_or_path; cannot tell which model it adapts")
    return base


def merge_adapter(adapter: str | Path, target: str | Path, *, base_path: str | None = None) -> Path:
    """Fold a LoRA adapter into its base and save full weights + tokenizer at `target` (atomically)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter, target = Path(adapter), Path(target)
    base_path = base_path or resolve_student(adapter_base(adapter)).path
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype="auto")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer_dir = adapter if (adapter / "tokenizer_config.json").is_file() else Path(base_path)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").is_file():  # another process (another GPU rank) did not win the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def recorded_base(path: str | Path) -> str | None:
    """The Hub base model a hubtool training output (or its merged/ copy) records, for the card's lineage."""
    for folder in (Path(path), Path(path).parent):
        record = folder / PROVENANCE
        if record.is_file():
            try:
                return json.loads(record.read_text())["model"]["base_model"]
            except (OSError, json.JSONDecodeError, KeyError, TypeError):
                return None
    return None
