"""Run an experiment: each step once, again only when something it depends on changed.

A step's inputs are its own settings (with `{step}` references resolved) and the fingerprints of
the outputs it reads. `WORK/state.json` records, per step, the inputs it last ran with and the
fingerprint of what it produced; a step whose inputs and output are unchanged is skipped. A killed
run starts again at the step it was in (a build resumes from the call cache as always), and
changing one setting re-runs that step and, when its output changes, the steps downstream.

    WORK/builds/<step>/   run directories      WORK/models/<step>/   students
    WORK/evals/<step>/    lm-eval results      WORK/report/          the experiment's report
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from toolkit.builders.config import resolve_config
from toolkit.builders.engine import build_dataset
from toolkit.errors import UserError, did_you_mean
from toolkit.evaluate.run import EvalOptions, run_eval
from toolkit.experiments.check import check_recipes, flag_text, load_experiment
from toolkit.experiments.export import export_results
from toolkit.experiments.report import write_experiment_report
from toolkit.experiments.spec import TEACHER, Experiment, Step, substitute
from toolkit.hub import push, resolve_dataset
from toolkit.methods import find_method, get_method
from toolkit.paths import MERGED
from toolkit.redact import redact
from toolkit.rundir import atomic_write, read_manifest
from toolkit.teachers.serve import (
    GGUF_DIR_ENV,
    TeacherOnDemand,
    TeacherServer,
    gguf_sha256,
    parse_hub_file,
    resolve_gguf,
    stable_port,
)
from toolkit.training import load_recipe, train
from toolkit.training.recipe import resolve_recipe

log = logging.getLogger(__name__)
STATE = "state.json"


@dataclass
class Plan:
    """What a run did (or, dry, would do): step id -> "run" | "skip" | "run after upstream"."""

    actions: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    report: Path | None = None


def run_experiment(path: str | Path, *, workdir: str | Path | None = None, dry_run: bool = False,
                   rerun: Sequence[str] = (), echo=print, results: str | Path | None = None) -> Plan:  # fmt: skip
    """Run the steps whose inputs changed; `rerun` names steps to run again regardless (after a hubtool
    upgrade, say); the steps that read their outputs follow when those outputs changed. The
    experiment's `teacher_server:` is started when the first step that reads `{teacher}` runs and
    stopped after the last one, or when the run ends, fails or is interrupted. `results`: a folder that
    gets the report, cards and records after every step that runs (toolkit.experiments.export)."""
    experiment = load_experiment(path)
    check_recipes(experiment)
    names = [step.id for step in experiment.steps]
    for name in rerun:
        if name not in names:
            raise UserError(f"--rerun {name}: no such step in {path}{did_you_mean(name, names)}; "
                            f"steps: {', '.join(names)}")  # fmt: skip
    work = Path(workdir or Path("runs") / "experiments" / experiment.name)
    echo = _masked(echo)
    plan = Plan()
    state = _read_state(work)
    with contextlib.ExitStack() as stack:
        teacher = stack.enter_context(TeacherOnDemand(experiment.teacher_server)) if experiment.teacher_server else None
        if dry_run and teacher is not None:
            echo(describe_teacher(teacher))
        record = None if dry_run or results is None else partial(_record, experiment, plan, state, work, Path(results))
        _run_steps(experiment, plan, state, work, _Run(dry_run, set(rerun), echo, teacher, record))
    if not dry_run:
        plan.report = write_experiment_report(experiment, plan.outputs, state, work / "report")
        echo(f"report: {plan.report}")
        if results is not None:
            export_results(experiment, plan.outputs, work, plan.report, Path(results))
            echo(f"results: {results}")
    return plan


def _record(experiment: Experiment, plan: Plan, state: dict[str, Any], work: Path, results: Path) -> None:
    """After a step ran: the report so far, and the results folder (a run stopped later keeps this)."""
    report = write_experiment_report(experiment, plan.outputs, state, work / "report")
    export_results(experiment, plan.outputs, work, report, results)


@dataclass
class _Run:
    dry_run: bool
    rerun: set[str]
    echo: Any
    teacher: TeacherOnDemand | None  # the experiment's teacher_server, `{teacher}`
    record: Any = None  # called after every step that ran (--results)


def _run_steps(experiment: Experiment, plan: Plan, state: dict[str, Any], work: Path, run: _Run) -> None:
    changed: set[str] = set()  # steps that ran (or would run) in this pass
    for i, step in enumerate(experiment.steps):
        teacher_fp = _teacher_fingerprint(run, step)
        inputs = _inputs(step, plan.outputs, state, teacher_fp)
        previous = state.get(step.id, {})
        output = previous.get("output")
        upstream_runs = run.dry_run and any(r in changed for r in step.refs)  # its inputs are not known yet
        rebuild = work / "builds" / step.id if step.id in run.rerun and not run.dry_run else None
        same = previous.get("inputs") == inputs and output is not None  # else it runs: no need to look
        current = _fingerprint_output(step, output, rebuild=rebuild) if same else None
        fresh = current is not None and current == previous.get("output_fp") and _files_unchanged(step, output, previous)
        if fresh and not upstream_runs and step.id not in run.rerun:
            plan.actions[step.id] = "skip"
            plan.outputs[step.id] = output
            run.echo(f"[{step.id}] {step.kind}: up to date, skipped")
            continue
        changed.add(step.id)
        if run.dry_run:
            plan.actions[step.id] = "run if its inputs change" if fresh and step.id not in run.rerun else "run"
            plan.outputs[step.id] = output or _planned_output(step, work)
            run.echo(f"[{step.id}] {step.kind}: {plan.actions[step.id]}  {_describe(step)}")
            continue
        run.echo(f"[{step.id}] {step.kind}: running  {_describe(step)}")
        output = EXECUTE[step.kind](experiment, step, _with_teacher(step, plan.outputs, run), work)
        plan.actions[step.id] = "run"
        plan.outputs[step.id] = output
        state[step.id] = {"inputs": _inputs(step, plan.outputs, state, teacher_fp), "output": output,
                          "output_fp": _fingerprint_output(step, output), "files": _files(step, output)}  # fmt: skip
        _write_state(work, state)
        if run.record is not None:
            run.record()
        if run.teacher is not None and run.teacher.served and not any(s.uses_teacher for s in experiment.steps[i + 1:]):
            run.teacher.__exit__(None, None, None)  # the steps left (training, evals) get its CPU and memory
            run.echo(f"teacher_server: stopped (no later step reads {{{TEACHER}}})")


# -- the served teacher ---------------------------------------------------------------------------------
def _teacher_fingerprint(run: _Run, step: Step) -> str | None:
    """What `{teacher}` means to a step's fingerprint: the weights file by its sha256, not the URL,
    whose port may differ run to run. No server is started for it. A dry run downloads nothing: a
    Hub file not on this machine yet leaves the step's inputs unknown (None: it runs)."""
    if not step.uses_teacher or run.teacher is None:
        return None
    if run.dry_run and not _on_this_machine(run.teacher.server):
        return None
    return run.teacher.fingerprint


