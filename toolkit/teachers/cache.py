"""Every teacher call is cached on disk, one row per sample.

Key = backend + model + revision + rendered prompt + sampling parameters + sample index. SQLite in
WAL mode commits each finished call before the next one ends, so a build killed with SIGKILL and
re-run with the same command repeats no completed call; raising `--samples` or `--limit` later
only generates what is new. Failures are not cached: a re-run retries them.
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

from toolkit.teachers.base import Completion, Request, Teacher

log = logging.getLogger(__name__)


def call_key(teacher: Teacher, request: Request, sample_idx: int) -> str:
    blob = json.dumps(
        {
            "backend": teacher.backend,
            "model": teacher.model,
            "revision": teacher.revision,
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS samples (key TEXT PRIMARY KEY, text TEXT, finish_reason TEXT,"
            " prompt_tokens INTEGER, completion_tokens INTEGER)"
        )

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute(
                "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM samples WHERE key=?", (key,)
            ).fetchone()
        return Completion(*row) if row else None

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        rows = [(k, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for k, c in items]
        with self._lock:
            self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        self._db.close()


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
