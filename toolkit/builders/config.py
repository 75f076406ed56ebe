"""Build configs: one frozen dataclass per method, in the style of TRL's `SFTConfig`.

A method's config inherits `BuildConfig` (the source, sampling, the generation backends' flags, the
run directory) and adds its own fields. The backends' flags are not written here: each backend
declares its options (`toolkit.teachers.base.BackendOptions`) and `backend_fields()` gathers those
marked for the CLI. Every field carries its help text (`param(...)`), and values
are checked once, in `__post_init__`, whether they come from the CLI, a YAML file or Python. The
`hubtool build-dataset METHOD` options are generated from these fields (`toolkit.cli.build`), and
`resolve_config` layers the sources of values the way TRL's parser does:

    field defaults  <  --preset NAME  <  --config build.yaml  <  flags given on the command line
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import UserError, did_you_mean
from toolkit.teachers import backend_fields, options_per_backend, redact_spec
from toolkit.teachers.base import SamplingParams, at_least, option_name
from toolkit.yamlsafe import safe_load

SOURCE_HELP = "hf:NAME (a known benchmark), hf:ORG/NAME, gym:TASK (reasoning-gym) or file:PATH"
# Fields that say where and how to run, not what to build: left out of the manifest's config, so
# the same build written to another --out (or with another cache) is the same build.
RUN_FIELDS = ("out", "overwrite", "cache", "timeout", "max_retries")
# Every backend's CLI options, flat; handed to `load_teacher` for every model a method uses.
BackendFields = backend_fields()


def param(default: Any = dataclasses.MISSING, *, help: str, metavar: str | None = None, model: bool = False) -> Any:
    """A config field with its help text. `model=True` marks a BACKEND:MODEL spec (a role the
    method loads a generation backend for); `metavar` names the value in `--help`."""
    return field(default=default, metadata={"help": help, "metavar": metavar, "model": model})


@dataclass(frozen=True, kw_only=True)
class Preset:
    """Values a paper used, applied under explicit flags; `about` says where they come from."""

    about: str
    values: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class ProblemConfig:
    """Where problems come from and how they are sampled: the first fields of every build config."""

    source: str | None = param(None, help=f"Where problems come from: {SOURCE_HELP}.", metavar="SPEC")
    split: str = param("train", help="Dataset split.")
    limit: int | None = param(None, help="Use the first N problems (raise it later to extend a build).")
    subset: str | None = param(None, help="Hub dataset config (subset), e.g. 'main' for gsm8k.")
    revision: str | None = param(None, help="Hub dataset revision (branch, tag or commit).")
    data_files: str | None = param(None, help="Read an hf: source from local files with the same columns.")
    question_field: str | None = param(None, help="Column holding the question.")
    answer_field: str | None = param(None, help="Column holding the gold answer.")
    choices_field: str | None = param(None, help="Column holding the options of a multiple-choice problem.")
    answer_type: Literal["number", "option", "yesno", "label", "math"] | None = param(
        None, help="Default: detected. math: any LaTeX answer, checked with math-verify (MATH).")
    seed: int = param(0, help="Seed for gym: sources, --balance and sampling.")
    balance: bool = param(
        False, help="Take a class-balanced subset (equal problems per gold option / yes-no / label), chosen by "
                    "--seed, instead of the first --limit problems; raising --limit keeps the earlier ones.")  # fmt: skip
    decontaminate: str | None = param(
        None, help="Drop problems whose question shares an n-gram with a question of these eval suites or "
                   "tasks (comma-separated: gym, or gsm8k,svamp) before any teacher call.",
        metavar="SUITES|TASKS")  # fmt: skip
    decontaminate_n: int = param(8, help="n-gram length for --decontaminate (open-r1's 8).")
    eval_data_dir: str | None = param(
        None, help="Local <benchmark>.jsonl copies of the eval tasks' data (as `hubtool eval --data-dir`), "
                   "for --decontaminate without the Hub.", metavar="DIR")  # fmt: skip
    temperature: float = param(0.7, help="Sampling temperature (0: greedy).")
    top_p: float = param(0.95, help="Nucleus sampling mass.")
    max_new_tokens: int = param(512, help="Longest completion, in tokens; a longer one is cut and flagged.")


@dataclass(frozen=True, kw_only=True)
class BuildConfig(BackendFields, ProblemConfig):
    """What every method reads: where problems come from (`ProblemConfig`), the backends' flags
    (`BackendFields`), where rows go. Fields keep that order (a dataclass lists its bases' fields first,
    the last base first), in --help and in the manifest."""

    out: str | None = param(None, help="Run directory (required).", metavar="DIR")
    overwrite: bool = param(False, help="Replace a run directory that holds a different build.")
    cache: str | None = param(None, help="Call cache file (default: $HUBTOOL_HOME/cache/calls.sqlite).", metavar="FILE")

    def __post_init__(self) -> None:
        check_types(self)
        for name in ("limit", "decontaminate_n"):
            at_least(self, name, 1)
        self.sampling  # noqa: B018 - SamplingParams checks temperature, top_p, max_new_tokens and seed
        options_per_backend(self)  # each backend checks its own flags
        if not self.has_problems():
            raise UserError(f"give the problems with --source ({SOURCE_HELP})")

    def has_problems(self) -> bool:
        """Whether the config says where problems come from (a method may add another way)."""
        return self.source is not None

    @property
    def sampling(self) -> SamplingParams:
        return SamplingParams(self.temperature, self.top_p, self.max_new_tokens, self.seed)

    def source_options(self) -> dict[str, Any]:
        """Keywords of `toolkit.sources.load_source`."""
        return {"split": self.split, "limit": self.limit, "config": self.subset, "revision": self.revision,
                "data_files": self.data_files, "question_field": self.question_field,
                "answer_field": self.answer_field, "answer_type": self.answer_type,
                "choices_field": self.choices_field, "seed": self.seed}  # fmt: skip

    def backend_options(self) -> dict[str, Any]:
        """The backend flags given, for `load_teacher` (each backend takes its own)."""
        names = [f.name for f in dataclasses.fields(BackendFields)]
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    @classmethod
    def model_roles(cls) -> tuple[str, ...]:
        """The fields that name a generation backend (BACKEND:MODEL), in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("model"))


