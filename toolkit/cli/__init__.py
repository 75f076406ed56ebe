"""The `hubtool` command line. Thin: parse, call one library function, print.

Commands live by area (build, publish, train, evaluate); each module imports heavy libraries only
inside its commands, so `hubtool --help` stays fast.
"""

from toolkit.cli import build, evaluate, experiment, publish, train  # noqa: F401  (registers commands)
from toolkit.cli.app import main

__all__ = ["main"]
