"""Which lm-eval tasks exist (eval_tasks/), what the suites hold, and how a selection is loaded.

The benchmarks are defined once, in the sources catalogue (`toolkit.sources.catalogue`), and
eval_tasks/generate_tasks.py writes the task YAML from it. `catalog` is no second table: it reads what
the YAML on disk defines (through lm-eval's index, so tasks added by hand or under $HUBTOOL_EVAL_TASKS
count too): suites are the `hubtool_*` groups, and a group's `metadata.in_domain` names the tasks a
student of that suite was trained on. Here among the sources, below evaluation, because builds read it
too: decontamination indexes the questions of these tasks.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import UserError, did_you_mean
from toolkit.resources import resource_dir

log = logging.getLogger(__name__)

PREFIX = "hubtool_"
# The variants eval_tasks/generate_tasks.py writes beside each benchmark task (it reads them here):
# hubtool_<name>_maj<k>, k sampled paths and one majority answer, and hubtool_<name>_<suffix>, asked
# with that shipped student prompt. A variant scores its benchmark's documents (see benchmark_of).
MAJ_K = (8,)
PROMPT_VARIANTS = {"ranaldi": "ranaldi-cot"}  # suffix -> prompt template
_VARIANT = re.compile(r"_(?:maj\d+|" + "|".join(PROMPT_VARIANTS) + r")$")
Reprompt = Callable[[dict[str, Any]], dict[str, Any]]  # a task config -> the same task asked with another prompt


def tasks_dir() -> Path:
    """eval_tasks/: `$HUBTOOL_EVAL_TASKS`, else the copy shipped with hubtool (see toolkit.resources)."""
    path = resource_dir("eval_tasks")
    if not (path / "_common" / "utils.py").is_file():
        raise UserError(
            f"no hubtool eval tasks at {path} (no _common/utils.py); point HUBTOOL_EVAL_TASKS at a copy of "
            "hubtool's eval_tasks/ folder, or unset it"
        )
    return path


class _NoMetadataHint(logging.Filter):
    """lm-eval warns, each time a task whose documents come from a function is loaded, that kwargs can
    be passed with `--metadata` (giving RULER's max_seq_lengths as the example): hubtool's gym and
    local-file tasks take none, so the four-line hint per task is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "can be passed to `--metadata`" not in record.getMessage()


def task_dirs(extra: Sequence[Path] = ()) -> list[Path]:
    """What is indexed: eval_tasks/, and the `extra` folders outside it (a method's own task folders)."""
    root = tasks_dir()
    return [root, *dict.fromkeys(d for d in extra if not d.resolve().is_relative_to(root.resolve()))]


def task_manager(metadata: dict[str, Any] | None = None, extra: Sequence[Path] = ()):
    """lm-eval's TaskManager over `task_dirs(extra)` only (lm-eval's own ~10k tasks are not indexed:
    fast). `extra`: the task folders methods bring in their own packages (`toolkit.methods.eval_task_dirs`,
    which evaluation passes; the catalogue sits below the methods and does not look them up)."""
    from lm_eval.tasks import TaskManager  # lm-eval is slow to import: only when tasks are listed

    task_log = logging.getLogger("lm_eval.api.task")
    if not any(isinstance(f, _NoMetadataHint) for f in task_log.filters):
        task_log.addFilter(_NoMetadataHint())
    return TaskManager(include_path=[str(d) for d in task_dirs(extra)], include_defaults=False, metadata=metadata)


def benchmark_of(task: str) -> str:
    """hubtool_gsm8k_maj8, hubtool_gsm8k_ranaldi -> gsm8k: the name of the data behind a task."""
    return _VARIANT.sub("", task.removeprefix(PREFIX))


@dataclass(frozen=True, slots=True)
class Catalog:
    """What eval_tasks/ defines: leaf tasks, suites (group name without prefix -> tasks), in-domain sets."""

    tasks: tuple[str, ...]
    suites: dict[str, tuple[str, ...]]
    in_domain: dict[str, tuple[str, ...]]
    by_default: frozenset[str] = frozenset()  # suites whose in-domain tasks count when no suite is named

    def default_in_domain(self, suites: list[str] | tuple[str, ...] = ()) -> set[str]:
        """The in-domain tasks of the suites named, or with none named, of every suite that says so
        (the papers' groups, where each benchmark is in-domain for some student, apply only by name)."""
        chosen = [s.removeprefix(PREFIX) for s in suites] or sorted(self.by_default)
        return {task for suite in chosen for task in self.in_domain.get(suite, ())}


def catalog(manager) -> Catalog:
    from lm_eval.tasks._index import Kind  # lm-eval: loaded by task_manager already

    index = manager.task_index
    leaf = (Kind.TASK, Kind.PY_TASK)  # a YAML task, or one with a Python `class:` (e.g. two requests per document)
    tasks = tuple(sorted(n for n, e in index.items() if e.kind in leaf and n.startswith(PREFIX)))
    suites, in_domain, by_default = {}, {}, set()
    for name, entry in sorted(index.items()):
        if entry.kind == Kind.GROUP and name.startswith(PREFIX):
            suite = name.removeprefix(PREFIX)
            metadata = entry.cfg.get("metadata") or {}
            suites[suite] = tuple(_leaves(index, name))
            in_domain[suite] = tuple(metadata.get("in_domain") or ())
            if metadata.get("default_in_domain", True):
                by_default.add(suite)
    return Catalog(tasks, suites, in_domain, frozenset(by_default))


def _leaves(index, name: str) -> list[str]:
    """A group's leaf tasks, in order, through nested groups and tags."""
    from lm_eval.tasks._index import Kind  # lm-eval: loaded by task_manager already

    entry = index[name]
    if entry.kind == Kind.GROUP:
        members = entry.cfg.get("task") or []
        members = [m if isinstance(m, str) else m.get("task") or m.get("group") for m in members]
        return [leaf for member in members for leaf in _leaves(index, member)]
    if entry.kind == Kind.TAG:
        return sorted(entry.tags)
    return [name]


def select_tasks(cat: Catalog, suites: list[str], tasks: list[str]) -> list[str]:
    """The leaf tasks named by suites and task names (a task may omit the hubtool_ prefix)."""
    if not suites and not tasks:
        raise UserError(f"choose what to evaluate: --suite ({', '.join(cat.suites)}) or --tasks a,b")
    chosen: list[str] = []
    for suite in suites:
        if suite.removeprefix(PREFIX) not in cat.suites:
            hint = did_you_mean(suite, list(cat.suites))
            raise UserError(f"unknown suite {suite!r}{hint}; suites: {', '.join(cat.suites)}")
        chosen += cat.suites[suite.removeprefix(PREFIX)]
    for task in tasks:
        name = task if task in cat.tasks else PREFIX + task
        if name not in cat.tasks:
            short = [t.removeprefix(PREFIX) for t in cat.tasks]
            hint = did_you_mean(task.removeprefix(PREFIX), short)
            raise UserError(f"unknown task {task!r}{hint}; tasks: {', '.join(short)}")
        chosen.append(name)
    return list(dict.fromkeys(chosen))  # keep order, drop repeats


def resolve_in_domain(cat: Catalog, names: list[str] | None, suites: list[str] | tuple[str, ...] = ()) -> set[str]:
    """The in-domain task set: given names (prefix optional), else the named suites' own."""
    if names is None:
        return cat.default_in_domain(suites)
    resolved = set()
    for name in names:
        full = name if name.startswith(PREFIX) else PREFIX + name
        if full not in cat.tasks:
            raise UserError(f"--in-domain: unknown task {name!r}; tasks: {', '.join(cat.tasks)}")
        resolved.add(full)
    return resolved


def local_data_file(data_dir: Path, task: str, benchmark: str | None = None) -> Path:
    """<data_dir>/<benchmark>.jsonl; `benchmark` is the task's `metadata.benchmark` when it names one
    (tasks whose name is not hubtool_<benchmark>[_majK], e.g. hubtool_mixed_gsm8k_pot)."""
    return data_dir / f"{benchmark or benchmark_of(task)}.jsonl"


def load_tasks(manager, names: list[str], data_dir: Path | None = None, prompt: Reprompt | None = None) -> list:
    """Task objects for lm-eval; with `data_dir`, benchmarks read <data_dir>/<benchmark>.jsonl.

    A local file stands in for the benchmark's evaluation split (rows shaped like the Hub dataset's),
    and few-shot examples are drawn from the same file (never the question being asked).
    `prompt` rewrites the config of every task that names its prompt (`metadata.prompt`), to ask it
    with another (evaluation's `hooks.with_prompt`, which renders the builders' prompts, bound to one).
    """
    specs = [_spec(manager, n, data_dir, prompt) for n in names]
    try:
        loaded = manager.load(specs)
    except (ConnectionError, FileNotFoundError, OSError) as e:
        raise UserError(
            f"a task's dataset could not be loaded ({type(e).__name__}: {_first_line(e)}); without the Hub, "
            "evaluate the gym suite or pass --data-dir with <benchmark>.jsonl files"
        ) from None
    return [loaded["tasks"][n] for n in names]


def _spec(manager, name: str, data_dir: Path | None, prompt: Reprompt | None) -> str | dict:
    if data_dir is None and prompt is None:
        return name
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval: loaded by task_manager already

    cfg = load_yaml(manager.task_index[name].yaml_path, resolve_func=True)
    spec = _local_spec(cfg, name, data_dir) if data_dir else name
    if prompt is not None and "prompt" in (cfg.get("metadata") or {}):
        return prompt(spec if isinstance(spec, dict) else cfg)
    return spec


def _local_spec(cfg: dict, name: str, data_dir: Path) -> str | dict:
    path = local_data_file(data_dir, name, (cfg.get("metadata") or {}).get("benchmark"))
    if cfg.get("custom_dataset") is not None or not path.exists():
        return name  # made on the spot (reasoning-gym) or no local copy: loads as usual
    split = cfg["test_split"]
    log.info("%s reads %s", name, path)
    return cfg | {
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {split: str(path)}},
        "training_split": None,
        "validation_split": None,
        "fewshot_split": split,
    }


def judged_tasks(manager, names: list[str]) -> dict[str, dict[str, Any]]:
    """The tasks among `names` that a judge scores (`metadata.judged`, see toolkit.evaluate.judged), with
    their metadata."""
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval: loaded by task_manager already

    out = {}
    for name in names:
        meta = load_yaml(manager.task_index[name].yaml_path, resolve_func=True).get("metadata") or {}
        if meta.get("judged"):
            out[name] = dict(meta)
    return out


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]
