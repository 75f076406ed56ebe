"""Errors that speak to the user.

Library code raises `UserError("what is wrong; how to fix it")`. The CLI turns it into one line on
stderr and a non-zero exit, with no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib


class UserError(Exception):
    """Bad input or environment: one line that names the problem and the fix."""


class MissingSplitError(UserError):
    """A dataset has no split of the requested name."""


class UnreachableServerError(UserError):
    """An OpenAI-compatible server could not be reached at all."""


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """A ' (did you mean X?)' hint for a typo, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
