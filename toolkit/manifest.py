"""The manifest: what a build was, as one dataclass that every reader shares.

`RUN/manifest.json` is written when a build starts (status "running": a re-run recognises and
resumes it) and again when it finishes. Cards, `hubtool inspect`, `show`, `ls`, `push`,
`--from-dataset` and training provenance read it through `Manifest.from_dict`, never as a loose dict.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata as md
import json
import platform
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import UserError

# The libraries a build's rows depend on (reading sources, calling teachers, checking answers,
# running programs, writing parquet): the card's "Library versions" table lists those installed.
BUILD_LIBRARIES = ("hubtool", "datasets", "huggingface_hub", "pyarrow", "jinja2", "math-verify", "sympy",
                   "reasoning-gym", "aiohttp", "transformers", "torch", "gguf", "vllm")  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """One model a build used, by role ("teacher", "student", "judge", ...)."""

    role: str
    spec: str  # BACKEND:MODEL as given, credentials removed
    backend: str
    model: str
    revision: str = ""
    served: str = ""  # what the server said answered (model name, system_fingerprint), where it says
    weights: dict[str, str] = field(default_factory=dict)  # what the server says of its weights (see
    # OpenAITeacher.weights: vLLM's `root`, llama.cpp's `owned_by` and model file, a file hash)

    @property
    def identity(self) -> str:
        return f"{self.backend}:{self.model}" + (f"@{self.revision}" if self.revision else "")


@dataclass(frozen=True, kw_only=True)
class RowFormat:
    kind: str  # "sft" | "preference": the card template family and TRL's format
    trl: str  # TRL's name for the format
    trainer: str  # "sft" | "dpo"
    recipe: str | None = None  # the default recipe, short name (`hubtool train cot/smollm2-135m-lora`)


@dataclass(kw_only=True)
class Manifest:
    method: str
    source: dict[str, Any]  # toolkit.sources.SourceInfo as a dict
    source_sha256: str | None = None  # a local source file's content hash (cards name files, not paths)
    teacher: str  # the spec of the method's main model (credentials removed)
    config: dict[str, Any]  # the method config as run, without run-only fields
    command: str
    row_format: RowFormat
    hubtool_version: str
    preset: str | None = None
    preset_values: dict[str, Any] = field(default_factory=dict)
    models: list[ModelInfo] = field(default_factory=list)
    prompt_templates: dict[str, str] = field(default_factory=dict)  # name -> the template text
    versions: dict[str, str] = field(default_factory=dict)
    usage: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> toolkit.teachers.cache.Usage
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)  # what a method reports beyond counts
    status: str = "running"
    started_at: str | None = None
    finished_at: str | None = None
    elapsed_s: float | None = None
    rows: int | None = None
    data_file: str | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """What must match for a run directory to hold "the same build" (resumed or extended)."""
        return {"method": self.method, "source": self.source, "teacher": self.teacher}

    @property
    def preset_overrides(self) -> dict[str, Any]:
        """Preset values the user replaced (a flag or --config key): option -> the value used."""
        return {k: self.config[k] for k, v in self.preset_values.items()
                if k in self.config and _plain(self.config[k]) != _plain(v)}  # fmt: skip

    @property
    def main_model(self) -> ModelInfo | None:
        return self.models[0] if self.models else None

    @property
    def teacher_identity(self) -> str:
        return self.main_model.identity if self.main_model else self.teacher

    def total_usage(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for usage in self.usage.values():
            for key, value in usage.items():
                total[key] = total.get(key, 0) + value
        return total

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Any, where: str = "manifest") -> Manifest:
        """Read a manifest; a missing or mistyped entry is a UserError naming it."""
        if not isinstance(data, dict):
            raise UserError(f"{where} is not a JSON object; rebuild into a new --out")
        data = _upgrade(dict(data))
        names = {f.name for f in dataclasses.fields(cls)}
        try:
            values = {k: v for k, v in data.items() if k in names}
            values["row_format"] = RowFormat(**(data.get("row_format") or {}))
            values["models"] = [ModelInfo(**m) for m in data.get("models") or []]
            values["stats"] = {**(data.get("stats") or {}), **{k: v for k, v in data.items() if k not in names}}
            return cls(**values)
        except TypeError as e:
            raise UserError(f"{where} is not a hubtool manifest ({e}); rebuild into a new --out") from None


def library_versions(names: tuple[str, ...] = BUILD_LIBRARIES) -> dict[str, str]:
    """Python's version and those of the installed `names`."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def _plain(value: Any) -> Any:
    """A config value as JSON has it (tuples are lists), so a preset's value compares with the used one."""
    return json.loads(json.dumps(value, default=str))


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Manifests written by hubtool 0.1 (published datasets keep them) in today's shape."""
    if "teacher_info" in data and "models" not in data:
        info = data.pop("teacher_info") or {}
        role = "student" if data.get("method") == "preference" else "teacher"
        data["models"] = [{"role": role, "spec": data.get("teacher", ""), "backend": info.get("backend", ""),
                           "model": info.get("model", ""), "revision": info.get("revision") or ""}]  # fmt: skip
    data.pop("teacher_identity", None)
    if "prompt_template" in data:
        text = data.pop("prompt_template")
        name = (data.get("config") or {}).get("template") or "template"
        data["prompt_templates"] = {name: text} if text else {}
    usage = data.get("usage")
    if isinstance(usage, dict) and usage and all(isinstance(v, int) for v in usage.values()):
        data["usage"] = {"teacher": usage}
    row_format = data.get("row_format")
    if isinstance(row_format, dict) and row_format and "trainer" not in row_format:
        kind = row_format.get("kind", "sft")
        data["row_format"] = {"kind": kind, "trl": row_format.get("trl", ""),
                              "trainer": "dpo" if kind == "preference" else "sft", "recipe": row_format.get("recipe")}  # fmt: skip
    return data
