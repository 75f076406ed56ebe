"""`hubtool eval`: run lm-eval on the hubtool tasks for one or more models, write lm-eval's results
and samples per model, then the report comparing them."""

from __future__ import annotations

import gc
import importlib.metadata
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from toolkit.errors import UserError
from toolkit.evaluate import kept
from toolkit.evaluate import report as report_mod
from toolkit.evaluate.hooks import check_prompt, model_prompt, with_prompt
from toolkit.evaluate.judge import judge_models
from toolkit.evaluate.judged import score_suites
from toolkit.evaluate.models import Backend, ModelSpec, describe, load_lm, model_spec
from toolkit.evaluate.multiturn import add_later_turns
from toolkit.methods import eval_task_dirs
from toolkit.public_paths import scrub
from toolkit.sources import eval_tasks as tasks_mod
from toolkit.teachers import DEFAULT_TEACHER, parse_teacher_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EvalOptions:
    """How to run: backend, how much, how long the generations may be, where data comes from.

    `max_gen_toks` overrides the tasks' 512 (CoT needs room; a CPU smoke run wants 32-64).
    `in_domain` names the tasks the students were trained on (default: every suite's own).
    `data_dir` holds local <benchmark>.jsonl copies that replace the Hub datasets.
    """

    backend: Backend = "transformers"
    base_url: str | None = None
    limit: int | float | None = None
    num_fewshot: int | None = None
    batch_size: int | str = 8
    max_gen_toks: int | None = None
    data_dir: Path | None = None
    in_domain: list[str] | None = None
    # BACKEND:MODEL comparing every model's answers with the first model's, and scoring the judged suites
    # (AlpacaEval, MT-Bench), which without one are scored by the local default model
    judge: str | None = None
    judge_max_new_tokens: int = 256
    # --prompt NAME|FILE: every model asked with it; default: a hubtool-trained student's training prompt,
    # else each task's own (see toolkit.evaluate.hooks.model_prompt)
    prompt: str | None = None
    # --data-parallel N: with the vllm backend, N engines (lm-eval's data_parallel_size; needs ray)
    data_parallel: int = 1


@dataclass
class EvalResult:
    report: report_mod.Report
    markdown: str
    paths: dict[str, Path] = field(default_factory=dict)  # report files, and results/samples per model


