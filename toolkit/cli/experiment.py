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
    from toolkit.decontaminate import decontaminate_run

    result = decontaminate_run(run_dir, against, n=ngram, data_dir=data_dir)
    by_task = json.dumps(result["removed_by_task"]) if result["removed_by_task"] else "none"
    click.echo(f"{run_dir}: {result['removed']} of {result['checked']} rows removed ({by_task}); "
               f"checked against {len(result['against'])} tasks with {result['n']}-grams")  # fmt: skip
