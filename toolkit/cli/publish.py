"""`hubtool push`, `hubtool ls`, `hubtool show`: publish builds and find them again by name."""

from __future__ import annotations

import click

from toolkit import api
from toolkit.cli.app import main


@main.command("push")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.argument("name")
@click.option(
    "--hub", is_flag=True, help="Push to the Hugging Face Hub (token: HF_TOKEN or `hf auth login`)."
)
@click.option("--private", is_flag=True, help="With --hub: create the repo private.")
@click.option("--revision", help="With --hub: the branch to push to (created from main if missing).")
@click.option(
    "--license", "license_id", help="License id for the card (default: the source's, else the teacher's)."
)
def push(
    run_dir: str, name: str, hub: bool, private: bool, revision: str | None, license_id: str | None
) -> None:
    """Publish the finished build in RUN_DIR as NAME (ORG/NAME): the local registry by default.

    The card is re-rendered for NAME; data, card and manifest.json go up together (one commit on
    the Hub, one atomic swap in the local registry), and pushing the same build again changes
    nothing. A card already published there keeps the metadata hubtool does not write.

    \b
    hubtool push runs/cot me/smol-arith-cot
    hubtool push runs/cot me/smol-arith-cot --hub --private
    """
    result = api.push(run_dir, name, hub=hub, private=private, revision=revision, license=license_id)
    click.echo(result.summary())


@main.command("ls")
def ls() -> None:
    """List the datasets in the local registry ($HUBTOOL_HOME/datasets)."""
    from toolkit.hub.show import registry_table

    click.echo(registry_table())


@main.command("show")
@click.argument("name")
@click.option("-n", "--rows", "n_rows", default=3, show_default=True, help="Rows to show.")
@click.option("--revision", help="A Hub branch, tag or commit (skips the local registry).")
def show(name: str, n_rows: int, revision: str | None) -> None:
    """Card summary and a few rows of NAME: a folder, the local registry, then the Hub."""
    from toolkit.hub.show import describe

    click.echo(describe(name, n_rows=n_rows, revision=revision))