def run_eval(
    models: list[str],
    output_dir: Path,
    *,
    suites: list[str] | tuple[str, ...] = (),
    tasks: list[str] | tuple[str, ...] = (),
    options: EvalOptions = EvalOptions(),
    labels: list[str] | None = None,
    reuse: Sequence[Path] = (),
) -> EvalResult:
    """Evaluate every model on the selected tasks; everything is checked before the first model runs.
    `labels` names the models in the report (default: their folder or alias). A model whose results in
    `output_dir` (or in a model folder of an output folder in `reuse`) were made from the same weights,
    tasks, options and code is not run again (toolkit.evaluate.kept)."""
    if not models:
        raise UserError("name at least one --model (a checkpoint folder, an adapter folder or smollm2-135m)")
    _check_options(options)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output-dir {output_dir} is a file; give a folder for the reports")
    manager = tasks_mod.task_manager(extra=eval_task_dirs())  # eval_tasks/ and the methods' own task folders
    catalog = tasks_mod.catalog(manager)
    names = tasks_mod.select_tasks(catalog, list(suites), list(tasks))
    judged = tasks_mod.judged_tasks(manager, names)
    if options.judge is not None and len(models) < 2 and not judged:
        raise UserError("--judge compares models with the first one (or scores alpaca_eval / mt_bench): give at "
                        "least two --model, or evaluate a judged task")  # fmt: skip
    in_domain = tasks_mod.resolve_in_domain(catalog, options.in_domain, list(suites))
    specs = [model_spec(m, options.backend, options.base_url, options.data_parallel) for m in models]
    if labels is not None:
        if len(labels) != len(models):
            raise ValueError("one label per model")
        specs = [ModelSpec(label, spec.lm_eval_model, spec.args) for label, spec in zip(labels, specs)]
    specs = _unique_labels(specs)

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create --output-dir {output_dir} ({e.strerror or e}); give a writable folder") from None
    asked = {spec.label: model_prompt(spec, options.prompt, output_dir) for spec in specs}
    notes = _notes(options) + [f"`{spec.label}`: {describe(spec)}; {asked[spec.label][1]}" for spec in specs]
    report = report_mod.Report(tasks=names, in_domain=in_domain, notes=notes, judged_tasks=set(judged))
    paths: dict[str, Path] = {}
    samples = {}
    task_dirs = tasks_mod.task_dirs(eval_task_dirs())
    for spec in specs:
        folder = output_dir / _folder_name(spec.label)
        key = kept.result_key(spec.lm_eval_model, spec.args, names, task_dirs, _key_options(options),
                              asked[spec.label][0])  # fmt: skip
        found = kept.find_kept(key, [folder, *(d for r in reuse if Path(r).is_dir() for d in sorted(Path(r).iterdir()))])
        if found is not None:
            results = kept.load_kept(found, spec.label, folder)
        else:
            kept.forget(folder)
            results = _evaluate_one(spec, manager, names, options, asked[spec.label][0])
        report.add(spec.label, results)
        paths |= _write_results(folder, spec.label, results)
        kept.write_key(folder, key)
        samples[spec.label] = results.get("samples", {})
    compared = [n for n in names if n not in judged]
    if options.judge and len(specs) > 1 and compared:
        paths |= _judge(report, samples, compared, options, output_dir)
    if judged:
        paths |= _judge_suites(report, samples, judged, options, output_dir)
    paths |= report_mod.write(report, output_dir)
    return EvalResult(report, report_mod.markdown(report), paths)


def _judge(report, samples: dict, names: list[str], options: EvalOptions, output_dir: Path) -> dict[str, Path]:
    """Pairwise win rates of every model against the first, by the judge (written to judge.jsonl)."""
    judged, records = judge_models(options.judge, samples, names, options.judge_max_new_tokens)
    report.judged = [j.to_dict() for j in judged]
    path = output_dir / "judge.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {"judge": path}


def _judge_suites(report, samples: dict, judged: dict, options: EvalOptions, output_dir: Path) -> dict[str, Path]:
    """AlpacaEval / MT-Bench scores by the judge (written to judge_suites.jsonl)."""
    scores, records = score_suites(options.judge or DEFAULT_TEACHER, samples, judged, options.judge_max_new_tokens)
    report.suite_scores = [s.to_dict() for s in scores]
    path = output_dir / "judge_suites.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return {"judge_suites": path}


def _check_options(options: EvalOptions) -> None:
    if options.limit is not None and options.limit <= 0:
        raise UserError("--limit must be positive (a count, or a fraction below 1)")
    if options.prompt is not None:
        check_prompt(options.prompt)
    if options.max_gen_toks is not None and options.max_gen_toks < 1:
        raise UserError("--max-gen-toks must be at least 1")
    if options.num_fewshot is not None and options.num_fewshot < 0:
        raise UserError("--num-fewshot cannot be negative")
    size = options.batch_size
    if isinstance(size, int) and size < 1 or isinstance(size, str) and not re.fullmatch(r"auto(:\d+)?", size):
        raise UserError(f"--batch-size must be a positive integer or 'auto', not {size!r}")
    if options.data_dir is not None and not options.data_dir.is_dir():
        raise UserError(f"--data-dir {options.data_dir} is not a folder")
    if options.judge is not None:
        parse_teacher_spec(options.judge)  # an unknown backend fails now, not after the models ran
        if options.judge_max_new_tokens < 1:
            raise UserError("--judge-max-tokens must be at least 1")