def _with_teacher(step: Step, outputs: dict[str, str], run: _Run) -> dict[str, str]:
    """The outputs a step substitutes, with `{teacher}` as the served teacher's spec (started now
    if this is the first step that reads it)."""
    if not step.uses_teacher or run.teacher is None:
        return outputs
    if run.teacher.served is None:
        run.echo(f"teacher_server: starting {run.teacher.server.gguf} for step {step.id!r}")
    spec = run.teacher.spec
    return {**outputs, TEACHER: spec}


def _on_this_machine(server: TeacherServer) -> bool:
    """The GGUF file is here (a path, $HUBTOOL_GGUF_DIR, the HF cache): resolving it downloads nothing."""
    if server.path or not server.gguf.startswith("hf:"):
        return True  # a local file: resolving it says what is wrong with it
    repo, filename = parse_hub_file(server.gguf)
    folder = os.environ.get(GGUF_DIR_ENV)
    if folder and (Path(folder).expanduser() / Path(filename).name).is_file():
        return True
    from huggingface_hub import try_to_load_from_cache  # only for a Hub GGUF (its HTTP client ~75 ms)

    return isinstance(try_to_load_from_cache(repo, filename, revision=server.revision), str)


def describe_teacher(teacher: TeacherOnDemand) -> str:
    """The dry run's line for `teacher_server:`: what `{teacher}` becomes, and which file serves it."""
    server = teacher.server
    here = _on_this_machine(server)
    file = resolve_gguf(server) if here else Path(parse_hub_file(server.gguf)[1])
    alias = server.alias or file.stem
    sha = gguf_sha256(file) if here else None  # hashed once per file (remembered by path, size, mtime)
    port = server.port or (stable_port(sha) if sha else "PORT")
    spec = f"transformers:{file}" if server.backend == "transformers" else f"openai:{alias}@http://127.0.0.1:{port}/v1"
    where = (f"{file.name}, sha256 {sha[:12]}" if sha else f"{file.name}, not on this machine: the run downloads it "
             f"from {parse_hub_file(server.gguf)[0]} (offline: give path: or $HUBTOOL_GGUF_DIR)")  # fmt: skip
    return (f"teacher_server: {{{TEACHER}}} = {spec} ({server.backend} serving {where}); started when a step "
            "that reads it runs")  # fmt: skip