# -- checks ------------------------------------------------------------------------------------
def check_types(config: Any) -> None:
    """Every field holds a value of its annotated type (Literal choices included)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _matches(value, hints[f.name]):
            raise UserError(f"{option_name(f.name)}: {value!r} is not {_describe(hints[f.name])}")


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is Literal:
        return value in args
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(_matches(v, args[0]) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin is tuple:
        return f"a list of {_describe(args[0])}"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


# -- layering: defaults < preset < YAML < flags ---------------------------------------------------
def resolve_config(cls: type[BuildConfig], *, flags: Mapping[str, Any] | None = None,
                   config_file: str | Path | None = None, preset: str | None = None,
                   presets: Mapping[str, Preset] | None = None,
                   method: Sequence[str] = ()) -> tuple[BuildConfig, str | None, dict[str, Any]]:  # fmt: skip
    """The config these sources give, the preset used (a flag, or `preset:` in the file) and the
    values it set (for the manifest). `method` is the command's method, its name then its aliases: a
    file naming another is refused."""
    names = {f.name for f in dataclasses.fields(cls)}
    from_file = read_config_file(config_file, names, method) if config_file else {}
    preset = preset or from_file.pop("preset", None)
    preset_values: dict[str, Any] = {}
    if preset is not None:
        presets = presets or {}
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none for this method"
            raise UserError(f"unknown preset {preset!r}{did_you_mean(preset, list(presets))}; known: {known}")
        preset_values = dict(presets[preset].values)
    values = {**preset_values, **from_file, **dict(flags or {})}
    missing = [f.name for f in dataclasses.fields(cls) if _required(f) and f.name not in values]
    if missing:
        opts = ", ".join(option_name(m) for m in missing)
        raise UserError(f"missing {opts} (a flag, or a key in --config FILE)")
    return cls(**{k: coerce(cls, k, v) for k, v in values.items()}), preset, preset_values


def _required(f: dataclasses.Field) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def read_yaml(path: str | Path, what: str) -> Any:
    """A YAML file's content; a missing or unreadable file is a one-line UserError naming `what`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not readable YAML ({' '.join(str(e).split())[:200]})") from None
    return safe_load(text, f"{what} {path}")


def read_config_file(path: str | Path, names: set[str], method: Sequence[str] = ()) -> dict[str, Any]:
    """A YAML mapping of field names (dashes or underscores) to values; unknown keys are errors, and
    so is `method:` naming another method than the command's."""
    path = Path(path)
    data = read_yaml(path, "--config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--config {path} must be a mapping of option names to values, not {type(data).__name__}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names | {"preset", "method"}:
            raise UserError(f"--config {path}: unknown option {key!r}{did_you_mean(name, sorted(names))}")
        out[name] = value
    named = out.pop("method", None)  # allowed for the reader's sake; the command names the method
    if named is not None and method and str(named) not in method:
        raise UserError(f"--config {path} is for method {named!r}, not {method[0]!r}; run `hubtool build-dataset "
                        f"{named} --config {path}`, or remove its `method:` line")  # fmt: skip
    return out


def coerce(cls: type[BuildConfig], name: str, value: Any) -> Any:
    """A YAML or preset value as the field's type: lists become tuples, numbers may be quoted."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)] if _is_optional(hint) else [hint]
    target = args[0] if len(args) == 1 else hint
    if value is None or not isinstance(target, type):
        return tuple(value) if isinstance(value, list) else value
    if target is tuple or typing.get_origin(target) is tuple:
        return tuple(value) if isinstance(value, list | tuple) else (value,)
    if target in (int, float) and isinstance(value, str):
        try:
            return target(value)
        except ValueError:
            return value  # check_types names the field and the expected type
    if target is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _is_optional(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def recorded(config: BuildConfig) -> dict[str, Any]:
    """The config as the manifest records it: run-only fields left out, credentials redacted."""
    roles = set(config.model_roles())
    out = {}
    for f in dataclasses.fields(config):
        if f.name in RUN_FIELDS:
            continue
        value = getattr(config, f.name)
        out[f.name] = redact_spec(value) if f.name in roles and isinstance(value, str) else _plain(value)
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