def _unique_labels(specs: list[ModelSpec]) -> list[ModelSpec]:
    """Two models with the same name (two folders called `final`) get -2, -3 ... in the report."""
    seen: dict[str, int] = {}
    unique = []
    for spec in specs:
        seen[spec.label] = seen.get(spec.label, 0) + 1
        label = spec.label if seen[spec.label] == 1 else f"{spec.label}-{seen[spec.label]}"
        unique.append(ModelSpec(label, spec.lm_eval_model, spec.args))
    return unique


def _folder_name(label: str) -> str:
    """A label as one safe folder name under output_dir (never an absolute path or '..')."""
    name = re.sub(r"[^\w.-]+", "_", label).strip("._")
    return name or "model"


def _notes(options: EvalOptions) -> list[str]:
    notes = [f"zero-shot chain of thought, chat template applied; lm-eval {importlib.metadata.version('lm_eval')}"]
    if options.num_fewshot:
        notes[0] = notes[0].replace("zero-shot", f"{options.num_fewshot}-shot")
    if options.limit is not None:
        notes.append(f"limit {options.limit} documents per task: a smoke test, not a benchmark score")
    if options.max_gen_toks is not None:
        notes.append(f"generations cut at {options.max_gen_toks} tokens")
    return notes


def _key_options(options: EvalOptions) -> dict:
    """The options that change what a model generates or how it is scored (not the report's)."""
    return {"backend": options.backend, "base_url": options.base_url, "limit": options.limit,
            "num_fewshot": options.num_fewshot, "batch_size": options.batch_size, "max_gen_toks": options.max_gen_toks,
            "data_dir": kept.stamp(options.data_dir) if options.data_dir and options.data_dir.exists() else options.data_dir,
            "data_parallel": options.data_parallel}  # fmt: skip


def _evaluate_one(spec: ModelSpec, manager, names: list[str], options: EvalOptions,
                  prompt: tuple[str, str] | None = None) -> dict:  # fmt: skip
    from lm_eval import simple_evaluate  # lm-eval (and torch) load when a run starts, not on import

    log.warning("evaluating %s on %d tasks", spec.label, len(names))
    reprompt = partial(with_prompt, template=prompt[0], name=prompt[1]) if prompt else None
    task_objects = tasks_mod.load_tasks(manager, names, options.data_dir, reprompt)  # fails before a model loads
    lm = load_lm(spec, options.batch_size)
    try:
        results = simple_evaluate(
            model=lm,
            tasks=task_objects,
            task_manager=manager,
            num_fewshot=options.num_fewshot,
            limit=options.limit,
            apply_chat_template=True,
            fewshot_as_multiturn=True,
            gen_kwargs={"max_gen_toks": options.max_gen_toks} if options.max_gen_toks else None,
            log_samples=True,
        )
        add_later_turns(lm, results, options.max_gen_toks)  # MT-Bench's second turn, on the same model
        return results
    finally:
        del lm
        gc.collect()  # two models in turn should not hold two models' memory


def _write_results(folder: Path, label: str, results: dict) -> dict[str, Path]:
    """lm-eval's aggregated results (results.json) and per-document samples (samples_<task>.jsonl)."""
    from lm_eval.utils import handle_non_serializable  # lm-eval: loaded by the run already

    folder.mkdir(parents=True, exist_ok=True)
    samples = results.pop("samples", {})
    results["config"]["model"] = label
    paths = {f"{label}/results": folder / "results.json"}
    # lm-eval's config names the model's folder (pretrained=/home/...): written as cards name it
    text = json.dumps(results, indent=2, default=handle_non_serializable)
    paths[f"{label}/results"].write_text(scrub(text, folder.parent))
    for task, rows in samples.items():
        path = folder / f"samples_{task}.jsonl"
        with path.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=handle_non_serializable, ensure_ascii=False) + "\n")
        paths[f"{label}/samples_{task}"] = path
    results["samples"] = samples
    return paths
