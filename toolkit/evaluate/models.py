"""What `--model` names, turned into an lm-eval model: a checkpoint, an alias, a LoRA adapter, or a
model served behind an OpenAI-compatible API.

`--backend` takes the teachers' names (`toolkit.teachers.BACKENDS`): transformers, vllm, openai.
lm-eval calls the transformers one `hf`, so `hf` is taken too, as the same backend."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import UserError
from toolkit.teachers.models import ALIASES, resolve_model_path

log = logging.getLogger(__name__)

Backend = Literal["transformers", "vllm", "openai", "hf"]
BACKENDS: tuple[str, ...] = ("transformers", "vllm", "openai")
BACKEND_ALIASES = {"hf": "transformers"}  # lm-eval's name for it: users of `lm_eval --model hf` type it


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One model to evaluate: its report label and how lm-eval builds it."""

    label: str
    lm_eval_model: str  # lm-eval's registry name: hf, vllm, local-chat-completions
    args: dict[str, Any] = field(default_factory=dict)


def eval_backend(name: str) -> str:
    """A `--backend` value as the teachers name it (hf -> transformers); UserError for another name."""
    name = BACKEND_ALIASES.get(name, name)
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)} (hf is transformers)")
    return name


def model_spec(name: str, backend: Backend = "transformers", base_url: str | None = None,
               data_parallel: int = 1) -> ModelSpec:  # fmt: skip
    """Resolve `--model` for a backend; raises UserError for what cannot be loaded. `data_parallel` > 1
    (vllm only) is lm-eval's `data_parallel_size`: that many engines, one per GPU, started as Ray actors."""
    backend = eval_backend(backend)  # type: ignore[assignment]
    if data_parallel < 1:
        raise UserError(f"--data-parallel {data_parallel}: give 1 or more engines")
    if data_parallel > 1 and backend != "vllm":
        raise UserError(f"--data-parallel is for --backend vllm (engines on this machine's GPUs), not {backend}; "
                        "for servers elsewhere use --backend openai against them")  # fmt: skip
    if backend == "openai":
        if not base_url:
            raise UserError("--backend openai needs --base-url, e.g. http://localhost:8000/v1")
        label = name.rstrip("/").rsplit("/", 1)[-1] or name  # a served path or org/name, shown short
        return ModelSpec(label, "local-chat-completions", {
            "model": name, "base_url": _chat_url(base_url), "num_concurrent": 4, "max_retries": 3,
            "tokenized_requests": False,
        })
    path, adapter = _weights(name)
    label = _label(name)
    if backend == "vllm":
        args = {"pretrained": path} | ({"lora_local_path": adapter} if adapter else {})
        return ModelSpec(label, "vllm", args | ({"data_parallel_size": data_parallel} if data_parallel > 1 else {}))
    return ModelSpec(label, "hf", {"pretrained": path} | ({"peft": adapter} if adapter else {}))


def describe(spec: ModelSpec) -> str:
    """What was evaluated under a label, for the report."""
    args = spec.args
    if spec.lm_eval_model == "local-chat-completions":
        return f"{args['model']} served at {args['base_url']}"
    adapter = args.get("peft") or args.get("lora_local_path")
    weights = f"LoRA adapter {adapter} on {args['pretrained']}" if adapter else args["pretrained"]
    return f"{weights} ({spec.lm_eval_model})"


def _chat_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def _label(name: str) -> str:
    """An alias or Hub id as given; a local folder by its own name."""
    path = Path(name).expanduser()
    return path.resolve().name if name not in ALIASES and path.exists() else name


def _weights(name: str) -> tuple[str, str | None]:
    """(base checkpoint, adapter folder or None). An adapter's base is read from adapter_config.json."""
    path = resolve_model_path(name)
    folder = Path(path)
    if not folder.is_dir():
        _check_hub_id(path, name)
        return path, None
    if (folder / "adapter_config.json").is_file():
        return _adapter_base(folder), str(folder)
    if not (folder / "config.json").is_file():
        raise UserError(f"model {name!r}: {folder} holds neither config.json nor adapter_config.json")
    return path, None


def _adapter_base(adapter: Path) -> str:
    try:
        base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    except (json.JSONDecodeError, KeyError, TypeError):
        base = None
    if not base:
        raise UserError(f"adapter {adapter}: adapter_config.json names no base_model_name_or_path; set it")
    try:
        path = resolve_model_path(base)
    except UserError as e:
        raise UserError(f"adapter {adapter}: its base model {base!r} cannot be found ({e})") from None
    if Path(path).is_dir():
        return path
    _check_hub_id(path, f"{adapter} (base of the adapter)")
    return path


def _check_hub_id(hub_id: str, what: str) -> None:
    """Offline, a Hub id only loads if it is already in the local HF cache."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("1", "true", "yes"):
        return
    from huggingface_hub import try_to_load_from_cache  # its file utilities pull the HTTP client (~75 ms)

    if not isinstance(try_to_load_from_cache(hub_id, "config.json"), str):
        raise UserError(
            f"model {what}: {hub_id!r} is not a local folder and not in the Hugging Face cache, and the "
            "Hub is offline (HF_HUB_OFFLINE=1); pass a checkpoint folder or the alias smollm2-135m"
        )


def load_lm(spec: ModelSpec, batch_size: int | str = 8):
    """The lm-eval model object; a model that does not load becomes one UserError line."""
    from lm_eval.api.registry import get_model  # lm-eval and the model backends: only inside a run

    extra: dict[str, Any] = {"batch_size": batch_size}
    if spec.lm_eval_model == "hf":
        import torch  # torch: only when a model loads

        extra["device"] = "cuda" if torch.cuda.is_available() else "cpu"  # lm-eval's default is cuda
    try:
        return get_model(spec.lm_eval_model).create_from_arg_obj(dict(spec.args), extra)
    except ImportError as e:
        raise UserError(f"backend for {spec.label!r} is not installed ({e}); for vllm: pip install 'hubtool[vllm]'") from None
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise UserError(f"model {spec.label!r} does not load: {_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
