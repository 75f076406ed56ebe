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
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolkit.errors import UserError, did_you_mean

Kind = Literal["build", "push", "train", "eval"]
KINDS: tuple[str, ...] = ("build", "push", "train", "eval")
KEYS: dict[str, set[str]] = {
    "build": {"build", "with", "preset", "decontaminate"},
    "push": {"push", "name", "hub", "private", "license"},
    "train": {"train", "dataset", "model", "set", "merge"},
    "eval": {"eval", "tasks", "suites", "limit", "max_gen_toks", "in_domain", "batch_size", "num_fewshot",
             "data_dir", "backend", "base_url", "baseline", "filter"},
}  # fmt: skip
EVAL_DEFAULTS = KEYS["eval"] - {"eval"}
_REF = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class Step:
    id: str
    kind: Kind
    spec: dict[str, Any]  # the step's mapping as written, eval defaults merged in
    refs: tuple[str, ...] = ()  # the earlier steps it reads, in the order they appear


@dataclass(frozen=True)
class Experiment:
    name: str
    about: str
    path: Path
    steps: list[Step]
    eval: dict[str, Any] = field(default_factory=dict)
    decontaminate: bool = True  # builds leave out the questions of the experiment's eval tasks

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file: every step of a known kind, every reference to an earlier step."""
    from toolkit.builders.config import read_yaml

    path = Path(path)
    data = read_yaml(path, "experiment")
    if not isinstance(data, dict) or not isinstance(data.get("steps"), dict) or not data["steps"]:
        raise UserError(f"experiment {path} needs a `steps:` mapping (step id -> step)")
    unknown = set(data) - {"name", "about", "eval", "steps", "decontaminate"}
    if unknown:
        raise UserError(f"experiment {path}: unknown key(s) {', '.join(sorted(unknown))}")
    defaults = data.get("eval") or {}
    if not isinstance(defaults, dict) or set(defaults) - EVAL_DEFAULTS:
        raise UserError(f"experiment {path}: `eval:` takes {', '.join(sorted(EVAL_DEFAULTS))}")
    steps: list[Step] = []
    for step_id, raw in data["steps"].items():
        steps.append(_step(path, str(step_id), raw, defaults, [s.id for s in steps]))
    return Experiment(str(data.get("name") or path.stem), str(data.get("about") or ""), path, steps, defaults,
                      bool(data.get("decontaminate", True)))  # fmt: skip


def _step(path: Path, step_id: str, raw: Any, defaults: dict, earlier: list[str]) -> Step:
    where = f"experiment {path}, step {step_id!r}"
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a step is a mapping with one of {', '.join(KINDS)}")
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise UserError(f"{where}: give exactly one of {', '.join(KINDS)}")
    kind = kinds[0]
    unknown = set(raw) - KEYS[kind]
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key {key!r}{did_you_mean(key, sorted(KEYS[kind]))}")
    spec = {**defaults, **raw} if kind == "eval" else dict(raw)
    if kind == "eval" and (not isinstance(spec["eval"], dict) or not spec["eval"]):
        raise UserError(f"{where}: `eval:` maps report labels to models, e.g. {{base: smollm2-135m, sft: '{{sft}}'}}")
    if kind == "push" and not spec.get("name"):
        raise UserError(f"{where}: a push needs `name: ORG/NAME`")
    if kind == "train" and not spec.get("dataset"):
        raise UserError(f"{where}: a train step needs `dataset:` (a push step, or a dataset name)")
    refs = [m for value in _strings(spec) for m in _REF.findall(value)]
    for ref in refs:
        if ref not in earlier:
            raise UserError(f"{where}: {{{ref}}} is not an earlier step{did_you_mean(ref, earlier)}")
    if kind == "push" and spec["push"] not in earlier:
        raise UserError(f"{where}: push: {spec['push']!r} is not an earlier build step{did_you_mean(str(spec['push']), earlier)}")
    # `dataset:` and `model:` name an earlier step, or else a dataset / model as hubtool resolves it
    refs += [spec[k] for k in ("push", "dataset", "model") if isinstance(spec.get(k), str) and spec[k] in earlier]
    return Step(step_id, kind, spec, tuple(dict.fromkeys(refs)))  # type: ignore[arg-type]


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
