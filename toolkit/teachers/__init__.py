"""Generation backends behind one interface, chosen by `--teacher BACKEND:MODEL`.

    transformers:smollm2-135m                 local, batched (the embedded default)
    openai:gpt-4o-mini@https://api.openai.com/v1
    vllm:Qwen/Qwen2.5-72B-Instruct            offline vLLM, GPU only
    fake:right  fake:FILE.jsonl               scripted answers, for tests and dry runs

Backends are imported only when chosen, so the CLI starts fast and vLLM stays optional.
"""

from __future__ import annotations

import importlib
from typing import Any

from toolkit.errors import UserError
from toolkit.registry import Registry
from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams, Teacher

__all__ = ["BACKENDS", "CallFailure", "Completion", "Request", "SamplingParams", "Teacher", "load_teacher",
           "parse_teacher_spec", "redact_spec"]

DEFAULT_TEACHER = "transformers:smollm2-135m"

# name -> "module:Class"; the class implements `from_spec(model: str, **options) -> Teacher`.
BACKENDS: Registry[str] = Registry("teacher backend")
BACKENDS.add("transformers", "toolkit.teachers.transformers_backend:TransformersTeacher")
BACKENDS.add("openai", "toolkit.teachers.openai_backend:OpenAITeacher")
BACKENDS.add("vllm", "toolkit.teachers.vllm_backend:VLLMTeacher")
BACKENDS.add("fake", "toolkit.teachers.fake:FakeTeacher")


def parse_teacher_spec(spec: str) -> tuple[str, str]:
    """'BACKEND:MODEL' -> (backend, model). A bare model name means the transformers backend."""
    backend, sep, model = spec.partition(":")
    if not sep or "/" in backend or backend not in BACKENDS and backend.startswith(("http", ".")):
        backend, model = "transformers", spec
    BACKENDS.get(backend)  # unknown backend -> UserError listing the known ones
    if not model:
        raise UserError(f"teacher {spec!r} names no model; use BACKEND:MODEL, e.g. {DEFAULT_TEACHER}")
    return backend, model


def redact_spec(spec: str) -> str:
    """A model spec without credentials: `openai:m@http://user:KEY@host/v1` -> `openai:m@http://host/v1`."""
    from toolkit.redact import redact_url
    from toolkit.teachers.openai_wire import split_model_url

    head, sep, model = spec.partition(":")
    name, url = split_model_url(model)
    return f"{head}{sep}{name}@{redact_url(url)}" if url else spec


def load_teacher(spec: str = DEFAULT_TEACHER, **options: Any) -> Teacher:
    """Build the backend a spec names; options go to its `from_spec` (unknown ones are ignored there)."""
    backend, model = parse_teacher_spec(spec)
    module_name, _, cls_name = BACKENDS.get(backend).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        extra = " (pip install 'hubtool[vllm]' on a GPU machine)" if backend == "vllm" else ""
        raise UserError(f"backend {backend!r} cannot be imported: {e}{extra}") from None
    return getattr(module, cls_name).from_spec(model, **options)
