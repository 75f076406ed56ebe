"""Dataset names as the Hub accepts them: `org/name`."""

from __future__ import annotations

import re

from toolkit.errors import UserError

# Each part: letters, digits, '-', '_', '.'; starts and ends with a letter or digit; at most 96
# characters; no '--' or '..' (the Hub's rules, as huggingface_hub's validate_repo_id applies them).
_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?")


def is_repo_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(_valid_part(p) for p in parts) and not name.endswith(".git")


def _valid_part(part: str) -> bool:
    return bool(_PART.fullmatch(part)) and "--" not in part and ".." not in part


def validate_repo_id(name: str) -> str:
    """Return `name` if it is a valid `org/name`, else raise a UserError that says why."""
    if not is_repo_id(name):
        raise UserError(
            f"{name!r} is not a valid dataset name; use ORG/NAME with letters, digits, '-', '_' or '.' "
            "(no leading/trailing '-' or '.', no '--' or '..', at most 96 characters each)"
        )
    return name
