"""`push`: publish a finished build as `org/name`, to the local registry or to the Hub."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from toolkit.cards import public_manifest, render_card
from toolkit.errors import UserError
from toolkit.hub import registry
from toolkit.hub.names import validate_repo_id
from toolkit.hub.remote import endpoint, published_manifest, push_to_hub
from toolkit.manifest import Manifest
from toolkit.redact import redact
from toolkit.rundir import data_file, read_manifest, reading

if TYPE_CHECKING:  # the type only: the method is the caller's (publishing sits below the methods)
    from toolkit.builders.method import Method

_LICENSE = re.compile(r"[a-z0-9][a-z0-9.+-]*")


@dataclass(frozen=True, slots=True)
class PushResult:
    name: str
    target: Literal["local", "hub"]
    location: str  # registry folder, or the Hub URL
    version: str  # registry version id, or the Hub commit sha
    revision: str | None
    rows: int
    changed: bool

    def summary(self) -> str:
        where = "the local registry" if self.target == "local" else "the Hub"
        branch = f" (branch {self.revision})" if self.revision else ""
        state = f"{self.rows} rows" if self.changed else f"unchanged, {self.rows} rows"
        version = self.version if self.target == "local" else self.version[:12]
        return f"pushed {self.name} to {where}{branch}: {state}, version {version} -> {self.location}"


def push(run_dir: str | Path, name: str, *, method: Method | None, hub: bool = False, private: bool = False,
         revision: str | None = None, license: str | None = None) -> PushResult:  # fmt: skip
    """Publish the build in `run_dir` as `name`: the local registry, or the Hub with `hub=True`.

    The card is re-rendered for `name` with `method`'s template (the build's method, which the caller
    looks up by the manifest's name; None for one this hubtool does not know: the generic card); the
    run directory itself is never modified."""
    validate_repo_id(name)
    run_dir = Path(run_dir)
    if license is not None and not _LICENSE.fullmatch(license):
        raise UserError(
            f"--license {license!r} is not a license id; use a Hub id such as apache-2.0, mit, cc-by-4.0"
        )
    if not hub and (private or revision):
        raise UserError(
            "--private and --revision apply to --hub pushes; the local registry keeps one version per name"
        )
    with reading(run_dir):  # a build writing run_dir now is refused, not read half-way
        manifest = check_build(run_dir)
        rows = _row_count(run_dir, manifest)
        if hub:
            return _push_hub(run_dir, name, manifest, method, rows, private=private, revision=revision,
                             license=license)  # fmt: skip
        return _push_local(run_dir, name, method, rows, license)


def check_build(run_dir: Path) -> Manifest:
    """The manifest of a finished build, or a UserError saying why `run_dir` is not one."""
    if not run_dir.is_dir():
        raise UserError(
            f"{run_dir} is not a directory; give the --out folder of a finished `hubtool build-dataset`"
        )
    manifest = read_manifest(run_dir)
    if manifest.status != "complete":
        raise UserError(
            f"{run_dir} holds an unfinished build (status {manifest.status!r}); "
            f"finish it by re-running: {manifest.command or 'its build command'}"
        )
    data_file(run_dir)  # a UserError naming the fix when the data is missing
    return manifest


def _push_local(run_dir: Path, name: str, method: Method | None, rows: int, license: str | None) -> PushResult:
    old = registry.current(name)
    existing = (
        (old.path / "README.md").read_text(encoding="utf-8")
        if old and (old.path / "README.md").exists()
        else None
    )
    card = render_card(run_dir, method, repo_id=name, license=license, existing=existing)
    files = {"README.md": card.encode(), "manifest.json": published_manifest(run_dir)}
    files[manifest_data_name(run_dir)] = data_file(run_dir)
    entry, changed = registry.publish(name, files)
    return PushResult(name, "local", str(registry.entry_link(name)), entry.version, None, rows, changed)


def _push_hub(run_dir: Path, name: str, manifest: Manifest, method: Method | None, rows: int, *, private: bool,
              revision: str | None, license: str | None) -> PushResult:  # fmt: skip
    public = public_manifest(manifest, run_dir)  # no path of this machine in the commit either
    message = redact(f"hubtool: {public.method} build, teacher {public.teacher_identity}, {rows} rows")
    description = redact(f"Rebuild with:\n\n    {public.command}\n")
    sha, changed = push_to_hub(run_dir, name, method, private=private, revision=revision, license=license,
                               message=message, description=description)  # fmt: skip
    url = f"{endpoint()}/datasets/{name}" + (f"/tree/{revision}" if revision else "")
    return PushResult(name, "hub", url, sha, revision, rows, changed)


def _row_count(run_dir: Path, manifest: Manifest) -> int:
    """The rows of the build's data file; a UserError when it is unreadable or empty."""
    import pyarrow as pa  # pyarrow is slow to import (~150 ms): only when a push counts rows
    import pyarrow.parquet as pq

    path = data_file(run_dir)
    rebuild = f"re-run its build command (the call cache makes that quick): {manifest.command or 'hubtool build-dataset ...'}"
    try:
        rows = pq.read_metadata(path).num_rows
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path} is not a readable parquet file ({' '.join(str(e).split())[:160]}); {rebuild}") from None
    if rows == 0:
        raise UserError(
            f"{run_dir} holds 0 rows, so there is nothing to publish; `hubtool inspect {run_dir}` shows why "
            "(counts, failed calls), and a re-run with changed options reuses the cached calls"
        )
    return rows


def manifest_data_name(run_dir: Path) -> str:
    """The data file's path inside the repo, as the card's `configs` names it."""
    return data_file(run_dir).relative_to(run_dir).as_posix()
