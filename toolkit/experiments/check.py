"""Reading an experiment file (`load_experiment`: the shape `spec` parses, then these checks) and the
deep checks, run before any step (and by --dry-run): each key's type, the method, preset and `with:`
options of a build, the push's dataset name, the train recipe, the eval tasks and suites and what
`decontaminate:` names. A run fails at the first step that a check
here would have caught only if the check is missing: keep them in step with the runner."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import re
from pathlib import Path
from typing import Any

from toolkit.builders.config import read_yaml, resolve_config
from toolkit.errors import UserError, did_you_mean
from toolkit.evaluate.models import BACKENDS as EVAL_BACKENDS
from toolkit.evaluate.models import eval_backend
from toolkit.evaluate.report import FILTERS
from toolkit.experiments.spec import TEACHER, Experiment, Step, parse_experiment, raise_problems, substitute
from toolkit.hub.names import is_repo_id
from toolkit.methods import eval_task_dirs, get_method
from toolkit.sources import eval_tasks as tasks_mod
from toolkit.sources.eval_tasks import PREFIX
from toolkit.teachers import parse_teacher_spec
from toolkit.teachers.serve import parse_hub_file
from toolkit.training.recipe import load_recipe, resolve_recipe

_STR, _INT, _BOOL = "text", "an integer", "true or false"
_NAMES = "a list of names"
TYPES: dict[str, dict[str, str]] = {
    "build": {"build": _STR, "with": "a mapping", "preset": _STR, "decontaminate": "decontaminate"},
    "push": {"push": _STR, "name": _STR, "hub": _BOOL, "private": _BOOL, "license": _STR},
    "train": {"train": _STR, "dataset": _STR, "model": _STR, "set": "a mapping", "merge": _BOOL,
              "where": "a mapping"},
    "eval": {"eval": "a mapping", "tasks": _NAMES, "suites": _NAMES, "limit": "a number", "max_gen_toks": _INT,
             "in_domain": _NAMES, "batch_size": "an integer or auto", "num_fewshot": _INT, "data_dir": _STR,
             "backend": _STR, "base_url": _STR, "baseline": _STR, "filter": _STR, "judge": _STR,
             "judge_max_new_tokens": _INT},
}  # fmt: skip
# `teacher_server:` (toolkit.teachers.serve.TeacherServer) as YAML may give it; its keys and backend
# are checked by TeacherServer.from_config when the file is read
SERVER_TYPES = {"gguf": _STR, "path": _STR, "revision": _STR, "alias": _STR, "backend": _STR, "threads": _INT,
                "n_ctx": _INT, "python": _STR, "port": _INT, "startup_timeout": "a number"}  # fmt: skip
LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")  # a report label, and its results folder
# the experiment owns where its steps write: a step may not point them elsewhere
OWNED = {"build": ("out", "overwrite"), "train": ("output_dir",)}


def load_experiment(path: str | Path) -> Experiment:
    """Read and check the whole experiment file before anything runs: every key known and of its
    type, every step of a known kind, every reference to an earlier step, every method, preset,
    recipe, task and dataset name. All problems are listed at once, one line each."""
    path = Path(path)
    data = read_yaml(path, "experiment")
    problems: list[str] = []
    experiment = parse_experiment(path, data, problems)
    if experiment is not None:
        check_experiment(experiment, problems)
    raise_problems(path, problems)
    assert experiment is not None
    return experiment


def check_experiment(experiment: Experiment, problems: list[str]) -> None:
    """Append one line per problem to `problems`."""
    _check_teacher_server(experiment, problems)
    if not _is_decontaminate(experiment.decontaminate):
        problems.append(_decontaminate_problem("decontaminate", experiment.decontaminate))
    elif isinstance(experiment.decontaminate, str):
        _check_task_names(experiment.decontaminate.split(","), "decontaminate", problems)
    defaults = experiment.eval  # also what builds are decontaminated against, with or without eval steps
    for key in ("tasks", "suites", "in_domain"):
        if key in defaults and not _is(defaults[key], _NAMES):
            problems.append(f"eval: {key}: {_shown(defaults[key])} is not {_NAMES}")
    if not any(s.kind == "eval" for s in experiment.steps) and all(_is(defaults.get(k, []), _NAMES)
                                                                 for k in ("tasks", "suites")):  # fmt: skip
        _check_task_names([*defaults.get("tasks", []), *defaults.get("suites", [])], "eval", problems)
    kinds = {s.id: s.kind for s in experiment.steps}
    for step in experiment.steps:
        where = f"step {step.id!r}"
        for key, value in step.spec.items():
            expected = TYPES[step.kind].get(key)
            if expected and not _is(value, expected):
                problems.append(_decontaminate_problem(f"{where}: decontaminate", value) if expected == "decontaminate"
                                else f"{where}: {key}: {_shown(value)} is not {expected}")  # fmt: skip
        if all(_is(step.spec.get(k), t) for k, t in TYPES[step.kind].items() if k in step.spec):
            CHECKS[step.kind](step, kinds, problems, f"{where}: ")


def _check_teacher_server(experiment: Experiment, problems: list[str]) -> None:
    """The values of `teacher_server:` (its keys were checked when the file was read)."""
    server = experiment.teacher_server
    if server is None:
        return
    for key, expected in SERVER_TYPES.items():
        value = getattr(server, key)
        if value is not None and not _is(value, expected):
            problems.append(f"teacher_server: {key}: {_shown(value)} is not {expected}")
    if isinstance(server.alias, str) and not LABEL.fullmatch(server.alias):  # it goes into openai:ALIAS@URL
        problems.append(f"teacher_server: alias: {server.alias!r} is not a model name (letters, digits, '-', '_', '.')")
    if isinstance(server.gguf, str) and server.gguf.startswith("hf:"):
        try:
            parse_hub_file(server.gguf)
        except UserError as e:
            problems.append(f"teacher_server: gguf: {e}")


def _is(value: Any, expected: str) -> bool:
    if expected == _STR:
        return isinstance(value, str)
    if expected == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _BOOL:
        return isinstance(value, bool)
    if expected == _NAMES:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if expected == "a mapping":
        return isinstance(value, dict)
    if expected == "decontaminate":
        return _is_decontaminate(value)
    if expected == "a number":
        return isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    return isinstance(value, int) and not isinstance(value, bool) or value == "auto"


def _shown(value: Any) -> str:
    """A value as the problem line quotes it: one line, not longer than a line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _is_decontaminate(value: Any) -> bool:
    return isinstance(value, bool) or isinstance(value, str) and bool(value.strip(", "))


