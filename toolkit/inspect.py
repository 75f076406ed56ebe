"""`hubtool inspect`: what a run directory holds, in a form people read."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from toolkit.rundir import FAILED, data_file, read_manifest


def _rows(run_dir: Path, n: int) -> tuple[int, list[dict]]:
    import pyarrow.parquet as pq

    if not read_manifest(run_dir).data_file:
        return 0, []  # an unfinished build
    path = data_file(run_dir)
    table = pq.read_table(path)
    return table.num_rows, table.slice(0, n).to_pylist()


def _show_row(row: dict) -> str:
    lines = [f"  id={row.get('id')} gold={row.get('gold')} pred={row.get('pred')} correct={row.get('correct')}"]
    for key in ("prompt", "completion", "chosen", "rejected"):
        for msg in row.get(key) or []:
            text = textwrap.shorten(msg["content"].replace("\n", " "), 300)
            lines.append(f"    [{key}/{msg['role']}] {text}")
    return "\n".join(lines)


def describe_run(run_dir: str | Path, n_rows: int = 3) -> str:
    run_dir = Path(run_dir)
    m = read_manifest(run_dir)
    n, rows = _rows(run_dir, n_rows)
    samples = m.counts.get("samples", 0)
    acc = f"{m.counts.get('correct', 0) / samples:.1%}" if samples else "n/a"
    failed = (run_dir / FAILED).read_text().count("\n") if (run_dir / FAILED).exists() else 0
    models = ", ".join(f"{x.role} {x.identity}" for x in m.models) or m.teacher
    out = [
        f"{run_dir}: {m.method} build, status {m.status}" + (f", preset {m.preset}" if m.preset else ""),
        f"  source   {m.source.get('spec')} (split {m.source.get('split')})",
        f"  models   {models}",
        f"  rows     {n}",
        f"  counts   {json.dumps(m.counts)}",
        f"  accuracy against gold: {acc}; failed calls recorded: {failed}",
        f"  usage    {json.dumps(m.usage)}",
        f"  command  {m.command}",
    ]
    if rows:
        out.append(f"first {len(rows)} rows:")
        out += [_show_row(r) for r in rows]
    return "\n".join(out)
