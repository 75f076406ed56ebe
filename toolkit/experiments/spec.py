"""Experiment files: a paper's chain of steps, declared once.

    name: cpu-smoke
    about: what it shows
    eval:                      # defaults for every eval step; builds are decontaminated against its tasks
      tasks: [gym_chain_sum, gym_basic_arithmetic]
      in_domain: [gym_chain_sum]
      limit: 50
    steps:                     # run in order; a step names earlier steps' outputs as {step}
      cot:   {build: cot, preset: ranaldi-eacl24, with: {source: "gym:chain_sum", limit: 200}}
      data:  {push: cot, name: me/chain-sum-cot}
      sft:   {train: cot/smollm2-135m-lora, dataset: data, set: {max_steps: 100}}
      eval:  {eval: {base: smollm2-135m, sft: "{sft}"}}

Outputs: a build is its run directory, a push the dataset name, a train the student folder, an eval
its results folder. `with`, `set` and eval models may hold `{step}` anywhere in a string; `push`,
`dataset` and `model` may name a step directly.

A teacher hubtool serves itself (toolkit/teachers/serve.py) is named once, at the top, and is
`{teacher}` in any string of a step; the runner starts it when a step that reads it runs:

    teacher_server: {gguf: "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                     alias: qwen-coder-1.5b, threads: 2}
    steps:
      cot: {build: cot, with: {source: "gym:chain_sum", teacher: "{teacher}"}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import UserError, did_you_mean
from toolkit.teachers.serve import TeacherServer

Kind = Literal["build", "push", "train", "eval"]
KINDS: tuple[str, ...] = ("build", "push", "train", "eval")
KEYS: dict[str, set[str]] = {
    "build": {"build", "with", "preset", "decontaminate"},
    "push": {"push", "name", "hub", "private", "license"},
    "train": {"train", "dataset", "model", "set", "merge", "where"},
    "eval": {"eval", "tasks", "suites", "limit", "max_gen_toks", "in_domain", "batch_size", "num_fewshot",
             "data_dir", "backend", "base_url", "baseline", "filter", "judge", "judge_max_new_tokens"},
}  # fmt: skip
EVAL_DEFAULTS = KEYS["eval"] - {"eval"}
_REF = re.compile(r"\{([A-Za-z0-9_-]+)\}")
NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")  # step ids and experiment names: they become folder names
TOP_KEYS = ("name", "about", "eval", "steps", "decontaminate", "teacher_server")
TEACHER = "teacher"  # `{teacher}`: the experiment's teacher_server; no step may take the name


@dataclass(frozen=True)
class Step:
    id: str
    kind: Kind
    spec: dict[str, Any]  # the step's mapping as written, eval defaults merged in
    refs: tuple[str, ...] = ()  # the earlier steps it reads, in the order they appear
    uses_teacher: bool = False  # it says `{teacher}` somewhere


@dataclass(frozen=True)
class Experiment:
    name: str
    about: str
    path: Path
    steps: list[Step]
    eval: dict[str, Any] = field(default_factory=dict)
    # builds leave out the questions of the experiment's eval tasks (True), of the suites or tasks
    # named (a string, as --decontaminate takes it), or nothing (False)
    decontaminate: bool | str = True
    teacher_server: TeacherServer | None = None  # `{teacher}`, served by hubtool while steps need it

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def raise_problems(path: Path, problems: list[str]) -> None:
    """One UserError listing every problem, one line each (none: nothing)."""
    if len(problems) == 1:
        raise UserError(f"experiment {path}: {problems[0]}; nothing was run")
    if problems:
        raise UserError(f"experiment {path} has {len(problems)} problems; nothing was run:\n"
                        + "\n".join(f"  {p}" for p in problems))  # fmt: skip


def parse_experiment(path: Path, data: Any, problems: list[str]) -> Experiment | None:
    """The experiment `data` declares (None when it has no steps), each problem found added to `problems`."""
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict) or not data["steps"]:
        problems.append("needs a `steps:` mapping (step id -> step)")
        return None
    for key in sorted(set(map(str, data)) - set(TOP_KEYS)):
        problems.append(f"unknown key {key!r}{did_you_mean(key, TOP_KEYS)}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        given = "name:" if "name" in data else "give `name:`; the file's name"
        problems.append(f"{given} {name!r} is not a name (letters, digits, '-', '_'); it names the run's folder")
    about = data.get("about") or ""
    if not isinstance(about, str):
        problems.append("about: is text")
    defaults = data.get("eval") or {}
    if not isinstance(defaults, dict) or set(defaults) - EVAL_DEFAULTS:
        problems.append(f"`eval:` takes {', '.join(sorted(EVAL_DEFAULTS))}")
        defaults = {}
    against = data.get("decontaminate", True)
    server = _teacher_server(data, problems)
    steps: list[Step] = []
    for step_id, raw in data["steps"].items():
        step = _step(str(step_id), raw, defaults, [s.id for s in steps], problems)
        if step is not None:
            steps.append(step)
            if step.uses_teacher and data.get("teacher_server") is None:
                problems.append(f"step {step.id!r}: {{{TEACHER}}} names the experiment's teacher, but the file has "
                                "no `teacher_server: {gguf: hf:ORG/NAME/FILE.gguf}`")  # fmt: skip
    return Experiment(str(name), str(about), path, steps, defaults, against, server)


def _teacher_server(data: dict, problems: list[str]) -> TeacherServer | None:
    """The `teacher_server:` mapping as serve.py reads it (nothing is downloaded or started here)."""
    if data.get("teacher_server") is None:
        return None
    try:
        return TeacherServer.from_config(data["teacher_server"])
    except UserError as e:
        problems.append(str(e))
        return None


def _step(step_id: str, raw: Any, defaults: dict, earlier: list[str], problems: list[str]) -> Step | None:
    where = f"step {step_id!r}"
    if not NAME.fullmatch(step_id):
        problems.append(f"{where}: a step id is a name (letters, digits, '-', '_'); it names the step's folder")
        return None
    if step_id == TEACHER:
        problems.append(f"{where}: the id is taken by {{{TEACHER}}}, the experiment's teacher_server; rename the step")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{where}: a step is a mapping with one of {', '.join(KINDS)}")
        return None
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        problems.append(f"{where}: give exactly one of {', '.join(KINDS)}")
        return None
    kind = kinds[0]
    for key in sorted(set(map(str, raw)) - KEYS[kind]):
        problems.append(f"{where}: unknown key {key!r}{did_you_mean(key, sorted(KEYS[kind]))}")
    spec = {**defaults, **raw} if kind == "eval" else dict(raw)
    if kind == "eval" and (not isinstance(spec["eval"], dict) or not spec["eval"]):
        problems.append(f"{where}: `eval:` maps report labels to models, e.g. {{base: smollm2-135m, sft: '{{sft}}'}}")
    if kind == "push" and not spec.get("name"):
        problems.append(f"{where}: a push needs `name: ORG/NAME`")
    if kind == "train" and not spec.get("dataset"):
        problems.append(f"{where}: a train step needs `dataset:` (a push step, or a dataset name)")
    refs = [m for value in _strings(spec) for m in _REF.findall(value)]
    for ref in dict.fromkeys(refs):
        if ref not in earlier and ref != TEACHER:
            problems.append(f"{where}: {{{ref}}} is not an earlier step{did_you_mean(ref, earlier)}")
    # `dataset:` and `model:` name an earlier step, or else a dataset / model as hubtool resolves it
    refs += [spec[k] for k in ("push", "dataset", "model") if isinstance(spec.get(k), str) and spec[k] in earlier]
    return Step(step_id, kind, spec, tuple(r for r in dict.fromkeys(refs) if r in earlier),  # type: ignore[arg-type]
                TEACHER in refs)


def _strings(value: Any):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def substitute(value: Any, outputs: dict[str, str]) -> Any:
    """`{step}` -> that step's output, everywhere in a value."""
    if isinstance(value, str):
        return _REF.sub(lambda m: outputs.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: substitute(v, outputs) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, outputs) for v in value]
    return value