def _decontaminate_problem(where: str, value: Any) -> str:
    return (f"{where}: {_shown(value)} is neither true/false nor eval suites or tasks as one string "
            "(e.g. decontaminate: gym, or decontaminate: gsm8k,svamp)")  # fmt: skip


def _build(step: Step, kinds: dict[str, str], problems: list[str], where: str) -> None:
    try:
        method = get_method(step.spec["build"])
    except UserError as e:
        problems.append(f"{where}{e}")
        return
    fields = {f.name for f in dataclasses.fields(method.config)}
    for key in (step.spec.get("with") or {}):
        name = str(key).replace("-", "_")
        if name in OWNED["build"]:
            problems.append(f"{where}with: {key!r} is set by the experiment (its builds go to WORKDIR/builds/STEP)")
        elif name not in fields:
            problems.append(f"{where}with: unknown option {key!r} of {method.name}{did_you_mean(name, sorted(fields))}")
    preset = step.spec.get("preset")
    if preset is not None and preset not in method.presets:
        known = ", ".join(sorted(method.presets)) or "none for this method"
        problems.append(f"{where}unknown preset {preset!r}{did_you_mean(preset, list(method.presets))}; known: {known}")
    elif set(map(str, step.spec.get("with") or {})) <= fields:
        _check_values(method, step, problems, where)
    if isinstance(step.spec.get("decontaminate"), str):
        _check_task_names(step.spec["decontaminate"].split(","), f"{where}decontaminate", problems)


def _check_values(method, step: Step, problems: list[str], where: str) -> None:
    """The build's config as the run will make it (each value of its type and range); `{step}`
    references stand as written, as they are strings either way, and `{teacher}` as what it becomes,
    the served teacher's openai spec (a method may ask what kind of backend a role has)."""
    served = {TEACHER: "openai:teacher@http://127.0.0.1:1/v1"}
    flags = {**substitute(step.spec.get("with") or {}, served), "out": "unused", "overwrite": True}
    try:
        resolve_config(method.config, flags=flags, preset=step.spec.get("preset"), presets=method.presets)
    except UserError as e:
        problems.append(f"{where}with: {e}")


def _push(step: Step, kinds: dict[str, str], problems: list[str], where: str) -> None:
    source = step.spec["push"]
    if kinds.get(source) != "build":
        problems.append(f"{where}push: {source!r} is not an earlier build step"
                        f"{did_you_mean(source, [k for k, v in kinds.items() if v == 'build'])}")  # fmt: skip
    name = step.spec.get("name")
    if isinstance(name, str) and not is_repo_id(name):
        problems.append(f"{where}name: {name!r} is not a dataset name; use ORG/NAME with letters, digits, "
                        "'-', '_' or '.'")  # fmt: skip


