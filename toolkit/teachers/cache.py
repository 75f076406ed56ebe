"""Every teacher call is cached on disk, one row per sample.

Key = the backend's `cache_identity` (backend, model, revision; the endpoint and the options that
change the output, where set) + the messages + sampling parameters + sample index. Finished samples
go to a writer thread that commits them in batches (SQLite WAL, `synchronous=NORMAL`: a committed
sample survives a kill of the process; a shard's cache on a cluster's shared filesystem uses the
rollback journal instead, see `_connect`), so
the build's event loop never waits on the disk; until it is committed a sample is answered from
memory. A build killed with SIGKILL and re-run with the same command repeats no committed call;
raising `--samples` or `--limit` later only generates what is new. Failures and empty completions
are not cached: a re-run retries them. Readings that are no sample (a scorer's next-token
log-probabilities, `Session.reading`) are cached in the same table, as JSON under keys of their own.

A cache file that SQLite cannot read is never replaced or emptied here (it holds what every
earlier build paid for): the error names the file and how to set it aside.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError
from toolkit.teachers.base import Completion, Request, Teacher

log = logging.getLogger(__name__)
BUSY_TIMEOUT = 30.0  # seconds to wait for another build's write on a shared cache
COMMIT_EVERY = 0.02  # seconds the writer gathers samples into one commit (one wake-up, one transaction)


def call_key(teacher: Teacher, request: Request, sample_idx: int) -> str:
    return call_keys(teacher, request, [sample_idx])[0]


def call_keys(teacher: Teacher, request: Request, samples: Sequence[int]) -> list[str]:
    """The keys of several samples of one request: the JSON of everything but the sample index is
    made once. `sample_idx` sorts last, so each key hashes exactly the text `call_key` always has."""
    identity = teacher.cache_identity
    blob = json.dumps(
        {**identity, "messages": list(request.messages), "params": request.params.to_dict(), "sample_idx": 0},
        sort_keys=True,
        ensure_ascii=False,
    )
    head = blob[: -len("0}")]  # sort_keys puts "sample_idx" last: the blob ends '"sample_idx": 0}'
    return [hashlib.sha256(f"{head}{j}}}".encode()).hexdigest() for j in samples]


def reading_key(teacher: Teacher, kind: str, payload: dict) -> str:
    """The key of a reading that is no sample (`Session.reading`: a scorer's next-token
    log-probabilities): the backend's identity, the reading's kind and what it was read from."""
    blob = json.dumps({**teacher.cache_identity, "reading": kind, **payload}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class CallCache:
    """A SQLite table of finished samples, written by a thread of its own, safe to kill at any moment."""

    def __init__(self, path: str | Path, *, shared_fs: bool = False, sole_writer: bool = False) -> None:
        self.path = Path(path)
        self.shared_fs = shared_fs
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create the call cache folder {self.path.parent} ({e.strerror or e}); "
                            "make it writable, or set --cache FILE or HUBTOOL_HOME elsewhere") from None  # fmt: skip
        if self.path.is_dir():
            raise UserError(f"the call cache {self.path} is a folder; give --cache a file path")
        with self._guard("open"):
            self._db = self._connect()
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS samples (key TEXT PRIMARY KEY, text TEXT, finish_reason TEXT,"
                " prompt_tokens INTEGER, completion_tokens INTEGER)"
            )
        self._pending: dict[str, Completion] = {}  # handed to the writer, not committed yet
        # A cache only this process writes (a shard's: its folder is locked), empty when opened: it
        # holds exactly what this process committed, so a key not among those is a miss without a
        # read. Under the rollback journal a read waits (SQLite's sleep-and-retry) while the writer
        # thread commits; a fresh shard's lookups, all misses, would hold its event loop that long.
        self._committed: set[str] | None = None
        if sole_writer:
            with self._guard("read"):
                empty = self._db.execute("SELECT 1 FROM samples LIMIT 1").fetchone() is None
            self._committed = set() if empty else None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
        if self.shared_fs:
            # A shard's cache (toolkit.builders.shards) lives on the filesystem a cluster shares (NFS,
            # Lustre, ...). WAL keeps its index in shared memory (mmap of -shm), which is not shared
            # between hosts and breaks on network filesystems; the rollback journal (DELETE) needs only
            # file locks, and a shard cache has one writer (its shard's process), so the coarse locking
            # costs nothing. FULL: a rollback-journal commit that survives a crash of the host, too.
            db.execute("PRAGMA journal_mode=DELETE")
            db.execute("PRAGMA synchronous=FULL")
            return db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # WAL: a commit survives a process kill without an fsync
        return db

    def get(self, key: str) -> Completion | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str]) -> list[Completion | None]:
        """The cached sample of each key (None where there is none), committed or still pending."""
        found: dict[str, Completion] = {}
        with self._lock:
            found.update((k, self._pending[k]) for k in keys if k in self._pending)
            rest = [k for k in keys if k not in found]
            if self._committed is not None:
                rest = [k for k in rest if k in self._committed]
            with self._guard("read"):
                for start in range(0, len(rest), 500):
                    chunk = rest[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    sql = f"SELECT key, text, finish_reason, prompt_tokens, completion_tokens FROM samples WHERE key IN ({marks})"
                    found.update((row[0], Completion(*row[1:])) for row in self._db.execute(sql, chunk))
        return [found.get(k) for k in keys]

    def put_many(self, items: Sequence[tuple[str, Completion]]) -> None:
        """Hand samples to the writer thread; they are readable at once and committed within moments."""
        if not items:
            return
        self._raise_writer_error()
        with self._lock:
            self._pending.update(items)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="hubtool-cache-writer", daemon=True)
                self._writer.start()
        self._queue.put(list(items))

    def flush(self) -> None:
        """Wait until everything handed over so far is committed."""
        if self._writer is not None:
            done = threading.Event()
            self._queue.put(done)
            done.wait()
        self._raise_writer_error()

    def _write_loop(self) -> None:
        db = self._connect()  # the writer's own connection: readers never wait on a commit
        try:
            while True:
                item = self._queue.get()
                if not isinstance(item, threading.Event) and item is not None:
                    time.sleep(COMMIT_EVERY)  # let a burst of samples arrive: one commit for all of them
                batch, events, stop = [], [], False
                while True:  # everything that is waiting goes into one commit
                    if item is None:
                        stop = True
                    elif isinstance(item, threading.Event):
                        events.append(item)
                    else:
                        batch += item
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch and self._error is None:
                    self._commit(db, batch)
                for event in events:
                    event.set()
                if stop:
                    return
        finally:
            db.close()

    def _commit(self, db: sqlite3.Connection, batch: list[tuple[str, Completion]]) -> None:
        rows = [(k, c.text, c.finish_reason, c.prompt_tokens, c.completion_tokens) for k, c in batch]
        try:
            with self._guard("write"):
                db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?)", rows)
        except BaseException as e:  # surfaces on the next put / close, in the build's thread
            self._error = e
            return
        with self._lock:
            if self._committed is not None:
                self._committed.update(key for key, _ in batch)
            for key, completion in batch:
                if self._pending.get(key) is completion:
                    del self._pending[key]

    def _raise_writer_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __len__(self) -> int:
        self.flush()
        with self._lock, self._guard("read"):
            return self._db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def close(self) -> None:
        """Commit what is pending, stop the writer, close the file."""
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None
        self._db.close()
        self._raise_writer_error()

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
