"""The run directory: a build's output, already shaped like a Hub dataset repo.

    RUN/README.md                          dataset card (YAML metadata with `configs`, then the body)
    RUN/data/train-<content hash>.parquet   the rows, in TRL's columns (see `data_file`)
    RUN/manifest.json                      build config, command, versions, teacher, usage, counts
    RUN/failed.jsonl                       teacher calls that failed after every retry
    RUN/shards/                            a sharded build's parts (`--shard I/N`, `hubtool merge`)

`datasets.load_dataset(RUN)` loads it. The manifest is written first with status "running", so a
re-run of the same command recognises its own unfinished build and resumes it (the call cache
holds the finished calls), while a different build is refused instead of overwritten.

A run directory has one writer at a time: a build holds an exclusive lock on the folder from
before it reads the old manifest until it has written the last file, and a second build (or a
push of it) is refused with one line instead of interleaving with it. The lock is flock(2) on
the folder itself: no lock file to leave behind, and it dies with a killed process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from toolkit.decontaminate import add_record, reapply, records
from toolkit.errors import UserError
from toolkit.manifest import Manifest
from toolkit.manifest import library_versions as manifest_versions
from toolkit.redact import redact

MANIFEST = "manifest.json"
DATA_GLOB = "data/train-*.parquet"
FAILED = "failed.jsonl"
SHARDS = "shards"  # a sharded build's shards, merged into this directory (toolkit.builders.shards)


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def library_versions() -> dict[str, str]:
    """What a training run records: the build's libraries' way of asking, for the training stack."""
    return manifest_versions(("hubtool", "torch", "transformers", "datasets", "huggingface_hub", "trl", "peft",
                              "vllm", "openai"))  # fmt: skip


def command_line() -> str:
    """The command that ran, as a user would retype it (credentials removed)."""
    program = sys.argv[0]
    if program.endswith("hubtool") or Path(program).parts[-2:] == ("toolkit", "__main__.py"):
        program = "hubtool"  # the console script, or `python -m toolkit`
    return redact(shlex.join([program, *sys.argv[1:]]))


def atomic_write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); check the folder's permissions and free space") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise UserError(f"cannot write {path} ({e.strerror or e}); check the folder's permissions and free space") from None
        raise


def data_file_name(content: bytes) -> str:
    """`data/train-<sha256[:16]>.parquet`: the name changes whenever the rows do.

    datasets caches a local folder whose card has `configs` by the folder's name and the configured
    path, not by the files: a rebuilt `runs/cot` (or any other folder called `cot`) would load stale
    rows. The card names this exact file, so new rows mean a new cache entry.
    """
    import hashlib

    return f"data/train-{hashlib.sha256(content).hexdigest()[:16]}.parquet"


def data_file(run_dir: str | Path) -> Path:
    """The data file of a build (named in its manifest)."""
    run_dir = Path(run_dir)
    name = read_manifest(run_dir).data_file
    path = run_dir / name if name else None
    if path is None or not path.is_file():
        raise UserError(f"{run_dir} holds no data file ({name or DATA_GLOB}); re-run its build command")
    return path


def read_rows(run_dir: str | Path):
    """A finished build's rows as an Arrow table; a damaged data file is one line that names it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = data_file(run_dir)
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path} is not a readable parquet file ({' '.join(str(e).split())[:120]}); "
                        "re-run the build's command to write it again") from None  # fmt: skip


def read_manifest(run_dir: str | Path) -> Manifest:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise UserError(f"{run_dir} is not a hubtool build (no {MANIFEST}); build one with `hubtool build-dataset`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is corrupt ({e}); rebuild into a new --out") from None
    return Manifest.from_dict(data, str(path))


class RunDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._created = False
        self._carried: list[dict] = []  # `hubtool decontaminate` passes a re-run applies again

    def claim(self) -> None:
        """Make the directory if needed and take its writer lock; a one-line UserError when it is
        not writable or another build holds it."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file; give a directory")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):  # writable, really (root ignores mode bits, not a read-only mount)
                pass
        except OSError as e:
            self._remove_if_unused()
            raise UserError(f"cannot write to --out {self.path} ({e.strerror or e}); choose a writable directory") from None
        fd = os.open(self.path, os.O_RDONLY)
        if not try_lock(fd, exclusive=True):
            os.close(fd)
            raise UserError(
                f"{self.path} is being written by another build right now; wait for it to finish, or use another --out"
            )
        self._lock_fd = fd

    def release(self) -> None:
        """Give up the lock; a build that stopped before writing anything leaves no directory behind."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None
        self._remove_if_unused()

    def _remove_if_unused(self) -> None:
        if self._created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only when still empty

    def check(self, manifest: Manifest, *, overwrite: bool = False) -> None:
        """Refuse a directory that holds a different build (same build: resume or extend it)."""
        if self.path.exists() and not self.path.is_dir():
            raise UserError(f"--out {self.path} is a file; give a directory")
        if (self.path / MANIFEST).exists() and not overwrite:
            old, new = read_manifest(self.path).identity, manifest.identity
            for key in new:
                if old[key] != new[key]:
                    raise UserError(
                        f"{self.path} holds a different build ({key}: {_short(old[key])} vs "
                        f"{_short(new[key])}); use another --out, or --overwrite to replace it"
                    )
        elif self.path.exists() and any(p.name != SHARDS for p in self.path.iterdir()) and not overwrite:
            raise UserError(f"{self.path} is not empty and holds no hubtool build; use another --out")

    def start(self, manifest: Manifest) -> None:
        """Mark the build as running: a killed build leaves this manifest, and a re-run resumes it.
        What `hubtool decontaminate` removed from this same build stays removed (`finish` applies
        it again), so the running manifest keeps the record too."""
        self._carried = self._decontaminations(manifest)
        manifest.status, manifest.started_at = "running", now()
        if self._carried:
            manifest.stats["decontaminations"] = list(self._carried)
        self.write_manifest(manifest)

    def _decontaminations(self, manifest: Manifest) -> list[dict]:
        try:
            old = read_manifest(self.path) if (self.path / MANIFEST).is_file() else None
        except UserError:
            return []  # a damaged manifest (overwritten with --overwrite) carries nothing
        if old is None or any(old.identity.get(k) != v for k, v in manifest.identity.items()):
            return []  # another build: its removals do not apply
        return [r for r in records(old.stats) if r.get("stage") == "run"]

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write(self.path / MANIFEST, redact(manifest.to_json()).encode())

    def finish(self, writer: DataWriter, manifest: Manifest, failed: Sequence[dict]) -> Manifest:
        """Write the data `writer` streamed, the failures and the final manifest, each atomically; return
        the manifest. The card is its caller's to write (`toolkit.cards.write_card`, with the method)."""
        staged, n_rows = writer.close()
        if self._carried:
            n_rows = self._reapply(staged, manifest)
        name = data_file_name(staged.read_bytes())
        os.replace(staged, self.path / name)
        lines = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in failed)
        atomic_write(self.path / FAILED, redact(lines).encode())  # servers echo keys in error bodies
        manifest.rows, manifest.data_file, manifest.status, manifest.finished_at = n_rows, name, "complete", now()
        self.write_manifest(manifest)
        for old in self.path.glob(DATA_GLOB):  # the data of an earlier finish, now unreferenced
            if old.name != Path(name).name:
                old.unlink()
        return manifest

    def _reapply(self, staged: Path, manifest: Manifest) -> int:
        """Remove again what earlier `hubtool decontaminate` passes removed; record them after the
        build's own pass. Returns the rows left."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(staged)
        rows, passes = reapply(self._carried, table.to_pylist())
        pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), staged)
        own = [r for r in records(manifest.stats) if r.get("stage") != "run"]
        manifest.stats.pop("decontaminations", None)
        manifest.stats.pop("decontamination", None)
        manifest.counts.pop("decontaminated", None)
        for record in [*own, *passes]:
            add_record(manifest, record)
        return len(rows)

    def data_writer(self, schema, encode: Callable[[Any], dict[str, Any]] = dict) -> DataWriter:
        """A writer that streams a build's rows to a staged parquet file in this directory: rows of the
        Arrow `schema`, each made a plain dict by `encode` (a build passes its row type's, see
        toolkit.builders.rows)."""
        (self.path / "data").mkdir(parents=True, exist_ok=True)
        for stale in (self.path / "data").glob(".staged-*.parquet"):  # left by a killed build (we hold the lock)
            stale.unlink(missing_ok=True)
        return DataWriter(self.path / "data" / f".staged-{os.getpid()}.parquet", schema, encode)

    def rewrite(self, schema, rows: Sequence[dict], manifest: Manifest) -> Manifest:
        """Replace a finished build's rows (plain dicts of `schema`), keeping its manifest's story (the
        card is its caller's to write again)."""
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(list(rows), schema=schema), buf)
        name = data_file_name(buf.getvalue())
        atomic_write(self.path / name, buf.getvalue())
        manifest.rows, manifest.data_file = len(rows), name
        self.write_manifest(manifest)
        for old in self.path.glob(DATA_GLOB):
            if old.name != Path(name).name:
                old.unlink()
        return manifest


