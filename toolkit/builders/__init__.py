"""Builders: one module per method, all run through `build_dataset`.

    source -> claim the run directory -> teacher (cached) -> builder loop -> data + manifest + card

Each builder module exposes `Options` (frozen dataclass with `to_manifest()`) and
`build(problems, teacher, options) -> BuildResult`; this module does the rest once for all.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.errors import UserError
from toolkit.registry import Registry
from toolkit.teachers.base import Teacher

log = logging.getLogger(__name__)

# method name -> module; imported only when used.
METHODS: Registry[str] = Registry("method")
METHODS.add("cot", "toolkit.builders.cot")
METHODS.add("preference", "toolkit.builders.preference")

ROW_FORMATS = {
    "cot": {"kind": "sft", "trl": "conversational prompt-completion", "recipe": "recipes/cot/smollm2-135m-lora.yaml"},
    "preference": {"kind": "preference", "trl": "conversational preference", "recipe": "recipes/self-refine/dpo-lora.yaml"},
}


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """How to read problems; mirrors `toolkit.sources.load_source` keywords."""

    spec: str
    split: str = "train"
    limit: int | None = None
    config: str | None = None
    revision: str | None = None
    data_files: str | None = None
    question_field: str | None = None
    answer_field: str | None = None
    answer_type: str | None = None
    choices_field: str | None = None
    seed: int = 0


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """Problems from a CoT dataset by name (a run directory, the local registry, the Hub), with the
    prompts and teacher rationales its rows hold; see `toolkit.builders.from_dataset`."""

    name: str
    split: str = "train"
    revision: str | None = None
    limit: int | None = None


def build_dataset(
    method: str,
    out: str | Path,
    *,
    source: SourceOptions | DatasetOptions,
    options: Any,
    teacher: str | Teacher,
    teacher_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    cache_path: str | Path | None = None,
) -> dict[str, Any]:
    """Run one build into `out`; returns the final manifest. Re-running resumes from the cache.

    `teacher` is a spec (`BACKEND:MODEL`) or a ready `Teacher` (custom backends, tests).
    """
    from toolkit.paths import call_cache_path
    from toolkit.rundir import RunDir, command_line, library_versions
    from toolkit.teachers import load_teacher, parse_teacher_spec
    from toolkit.teachers.cache import CachedTeacher, CallCache

    module = importlib.import_module(METHODS.get(method))
    if source.limit is not None and source.limit < 1:
        raise UserError("--limit must be at least 1")
    loaded = _load_problems(source)
    if not loaded.problems:
        raise UserError(f"source {loaded.info.spec!r} yielded no problems; check --split, --limit and the file")
    backend, model = (teacher.backend, teacher.model) if isinstance(teacher, Teacher) else parse_teacher_spec(teacher)
    manifest: dict[str, Any] = {
        "hubtool_version": __version__,
        "method": method,
        "source": dataclasses.asdict(loaded.info),
        "teacher": f"{backend}:{model}",
        "config": {"source": dataclasses.asdict(source), **options.to_manifest()},
        "command": command_line(),
        "row_format": ROW_FORMATS.get(method, {}),
    }
    run = RunDir(out)
    run.check(manifest, overwrite=overwrite)  # before the slow teacher load: fail fast
    backend_teacher = teacher if isinstance(teacher, Teacher) else load_teacher(teacher, **(teacher_options or {}))
    cache = CallCache(cache_path or call_cache_path())
    cached = CachedTeacher(backend_teacher, cache)
    run.start(manifest)
    try:
        result = module.build(loaded.problems, cached, options)
    finally:
        cache.close()
        if backend_teacher is not teacher:  # close only what this call opened
            backend_teacher.close()
    manifest.update(
        teacher_identity=backend_teacher.identity,
        teacher_info={"backend": backend_teacher.backend, "model": backend_teacher.model,
                      "revision": backend_teacher.revision},
        prompt_template=_template_text(options),
        versions=library_versions(),
        usage=cached.usage.to_dict(),
        counts=dict(result.counts),
        elapsed_s=round(result.elapsed, 2),
        **result.extra,
    )  # fmt: skip
    return run.finish(result.rows, result.schema, manifest, result.failed)


def _load_problems(source: SourceOptions | DatasetOptions):
    if isinstance(source, DatasetOptions):
        from toolkit.builders.from_dataset import load_cot_dataset

        return load_cot_dataset(source.name, split=source.split, revision=source.revision, limit=source.limit)
    from toolkit.sources import load_source

    return load_source(source.spec, **{k: v for k, v in dataclasses.asdict(source).items() if k != "spec"})


def _template_text(options: Any) -> str | None:
    from toolkit.prompts import template_source

    name = getattr(options, "template", None)
    return template_source(name) if name else None


def summary_line(manifest: dict[str, Any], out: str | Path) -> str:
    c, u = manifest.get("counts", {}), manifest.get("usage", {})
    samples = c.get("samples", 0)
    acc = f" ({c.get('correct', 0) / samples:.1%})" if samples else ""
    kept = f"{c['pairs']} pairs" if "pairs" in c else f"{c.get('kept', 0)} kept"  # preference builds make pairs
    return (
        f"{manifest['method']}: {c.get('problems', 0)} problems, {samples} samples, {c.get('correct', 0)} correct{acc}, "
        f"{kept}, {c.get('failed', 0)} failed; {u.get('calls', 0)} new calls, "
        f"{u.get('samples_cached', 0)} cached samples, {u.get('completion_tokens', 0)} tokens in "
        f"{manifest.get('elapsed_s', 0):.1f}s -> {out}"
    )
