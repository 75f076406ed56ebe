"""`hubtool decontaminate RUN` and `hubtool run EXPERIMENT.yaml`: keep eval questions out of the
training data, and run a paper's chain (build -> push -> train -> eval) as one command."""

from __future__ import annotations

import json

import click

from toolkit.cli.app import main


@main.command("decontaminate")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--against", required=True, metavar="SUITES|TASKS",
              help="Eval suites or tasks whose questions must not be trained on (comma-separated: gym, or gsm8k,svamp).")
@click.option("-n", "--ngram", default=8, show_default=True, help="n-gram length (open-r1's 8).")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Local <benchmark>.jsonl copies of the eval data (as `hubtool eval --data-dir`).")
def decontaminate(run_dir: str, against: str, ngram: int, data_dir: str | None) -> None:
    """Drop the rows of a finished build whose question shares an n-gram with an eval question.

    The data, the manifest (counts, what was removed, against which tasks) and the card are rewritten
    in place; push again to publish the clean version.

    \b
    hubtool decontaminate runs/cot --against gym
    hubtool decontaminate runs/gsm8k-cot --against math --data-dir benchmarks/
    """
    from toolkit.decontaminate.run import decontaminate_run
    from toolkit.methods import find_method
    from toolkit.rundir import read_manifest

    method = find_method(read_manifest(run_dir).method)
    result = decontaminate_run(run_dir, against, method=method, n=ngram, data_dir=data_dir)
    by_task = json.dumps(result["removed_by_task"]) if result["removed_by_task"] else "none"
    click.echo(f"{run_dir}: {result['removed']} of {result['checked']} rows removed ({by_task}); "
               f"checked against {len(result['against'])} tasks with {result['n']}-grams")  # fmt: skip


@main.command("run")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--workdir", type=click.Path(file_okay=False),
              help="Where the steps' outputs and state go (default: runs/experiments/NAME).")
@click.option("--dry-run", is_flag=True, help="Print the plan: which steps would run and which are up to date.")
@click.option("--rerun", "rerun", multiple=True, metavar="STEP",
              help="Run this step again even if nothing it depends on changed (e.g. eval after a hubtool "
                   "upgrade); the steps that read its output follow if it changed. Repeatable.")
@click.option("--results", type=click.Path(file_okay=False), metavar="DIR",
              help="Also write the report, the cards and the records here after every step that runs "
                   "(e.g. experiments/results/NAME); other files in DIR are left alone.")
def run(experiment: str, workdir: str | None, dry_run: bool, rerun: tuple[str, ...], results: str | None) -> None:
    """Run an experiment file: build -> push -> train -> eval steps, then one report.

    Each step runs again only when something it depends on changed (its settings, or what an
    earlier step produced); a killed run picks up at the step it was in. Builds leave out the
    questions of the experiment's own eval tasks (decontamination) unless told otherwise.

    \b
    hubtool run experiments/cpu-smoke.yaml --dry-run
    hubtool run experiments/cpu-effect.yaml
    hubtool run experiments/cpu-effect.yaml --rerun eval
    hubtool run experiments/cpu-effect.yaml --results experiments/results/cpu-effect
    """
    from toolkit.experiments import run_experiment

    run_experiment(experiment, workdir=workdir, dry_run=dry_run, rerun=rerun, echo=click.echo, results=results)
