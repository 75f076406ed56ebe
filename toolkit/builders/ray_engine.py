"""`build-dataset --engine ray --workers N`: a sharded build (toolkit.builders.shards) run by Ray actors.

    driver: plan (OUT/shards/plan.json, N shards) -> lease (OUT/shards/lease.json: this attempt's id)
      -> W async actors, each running shards taken from a queue, IN_FLIGHT at a time
         (a shard is exactly what `--shard I/N` runs: the unchanged engine, its own folder and cache)
      -> every shard committed -> the ordinary merge (`hubtool merge`), written by the driver

The driver commits nothing but the merge; each shard is committed by the actor that ran it, as a
`--shard I/N` process commits its own. A dead actor (its process killed, its node lost) is restarted
by Ray (`max_restarts`) and the shards it held go back to the queue; the restarted actor resumes
them from their caches, so only the calls in flight when it died are asked again.

The lease. A driver killed by SIGKILL leaves its actors to Ray, which ends them when it sees their
owner gone (fate sharing), but only after a while and not at all on a node it cannot reach. A new
driver does not wait for them: it writes its own attempt id into OUT/shards/lease.json (by rename),
and an actor reads the lease just before it commits a shard and gives the shard up where the id is
not its driver's. So an old actor may still ask its teacher for a moment; it never commits after a
new driver started. (Waiting for the old job's actors instead would need the old job's id and a
reachable GCS, and would hold the new run up for as long as Ray takes to notice a lost node.) Two
actors on one host never write one shard at once: the shard folder's flock refuses the second,
which waits for the first to go.

Teachers: every actor loads the config's specs itself. `openai:M@URL1,URL2,...` sends shard I to
URL I mod len (toolkit.teachers.openai_backend `pin`); an in-process `vllm:` teacher gets an actor
with `num_gpus = --tensor-parallel-size`; a `transformers:` one runs on the actor's CPUs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.builders import shards
from toolkit.builders.config import BuildConfig
from toolkit.builders.engine import build_dataset, plan_shards
from toolkit.builders.merge import merge_shards
from toolkit.builders.method import Method
from toolkit.builders.shards import Shard
from toolkit.errors import UserError
from toolkit.manifest import Manifest
from toolkit.rundir import SHARDS, try_lock
from toolkit.teachers.base import Teacher

log = logging.getLogger(__name__)

LEASE = "lease.json"
SHARDS_PER_WORKER = 4  # shards N = 4 x workers by default: a slow shard leaves others to the rest
IN_FLIGHT = 2  # shards one actor runs at once: the next one loads while the last calls of one finish
DEATHS = 3  # times a shard may take its actor down before the build stops
BUSY_WAIT_S = 120.0  # how long an actor waits for an old actor to let go of a shard's folder


class LeaseLost(Exception):
    """A newer driver holds the run: this actor must not commit."""


def build_on_ray(config: BuildConfig, *, method: Method, workers: int, shard_count: int | None = None,
                 address: str | None = None, teachers: Mapping[str, Teacher] | None = None, preset: str | None = None,
                 preset_values: Mapping[str, Any] | None = None, command: str | None = None) -> Manifest:  # fmt: skip
    """Build `config` as `workers` Ray actors running its shards, then merge; the merged manifest.
    `address` is the cluster's (default: the one `ray start` made here, or RAY_ADDRESS); a process
    that has called `ray.init` already uses its own. `teachers` are sent to every actor (tests)."""
    try:
        import ray  # optional (`pip install "hubtool[ray]"`): imported only for --engine ray
    except ImportError:
        raise UserError('--engine ray needs Ray on this machine and every node: pip install "hubtool[ray]"') from None
    if workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    if shard_count is not None and shard_count < 1:
        raise UserError(f"--shards must be at least 1, not {shard_count}")
    if not config.out:
        raise UserError("missing --out (the run directory)")
    run_dir = Path(config.out)
    planned = int(shards.read_plan(run_dir)["shards"]) if (run_dir / SHARDS / shards.PLAN).is_file() else None
    if shard_count is None:  # a resumed run keeps its plan's cut, whatever --workers is now
        shard_count = planned or default_shards(workers)
    elif planned is not None and planned != shard_count:
        raise UserError(f"--shards {shard_count}: {run_dir} is cut into {planned} shards already; leave --shards out "
                        "(a resumed run keeps its own), or use another --out")  # fmt: skip
    plan_shards(config, method=method, count=shard_count, teachers=teachers, preset=preset,
                preset_values=preset_values, command=command)  # fmt: skip
    attempt = take_lease(run_dir)
    connect(ray, address)
    plan = shards.read_plan(run_dir)
    todo = deque(i for i in range(shard_count) if _to_run(run_dir, Shard(i, shard_count), plan))
    log.info("ray: %d of %d shards to run on %d workers (attempt %s)", len(todo), shard_count, workers, attempt)
    if todo:
        # given inline, not by ray.put: a restarted actor is made from its constructor's arguments again
        payload = {"config": config, "method": method, "teachers": teachers, "preset": preset,
                   "preset_values": dict(preset_values or {}), "command": command}  # fmt: skip
        options: dict[str, Any] = {"num_cpus": 1, "max_restarts": -1, "max_task_retries": 0,
                                   "max_concurrency": IN_FLIGHT}  # fmt: skip
        if any(str(getattr(config, role, "")).startswith("vllm:") for role in config.model_roles()):
            options["num_gpus"] = int(getattr(config, "tensor_parallel_size", None) or 1)  # an engine per actor
        actor_class = ray.remote(ShardWorker).options(**options)
        actors = [actor_class.remote(payload, str(run_dir), attempt) for _ in range(min(workers, len(todo)))]
        try:
            _drive(ray, actors, todo, shard_count)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
    if read_lease(run_dir) != attempt:
        raise UserError(f"another `--engine ray` driver took over {run_dir} while this one ran; let it finish")
    return merge_shards(run_dir, method=method, config=config)


def default_shards(workers: int) -> int:
    """SHARDS_PER_WORKER per worker, so a slow shard leaves the others to the rest; one worker has no
    rest to leave them to, and gets one shard per slot (IN_FLIGHT): each extra shard would cost a
    setup and a half-empty last round of calls, and buy nothing (measured: bench/README.md)."""
    return SHARDS_PER_WORKER * workers if workers > 1 else IN_FLIGHT


def _to_run(run_dir: Path, shard: Shard, plan: Mapping[str, Any]) -> bool:
    """Not committed, or committed with failed calls: a re-run retries those, as `--shard` does."""
    done = shards.committed(run_dir, shard, plan)
    return done is None or bool(done.counts.get("failed"))


def _drive(ray: Any, actors: list[Any], todo: deque[int], count: int) -> None:
    """Hand shards to actors, IN_FLIGHT each, until all are committed; a shard whose actor died
    goes back to the front of the queue (its cache keeps what it had). An actor gets shards once it
    has started: one still waiting for a CPU (more workers than the cluster has room for, until an
    autoscaler adds a node) holds none back from the others."""
    starting = {actor.ping.remote(): slot for slot, actor in enumerate(actors)}
    started: list[int] = []
    running: dict[Any, tuple[int, int]] = {}  # ref -> (shard index, actor slot)
    load = [0] * len(actors)
    deaths: dict[int, int] = {}
    failed_starts: dict[int, int] = {}
    done = 0
    while todo or running:
        for slot in started:
            while todo and load[slot] < IN_FLIGHT:
                index = todo.popleft()
                running[actors[slot].run.remote(index, count)] = (index, slot)
                load[slot] += 1
        ready, _ = ray.wait([*running, *starting], num_returns=1)
        for ref in ready:
            if ref in starting:
                slot = starting.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError as e:  # died as it started: restarted, asked again
                    failed_starts[slot] = failed_starts.get(slot, 0) + 1
                    if failed_starts[slot] >= DEATHS:
                        raise UserError(f"a Ray worker could not start ({_first_line(e)}); is hubtool (this "
                                        "version) installed on every node?") from None  # fmt: skip
                    starting[actors[slot].ping.remote()] = slot
                else:
                    started.append(slot)
                continue
            index, slot = running.pop(ref)
            load[slot] -= 1
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                deaths[index] = deaths.get(index, 0) + 1
                if deaths[index] >= DEATHS:
                    raise UserError(f"shard {index}/{count} took its Ray worker down {DEATHS} times; run it alone "
                                    f"(`--shard {index}/{count}`) to see why") from None  # fmt: skip
                log.warning("ray: the worker running shard %d/%d died; the shard is queued again", index, count)
                todo.appendleft(index)
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(getattr(e, "cause", None), BaseException) else e
                if isinstance(cause, UserError):
                    raise UserError(f"shard {index}/{count}: {cause}") from None
                if isinstance(cause, LeaseLost):
                    raise UserError(f"{cause}; let the newer driver finish") from None
                raise
            else:
                done += 1
                log.info("ray: shard %d/%d committed (%d of %d this run)", index, count, done, done + len(todo) +
                         len(running))  # fmt: skip


def _first_line(error: BaseException) -> str:
    """The `SomeError: message` line of a Ray error's text (which holds a traceback), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
    return (named or lines or [type(error).__name__])[-1 if named else 0][:200]


