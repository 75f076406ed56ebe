"""`hubtool merge RUN`: a sharded build (toolkit.builders.shards) made into the single-process build.

Every shard's calls are copied into one cache, and the ordinary build is replayed from it by
stand-ins that answer only from that cache (toolkit.teachers.replay): the rows, counts, `select` and
`finish` are those of one process by construction, for every method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.builders import shards
from toolkit.builders.config import BuildConfig
from toolkit.builders.engine import build_dataset, build_problems
from toolkit.builders.method import Method
from toolkit.builders.shards import Shard
from toolkit.cards import write_card
from toolkit.errors import UserError
from toolkit.manifest import Manifest
from toolkit.records import Problem
from toolkit.rundir import RunDir
from toolkit.teachers.base import CallFailure
from toolkit.teachers.replay import ReplayTeacher


def merge_shards(run_dir: str | Path, *, method: Method, config: BuildConfig) -> Manifest:
    """`hubtool merge RUN`: every shard done, their calls copied into one cache, and the ordinary build
    of `config` (the plan's, see toolkit.builders.shards) replayed from it over all problems by
    stand-ins that answer only from the cache. Rows, counts, `select` and `finish` are the
    single-process build's by construction; the usage recorded is what the shards paid for."""
    plan, done = shards.finished(run_dir)
    roles = config.model_roles()
    records: dict[str, dict[str, Any]] = {}
    for manifest in done:
        for role, record in (manifest.stats["shard"].get("backends") or {}).items():
            first = records.setdefault(role, {**record, "served": set()})
            key = ("backend", "model", "revision", "endpoint")
            if any(first.get(k) != record.get(k) for k in key):
                raise UserError(f"cannot merge {run_dir}: the shards' {role}s differ "
                                f"({_identity(first)} vs {_identity(record)}); every shard must ask the same model")  # fmt: skip
            first["served"] |= set(record.get("served") or ())
    if not records:  # no shard had a problem to run: the build is empty
        raise UserError(f"cannot merge {run_dir}: its shards ran no problem")
    config = dataclasses.replace(config, out=str(run_dir), cache=str(shards.merge_caches(run_dir, plan["shards"])))

    failures = shards.failures(run_dir, plan["shards"])
    problems: list[Problem] = []

    def miss(roles: str, request) -> CallFailure:
        """A call no shard's cache holds: the failure its shard recorded (failed calls are not cached,
        and the single-process build fails them too), else an error naming the problem's shard."""
        if not problems:  # loaded only now: a merge without failures never needs them
            problems.extend(build_problems(config, method))
        text = " ".join(str(m.get("content", "")) for m in request.messages)
        found = [(len(p.question), i) for i, p in enumerate(problems) if p.question and p.question in text]
        if not found:
            raise UserError(f"cannot merge {run_dir}: a {roles} call is in no shard's call cache and belongs to no "
                            "problem of the build; run the shards again into a new --out")  # fmt: skip
        i = max(found)[1]  # the longest question the prompt holds (one may hold a shorter one)
        recorded = [f for f in failures.get(problems[i].id, []) if f.get("role") in roles.split("/")]
        if recorded:
            return CallFailure(str(recorded[0].get("error") or "failed"))
        count = plan["shards"]
        shard = next(s for s in map(Shard, range(count), [count] * count) if s.bounds(len(problems))[1] > i)
        raise UserError(f"cannot merge: a {roles} call of problem {problems[i].id!r} (shard {shard.label}) is in no "
                        "shard's call cache (the shard ran with other options or code, or a question repeated in "
                        "another shard drew another answer there); remove "
                        f"{shards.shard_dir(run_dir, shard)}, run shard {shard.label} again, then merge again")  # fmt: skip

    # roles that shared a backend in the shards (the same spec and identity) share one stand-in, as
    # the single-process build shares one backend (and its session) between them
    groups: dict[tuple, list[str]] = {}
    for role in roles:
        r = records[role]
        groups.setdefault((r.get("spec"), r["backend"], r["model"], r.get("revision"), r.get("endpoint")), []).append(role)
    stand_ins = {}
    for group in groups.values():
        record = {**records[group[0]], "served": sorted(records[group[0]]["served"])}
        stand_in = ReplayTeacher("/".join(group), record, miss)
        stand_ins.update(dict.fromkeys(group, stand_in))
    manifest = build_dataset(config, method=method, stand_ins=stand_ins, preset=plan.get("preset"),
                             preset_values=plan.get("preset_values"), command=plan["command"])  # fmt: skip
    usage: dict[str, dict[str, int]] = {}
    for shard_manifest in done:
        for role, numbers in shard_manifest.usage.items():
            total = usage.setdefault(role, {})
            for k, v in numbers.items():
                total[k] = total.get(k, 0) + v
    manifest.usage = usage or manifest.usage
    run = RunDir(run_dir)
    run.claim()
    try:
        run.write_manifest(manifest)
        write_card(run_dir, method)
    finally:
        run.release()
    return manifest


def _identity(record: Mapping[str, Any]) -> str:
    rev = f"@{record.get('revision')}" if record.get("revision") else ""
    at = f" at {record['endpoint']}" if record.get("endpoint") else ""
    return f"{record.get('backend')}:{record.get('model')}{rev}{at}"
