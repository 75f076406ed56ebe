"""The execution cache of a mixed build (toolkit/methods/mixed/execution.py): a damaged row is said in
one line naming the file and the program is run again (issue 21: a JSONDecodeError traceback)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys

import pytest

from toolkit.methods.mixed.execution import Executor, exec_key
from toolkit.sandbox import Limits

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox isolates on Linux")

LIMITS = Limits(wall_s=2, cpu_s=1, memory_mb=256)
PROGRAM = "ans = 6 * 7"


@pytest.mark.parametrize("damage", ['{"outcome": "ok", "val', "[1, 2]", '{"outcome": "sideways"}', "\x00\x01"])
def test_a_damaged_row_is_one_line_naming_the_file_and_is_run_again(tmp_path, caplog, damage):
    cache = tmp_path / "calls.sqlite"
    first = Executor(LIMITS, cache)
    try:
        assert asyncio.run(first.run([PROGRAM]))[0].value == "42"
    finally:
        first.close()
    with sqlite3.connect(cache) as db:
        db.execute("UPDATE executions SET result=? WHERE key=?", (damage, exec_key(PROGRAM, LIMITS)))
    again = Executor(LIMITS, cache)
    try:
        caplog.set_level("WARNING", logger="toolkit.methods.mixed.execution")
        result = asyncio.run(again.run([PROGRAM]))[0]
        assert (result.outcome, result.value, again.ran, again.cached) == ("ok", "42", 1, 0)
    finally:
        again.close()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "\n" not in messages[0] and str(cache) in messages[0], messages
    assert "running that program again" in messages[0]
    with sqlite3.connect(cache) as db:  # recomputed and written back
        (stored,) = db.execute("SELECT result FROM executions WHERE key=?", (exec_key(PROGRAM, LIMITS),)).fetchone()
    assert json.loads(stored)["value"] == "42"
