"""The click group every command hangs on, and the one place user errors become one line."""

from __future__ import annotations

import logging

import click

from toolkit import __version__
from toolkit.errors import UserError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubtool")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """hubtool: distil reasoning from large language models into small ones.

    Build teacher-derived datasets, publish them with cards that tell how they were made, train
    students on them by name, and score the students in-domain and out-of-domain.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
