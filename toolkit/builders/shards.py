"""A build cut into shards, each run by its own process (`--shard I/N`), then merged (`hubtool merge RUN`).

    RUN/shards/plan.json                  the build every shard agreed to: config, source, problems, N
    RUN/shards/00003-of-00008/            shard 3 of 8 (0-based): a run directory of its own
        manifest.json                     status "complete" is written last: the shard's commit
        calls.sqlite                      its call cache (one writer: the shard's process)
        data/train-*.parquet              its rows (for a look; the merge does not read them)
    RUN/shards/calls.sqlite               every shard's calls, copied in by the merge

The problems are exactly the list the single-process build runs (the source loaded, decontaminated,
balanced), cut into N contiguous ranges; the plan's fingerprint (method, source, the problems' ids
and questions, config, prompt templates) is fixed by the first shard that starts and checked by
every other, so a shard run with other options is refused instead of mixed in. A shard is done
when its manifest says "complete" (written last, by rename, after its data and cache are
committed); a re-run of a done shard makes no call, a re-run of a failed one resumes from its cache.

The merge does not glue the shards' rows together: it copies every shard's cached calls into one
cache and runs the ordinary build over all problems from it, with stand-in backends that answer
only from the cache (toolkit.teachers.replay). Every call is a cache hit, so the rows, their order,
the counts, a method's `select` over all rows and its `finish` stats are those of a single-process
build by construction, for every method, with no per-method merge code.

Shared filesystems: a shard's cache uses SQLite's rollback journal (journal_mode=DELETE), not WAL,
see toolkit.teachers.cache; the plan is published with link(2), which is atomic on NFS too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.manifest import Manifest
from toolkit.records import Problem
from toolkit.rundir import FAILED, MANIFEST, SHARDS, read_manifest
from toolkit.teachers.cache import CallCache

PLAN = "plan.json"
CACHE = "calls.sqlite"


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`, 0-based (what SLURM_ARRAY_TASK_ID gives with --array=0-(N-1))."""

    index: int
    count: int

    @property
    def name(self) -> str:
        return f"{self.index:05d}-of-{self.count:05d}"

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def bounds(self, problems: int) -> tuple[int, int]:
        """Its contiguous range of the build's problems: [lo, hi)."""
        return self.index * problems // self.count, (self.index + 1) * problems // self.count


def parse_shard(text: str | Shard) -> Shard:
    """'3/8' -> Shard(3, 8); 0 <= I < N."""
    if isinstance(text, Shard):
        return text
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 0 <= int(m[1]) < int(m[2]):
        raise UserError(f"--shard {text!r}: give I/N with 0 <= I < N (0-based: shards 0/8 .. 7/8)")
    return Shard(int(m[1]), int(m[2]))


def shard_dir(run_dir: str | Path, shard: Shard) -> Path:
    return Path(run_dir) / SHARDS / shard.name


def unsharded(command: str) -> str:
    """The command without its `--shard I/N` (or the Ray engine's options): the single-process
    build the merged card names, whose rows the merge's are."""
    return re.sub(r"\s--(shard|engine|workers|shards|ray-address)(=|\s+)\S+", "", command)


def plan_of(manifest: Manifest, problems: Sequence[Problem], shards: int) -> dict[str, Any]:
    """What every shard must agree on, and its fingerprint."""
    listed = hashlib.sha256(json.dumps([[p.id, p.question] for p in problems], ensure_ascii=False).encode())
    templates = hashlib.sha256(json.dumps(manifest.prompt_templates, sort_keys=True).encode())
    fixed = {"method": manifest.method, "source": manifest.source, "source_sha256": manifest.source_sha256,
             "teacher": manifest.teacher, "problems": listed.hexdigest(), "prompt_templates": templates.hexdigest(),
             "config": manifest.config}  # fmt: skip
    fingerprint = hashlib.sha256(json.dumps(fixed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return {"fingerprint": fingerprint, "shards": shards, "problem_count": len(problems), **fixed,
            "preset": manifest.preset, "preset_values": manifest.preset_values,
            "command": unsharded(manifest.command)}  # fmt: skip


def agree(run_dir: str | Path, shard: Shard, plan: dict[str, Any]) -> dict[str, Any]:
    """Publish `plan` as the run's (the first shard to start does), or check it against the run's:
    a shard of another build is refused in one line naming what differs."""
    path = Path(run_dir) / SHARDS / PLAN
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".plan.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(plan, indent=2, ensure_ascii=False))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # create-if-absent, atomic (on NFS too): of shards starting at once, one wins
        os.unlink(tmp)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror or e}); choose a writable --out") from None
    old = read_plan(run_dir)
    if old["fingerprint"] == plan["fingerprint"] and old["shards"] == shard.count:
        return old
    if old["shards"] != shard.count:
        what = f"it is cut into {old['shards']} shards, not {shard.count}"
    else:
        key = next((k for k in ("method", "source", "source_sha256", "teacher", "problems", "prompt_templates")
                    if old.get(k) != plan[k]), None)  # fmt: skip
        if key is None:
            names = sorted(set(old.get("config", {})) | set(plan["config"]))
            key = next((f"config.{k}" for k in names if old.get("config", {}).get(k) != plan["config"].get(k)), "config")
        what = f"{key} differs: {_short(_get(old, key))} vs {_short(_get(plan, key))}"
    raise UserError(f"shard {shard.label} is not part of the sharded build in {run_dir} ({what}); "
                    "give it the run's options, or use another --out")  # fmt: skip


