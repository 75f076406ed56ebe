"""What `hubtool ls` and `hubtool show` print: the registry's contents, a dataset's card summary."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from toolkit.hub.registry import list_local
from toolkit.hub.resolve import ResolvedDataset, load_dataset, resolve_dataset
from toolkit.paths import registry_dir


def registry_table() -> str:
    entries = list_local()
    if not entries:
        return f"the local registry ({registry_dir()}) is empty; publish a build with `hubtool push RUN_DIR ORG/NAME`"
    lines = [f"{'name':<40} {'rows':>7}  {'method':<12} teacher"]
    for e in entries:
        m = _manifest(e.path)
        rows = _rows(e.path)
        lines.append(f"{e.name:<40} {rows:>7}  {m.method if m else '-':<12} {m.teacher_identity if m else '-'}")
    return "\n".join(lines)


def describe(name: str, n_rows: int = 3, revision: str | None = None) -> str:
    """Card summary, provenance and the first rows of a dataset found by `resolve_dataset`."""
    from toolkit.cards import parse_metadata
    from toolkit.manifest import Manifest

    found = resolve_dataset(name, revision)
    card = _read(found, "README.md") or ""
    meta = parse_metadata(card)
    raw = _read(found, "manifest.json")
    m = Manifest.from_dict(_json(raw, f"{name}/manifest.json"), f"{name}/manifest.json") if raw else None
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
    if n_rows > 0:
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
        return path.read_text(encoding="utf-8") if path.exists() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    from toolkit.hub.remote import hub_errors

    with hub_errors(f"reading {filename} of {found.name}", found.name):
        try:
            return Path(
                hf_hub_download(found.path, filename, repo_type="dataset", revision=found.fingerprint)
            ).read_text()
        except EntryNotFoundError:
            return None


def _manifest(folder: Path):
    """A registry entry's manifest, or None when it is missing or unreadable (`ls` lists the rest)."""
    from toolkit.errors import UserError
    from toolkit.rundir import read_manifest

    try:
        return read_manifest(folder)
    except UserError:
        return None


def _json(text: str, where: str) -> Any:
    from toolkit.errors import UserError

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{where} is corrupt ({e}); re-push the dataset") from None


def _rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(p).num_rows for p in sorted((folder / "data").glob("*.parquet")))
