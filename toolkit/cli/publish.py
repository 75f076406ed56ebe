"""`hubtool` commands: publish."""

from __future__ import annotations

import click  # noqa: F401

from toolkit.cli.app import main  # noqa: F401