# -- fingerprints -------------------------------------------------------------------------------------
def _inputs(step: Step, outputs: dict[str, str], state: dict[str, Any], teacher: str | None = None) -> str:
    resolved = substitute(step.spec, {**outputs, TEACHER: teacher} if teacher else outputs)
    upstream = {ref: state.get(ref, {}).get("output_fp") for ref in step.refs}
    blob = json.dumps({"kind": step.kind, "spec": resolved, "upstream": upstream}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _fingerprint_output(step: Step, output: str, *, rebuild: Path | None = None) -> str | None:
    """What a step produced, as a hash that changes when it does; None when it is gone or damaged."""
    if step.kind == "push":
        try:
            return resolve_dataset(output).fingerprint
        except UserError:
            return None
    path = Path(output)
    name = {"build": "manifest.json", "train": "hubtool_train.json", "eval": "scores.json"}[step.kind]
    if not (path / name).is_file():
        return None
    if step.kind == "build":
        return _build_fingerprint(step, path, rebuild)
    return hashlib.sha256((path / name).read_bytes()).hexdigest()


def _build_fingerprint(step: Step, path: Path, rebuild: Path | None) -> str | None:
    """The data file's name and rows, once its bytes are checked against the hash in its name (a
    deleted or damaged data file makes the build run again, not "up to date"). A build with a
    damaged manifest is removed when `rebuild` is its folder (--rerun STEP), else a one-line error."""

    try:
        manifest = read_manifest(path)
    except UserError:
        if rebuild is None or path.resolve() != rebuild.resolve():
            raise UserError(f"{path / 'manifest.json'} is corrupt; run again with --rerun {step.id} to rebuild "
                            "that step (finished teacher calls are cached)") from None  # fmt: skip
        shutil.rmtree(path)  # the experiment's own build folder, rebuilt from the call cache
        return None
    if manifest.status != "complete" or not manifest.data_file:
        return None
    data = path / manifest.data_file
    named = data.stem.removeprefix("train-")  # `data_file_name`: the content's hash (older builds: none)
    if not data.is_file() or (len(named) == 16 and _sha256(data)[:16] != named):
        return None
    return f"{manifest.data_file}:{manifest.rows}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(step: Step, output: str) -> str | None:
    """Every file of a train or eval output by name, size and mtime: a deleted or replaced weight
    file or sample file is noticed without hashing gigabytes (a build's data is hashed instead).
    A student's `merged/` is left out: using a LoRA student writes it there, and rewrites it when
    it is missing or stale (toolkit.training.model)."""
    path = Path(output)
    if step.kind not in ("train", "eval") or not path.is_dir():
        return None
    listing = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                     for p in path.rglob("*") if p.is_file() and p.relative_to(path).parts[0] != MERGED)  # fmt: skip
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def _files_unchanged(step: Step, output: str | None, previous: dict[str, Any]) -> bool:
    # a state written before files were recorded has none: trusted as before
    return previous.get("files") is None or _files(step, output or "") == previous["files"]


def _read_state(work: Path) -> dict[str, Any]:
    """The state of an earlier run; a damaged file is one line that says how to start over."""
    path = work / STATE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        problem = _state_problem(state)
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        problem = f"not readable JSON ({' '.join(str(e).split())[:80]})"
    if problem:
        raise UserError(f"{path} is damaged ({problem}); delete it to run every step again, or pass another "
                        "--workdir")  # fmt: skip
    return state


