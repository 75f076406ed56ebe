"""Run one build: the part every method shares.

    config -> method setup (templates, files: checked before any model loads) -> problems
      -> claim the run directory -> models (each backend once, every call cached)
      -> the method's `run(problem, work)` for every problem, many in flight in one event loop
      -> rows in problem order (the method's `select` may take a subset) -> data + manifest + card

A re-run of the same command resumes: the call cache answers every finished call, so it ends with
the rows an uninterrupted build would have written. The same holds across processes: `--shard I/N`
runs one contiguous part of the problems with its own cache, and `merge_shards` replays the whole
build from the shards' caches (toolkit.builders.shards).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit import decontaminate as decon
from toolkit.builders import shards
from toolkit.builders.balance import balance_classes
from toolkit.builders.config import BuildConfig, recorded
from toolkit.builders.method import Method, Work
from toolkit.builders.progress import Progress
from toolkit.builders.rows import schema_of, to_record
from toolkit.builders.shards import Shard
from toolkit.cards import check_card_template, write_card
from toolkit.errors import UserError
from toolkit.manifest import Manifest, ModelInfo, RowFormat, library_versions
from toolkit.paths import call_cache_path
from toolkit.prompts import template_source
from toolkit.records import Problem
from toolkit.rundir import RunDir, command_line
from toolkit.sources import load_source
from toolkit.teachers import load_teacher, redact_spec
from toolkit.teachers.base import Teacher, gather_or_cancel
from toolkit.teachers.cache import CallCache
from toolkit.teachers.replay import identity_record
from toolkit.teachers.session import Session
from toolkit.version import __version__

log = logging.getLogger(__name__)


def build_dataset(config: BuildConfig, *, method: Method, teachers: Mapping[str, Teacher] | None = None,
                  preset: str | None = None, preset_values: Mapping[str, Any] | None = None,
                  command: str | None = None, shard: Shard | None = None,
                  stand_ins: Mapping[str, Teacher] | None = None, fence: Callable[[], None] | None = None) -> Manifest:  # fmt: skip
    """Build `method`'s dataset into `config.out` and return the final manifest. `teachers` gives ready
    backends by role (custom backends, tests) instead of loading the config's BACKEND:MODEL specs.
    `command` is the command the manifest records (default: this process's command line). `shard`
    builds only that shard, into OUT/shards/ (toolkit.builders.shards; its manifest is returned);
    `stand_ins` are backends that answer for the config's specs, recorded under them (the merge's).
    `fence` is called just before a shard commits and raises where this process may no longer
    commit it (the Ray engine's lease, toolkit.builders.ray_engine)."""
    state, loaded, decontamination, manifest = _prepare(config, method, teachers, stand_ins, preset, preset_values,
                                                        command)  # fmt: skip
    roles = config.model_roles()
    problems = loaded.problems
    shared_fs, shard_record = False, None
    if shard is not None:
        plan = shards.agree(config.out, shard, shards.plan_of(manifest, problems, shard.count))
        done = shards.committed(config.out, shard, plan)
        if done is not None and not done.counts.get("failed"):  # failed calls: a re-run retries them
            log.info("shard %s of %s is done already", shard.label, config.out)
            return done
        lo, hi = shard.bounds(len(problems))
        problems = problems[lo:hi]
        out = shards.shard_dir(config.out, shard)  # the shard's run directory (a method may write there: trees/)
        config = dataclasses.replace(config, out=str(out), cache=str(out / shards.CACHE))  # run-only fields
        shared_fs = True  # its own cache, on the shared filesystem
        shard_record = {"index": shard.index, "count": shard.count, "problems": [lo, hi],
                        "fingerprint": plan["fingerprint"]}  # fmt: skip
        manifest.stats["shard"] = shard_record
    run = RunDir(config.out)
    run.claim()  # one writer at a time: a second build into this --out is refused, not interleaved
    try:
        run.check(manifest, overwrite=config.overwrite)  # before the slow model loads: fail fast
        sessions, opened = _open_models(config, roles, {**(stand_ins or {}), **(teachers or {})},
                                        Path(config.cache or call_cache_path()), shared_fs,
                                        shard.index if shard is not None else None)  # fmt: skip
        run.start(manifest)
        progress = Progress(len(problems), method.name, in_flight=lambda: _in_flight(sessions),
                            tokens=lambda: sum(s.usage.completion_tokens for s in _unique(sessions)))
        writer = run.data_writer(schema_of(method.row), to_record)
        try:
            counts, failed = asyncio.run(_run_all(method, config, state, problems, sessions, progress, writer))
        except BaseException:
            writer.discard()
            raise
        finally:
            progress.close()
            for backend in opened:
                backend.close()
            next(iter(sessions.values())).cache.close()
        manifest.models = [_model_info(role, _spec(config, role, teachers, stand_ins), sessions[role].backend)
                           for role in roles]  # fmt: skip
        manifest.usage = {_usage_key(s, sessions): s.usage.to_dict() for s in _unique(sessions)}
        manifest.counts = dict(counts)
        manifest.stats = method.finish(config, state, counts) if method.finish else {}
        if decontamination is not None:
            manifest.stats["decontamination"] = decontamination
            manifest.counts["decontaminated"] = decontamination["removed"]
        if config.balance and all(p.answer_type != "number" for p in loaded.problems):
            manifest.stats["class_counts"] = dict(sorted(Counter(p.gold for p in loaded.problems).items()))
        manifest.elapsed_s = round(progress.elapsed, 2)
        if shard is not None:  # what the merge's stand-ins need to answer as these backends
            record = {role: {**identity_record(sessions[role].backend), "spec": _spec(config, role, teachers)}
                      for role in roles}  # fmt: skip
            manifest.stats["shard"] = {**shard_record, "backends": record}
        if fence is not None:
            fence()  # the last moment this process may find it must not commit (a newer driver's lease)
        run.finish(writer, manifest, failed)
        if shard is None and stand_ins is None:  # a shard has no card; a merge writes it once, with the usage
            write_card(config.out, method)
        return manifest
    finally:
        run.release()


def _prepare(config: BuildConfig, method: Method, teachers: Mapping[str, Teacher] | None,
             stand_ins: Mapping[str, Teacher] | None, preset: str | None, preset_values: Mapping[str, Any] | None,
             command: str | None):  # fmt: skip
    """What a build knows before any model loads: the method's state, the problems, the manifest."""
    if not isinstance(config, method.config):
        raise TypeError(f"method {method.name!r} takes a {method.config.__name__}, not {type(config).__name__}")
    if not config.out:
        raise UserError("missing --out (the run directory)")
    check_card_template(method)  # a card problem shows now, not after the teacher's work
    state = method.setup(config) if method.setup else None
    template_names = method.templates(config) if method.templates else ()
    loaded = method.load_problems(config) if method.load_problems else source_problems(config)
    if not loaded.problems:
        raise UserError(f"source {loaded.info.spec!r} yielded no problems; check --split, --limit and the file")
    loaded, decontamination = _decontaminate(loaded, config)
    roles = config.model_roles()
    manifest = Manifest(
        method=method.name, source=_asdict(loaded.info), teacher=_spec(config, roles[0], teachers, stand_ins),
        config=recorded(config), command=command or command_line(), hubtool_version=__version__, preset=preset,
        preset_values=dict(preset_values or {}),
        row_format=RowFormat(kind=method.kind, trl=method.trl_format, trainer=method.trainer.config, recipe=method.recipe),
        prompt_templates=_template_texts(template_names, method.prompt_dirs), versions=library_versions(),
        source_sha256=_file_sha256(loaded.info),
    )  # fmt: skip
    return state, loaded, decontamination, manifest


def plan_shards(config: BuildConfig, *, method: Method, count: int, teachers: Mapping[str, Teacher] | None = None,
                preset: str | None = None, preset_values: Mapping[str, Any] | None = None,
                command: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The plan of `config` cut into `count` shards, published in OUT/shards/plan.json (or checked
    against the one there), as the first `--shard I/N` to start publishes it; no model loads."""
    if not config.out:
        raise UserError("missing --out (the run directory)")
    _, loaded, _, manifest = _prepare(config, method, teachers, None, preset, preset_values, command)
    return shards.agree(config.out, Shard(0, count), shards.plan_of(manifest, loaded.problems, count))


async def _run_all(method: Method, config: BuildConfig, state: Any, problems: Sequence[Problem],
                   sessions: Mapping[str, Session], progress: Progress, writer) -> tuple[Counter[str], list]:  # fmt: skip
    """Every problem through `method.run`, `window` of them in flight; each problem's rows go to
    `writer` as it finishes (in problem order), so a build's memory does not grow with its size."""
    counts: Counter[str] = Counter(dict.fromkeys(method.counts, 0))
    failed: list[tuple[int, dict]] = []
    held: list[tuple[int, list]] = []
    queue = iter(enumerate(problems))
    window = max(s.backend.window for s in sessions.values())

    async def worker() -> None:
        for i, problem in queue:  # a shared iterator: each problem is taken by one worker
            work = Work(problem=problem, config=config, state=state, models=sessions, counts=counts)
            counts["problems"] += 1
            await method.run(problem, work)
            counts["failed"] += bool(work.failed)
            failed.extend((i, f) for f in work.failed)
            if method.select:  # it chooses among all rows at the end: they wait in memory
                held.append((i, work.rows))
            else:
                writer.add(i, work.rows)
            progress.update(sum(s.usage.completion_tokens for s in _unique(sessions)))

    try:
        await gather_or_cancel(worker() for _ in range(min(window, len(problems))))
    finally:
        for session in _unique(sessions):
            await session.aclose()
    if method.select:
        rows = [row for _, rows in sorted(held, key=lambda item: item[0]) for row in rows]
        writer.add(0, method.select(config, state, rows, counts))
    return counts, [f for _, f in sorted(failed, key=lambda item: item[0])]


def build_problems(config: BuildConfig, method: Method) -> list[Problem]:
    """The problems a build of `config` runs: the method's own loader or `--source`, decontaminated."""
    loaded = method.load_problems(config) if method.load_problems else source_problems(config)
    return _decontaminate(loaded, config)[0].problems


def source_problems(config: BuildConfig):
    """The problems `--source` names: the first `--limit`, or with `--balance` a balanced subset."""
    if not config.balance:
        return load_source(config.source, **config.source_options())
    pool = None  # the whole source; a gym source has no end, so its pool is a multiple of the limit
    if config.source.startswith("gym:"):
        pool = max(500, 4 * (config.limit or 0))
    loaded = load_source(config.source, **{**config.source_options(), "limit": pool})
    return dataclasses.replace(loaded, problems=balance_classes(loaded.problems, config.limit, config.seed))


def _decontaminate(loaded, config: BuildConfig):
    """The source without the problems whose question overlaps an evaluation question (see
    toolkit.decontaminate), and the report for the manifest; unchanged when not asked."""
    if not config.decontaminate:
        return loaded, None

    index = decon.index_for(config.decontaminate, config.decontaminate_n, config.eval_data_dir)
    kept, removed = decon.split_clean(loaded.problems, lambda p: p.question, index)
    if removed:
        log.warning("decontamination: %d of %d problems overlap %s and are left out",
                    len(removed), len(loaded.problems), ", ".join(index.tasks))  # fmt: skip
    if not kept:
        raise UserError(f"every problem of {loaded.info.spec!r} overlaps the evaluation questions of {config.decontaminate}")
    return dataclasses.replace(loaded, problems=kept), decon.report(index, removed, len(loaded.problems))


def _open_models(config: BuildConfig, roles: Sequence[str], given: Mapping[str, Teacher] | None, cache_path: Path,
                 shared_fs: bool = False, pick: int | None = None):  # fmt: skip
    """A session per distinct backend (roles naming the same spec share one), and what was opened.
    `pick` (a shard's index) chooses one of the servers a backend lists (`openai:M@URL1,URL2`)."""
    # a shard's cache has one writer, this process (its folder is locked): see CallCache's `sole_writer`
    cache = CallCache(cache_path, shared_fs=shared_fs, sole_writer=pick is not None)  # a broken one shows now
    by_spec: dict[str, Teacher] = {}
    opened: list[Teacher] = []
    backends: dict[str, Teacher] = {}
    for role in roles:
        if given and role in given:
            backends[role] = given[role]
            continue
        spec = getattr(config, role)
        if spec not in by_spec:
            by_spec[spec] = load_teacher(spec, **config.backend_options())
            opened.append(by_spec[spec])
            if pick is not None and (pin := getattr(by_spec[spec], "pin", None)):
                pin(pick)  # the openai backend: shard I asks server I mod len(URLs); the cache key is the list
        backends[role] = by_spec[spec]
    shared: dict[int, Session] = {}
    sessions = {}
    for role in roles:
        backend = backends[role]
        sessions[role] = shared.setdefault(id(backend), Session(backend, cache, role))
    return sessions, opened


def _in_flight(sessions: dict[str, Session]) -> str:
    """'12 requests waiting, 8/8 calls in flight': requests the build waits on, and where a backend
    counts them, the calls out on the wire against its limit (fewer than the limit while requests
    wait means the client, not the server, is what holds the build back)."""
    unique = _unique(sessions)
    text = f"{sum(s.in_flight for s in unique)} requests waiting"
    wired = [s.backend for s in unique if s.backend.calls_in_flight is not None and s.backend.call_limit]
    if wired:
        units = {b.in_flight_unit for b in wired}
        unit = units.pop() if len(units) == 1 else "calls or samples"
        text += f", {sum(b.calls_in_flight or 0 for b in wired)}/{sum(b.call_limit or 0 for b in wired)} {unit} in flight"
    return text


def _unique(sessions: Mapping[str, Session]) -> list[Session]:
    return list({id(s): s for s in sessions.values()}.values())


def _usage_key(session: Session, sessions: Mapping[str, Session]) -> str:
    return ",".join(role for role, s in sessions.items() if s is session)


def _spec(config: BuildConfig, role: str, given: Mapping[str, Teacher] | None,
          stand_ins: Mapping[str, Teacher] | None = None) -> str:  # fmt: skip
    if stand_ins and role in stand_ins:  # a merge's replay: the spec the shards recorded
        return stand_ins[role].spec
    if given and role in given:
        return f"{given[role].backend}:{given[role].model}"
    return redact_spec(getattr(config, role))


def _model_info(role: str, spec: str, backend: Teacher) -> ModelInfo:
    served = ", ".join(sorted(s for s in getattr(backend, "served", ()) if s))  # the openai backend's record
    weights = getattr(backend, "weights", None)  # what a server says of its weights (openai backend)
    return ModelInfo(role=role, spec=spec, backend=backend.backend, model=backend.model, revision=backend.revision,
                     served=served, weights=dict(weights) if isinstance(weights, dict) else {})  # fmt: skip


def _file_sha256(info: Any) -> str | None:
    """The content hash of a local source file: the card names the file and its hash, not its path."""
    path = Path(info.spec.removeprefix("file:")).expanduser() if info.kind == "file" else None
    if path is None or not path.is_file():
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _template_texts(names: Sequence[str], dirs: Sequence[Path]) -> dict[str, str]:
    return {name: template_source(name, dirs) for name in names}


def _asdict(info: Any) -> dict[str, Any]:
    """The source as the manifest keeps it: `notes` only where there are some (so a run directory
    written before sources had notes is the same build), as the list JSON reads back."""
    out = dataclasses.asdict(info)
    notes = out.pop("notes", ())
    return {**out, "notes": list(notes)} if notes else out


def summary_line(manifest: Manifest, out: str | Path, method: Method | None = None) -> str:
    c, u = manifest.counts, manifest.total_usage()
    if method is not None and method.outcome is not None:
        result = method.outcome(Counter(c))
    else:
        samples = c.get("samples", 0)
        acc = f" ({c.get('correct', 0) / samples:.1%})" if samples else ""
        made = ", ".join(f"{c[k]} {k}" for k in ("kept", "pairs", "truncated") if k in c)
        result = f"{c.get('problems', 0)} problems, {samples} samples, {c.get('correct', 0)} correct{acc}, {made}"
    return (
        f"{manifest.method}: {result}, {c.get('failed', 0)} failed; {u.get('calls', 0)} new calls, "
        f"{u.get('samples_cached', 0)} cached samples, {u.get('completion_tokens', 0)} tokens in "
        f"{manifest.elapsed_s or 0:.1f}s -> {out}"
    )