def read_plan(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / SHARDS / PLAN
    if not path.is_file():
        raise UserError(f"{run_dir} holds no sharded build (no {SHARDS}/{PLAN}); "
                        "start one with `hubtool build-dataset METHOD ... --shard I/N`")  # fmt: skip
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({e}); start the sharded build in a new --out") from None


def committed(run_dir: str | Path, shard: Shard, plan: Mapping[str, Any]) -> Manifest | None:
    """The shard's manifest where it is done (complete, of this plan), else None."""
    folder = shard_dir(run_dir, shard)
    if not (folder / MANIFEST).is_file():
        return None
    try:
        manifest = read_manifest(folder)
    except UserError:
        return None  # damaged: it is run again
    record = manifest.stats.get("shard") or {}
    done = manifest.status == "complete" and record.get("fingerprint") == plan["fingerprint"]
    return manifest if done else None


def finished(run_dir: str | Path) -> tuple[dict[str, Any], list[Manifest]]:
    """The plan and every shard's manifest; one line naming the missing or unfinished shards."""
    plan = read_plan(run_dir)
    count = int(plan["shards"])
    done, missing = [], []
    for i in range(count):
        shard = Shard(i, count)
        manifest = committed(run_dir, shard, plan)
        if manifest is None:
            state = "unfinished" if (shard_dir(run_dir, shard) / MANIFEST).is_file() else "missing"
            missing.append(f"{shard.label} ({state})")
        else:
            done.append(manifest)
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise UserError(f"cannot merge {run_dir}: {len(missing)} of {count} shards not done: {shown}; "
                        f"run them (`{plan['command']} --shard I/{count}`), then merge again")  # fmt: skip
    return plan, done


def failures(run_dir: str | Path, shards: int) -> dict[str, list[dict[str, Any]]]:
    """Every shard's failed calls (failed.jsonl: not cached, so a merge replays them from here), by problem id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for i in range(shards):
        path = shard_dir(run_dir, Shard(i, shards)) / FAILED
        lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
        for line in filter(None, lines):
            record = json.loads(line)
            out.setdefault(str(record.get("id")), []).append(record)
    return out


def merge_caches(run_dir: str | Path, shards: int) -> Path:
    """Copy every shard's cached calls into the run's own cache (RUN/shards/calls.sqlite); its path."""
    path = Path(run_dir) / SHARDS / CACHE
    CallCache(path, shared_fs=True).close()  # the table, in the shard caches' journal mode
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")  # on the shared filesystem too: see toolkit.teachers.cache
        for i in range(shards):
            source = shard_dir(run_dir, Shard(i, shards)) / CACHE
            if not source.is_file():
                continue  # a shard with no calls (no problems)
            db.execute("ATTACH DATABASE ? AS shard", (str(source),))
            try:
                db.execute("BEGIN")
                db.execute("INSERT OR IGNORE INTO samples SELECT key, text, finish_reason, prompt_tokens,"
                           " completion_tokens FROM shard.samples")  # fmt: skip
                db.execute("COMMIT")
            finally:
                db.execute("DETACH DATABASE shard")
    except sqlite3.Error as e:
        raise UserError(f"cannot merge the shards' call caches into {path} ({e})") from None
    finally:
        db.close()
    return path


def _get(data: Mapping[str, Any], key: str) -> Any:
    head, _, tail = key.partition(".")
    value = data.get(head)
    return value.get(tail) if tail and isinstance(value, Mapping) else value


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
