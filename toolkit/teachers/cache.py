"""Every teacher call is cached on disk, one row per sample.

Key = backend + model + revision (+ endpoint, where the backend has one) + rendered prompt +
sampling parameters + sample index. SQLite in WAL mode commits each finished sample before the
next one ends, so a build killed with SIGKILL and re-run with the same command repeats no completed
call; raising `--samples` or `--limit` later only generates what is new. Failures and empty
completions are not cached: a re-run retries them.

A cache file that SQLite cannot read is never replaced or emptied here (it holds what every
earlier build paid for): the error names the file and how to set it aside.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError
from toolkit.teachers.base import Completion, Request, Teacher

log = logging.getLogger(__name__)
BUSY_TIMEOUT = 30.0  # seconds to wait for another build's write on a shared cache


def call_key(teacher: Teacher, request: Request, sample_idx: int) -> str:
    identity = {"backend": teacher.backend, "model": teacher.model, "revision": teacher.revision}
    if teacher.endpoint:  # only where set, so the keys of every other backend stay as they were
        identity["endpoint"] = teacher.endpoint
    blob = json.dumps(
        {
            **identity,
            "messages": list(request.messages),
            "params": request.params.to_dict(),
            "sample_idx": sample_idx,
        },
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """A SQLite table of finished samples, safe to kill at any moment."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the call cache folder {self.path.parent} ({e.strerror or e}); "
                            "make it writable, or set --cache FILE or HUBTOOL_HOME elsewhere") from None  # fmt: skip
        if self.path.is_dir():
            raise UserError(f"the call cache {self.path} is a folder; give --cache a file path")
        with self._guard("open"):
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS samples (key TEXT PRIMARY KEY, text TEXT, finish_reason TEXT,"
                " prompt_tokens INTEGER, completion_tokens INTEGER)"
            )

    def get(self, key: str) -> Completion | None:
        with self._lock, self._guard("read"):
            row = self._db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM samples WHERE key=?", (key,)
            ).fetchone()
        return Completion(*row) if row else None

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        if not items:
            return
        rows = [(k, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for k, c in items]
        with self._lock, self._guard("write"):
            self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock, self._guard("read"):
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def _guard(self, action: str):
        return _SqliteErrors(self.path, action)


class _SqliteErrors:
    """SQLite's errors as one line that names the file and the way out."""

    def __init__(self, path: Path, action: str) -> None:
        self.path, self.action = path, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, _tb) -> bool:
        if error is None or not isinstance(error, sqlite3.Error):
            return False
        text = str(error)
        if isinstance(error, sqlite3.DatabaseError) and any(
            s in text for s in ("not a database", "malformed", "file is encrypted", "disk image")
        ):
            raise UserError(
                f"the call cache {self.path} is corrupt ({text}); move it aside (mv {self.path} {self.path}.broken) "
                "and re-run: the calls it held are made again, and nothing else is lost"
            ) from None
        if "readonly" in text or "read-only" in text or "unable to open" in text or "permission" in text.lower():
            raise UserError(
                f"cannot {self.action} the call cache {self.path} ({text}); make it and its folder writable, "
                "or set --cache FILE or HUBTOOL_HOME elsewhere"
            ) from None
        if "locked" in text or "busy" in text:
            raise UserError(
                f"the call cache {self.path} stayed locked by another build for {BUSY_TIMEOUT:g} s; "
                "try again, or give this build its own --cache FILE"
            ) from None
        return False  # anything else is a bug: keep its traceback


@dataclass
class Usage:
    """What a build asked of its teacher: new calls, cache hits, failures and tokens."""

    calls: int = 0
    samples_generated: int = 0
    samples_cached: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Tokens behind every sample the build used, cached ones included: what a rebuild costs.
    total_prompt_tokens: int = 0
    total_completion_tokens: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)