@contextlib.contextmanager
def reading(run_dir: str | Path):
    """Hold a run directory's shared lock while reading a finished build (a push), so a build
    writing it cannot swap the data mid-read; refuse while one is running."""
    path = Path(run_dir)
    fd = os.open(path, os.O_RDONLY) if path.is_dir() else None
    try:
        if fd is not None and not try_lock(fd, exclusive=False):
            raise UserError(f"{path} is being written by a build right now; wait for it to finish, then push")
        yield
    finally:
        if fd is not None:
            os.close(fd)


def try_lock(fd: int, *, exclusive: bool) -> bool:
    """flock without waiting: False when another process holds a conflicting lock."""
    import fcntl

    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class DataWriter:
    """Rows streamed to parquet in problem order while a build runs, so memory stays flat.

    Problems finish out of order; `add(index, rows)` holds a finished problem's rows until every
    earlier problem is in, then they go out. Row groups end at fixed problem indices (every
    GROUP_PROBLEMS), not at whatever finished when, so the same rows always make the same file (its
    hash names it). Memory holds the problems in flight and one row group, whatever the build's size.
    """

    GROUP_PROBLEMS = 512

    def __init__(self, path: Path, schema, encode: Callable[[Any], dict[str, Any]] = dict) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.schema = schema
        self.encode = encode
        self._writer = pq.ParquetWriter(path, self.schema)
        self._waiting: dict[int, list] = {}  # problem index -> rows, finished ahead of an earlier one
        self._next = 0  # the next problem index to go out
        self._group: list[dict] = []
        self.rows = 0

    def add(self, index: int, rows: Sequence[Any]) -> None:
        self._waiting[index] = [self.encode(r) for r in rows]
        while self._next in self._waiting:
            self._group += self._waiting.pop(self._next)
            self._next += 1
            if self._next % self.GROUP_PROBLEMS == 0:
                self._write_group()

    def _write_group(self) -> None:
        import pyarrow as pa

        if self._group:
            self._writer.write_table(pa.Table.from_pylist(self._group, schema=self.schema))
            self.rows += len(self._group)
            self._group = []

    def close(self) -> tuple[Path, int]:
        """The staged file and its row count (problems never added are left out, in order)."""
        for index in sorted(self._waiting):  # problems after a gap (a build stopped early) still count
            self._group += self._waiting.pop(index)
        self._write_group()
        self._writer.close()
        return self.path, self.rows

    def discard(self) -> None:
        self._writer.close()
        self.path.unlink(missing_ok=True)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
