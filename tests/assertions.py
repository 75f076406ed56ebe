"""What every error test checks besides its message: bad input is one line that speaks to the user, never a
traceback (STYLE.md, "Errors speak to the user"). A test that only matched the message would pass on a
UserError carrying a pasted stack or a multi-line dump; these fail on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from toolkit.errors import UserError


def assert_one_line_message(text: str) -> None:
    """`text` is one non-empty line with no traceback in it."""
    assert text.strip(), "an empty error message"
    assert "Traceback" not in text and 'File "' not in text, f"a traceback in the message:\n{text}"
    assert len(text.strip().splitlines()) == 1, f"the message is not one line:\n{text}"


@contextmanager
def raises_one_line(match: str | None = None, error: type[Exception] = UserError) -> Iterator[pytest.ExceptionInfo]:
    """`pytest.raises(UserError, match=...)` that also fails when the message is not one line."""
    with pytest.raises(error, match=match) as caught:
        yield caught
    assert_one_line_message(str(caught.value))


def assert_one_line(result, message: str, code: int | None = 1) -> None:
    """A CLI result (click's `Result`, or anything with `exit_code` and `output`): it exited with `code`
    (None: any failure, a usage error's 2 included) and printed one line, no traceback, containing `message`."""
    assert result.exit_code == code if code is not None else result.exit_code != 0, result.output
    assert message in result.output, result.output
    assert_one_line_message(result.output)