def connect(ray: Any, address: str | None) -> None:
    """Join the cluster at `address` (default "auto": the one `ray start` made on this machine), unless
    this process has joined one already (a notebook's own `ray.init`, the tests' local cluster)."""
    if ray.is_initialized():
        return
    where = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        ray.init(address=where, log_to_driver=True)
    except ConnectionError as e:
        raise UserError(f"no Ray cluster at {where!r} ({e}); start one (`ray start --head`) or name it with "
                        "--ray-address HOST:PORT") from None  # fmt: skip


def take_lease(run_dir: Path) -> str:
    """Write this attempt's id as the run's lease (by rename: readers see the old or the new one)."""
    attempt = uuid.uuid4().hex
    path = run_dir / SHARDS / LEASE
    record = {"attempt": attempt, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    fd, tmp = tempfile.mkstemp(prefix=".lease.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(record))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return attempt


def read_lease(run_dir: str | Path) -> str | None:
    try:
        return json.loads((Path(run_dir) / SHARDS / LEASE).read_text(encoding="utf-8")).get("attempt")
    except (OSError, ValueError):
        return None


class ShardWorker:
    """A Ray actor: runs whole shards (`build_dataset(..., shard=)`, what `--shard I/N` runs), each in
    a thread of its own with its own event loop, and commits each only while its driver holds the lease."""

    def __init__(self, payload: Mapping[str, Any], run_dir: str, attempt: str) -> None:
        import ray.cloudpickle as cloudpickle  # the actor runs under Ray: it is there

        self.payload = dict(payload)
        # a fresh copy of given backends per shard: two shards in flight never share one's queue
        self.teachers = cloudpickle.dumps(self.payload.pop("teachers"))
        self.run_dir, self.attempt = run_dir, attempt

    async def ping(self) -> bool:
        return True  # the actor is up (its constructor ran)

    async def run(self, index: int, count: int) -> dict[str, Any]:
        manifest = await asyncio.to_thread(self._build, Shard(index, count))
        return {"shard": index, "counts": manifest.counts}

    def fence(self) -> None:
        holder = read_lease(self.run_dir)
        if holder != self.attempt:
            raise LeaseLost(f"{self.run_dir} is leased to driver attempt {holder}, not this actor's ({self.attempt})")

    def _build(self, shard: Shard) -> Manifest:
        import ray.cloudpickle as cloudpickle

        p = self.payload
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            self.fence()  # a fenced actor starts nothing either
            try:
                return build_dataset(p["config"], method=p["method"], teachers=cloudpickle.loads(self.teachers),
                                     preset=p["preset"], preset_values=p["preset_values"], command=p["command"],
                                     shard=shard, fence=self.fence)  # fmt: skip
            except UserError:
                if not _busy(shards.shard_dir(self.run_dir, shard)) or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)  # an old driver's actor still holds the folder; Ray is ending it


def _busy(folder: Path) -> bool:
    """Whether another process holds the folder's writer lock (toolkit.rundir)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not try_lock(fd, exclusive=True)
    finally:
        os.close(fd)  # a lock taken here goes with the descriptor

