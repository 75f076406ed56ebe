"""Running a build's programs: the sandbox, behind a cache of what each program did.

Teacher calls are cached so that a re-run repeats none of them (toolkit.teachers.cache); a program's
run is cached the same way, in a table of the same SQLite file, keyed by the program and the
sandbox limits. A resumed or repeated build then judges every program exactly as the first run
did (a run that timed out stays timed out, `exec_runtime_s` keeps the measured value), so it ends
with the same rows, and it does not spend the sandbox's time twice. A row that cannot be read (a
damaged file) is said in one line naming the file and run again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from toolkit.sandbox import OUTCOMES, ExecResult, Limits, Sandbox

log = logging.getLogger(__name__)
SCHEMA = "CREATE TABLE IF NOT EXISTS executions (key TEXT PRIMARY KEY, result TEXT)"
# 2: results carry the calls the sandbox refused (`denied`); a result from before cannot say.
RESULT_VERSION = 2


def exec_key(program: str, limits: Limits) -> str:
    blob = json.dumps({"program": program, "limits": limits.to_dict(), "v": RESULT_VERSION}, sort_keys=True,
                      ensure_ascii=False)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


class Executor:
    """A sandbox and the execution cache; `await run(programs)` gives one ExecResult per program."""

    def __init__(self, limits: Limits, cache_path: str | Path) -> None:
        self.limits = limits
        self.sandbox = Sandbox(limits)
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.path = Path(cache_path)
        self._db = sqlite3.connect(cache_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self.ran = 0  # programs run by this process
        self.cached = 0  # programs answered by the cache

    async def run(self, programs: Sequence[str]) -> list[ExecResult]:
        keys = [exec_key(p, self.limits) for p in programs]
        found = [self._get(k) for k in keys]
        todo = [i for i, r in enumerate(found) if r is None]
        self.cached += len(programs) - len(todo)
        if todo:
            # off the event loop: the sandbox blocks while programs run; other problems keep generating
            results = await asyncio.to_thread(self.sandbox.run_many, [programs[i] for i in todo])
            self.ran += len(todo)
            for i, result in zip(todo, results):
                found[i] = result
                if "sandbox server" not in result.error:  # a server that died or hung is the sandbox's fault
                    self._put(keys[i], result)
        return found  # type: ignore[return-value]

    def _get(self, key: str) -> ExecResult | None:
        with self._lock:
            row = self._db.execute("SELECT result FROM executions WHERE key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            if not isinstance(data, dict) or data.get("outcome") not in OUTCOMES:
                raise ValueError("not a result")
            known = {f.name for f in fields(ExecResult)}
            return ExecResult(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError, RecursionError) as exc:  # a damaged row: run the program again
            log.warning("%s: an unreadable row in the executions table (%s); running that program again",
                        self.path, type(exc).__name__)  # fmt: skip
            return None

    def _put(self, key: str, result: ExecResult) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO executions VALUES (?, ?)", (key, json.dumps(result.as_dict())))

    @property
    def hello(self) -> dict:
        return self.sandbox.hello or {}

    def close(self) -> None:
        self.sandbox.close()
        with self._lock:
            self._db.close()
