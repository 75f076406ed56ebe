"""The Python API: hubtool's commands as functions, for notebooks and scripts.

    from toolkit import build, merge, push, train, score, load_dataset

    run = build("cot", source="gym:chain_sum", limit=16, samples=2, out="runs/cot")
    run.dataset()                                  # the rows, a datasets.Dataset
    push(run, "me/cot")                            # the local registry (hub=True: the Hub)
    student = train("cot/smollm2-135m-lora-smoke", dataset="me/cot", output_dir="out/student")
    score(["smollm2-135m", student], tasks="hubtool_gym_chain_sum", limit=8, max_gen_toks=64)
    for i in range(8):                             # a build cut into shards, one process or machine each
        build("cot", source="gym:chain_sum", limit=16, out="runs/cot8", shard=f"{i}/8")
    merge("runs/cot8")                             # the same rows as one build (`hubtool merge`)
    build("cot", source="gym:chain_sum", limit=16, out="runs/cot-ray", engine="ray", workers=8)  # on Ray, merged

`hubtool build-dataset`, `merge`, `push`, `train` and `eval` are thin calls of these functions (`eval`'s is
`score`: `toolkit.evaluate` is the package that runs lm-eval, and a function of that name would be
hidden by it as soon as it loads). The options are checked by the same typed configs (a build's by
its method's config dataclass, an eval's by `EvalOptions`, a training run's by TRL's parser), so a
typo is the same one-line UserError.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.builders.config import BuildConfig, coerce, option_name, resolve_config
from toolkit.builders.engine import build_dataset, summary_line
from toolkit.builders.merge import merge_shards
from toolkit.builders.method import Method
from toolkit.builders.shards import parse_shard, read_plan, shard_dir
from toolkit.errors import UserError, did_you_mean
from toolkit.evaluate import EvalOptions, EvalResult, run_eval
from toolkit.hub import PushResult, load_dataset
from toolkit.hub import push as push_build
from toolkit.manifest import Manifest
from toolkit.methods import find_method, get_method, method_for_config
from toolkit.redact import redact
from toolkit.rundir import MANIFEST, read_manifest
from toolkit.teachers.base import Teacher
from toolkit.training import TrainResult, load_recipe
from toolkit.training import train as run_training

__all__ = ["BuildResult", "build", "load_dataset", "merge", "push", "score", "train"]


@dataclass(frozen=True, repr=False)
class BuildResult:
    """A finished build: its run directory, manifest and method. It is a path (`os.fspath`), so it
    goes wherever a run directory does: `push(run, name)`, `hubtool inspect`."""

    run_dir: Path
    manifest: Manifest
    method: Method

    @property
    def counts(self) -> dict[str, int]:
        return self.manifest.counts

    @property
    def rows(self) -> int:
        """Rows written (0: nothing to train on; `hubtool inspect` of the run directory shows why)."""
        return self.manifest.rows or 0

    def dataset(self, split: str = "train"):
        """The rows as a `datasets.Dataset`, read as `load_dataset` reads any name."""
        return load_dataset(str(self.run_dir), split=split)

    def summary(self) -> str:
        """The line `hubtool build-dataset` prints."""
        return summary_line(self.manifest, self.run_dir, self.method)

    def __fspath__(self) -> str:
        return str(self.run_dir)

    def __repr__(self) -> str:
        return f"BuildResult({self.summary()})"


def build(config_or_method: BuildConfig | str | Method, /, *, config_file: str | Path | None = None,
          preset: str | None = None, teachers: Mapping[str, Teacher] | None = None, command: str | None = None,
          shard: str | None = None, engine: str = "local", workers: int | None = None, shards: int | None = None,
          ray_address: str | None = None, **options: Any) -> BuildResult:  # fmt: skip
    """`hubtool build-dataset METHOD`: build into `out` (resumable: the same call again finishes or extends it).

    Give a method's name (options as keywords: the `--flags` with underscores) or its config
    dataclass (keywords then replace its fields). Values are layered as the CLI layers them:
    defaults < `preset` < `config_file` (YAML) < keywords. `teachers` gives ready backends by role
    (a custom `Teacher`) instead of loading the config's BACKEND:MODEL specs. `command` is what the
    manifest and card record as the command that made the build (default: the equivalent
    `hubtool build-dataset` line). `shard="I/N"` builds only shard I of N (0-based) into OUT/shards/
    (the result is the shard's); `merge(out)` makes the build once every shard is done.
    `engine="ray"` runs the shards (`shards`, default 4 per worker) on `workers` Ray actors of the
    cluster at `ray_address` (default: this machine's, or this process's `ray.init`), then merges."""
    if isinstance(config_or_method, BuildConfig):
        if config_file is not None or preset is not None:
            raise UserError("config_file and preset apply to a method's name, not to a ready config; "
                            "give build() the name, or set the fields on the config")  # fmt: skip
        method = method_for_config(config_or_method)
        fields = _fields(method, options)
        config = dataclasses.replace(config_or_method, **{k: coerce(method.config, k, v) for k, v in fields.items()})
        preset_values: dict[str, Any] = {}
        given = _changed(config)
    else:
        method = get_method(config_or_method) if isinstance(config_or_method, str) else config_or_method
        given = _fields(method, options)
        config, preset, preset_values = resolve_config(
            method.config, flags=given, config_file=config_file, preset=preset, presets=method.presets,
            method=(method.name, *method.aliases))  # fmt: skip
    if command is None:
        command = build_command(method, given, config_file, preset)
    _check_engine(engine, workers, shards, ray_address, shard)
    if engine == "ray":
        from toolkit.builders.ray_engine import build_on_ray  # imports ray: only for this engine

        manifest = build_on_ray(config, method=method, workers=workers or 1, shard_count=shards, address=ray_address,
                                teachers=teachers, preset=preset, preset_values=preset_values, command=command)  # fmt: skip
        return BuildResult(Path(config.out), manifest, method)
    part = parse_shard(shard) if shard is not None else None
    manifest = build_dataset(config, method=method, teachers=teachers, preset=preset, preset_values=preset_values,
                             command=command, shard=part)  # fmt: skip
    return BuildResult(shard_dir(config.out, part) if part else Path(config.out), manifest, method)


def _check_engine(engine: str, workers: int | None, shards: int | None, ray_address: str | None,
                  shard: str | None) -> None:  # fmt: skip
    if engine not in ("local", "ray"):
        raise UserError(f"unknown engine {engine!r}; use 'local' (this process) or 'ray' (a Ray cluster)")
    if engine == "local" and (workers, shards, ray_address) != (None, None, None):
        raise UserError("--workers, --shards and --ray-address apply to --engine ray")
    if engine == "ray" and shard is not None:
        raise UserError("--shard runs one shard by hand; --engine ray runs them all: give one of the two")


def merge(run_dir: str | os.PathLike) -> BuildResult:
    """`hubtool merge RUN`: the build of a sharded run directory (every `--shard I/N` done), from the
    shards' cached calls: the rows, counts and card of the single-process build, no teacher call."""
    run_dir = Path(os.fspath(run_dir))
    plan = read_plan(run_dir)
    method = get_method(plan["method"])
    names = {f.name for f in dataclasses.fields(method.config)}
    fields = {k: coerce(method.config, k, v) for k, v in plan["config"].items() if k in names}
    manifest = merge_shards(run_dir, method=method, config=method.config(**fields))
    return BuildResult(run_dir, manifest, method)


def _fields(method: Method, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options as config fields (`max-new-tokens` reads as `max_new_tokens`); an unknown
    one is a UserError naming the near miss, as the CLI's `--flag` typo is."""
    names = [f.name for f in dataclasses.fields(method.config)]
    out: dict[str, Any] = {}
    for key, value in options.items():
        name = key.replace("-", "_")
        if name not in names:
            raise UserError(f"{method.name} has no option {key!r}{did_you_mean(name, names)}; "
                            f"`hubtool build-dataset {method.name} --help` lists them")  # fmt: skip
        out[name] = value
    return out


def _changed(config: BuildConfig) -> dict[str, Any]:
    """The fields of a ready config that differ from their defaults (what a command line would give)."""
    out = {}
    for f in dataclasses.fields(config):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, f.name)
        if default is dataclasses.MISSING or value != default:
            out[f.name] = value
    return out


def build_command(method: Method, values: Mapping[str, Any], config_file: str | Path | None = None,
                  preset: str | None = None) -> str:  # fmt: skip
    """The `hubtool build-dataset` line that makes the same build (what a card says to re-run;
    credentials removed). A notebook's own argv would name the kernel, not the build."""
    argv = ["hubtool", "build-dataset", method.name]
    if config_file is not None:
        argv += ["--config", str(config_file)]
    if preset is not None:
        argv += ["--preset", preset]
    for name, value in values.items():
        flag = option_name(name)
        if isinstance(value, bool):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [flag, str(item)]
        elif value is not None:  # None is every optional field's default: no flag gives it
            argv += [flag, str(value)]
    return redact(shlex.join(argv))


def push(run_dir: str | os.PathLike, name: str, *, hub: bool = False, private: bool = False,
         revision: str | None = None, license: str | None = None) -> PushResult:  # fmt: skip
    """`hubtool push RUN_DIR NAME`: publish a finished build (a run directory or a `BuildResult`)
    as NAME, in the local registry, or on the Hub with `hub=True` (token: HF_TOKEN or `hf auth login`)."""
    run_dir = Path(os.fspath(run_dir))
    method = find_method(read_manifest(run_dir).method) if (run_dir / MANIFEST).is_file() else None
    return push_build(run_dir, name, method=method, hub=hub, private=private, revision=revision, license=license)


def train(recipe: str | os.PathLike, /, *, dataset: str | os.PathLike | None = None,
          output_dir: str | os.PathLike | None = None, merge: bool = False, where: Mapping[str, Any] | None = None,
          trainer: str | None = None, overrides: Mapping[str, Any] | None = None, **more: Any) -> TrainResult:  # fmt: skip
    """`hubtool train RECIPE`: train a student with a TRL recipe (a file, or a shipped one by name).

    `dataset` is the recipe's `dataset_name` (a name, a run directory or a `BuildResult`); every other
    recipe key is a keyword (`max_steps=10`) or an entry of `overrides` (the CLI's `--set KEY=VALUE`),
    checked against TRL's dataclasses before any model loads. `where` keeps the rows whose columns
    hold these values (`{"is_counterfactual": False}`); `merge` also writes OUT/merged/."""
    sets = {**(overrides or {}), **more}
    if dataset is not None:
        name = os.fspath(dataset)
        if "dataset_name" in sets and str(sets["dataset_name"]) != name:
            raise UserError(f"the dataset is given twice ({name!r}, and dataset_name={sets['dataset_name']!r}); "
                            "give one")  # fmt: skip
        sets["dataset_name"] = name
    loaded = load_recipe(os.fspath(recipe), {key: _setting(value) for key, value in sets.items()},
                         output_dir=output_dir, trainer=trainer)  # fmt: skip
    rows = {column: _setting(value) for column, value in (where or {}).items()}
    return run_training(loaded, merge=merge, where=rows)


def _setting(value: Any) -> Any:
    """A Python value as `--set` text (TRL's parser converts it); a list stays a list of items."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def score(models: str | os.PathLike | TrainResult | Sequence[str | os.PathLike | TrainResult], /, *,
             suites: str | Sequence[str] = (), tasks: str | Sequence[str] = (),
             output_dir: str | os.PathLike = "eval-results", labels: Sequence[str] | None = None,
             options: EvalOptions | None = None, **fields: Any) -> EvalResult:  # fmt: skip
    """`hubtool eval -m MODEL ...`: score models (checkpoint or adapter folders, `TrainResult`s, the
    alias smollm2-135m) on lm-eval tasks; writes report.md, report.png, scores.json to `output_dir`.

    `suites`, `tasks` and `in_domain` take a list or comma-separated names; the other keywords are
    `EvalOptions` fields (backend, limit, max_gen_toks, prompt, judge, ...), or pass `options`."""
    one = isinstance(models, str | os.PathLike | TrainResult)
    names = [_model(m) for m in ([models] if one else models)]
    known = [f.name for f in dataclasses.fields(EvalOptions)]
    for key in fields:
        if key not in known:
            raise UserError(f"eval has no option {key!r}{did_you_mean(key, known)}; `hubtool eval --help` lists them")
    if isinstance(fields.get("in_domain"), str):
        fields["in_domain"] = _names(fields["in_domain"]) or None
    if isinstance(fields.get("data_dir"), str | os.PathLike):
        fields["data_dir"] = Path(fields["data_dir"])
    options = dataclasses.replace(options or EvalOptions(), **fields)
    return run_eval(names, Path(output_dir), suites=_names(suites), tasks=_names(tasks), options=options,
                    labels=list(labels) if labels is not None else None)  # fmt: skip


def _model(model: str | os.PathLike | TrainResult) -> str:
    return str(model.output_dir) if isinstance(model, TrainResult) else os.fspath(model)


def _names(value: str | Sequence[str]) -> list[str]:
    parts = value.split(",") if isinstance(value, str) else value
    return [part.strip() for part in parts if part.strip()]
