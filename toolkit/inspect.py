"""`hubtool inspect`: what a run directory holds, in a form people read."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from toolkit.errors import UserError
from toolkit.rundir import FAILED, read_manifest, read_rows

TREES = "trees"  # RUN/trees/<id>.json: search trees a method writes (nodes: "label", "children")


def _rows(run_dir: Path, n: int) -> tuple[int, list[dict]]:
    if not read_manifest(run_dir).data_file:
        return 0, []  # an unfinished build
    table = read_rows(run_dir)  # a damaged data file is one line naming it
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
    trees = sorted((run_dir / TREES).glob("*.json"))
    if trees:
        out.append(f"  trees    {len(trees)} in {run_dir / TREES} (`hubtool inspect {run_dir} --tree ID|first`)")
    if rows:
        out.append(f"first {len(rows)} rows:")
        out += [_show_row(r) for r in rows]
    return "\n".join(out)


def describe_tree(run_dir: str | Path, which: str) -> str:
    """One search tree of a build (RUN/trees/<which>.json, or the first one), a node per line.

    Generic: a tree file is {"root": node, ...} where a node has a one-line "label" and "children"."""
    folder = Path(run_dir) / TREES
    files = sorted(folder.glob("*.json"))
    if not files:
        raise UserError(f"{run_dir} holds no search trees ({folder}); only tree-search builds write them")
    path = files[0] if which == "first" else folder / f"{Path(which).name}.json"
    if not path.is_file() or which not in ("first", path.stem):
        raise UserError(f"no tree {which!r} in {folder}; e.g. {', '.join(p.stem for p in files[:3])} or 'first'")
    data = _read_tree(path)
    head = {k: v for k, v in data.items() if k != "root" and not isinstance(v, dict | list)}
    lines = [f"{path}: " + ", ".join(f"{k} {str(v)[:80]!s}" for k, v in head.items())]

    def walk(node: dict, prefix: str, last: bool, top: bool) -> None:
        lines.append(("" if top else prefix + ("└─ " if last else "├─ ")) + str(node.get("label", node.get("id"))))
        kids = node.get("children") or []
        for i, kid in enumerate(kids):
            walk(kid, "" if top else prefix + ("   " if last else "│  "), i == len(kids) - 1, False)

    walk(data["root"], "", True, True)
    return "\n".join(lines)


def _read_tree(path: Path) -> dict:
    """A tree file's JSON: an object whose "root" is a node object; anything else is a one-line error."""
    why = "not an object with a \"root\" node and \"children\" lists"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        data, why = None, str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(data, dict) and isinstance(data.get("root"), dict) and _nodes_ok(data["root"]):
        return data
    raise UserError(f"{path} is not a readable search tree ({why}); rebuild the run, or delete the file")


def _nodes_ok(node: object, depth: int = 0) -> bool:
    """Every node an object whose "children" (if any) is a list of nodes, nested at most 200 deep."""
    if not isinstance(node, dict) or depth > 200:
        return False
    kids = node.get("children") or []
    return isinstance(kids, list) and all(_nodes_ok(k, depth + 1) for k in kids)
