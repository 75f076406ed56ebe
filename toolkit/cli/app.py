"""The click group every command hangs on, and the one place user errors become one line.

Everything the CLI prints goes through `toolkit.redact`: log lines (every library's, at any -v),
error lines and the traceback of a bug, so no credential reaches a terminal or a CI log.
"""

from __future__ import annotations

import logging
import sys
import traceback

import click

from toolkit.errors import UserError
from toolkit.redact import redact
from toolkit.version import __version__

INTERRUPTED = 130  # 128 + SIGINT, what shells and CI runners expect of a Ctrl-C


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(redact(str(e))) from None
        except KeyboardInterrupt:
            click.echo("interrupted; finished teacher calls are cached, so the same command resumes", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (click's test runner swaps it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _redacting_excepthook(kind, error, tb) -> None:
    """A bug keeps its traceback, but not a credential that its message or locals text carried."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, tb))))


def setup_logging(verbose: int) -> None:
    """A redacting stderr handler on the root logger, as `logging.basicConfig` would add it: only
    when nothing has configured logging yet (an embedding program or a test runner keeps its own).
    Removed again, with the level, when the command ends (commands also run in-process)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler, level = _StderrHandler(), root.level
    handler.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(max(logging.WARNING - 10 * verbose, logging.DEBUG))

    def restore() -> None:
        root.removeHandler(handler)
        root.setLevel(level)

    click.get_current_context().call_on_close(restore)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hubtool")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
def main(verbose: int) -> None:
    """hubtool: distil reasoning from large language models into small ones.

    Build teacher-derived datasets, publish them with cards that tell how they were made, train
    students on them by name, and score the students in-domain and out-of-domain.
    """
    setup_logging(verbose)
    sys.excepthook = _redacting_excepthook
