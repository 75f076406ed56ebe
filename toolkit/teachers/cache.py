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
from dataclasses import dataclass, field, replace
from pathlib import Path

from toolkit.teachers.base import CallFailure, Completion, OnResult, Request, Result, Teacher

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
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "errors"}


class CachedTeacher:
    """Wraps a backend: answers from the cache what it can, asks the backend only for the rest."""

    def __init__(self, teacher: Teacher, cache: CallCache) -> None:
        self.teacher = teacher
        self.cache = cache
        self.usage = Usage()

    @property
    def identity(self) -> str:
        return self.teacher.identity

    def generate(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """Like `Teacher.generate`; sample j of request i is cached under its own key."""
        keys = [[call_key(self.teacher, r, j) for j in range(r.n)] for r in requests]
        found: list[list[Completion | None]] = [[self.cache.get(k) for k in ks] for ks in keys]
        missing = [[j for j, c in enumerate(cs) if c is None] for cs in found]
        todo = [i for i, m in enumerate(missing) if m]
        self.usage.samples_cached += sum(r.n - len(m) for r, m in zip(requests, missing))
        results: list[Result] = [[c for c in cs if c is not None] for cs in found]
        for i, _ in enumerate(requests):
            if i not in set(todo) and on_result:
                on_result(i, results[i])

        def store(t: int, result: Result) -> None:
            i = todo[t]
            self.usage.calls += 1
            if isinstance(result, CallFailure):
                self.usage.failed_calls += 1
                self.usage.errors.append(result.error)
                results[i] = result
            else:
                result = result[: len(missing[i])]
                self.cache.put_many([(keys[i][j], c) for j, c in zip(missing[i], result)])
                self.usage.samples_generated += len(result)
                self.usage.prompt_tokens += result[0].prompt_tokens if result else 0
                self.usage.completion_tokens += sum(c.completion_tokens for c in result)
                merged = list(found[i])
                for j, c in zip(missing[i], result):
                    merged[j] = c
                results[i] = [c for c in merged if c is not None]
            if on_result:
                on_result(i, results[i])

        def account(result: Result) -> None:
            if not isinstance(result, CallFailure) and result:
                self.usage.total_prompt_tokens += result[0].prompt_tokens
                self.usage.total_completion_tokens += sum(c.completion_tokens for c in result)

        if todo:
            pending = [replace(requests[i], n=len(missing[i]), first_sample=missing[i][0]) for i in todo]
            # A partial request (some samples cached) keeps its full prompt; the backend only draws
            # the missing count. Sample identity is the index, so order within a request is stable.
            self.teacher.generate(pending, on_result=store)
        for result in results:
            account(result)
        return results
