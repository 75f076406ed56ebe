"""Generation backends behind one contract (`toolkit.teachers.base`), chosen by `--teacher BACKEND:MODEL`.

    transformers:smollm2-135m                 local, batched (the embedded default)
    openai:gpt-4o-mini@https://api.openai.com/v1
    vllm:Qwen/Qwen2.5-72B-Instruct            offline vLLM, GPU only
    fake:right  fake:FILE.jsonl               scripted answers, for tests and dry runs

`BACKENDS` is the registry: one line per backend. A backend module imports its heavy packages
(torch, vLLM, aiohttp) inside functions, so reading its options costs little and vLLM stays optional.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any

from toolkit.errors import UserError
from toolkit.redact import redact_url
from toolkit.registry import Registry
from toolkit.teachers.base import BackendOptions, CallFailure, Completion, Request, SamplingParams, Teacher
from toolkit.teachers.openai_wire import split_model_url

__all__ = ["BACKENDS", "CLASSES", "CallFailure", "Completion", "Request", "SamplingParams", "Teacher", "backend_class",
           "backend_fields", "load_teacher", "options_per_backend", "parse_teacher_spec", "redact_spec"]  # fmt: skip

DEFAULT_TEACHER = "transformers:smollm2-135m"

# name -> "module:Class" of a `Teacher` subclass, one line per backend; their flags come in this
# order in --help and in the manifest's config.
CLASSES = {
    "transformers": "toolkit.teachers.transformers_backend:TransformersTeacher",
    "openai": "toolkit.teachers.openai_backend:OpenAITeacher",
    "vllm": "toolkit.teachers.vllm_backend:VLLMTeacher",
    "fake": "toolkit.teachers.fake:FakeTeacher",
}
BACKENDS: Registry[str] = Registry("teacher backend")
for _name, _where in CLASSES.items():
    BACKENDS.add(_name, _where)


def backend_class(name: str) -> type[Teacher]:
    """The Teacher class registered as `name` (UserError for an unknown name or a failed import)."""
    module_name, _, cls_name = BACKENDS.get(name).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise UserError(f"backend {name!r} cannot be imported: {e}") from None
    return getattr(module, cls_name)


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
    head, sep, model = spec.partition(":")
    name, url = split_model_url(model)
    return f"{head}{sep}{name}@{redact_url(url)}" if url else spec


def load_teacher(spec: str = DEFAULT_TEACHER, **options: Any) -> Teacher:
    """Build the backend a spec names. `options` may hold any backend's options (a build passes the
    flags of all of them); each backend takes its own, and a name no backend declares is an error."""
    backend, model = parse_teacher_spec(spec)
    cls = backend_class(backend)
    known = {name for b in CLASSES for name in backend_class(b).Options.names()}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"no teacher backend has an option {unknown[0]!r}")
    own = set(cls.Options.names())
    return cls.from_spec(model, cls.Options.of(backend, {k: v for k, v in options.items() if k in own and v is not None}))


def backend_fields() -> type:
    """A frozen dataclass of every backend's `cli=True` options, flat (a name two backends declare is
    one field): the build config inherits it, so each becomes a flag and a config key."""
    fields: dict[str, tuple[Any, dataclasses.Field]] = {}
    for name in CLASSES:
        options = backend_class(name).Options
        hints = typing.get_type_hints(options)
        for f in dataclasses.fields(options):
            if f.metadata.get("cli") and f.name not in fields:
                fields[f.name] = (hints[f.name], f)
    spec = [(n, hint, dataclasses.field(default=f.default, metadata={"help": f.metadata["help"]}))
            for n, (hint, f) in fields.items()]  # fmt: skip
    made = dataclasses.make_dataclass("BackendFields", spec, frozen=True, kw_only=True)
    made.__module__ = __name__
    return made


def options_per_backend(values: Any) -> dict[str, BackendOptions]:
    """Each backend's options, read from an object holding the flat fields (a build config): builds
    them, so each backend checks its own values."""
    return {name: (opts := backend_class(name).Options).of(name, {n: getattr(values, n) for n in opts.names(cli_only=True)})
            for name in CLASSES}  # fmt: skip