def _train(step: Step, kinds: dict[str, str], problems: list[str], where: str) -> None:
    try:
        resolve_recipe(step.spec["train"])
    except UserError as e:
        problems.append(f"{where}{e}")
    dataset = step.spec.get("dataset")
    if dataset is None:
        pass  # reported by the parser
    elif dataset in kinds and kinds[dataset] not in ("build", "push"):
        problems.append(f"{where}dataset: {dataset!r} is a {kinds[dataset]} step, not a build or push")
    elif dataset not in kinds and "{" not in dataset and not (Path(dataset).is_dir() or is_repo_id(dataset)):
        problems.append(f"{where}dataset: {dataset!r} is not an earlier step, a folder or an ORG/NAME"
                        f"{did_you_mean(dataset, list(kinds))}")  # fmt: skip
    for key in step.spec.get("set") or {}:
        if str(key).replace("-", "_") in OWNED["train"]:
            problems.append(f"{where}set: {key!r} is set by the experiment (its students go to WORKDIR/models/STEP)")
    for column, value in (step.spec.get("where") or {}).items():  # as `hubtool train --where COLUMN=VALUE`
        if not isinstance(column, str) or not column.strip() or isinstance(value, dict | list) or value is None:
            problems.append(f"{where}where: {_shown(column)}: {_shown(value)} is not COLUMN: VALUE with one value "
                            "(e.g. where: {is_counterfactual: false})")  # fmt: skip


def _eval(step: Step, kinds: dict[str, str], problems: list[str], where: str) -> None:
    s = step.spec
    for label, model in s["eval"].items():
        if not LABEL.fullmatch(str(label)):  # each label is a folder of the eval's results
            problems.append(f"{where}eval: label {_shown(label)} is not a name (letters, digits, '-', '_', '.')")
        if not isinstance(model, str):
            problems.append(f"{where}eval: {label}: {model!r} is not a model name or '{{step}}'")
    if s.get("baseline") is not None and s["baseline"] not in s["eval"]:
        problems.append(f"{where}baseline: {s['baseline']!r} is not one of the labels {', '.join(map(str, s['eval']))}")
    if s.get("filter") is not None and s["filter"] not in FILTERS:
        problems.append(f"{where}filter: {s['filter']!r} is not one of {', '.join(FILTERS)}")
    try:
        eval_backend(s.get("backend", "transformers"))
    except UserError:
        problems.append(f"{where}backend: {s['backend']!r} is not one of {', '.join(EVAL_BACKENDS)} (or hf)")
    _check_judge(s, problems, where)
    names = [*s.get("tasks", []), *s.get("suites", [])]
    if not names:
        problems.append(f"{where}give `tasks:` or `suites:` (here or in the experiment's `eval:`)")
    _check_task_names(names, f"{where}eval", problems)
    _check_task_names(s.get("in_domain") or [], f"{where}in_domain", problems)


def _check_judge(s: dict, problems: list[str], where: str) -> None:
    """The judge as `hubtool eval --judge` takes it (BACKEND:MODEL), checked as `run_eval` will."""
    if s.get("judge") is not None:
        try:
            parse_teacher_spec(s["judge"])
        except UserError as e:
            problems.append(f"{where}judge: {e}")
    if s.get("judge_max_new_tokens", 1) < 1:
        problems.append(f"{where}judge_max_new_tokens: {s['judge_max_new_tokens']} is not at least 1")


CHECKS = {"build": _build, "push": _push, "train": _train, "eval": _eval}


def _check_task_names(names: list[str], where: str, problems: list[str]) -> None:
    """Every name a suite or a task that `hubtool eval` knows."""
    suites, tasks = _catalog()
    for name in (n.strip() for n in names if n.strip()):
        if name.removeprefix(PREFIX) not in suites and name not in tasks and PREFIX + name not in tasks:
            short = [*suites, *(t.removeprefix(PREFIX) for t in tasks)]
            problems.append(f"{where}: {name!r} is no eval suite or task{did_you_mean(name, short)}")


@functools.cache
def _catalog() -> tuple[frozenset[str], frozenset[str]]:
    catalog = tasks_mod.catalog(tasks_mod.task_manager(extra=eval_task_dirs()))
    return frozenset(catalog.suites), frozenset(catalog.tasks)


def check_recipes(experiment: Experiment) -> None:
    """Each train step's recipe with its `set:` values, parsed by TRL as `train` will (unknown keys,
    bad values) before any step runs. Apart from `load_experiment` because TRL takes seconds to import."""
    problems = []
    for step in (s for s in experiment.steps if s.kind == "train"):
        placeholders = {ref: f"{ref}-output" for ref in step.refs}
        sets = {k: flag_text(v) for k, v in substitute(step.spec.get("set") or {}, placeholders).items()}
        # the keys and values, not this machine: the builds may run here and the training on a GPU box
        sets |= {"dataset_name": "experiment/placeholder", "load_in_4bit": "false", "load_in_8bit": "false"}
        try:
            with _quiet("toolkit.training.recipe"):  # its "no CUDA GPU" notice belongs to the train step
                load_recipe(step.spec["train"], sets, output_dir="unused")
        except UserError as e:
            problems.append(f"step {step.id!r}: {e}")
    raise_problems(experiment.path, problems)


def flag_text(value: Any) -> str:
    """A `set:` value as `--set KEY=VALUE` writes it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


@contextlib.contextmanager
def _quiet(logger: str):
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)
