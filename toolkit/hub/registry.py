"""The local registry: one folder per `org/name`, laid out like a Hub dataset repo.

    REGISTRY/org/name -> ../.versions/org/name/VERSION    relative symlink to the current version
    REGISTRY/.versions/org/name/VERSION/README.md, manifest.json, data/train-<hash>.parquet
    REGISTRY/.versions/org/name/.lock                      held while a push publishes

`datasets.load_dataset(REGISTRY/org/name)` loads it. A push writes the new version into
`.versions/org/name/.tmp-*`, renames that to its version id, then swaps the `org/name` link with
one rename(2), which is atomic on POSIX: a reader sees the old or the new version, never a mix,
also when the push is killed at any point. A killed push leaves a `.tmp-*` folder that the next
push removes. The version a push replaces is kept until the push after, so a reader that resolved
it just before the swap can finish reading.
"""

from __future__ import annotations

import contextlib
import filecmp
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError
from toolkit.paths import registry_dir

log = logging.getLogger(__name__)

VERSIONS = ".versions"
# Test hook: seconds to sleep after each file a push writes, so a test can kill it midway.
PAUSE_ENV = "HUBTOOL_TEST_PUSH_PAUSE"


@dataclass(frozen=True, slots=True)
class LocalEntry:
    name: str  # org/name
    path: Path  # the current version's folder (stable while a later push swaps the link)
    version: str


def entry_link(name: str) -> Path:
    return registry_dir() / name


def current(name: str) -> LocalEntry | None:
    """The version `name` points to now, or None when the registry does not hold it."""
    link = entry_link(name)
    if not link.exists():
        return None
    target = link.resolve()
    return LocalEntry(name, target, target.name if link.is_symlink() else "unversioned")


def check_root() -> Path:
    """The registry folder, or a UserError when it (or $HUBTOOL_HOME) is something else."""
    root = registry_dir()
    for path in (root.parent, root):
        if path.exists() and not path.is_dir():
            raise UserError(
                f"the local registry path {path} is a file, not a folder; move it aside or set HUBTOOL_HOME"
            )
    return root


def list_local() -> list[LocalEntry]:
    """Every entry, broken ones included (a link whose version is gone: version "missing"), so
    `hubtool ls` can show them rather than hide them."""
    root = check_root()
    if not root.is_dir():
        return []
    names = [f"{org.name}/{d.name}" for org in root.iterdir() if org.is_dir() and not org.name.startswith(".")
             for d in org.iterdir() if not d.name.startswith(".")]  # fmt: skip
    return [current(n) or LocalEntry(n, entry_link(n), "missing") for n in sorted(names)]


def publish(name: str, files: Mapping[str, bytes | Path]) -> tuple[LocalEntry, bool]:
    """Make `files` (path in repo -> content or source file) the current version of `name`.

    Returns the entry and whether anything changed (an identical re-push changes nothing)."""
    check_root()
    try:
        return _publish(name, files)
    except OSError as e:
        root, failed = registry_dir(), Path(str(e.filename or ""))
        if e.filename and not (failed.is_relative_to(root) or root.is_relative_to(failed)):
            raise  # not the registry's side (a source file vanished): keep the real error
        raise UserError(
            f"cannot write the local registry at {registry_dir()} ({e.strerror or e}); "
            "make it writable, or set HUBTOOL_HOME to a writable folder"
        ) from None


def _publish(name: str, files: Mapping[str, bytes | Path]) -> tuple[LocalEntry, bool]:
    link = entry_link(name)
    if link.exists() and not link.is_symlink():
        raise UserError(
            f"{link} is a folder hubtool did not create; move it out of the registry and push again"
        )
    vdir = registry_dir() / VERSIONS / name
    vdir.mkdir(parents=True, exist_ok=True)
    with _locked(vdir):
        _remove_leftovers(vdir, entry_link(name))
        old = current(name)
        if old is not None and _same(old.path, files):
            return old, False
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=vdir))
        tmp.chmod(0o755)  # mkdtemp makes it private; a registry is shared like any cache
        for rel, content in files.items():
            _write(tmp / rel, content)
            if os.environ.get(PAUSE_ENV):
                time.sleep(float(os.environ[PAUSE_ENV]))
        version = f"v{time.time_ns():020d}"
        os.rename(tmp, vdir / version)
        _swap_link(entry_link(name), vdir / version)
        _prune(vdir, keep={version, old.version if old else ""})
    return LocalEntry(name, (vdir / version).resolve(), version), True


def _write(path: Path, content: bytes | Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    else:
        path.write_bytes(content)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _same(folder: Path, files: Mapping[str, bytes | Path]) -> bool:
    present = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    if present != set(files):
        return False
    for rel, content in files.items():
        if isinstance(content, Path):
            if not filecmp.cmp(folder / rel, content, shallow=False):
                return False
        elif (folder / rel).read_bytes() != content:
            return False
    return True


def _swap_link(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp_link = link.parent / f".{link.name}.link-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, link.parent), tmp_link)
    os.replace(tmp_link, link)  # the atomic step: readers see the old or the new target
    _fsync_dir(link.parent)


def _remove_leftovers(vdir: Path, link: Path) -> None:
    """What a killed push left behind: a half-written version, a link not yet swapped in."""
    for stale in vdir.glob(".tmp-*"):
        log.info("removing %s, left by an interrupted push", stale)
        shutil.rmtree(stale, ignore_errors=True)
    for stale in link.parent.glob(f".{link.name}.link-*"):
        stale.unlink(missing_ok=True)


def _prune(vdir: Path, keep: set[str]) -> None:
    for old in vdir.iterdir():
        if old.is_dir() and not old.name.startswith(".") and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(vdir: Path) -> Iterator[None]:
    """One push per dataset at a time; the lock dies with a killed process."""
    import fcntl  # POSIX only: listing and reading the registry work without it

    with open(vdir / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
