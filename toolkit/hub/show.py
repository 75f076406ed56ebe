"""What `hubtool ls` and `hubtool show` print: the registry's contents, a dataset's card summary.

One broken entry (a corrupt parquet or manifest, a version folder gone) never hides the others:
`ls` lists it with what is wrong, and `show` says it in one line.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from toolkit.cards import parse_metadata
from toolkit.errors import UserError
from toolkit.hub.registry import LocalEntry, list_local
from toolkit.hub.remote import hub_errors
from toolkit.hub.resolve import ResolvedDataset, load_dataset, parquet_rows, resolve_dataset
from toolkit.manifest import Manifest
from toolkit.paths import registry_dir
from toolkit.rundir import MANIFEST, read_manifest


def registry_table() -> str:
    entries = list_local()
    if not entries:
        return f"the local registry ({registry_dir()}) is empty; publish a build with `hubtool push RUN_DIR ORG/NAME`"
    lines = [f"{'name':<40} {'rows':>7}  {'method':<12} teacher"]
    for e in entries:
        try:
            m, rows = _entry_manifest(e), parquet_rows(e.path) or 0
        except UserError as problem:
            lines.append(f"{e.name:<40} {'?':>7}  {'BROKEN':<12} {problem}")
            continue
        lines.append(f"{e.name:<40} {rows:>7}  {m.method if m else '-':<12} {m.teacher_identity if m else '-'}")
    return "\n".join(lines)


def describe(name: str, n_rows: int = 3, revision: str | None = None) -> str:
    """Card summary, provenance and the first rows of a dataset found by `resolve_dataset`."""
    found = resolve_dataset(name, revision)
    card = _read(found, "README.md") or ""
    meta = parse_metadata(card)
    raw = _read(found, "manifest.json")
    m = Manifest.from_dict(_json(raw, f"{name}/manifest.json"), f"{name}/manifest.json") if raw else None
    # A corrupt data file is one line now, not a traceback from `datasets`; an empty one shows as 0 rows.
    local_rows = parquet_rows(Path(found.path), name) if found.local else None
    where = f"local: {found.path}" if found.local else f"Hub: {found.path}@{found.fingerprint[:12]}"
    out = [
        f"{meta.get('pretty_name') or name}  ({where})",
        f"  license  {meta.get('license', '-')}    size {', '.join(meta.get('size_categories') or ['-'])}",
        f"  tags     {', '.join(meta.get('tags') or []) or '-'}",
        f"  method   {m.method if m else '-'}    teacher {m.teacher_identity if m else '-'}",
        f"  source   {m.source.get('spec', '-') if m else '-'}    counts {json.dumps(m.counts) if m and m.counts else '-'}",
        f"  command  {m.command if m else '-'}",
        f"  fingerprint {found.fingerprint}",
    ]
    if local_rows == 0:
        out.append("0 rows: nothing to train on")
    elif n_rows > 0:
        ds = load_dataset(name, revision=revision)
        out.append(f"{ds.num_rows} rows; the first {min(n_rows, ds.num_rows)}:")
        out += [_row(r) for r in ds.select(range(min(n_rows, ds.num_rows)))]
    return "\n".join(out)


def _row(row: dict[str, Any]) -> str:
    head = "  " + " ".join(f"{k}={row[k]}" for k in ("id", "gold", "pred", "correct") if k in row)
    lines = [head]
    for key in ("prompt", "completion", "chosen", "rejected"):
        for msg in row.get(key) or []:
            lines.append(
                f"    [{key}/{msg['role']}] {textwrap.shorten(msg['content'].replace(chr(10), ' '), 200)}"
            )
    return "\n".join(lines)


def _read(found: ResolvedDataset, filename: str) -> str | None:
    """A file of the dataset's repo (local folder, or the Hub at the resolved commit)."""
    if found.local:
        path = Path(found.path) / filename
        try:
            return path.read_text(encoding="utf-8") if path.exists() else None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{found.name}: {filename} cannot be read ({e}); re-push the dataset") from None
    from huggingface_hub import hf_hub_download  # only for a Hub dataset (its HTTP client ~75 ms)
    from huggingface_hub.errors import EntryNotFoundError

    with hub_errors(f"reading {filename} of {found.name}", found.name):
        try:
            return Path(
                hf_hub_download(found.path, filename, repo_type="dataset", revision=found.fingerprint)
            ).read_text()
        except EntryNotFoundError:
            return None


def _entry_manifest(entry: LocalEntry):
    """A registry entry's manifest (None when it has none); a UserError saying what is wrong."""
    if entry.version == "missing":
        raise UserError(f"its version folder is gone; push it again (or remove {entry.path})")
    return read_manifest(entry.path) if (entry.path / MANIFEST).exists() else None


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where} is corrupt ({e}); re-push the dataset") from None