def _state_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a mapping of steps"
    for step_id, entry in state.items():
        if not isinstance(entry, dict):
            return f"step {step_id!r} holds a {type(entry).__name__}"
        for key in ("inputs", "output", "output_fp", "files"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                return f"step {step_id!r}: {key} is a {type(entry[key]).__name__}"
    return None


def _write_state(work: Path, state: dict[str, Any]) -> None:
    atomic_write(work / STATE, redact(json.dumps(state, indent=2)).encode())


def _masked(echo):
    return lambda line: echo(redact(line))


def _planned_output(step: Step, work: Path) -> str:
    if step.kind == "push":
        return str(step.spec["name"])
    return str(work / {"build": "builds", "train": "models", "eval": "evals"}[step.kind] / step.id)


def _describe(step: Step) -> str:
    s = step.spec
    return {"build": lambda: f"{s['build']}" + (f" --preset {s['preset']}" if s.get("preset") else ""),
            "push": lambda: f"{s['push']} -> {s['name']}",
            "train": lambda: f"{s['train']} on {s['dataset']}" + (f" from {s['model']}" if s.get("model") else "")
                             + "".join(f" where {k}={flag_text(v)}" for k, v in (s.get("where") or {}).items()),
            "eval": lambda: ", ".join(f"{k}={v}" for k, v in s["eval"].items())}[step.kind]()  # fmt: skip


# -- the four kinds of step -----------------------------------------------------------------------------
def _build(experiment: Experiment, step: Step, outputs: dict[str, str], work: Path) -> str:
    method = get_method(step.spec["build"])
    flags = dict(substitute(step.spec.get("with") or {}, outputs))
    out = work / "builds" / step.id
    flags.update(out=str(out), overwrite=True)  # the experiment owns its run directories
    against = step.spec.get("decontaminate", experiment.decontaminate)
    if against and "decontaminate" not in flags:
        names = [*experiment.eval.get("tasks", []), *experiment.eval.get("suites", [])]
        flags["decontaminate"] = against if isinstance(against, str) else ",".join(names) or None
        if experiment.eval.get("data_dir") and "eval_data_dir" not in flags:
            flags["eval_data_dir"] = str(experiment.eval["data_dir"])
    config, preset, values = resolve_config(method.config, flags=flags, preset=step.spec.get("preset"),
                                            presets=method.presets)  # fmt: skip
    manifest = build_dataset(config, method=method, preset=preset, preset_values=values)
    if not manifest.rows:
        raise UserError(f"step {step.id!r} built no rows ({manifest.counts}); the steps after it need data")
    return str(out)


def _push(experiment: Experiment, step: Step, outputs: dict[str, str], work: Path) -> str:
    s = step.spec
    run_dir = outputs[s["push"]]
    push(run_dir, s["name"], method=find_method(read_manifest(run_dir).method), hub=bool(s.get("hub")),
         private=bool(s.get("private")), license=s.get("license"))  # fmt: skip
    return str(s["name"])


def _train(experiment: Experiment, step: Step, outputs: dict[str, str], work: Path) -> str:
    s = step.spec
    sets = {k: flag_text(v) for k, v in substitute(s.get("set") or {}, outputs).items()}  # as check_recipes does
    sets["dataset_name"] = outputs.get(s["dataset"], substitute(s["dataset"], outputs))
    if s.get("model"):
        sets["model_name_or_path"] = outputs.get(s["model"], substitute(s["model"], outputs))
    out = work / "models" / step.id
    where = {str(k): flag_text(v) for k, v in (s.get("where") or {}).items()}  # as --where COLUMN=VALUE gives it
    train(load_recipe(recipe_path(s["train"]), sets, output_dir=out), merge=bool(s.get("merge")), where=where or None)
    return str(out)


def _eval(experiment: Experiment, step: Step, outputs: dict[str, str], work: Path) -> str:
    s = substitute(step.spec, outputs)
    out = work / "evals" / step.id
    options = EvalOptions(backend=s.get("backend", "transformers"), base_url=s.get("base_url"), limit=s.get("limit"),
                          num_fewshot=s.get("num_fewshot"), batch_size=s.get("batch_size", 8),
                          max_gen_toks=s.get("max_gen_toks"), in_domain=s.get("in_domain"),
                          data_dir=Path(s["data_dir"]) if s.get("data_dir") else None, judge=s.get("judge"),
                          **{k: s[k] for k in ("judge_max_new_tokens",) if k in s})  # fmt: skip
    labels = list(s["eval"])
    earlier = [work / "evals" / e.id for e in experiment.steps if e.kind == "eval" and e.id != step.id]
    run_eval([str(m) for m in s["eval"].values()], out, suites=s.get("suites", []), tasks=s.get("tasks", []),
             options=options, labels=labels, reuse=earlier)  # a model another eval step scored alike is not run again
    return str(out)


EXECUTE = {"build": _build, "push": _push, "train": _train, "eval": _eval}


def recipe_path(name: str) -> Path:
    """A recipe file, or a short name (`cot/smollm2-135m-lora`) of a shipped recipe."""
    return resolve_recipe(name)
