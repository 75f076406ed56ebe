"""`hubtool train RECIPE`: a TRL recipe, a dataset by name, a student out."""

from __future__ import annotations

import click

from toolkit import api
from toolkit.cli.app import main
from toolkit.training import launch, parse_overrides
from toolkit.training.data import parse_where


@main.command("train")
@click.argument("recipe")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a recipe key (any TRL SFT/DPO/model key); unknown keys and bad values fail before any model loads.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    help="Where the weights, hubtool_train.json and the model card go (default: the recipe's output_dir).",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Also write OUT/merged/: the LoRA adapter folded into the base, full weights + tokenizer.",
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Train only on the rows whose COLUMN holds VALUE, e.g. --where is_counterfactual=false; repeat it for "
         "other columns (a row must match all; a column given twice is an error).",
)
@click.option(
    "--trainer",
    metavar="NAME",
    help="For a recipe outside a method's recipes folder: sft, dpo, or a method's own trainer; default: the "
         "trainer of the method whose recipes folder holds the recipe.",
)
@click.option(
    "--print-launch",
    nargs=2,
    type=click.IntRange(min=1),
    metavar="NODES GPUS",
    help="Print the command that trains this recipe on NODES machines of GPUS GPUs each, with these "
         "arguments, and exit: hubtool train (1 1), accelerate launch (1 G), a Slurm batch script (N G).",
)
def train(
    recipe: str, sets: tuple[str, ...], output_dir: str | None, merge: bool, where: tuple[str, ...],
    trainer: str | None, print_launch: tuple[int, int] | None,
) -> None:
    """Train a student with a TRL recipe on a dataset named by dataset_name.

    RECIPE is a YAML file, or a shipped recipe by name: cot/smollm2-135m-lora (.yaml optional; a
    mistyped name lists the shipped ones). The dataset name resolves like everywhere else in hubtool:
    a local folder, then the local registry, then the Hub. Completions only carry the loss
    (conversational prompt-completion rows); LoRA recipes save the adapter. The output folder gets a
    provenance record and a model card.

    \b
    hubtool train cot/smollm2-135m-lora --set dataset_name=me/cot --output-dir out/cot-student
    hubtool train self-refine/dpo-lora --set model_name_or_path=out/cot-student \\
        --set dataset_name=me/self-refine --output-dir out/dpo-student --merge
    hubtool train my-recipes/cot/custom.yaml --set dataset_name=me/cot
    hubtool train cot/llama-8b-full --set dataset_name=me/cot --print-launch 4 8 > train.sbatch
    """
    if print_launch:
        click.echo(launch.print_launch(*print_launch, recipe, sets=sets, output_dir=output_dir, merge=merge,
                                       where=where, trainer=trainer))  # fmt: skip
        return
    result = api.train(recipe, overrides=parse_overrides(sets), output_dir=output_dir, merge=merge,
                       where=parse_where(where), trainer=trainer)
    if result.record:  # empty on the non-main processes of a multi-GPU run
        click.echo(summary_line(result.record))


def summary_line(record: dict) -> str:
    t, ds = record["training"], record["dataset"]
    loss = f"{t['train_loss']:.4f}" if t.get("train_loss") is not None else "-"
    merged = f" (merged: {record['outputs']['merged']})" if record["outputs"].get("merged") else ""
    speed = f"{t['seconds_per_step']:.2f} s/step" if t.get("seconds_per_step") else "no steps"
    return (
        f"{record['trainer']}: {t['global_steps']} steps in {t['seconds']:.1f}s ({speed}), train loss {loss}, "
        f"on {ds['name']} ({ds['rows']} rows) -> {record['output_dir']}{merged}"
    )
