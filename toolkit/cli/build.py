"""`hubtool build-dataset METHOD` and `hubtool inspect RUN_DIR`."""

from __future__ import annotations

import json
from functools import partial

import click

from toolkit.cli.app import main

SOURCE_HELP = "hf:NAME (a known benchmark), hf:ORG/NAME (with field options), gym:TASK (reasoning-gym), file:PATH"


def source_options(f, *, required: bool = True):
    """The --source family of options, shared by every method."""
    opts = [
        click.option("--source", "source_spec", required=required, help=SOURCE_HELP),
        click.option("--split", default="train", show_default=True, help="Dataset split."),
        click.option("--limit", type=int, help="Use the first N problems (raise it later to extend a build)."),
        click.option("--config", "source_config", help="Hub dataset config (subset)."),
        click.option("--revision", help="Hub dataset revision (branch, tag or commit)."),
        click.option("--data-files", help="Read a hf: source from local files with the same columns."),
        click.option("--question-field", help="Column holding the question."),
        click.option("--answer-field", help="Column holding the gold answer."),
        click.option("--answer-type", type=click.Choice(["number", "option", "yesno", "label"]), help="Default: detected."),
        click.option("--choices-field", help="Column holding the options of a multiple-choice problem."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for gym: sources and sampling."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def teacher_options(f, *, role: str = "teacher"):
    """The model that generates and how; `role="student"` asks for a required --student instead of --teacher."""
    model = (
        click.option("--teacher", default="transformers:smollm2-135m", show_default=True,
                     help="BACKEND:MODEL; backends: transformers, openai (MODEL@BASE_URL), vllm.")
        if role == "teacher" else
        click.option("--student", "teacher", required=True,
                     help="BACKEND:MODEL of the CoT-trained student, e.g. transformers:out/cot-student (a training "
                          "output folder), openai:NAME@URL, vllm:PATH.")
    )
    opts = [
        model,
        click.option("--batch-size", type=int, help="transformers: sequences per batch."),
        click.option("--concurrency", type=int, help="openai: requests in flight."),
        click.option("--api-key-env", help="openai: environment variable holding the API key (default OPENAI_API_KEY)."),
        click.option("--tensor-parallel-size", type=int, help="vllm: GPUs per model."),
        click.option("--temperature", type=float, default=0.7, show_default=True),
        click.option("--top-p", type=float, default=0.95, show_default=True),
        click.option("--max-new-tokens", type=int, default=512, show_default=True),
        click.option("--cache", "cache_path", type=click.Path(dir_okay=False), help="Call cache (default: $HUBTOOL_HOME/cache/calls.sqlite)."),
    ]  # fmt: skip
    for opt in reversed(opts):
        f = opt(f)
    return f


@main.group("build-dataset")
def build_dataset() -> None:
    """Build a teacher-derived dataset into a run directory (resumable: re-run the same command)."""


@build_dataset.command("cot")
@source_options
@teacher_options
@click.option("--samples", type=int, default=4, show_default=True, help="Rationales sampled per problem.")
@click.option("--keep", type=click.Choice(["correct", "all"]), default="correct", show_default=True,
              help="Keep only rationales whose answer matches gold, or all of them.")  # fmt: skip
@click.option("--fewshot", type=click.Path(dir_okay=False), help="jsonl of exemplars (question, rationale[, choices]).")
@click.option("--system", help="System prompt for the teacher.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--overwrite", is_flag=True, help="Replace a run directory that holds a different build.")
def cot(**kw) -> None:
    """Chain-of-thought demonstrations, kept when the answer matches gold (Ranaldi & Freitas, 2024).

    \b
    hubtool build-dataset cot --source gym:basic_arithmetic --limit 64 --samples 4 --out runs/cot
    """
    from toolkit.builders.cot import CoTOptions, load_fewshot
    from toolkit.errors import UserError

    if kw["samples"] < 1:
        raise UserError("--samples must be at least 1")
    options = CoTOptions(
        samples=kw["samples"], keep=kw["keep"], system=kw["system"],
        fewshot=load_fewshot(kw["fewshot"]) if kw["fewshot"] else (), sampling=_sampling(kw),
    )  # fmt: skip
    _run("cot", kw, options)


# What only a --source reads; --from-dataset takes the problems and prompts as the dataset has them.
SOURCE_ONLY = ("source_config", "data_files", "question_field", "answer_field", "answer_type", "choices_field", "system")


@build_dataset.command("preference")
@partial(source_options, required=False)
@click.option("--from-dataset", help="Instead of --source: a CoT dataset (ORG/NAME, or a run directory) whose problems, "
                                     "prompts and teacher rationales are used; --split, --revision, --limit apply to it.")
@partial(teacher_options, role="student")
@click.option("--samples", type=int, default=8, show_default=True, help="Reasoning paths the student samples per problem.")
@click.option("--rejected", type=click.Choice(["wrong", "direct", "both"]), default="wrong", show_default=True,
              help="The rejected side: a wrong CoT sample; the student's direct answer without CoT (one greedy "
                   "request, prompts/direct.jinja), right or wrong; or both.")
@click.option("--pairs-per-prompt", type=int, default=2, show_default=True,
              help="At most this many pairs per problem, each from the least-used samples.")
@click.option("--fallback", type=click.Choice(["none", "teacher"]), default="none", show_default=True,
              help="A problem the student never solves: skip it, or take the teacher's correct rationale from "
                   "--from-dataset as chosen.")
@click.option("--keep-solved", is_flag=True,
              help="Also pair problems the student always solves (against the direct answer: needs --rejected "
                   "direct or both). Default: skip them.")
@click.option("--system", help="System prompt for the student (--source only).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("--overwrite", is_flag=True, help="Replace a run directory that holds a different build.")
def preference(**kw) -> None:
    """Preference pairs from the student's own reasoning, for DPO (self-refine, Ranaldi & Freitas, 2024).

    The student samples --samples reasoning paths per problem with the CoT prompt it was trained on;
    paths are scored against gold: chosen = a correct path, rejected = a wrong one (or the direct answer).
    Problems the student always or never solves are counted and skipped unless --keep-solved / --fallback.

    \b
    hubtool build-dataset preference --student transformers:out/cot-student --source gym:basic_arithmetic \\
        --limit 256 --samples 8 --out runs/pref
    hubtool build-dataset preference --student vllm:out/cot-student --from-dataset me/gsm8k-cot \\
        --samples 8 --rejected direct --out runs/pref-gsm8k
    """
    from toolkit.builders import DatasetOptions
    from toolkit.builders.pairs import PairRules
    from toolkit.builders.preference import PreferenceOptions
    from toolkit.errors import UserError

    if bool(kw["source_spec"]) == bool(kw["from_dataset"]):
        raise UserError("give the problems with either --source or --from-dataset (one of them)")
    if kw["fallback"] == "teacher" and not kw["from_dataset"]:
        raise UserError("--fallback teacher uses the teacher's rationales of a CoT dataset; add --from-dataset NAME")
    source = None
    if kw["from_dataset"]:
        given = [f"--{k.removeprefix('source_').replace('_', '-')}" for k in SOURCE_ONLY if kw[k]]
        if given:
            raise UserError(f"{', '.join(given)} apply to --source only; --from-dataset uses the dataset's problems and prompts")
        source = DatasetOptions(kw["from_dataset"], split=kw["split"], revision=kw["revision"], limit=kw["limit"])
    rules = PairRules(rejected=kw["rejected"], pairs_per_prompt=kw["pairs_per_prompt"], fallback=kw["fallback"],
                      keep_solved=kw["keep_solved"])  # fmt: skip
    options = PreferenceOptions(samples=kw["samples"], rules=rules, system=kw["system"], sampling=_sampling(kw))
    _run("preference", kw, options, source)


def _sampling(kw):
    from toolkit.teachers.base import SamplingParams

    return SamplingParams(temperature=kw["temperature"], top_p=kw["top_p"], max_new_tokens=kw["max_new_tokens"], seed=kw["seed"])


def _run(method: str, kw: dict, options, source=None) -> None:
    from toolkit.builders import SourceOptions, build_dataset, summary_line

    source = source or SourceOptions(
        spec=kw["source_spec"], split=kw["split"], limit=kw["limit"], config=kw["source_config"],
        revision=kw["revision"], data_files=kw["data_files"], question_field=kw["question_field"],
        answer_field=kw["answer_field"], answer_type=kw["answer_type"], choices_field=kw["choices_field"],
        seed=kw["seed"],
    )  # fmt: skip
    teacher_opts = {k: kw[k] for k in ("batch_size", "concurrency", "api_key_env", "tensor_parallel_size") if kw.get(k)}
    manifest = build_dataset(
        method, kw["out"], source=source, options=options, teacher=kw["teacher"],
        teacher_options=teacher_opts, overwrite=kw["overwrite"], cache_path=kw["cache_path"],
    )  # fmt: skip
    click.echo(summary_line(manifest, kw["out"]))
    if not manifest.get("rows"):
        click.echo(
            f"warning: no rows kept, so there is nothing to train on; `hubtool inspect {kw['out']}` shows why "
            "(counts, failures); the cache keeps what was generated, so a re-run with changed options is cheap",
            err=True,
        )


@main.command("inspect")
@click.argument("run_dir", type=click.Path())
@click.option("-n", "--rows", "n_rows", default=3, show_default=True, help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def inspect(run_dir: str, n_rows: int, as_json: bool) -> None:
    """Stats and a few rows of a run directory."""
    from toolkit.inspect import describe_run

    if as_json:
        from toolkit.rundir import read_manifest

        click.echo(json.dumps(read_manifest(run_dir), indent=2))
        return
    click.echo(describe_run(run_dir, n_rows=n_rows))
