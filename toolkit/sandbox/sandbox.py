"""The public face: `Sandbox` (a thread-safe pool of fork servers) and `run_program`.

A server runs one program at a time, so concurrency comes from several servers, started lazily up
to `workers`. A server that dies or hangs is killed, its program is reported as `killed` or
`timeout`, and a fresh server takes its place on the next call: a builder can keep going.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from toolkit.errors import UserError, did_you_mean
from toolkit.sandbox import protocol
from toolkit.sandbox.client import ServerProcess
from toolkit.sandbox.limits import Limits
from toolkit.sandbox.result import ExecResult, Isolation

log = logging.getLogger(__name__)

# Imported once per server, so `import numpy` in a program costs nothing. Missing ones are skipped.
DEFAULT_PRELOAD = (
    "math", "cmath", "fractions", "decimal", "itertools", "functools", "collections", "statistics",
    "datetime", "re", "random", "string", "heapq", "bisect", "operator", "numpy",
)  # fmt: skip
# sympy is left out on purpose: preloaded it doubles the server's memory and costs about 1 ms of
# CPU more per program (fork and exit copy and drop its page tables; measured 258 vs 337
# programs/s). Add it (`preload=(*DEFAULT_PRELOAD, "sympy")`) when many programs import it, since
# importing it in a program costs ~0.3 s each time.
MECHANISMS = ("namespaces", "landlock", "seccomp")
_warned: set[tuple] = set()
_warned_lock = threading.Lock()


def _warn_once(hello: dict) -> None:
    """Say loudly, once per process, what isolation this machine could not give."""
    missing = hello.get("missing") or {}
    key = (hello.get("isolation"), tuple(sorted(missing.items())))
    with _warned_lock:
        if not missing or key in _warned:
            return
        _warned.add(key)
    what = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
    level = hello.get("isolation")
    log.warning(
        "sandbox %s: running without %s. See toolkit/sandbox/README.md for what each mechanism protects.",
        f"isolation is {level!r}, not 'full'" if level != "full" else "isolation is 'full', but", what,
    )  # fmt: skip


class Sandbox:
    """Runs untrusted Python programs that leave their answer in `ans`.

    `workers` is the most programs run at once (one fork server each; default: the CPU count).
    `preload` modules are imported once per server. `disable` turns mechanisms off ("namespaces",
    "landlock", "seccomp") for a kernel that misbehaves with one, or to test degraded isolation;
    a result's `isolation` says what was in force. Use as a context manager, or call `close()`.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        workers: int | None = None,
        preload: Sequence[str] = DEFAULT_PRELOAD,
        disable: Collection[str] = (),
        python: str | None = None,
    ) -> None:
        for name in disable:
            if name not in MECHANISMS:
                raise UserError(f"unknown sandbox mechanism {name!r}{did_you_mean(name, MECHANISMS)}; "
                                f"choose from {', '.join(MECHANISMS)}.")  # fmt: skip
        if workers is not None and workers < 1:
            raise UserError(f"sandbox workers={workers} must be at least 1.")
        self.limits = limits or Limits()
        self.workers = workers or os.cpu_count() or 1
        self._config = {"preload": list(preload), "disable": sorted(disable), "disk_mb": self.limits.disk_mb}
        self._python = python
        self._cond = threading.Condition()
        self._idle: list[ServerProcess] = []
        self._all: set[ServerProcess] = set()
        self._starting = 0
        self._closed = False
        self.hello: dict | None = None  # the first server's report: isolation, mechanisms, preloads
        self._owner = os.getpid()
        self._finalizer = weakref.finalize(self, _kill_all, self._all, self._owner)

    def _forget_parents_servers(self) -> None:
        """After fork() (a multiprocessing worker, a datasets.map process) the servers and locks
        copied from the parent are the parent's: never close or kill them from here; this process
        starts its own."""
        self._finalizer.detach()
        self._cond, self._idle, self._all, self._starting = threading.Condition(), [], set(), 0
        self._owner = os.getpid()
        self._finalizer = weakref.finalize(self, _kill_all, self._all, self._owner)

    @property
    def isolation(self) -> Isolation | None:
        return self.hello["isolation"] if self.hello else None

    def start(self, n: int | None = None) -> Sandbox:
        """Start `n` servers now (default `workers`), side by side, rather than on first use."""
        n = min(n or self.workers, self.workers)
        with ThreadPoolExecutor(n) as pool:
            futures = [pool.submit(self._acquire) for _ in range(n)]
        for future in futures:
            if future.exception() is None:
                self._release(future.result(), healthy=True)
        for future in futures:
            future.result()  # the first start-up error, if any, now that the rest are back in the pool
        return self

    def run(self, code: str) -> ExecResult:
        """Run one program; never raises for anything the program does."""
        if not isinstance(code, str):
            raise TypeError(f"code must be str, not {type(code).__name__}")
        server = self._acquire()
        start, healthy = time.monotonic(), False
        try:
            reply = server.run(code, self.limits)
            healthy = True
        except protocol.PeerTimeout:
            reply = {"outcome": "timeout", "error": "the sandbox server stopped answering; it was replaced"}
        except (protocol.PeerGone, ValueError, OSError) as exc:
            reply = {"outcome": "killed", "error": f"the sandbox server died ({type(exc).__name__}); it was replaced"}
        finally:
            self._release(server, healthy)
        reply.setdefault("runtime_s", round(time.monotonic() - start, 6))
        return ExecResult(**reply, isolation=server.isolation)

    def run_many(self, codes: Iterable[str], workers: int | None = None) -> list[ExecResult]:
        """Run every program, `workers` at a time (default: this sandbox's), results in order."""
        codes = list(codes)
        workers = min(workers or self.workers, max(1, len(codes)))
        if workers > self.workers:
            with self._cond:
                self.workers = workers
        if workers == 1:
            return [self.run(code) for code in codes]
        with ThreadPoolExecutor(workers, thread_name_prefix="sandbox") as pool:
            return list(pool.map(self.run, codes))

    def _acquire(self) -> ServerProcess:
        if os.getpid() != self._owner:
            self._forget_parents_servers()
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("this Sandbox is closed")
                if self._idle:
                    return self._idle.pop()
                if len(self._all) + self._starting < self.workers:
                    self._starting += 1
                    break
                self._cond.wait()
        try:
            server = ServerProcess(self._config, self._python)
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
        _warn_once(server.hello)
        asked = [f for f in server.hello.get("preload_failed", []) if f.split()[0] not in DEFAULT_PRELOAD]
        if asked and self.hello is None:  # a module the caller named, not one of the optional defaults
            log.warning("sandbox: could not preload %s; programs that import it will fail", ", ".join(asked))
        with self._cond:
            self.hello = self.hello or server.hello
            self._all.add(server)
        return server

    def _release(self, server: ServerProcess, healthy: bool) -> None:
        with self._cond:
            keep = healthy and not self._closed and server.alive()
            if keep:
                self._idle.append(server)
            else:
                self._all.discard(server)
            self._cond.notify()
        if not keep and healthy:
            server.close()
        elif not keep:
            server.kill()

    def close(self) -> None:
        """Stop every server; programs still running are killed. Idempotent."""
        if os.getpid() != self._owner:
            self._forget_parents_servers()
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for server in idle:
            self._all.discard(server)
            server.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_all(servers: set[ServerProcess], owner: int) -> None:
    if os.getpid() == owner:  # a forked copy of the set holds the parent's servers
        for server in list(servers):
            server.kill()


_shared: dict[Limits, Sandbox] = {}
_shared_lock = threading.Lock()


def run_program(code: str, **limits: float) -> ExecResult:
    """Run one program in a shared sandbox per set of limits (kept for the life of the process).

    `limits` are `Limits` fields: `run_program("ans = 2 + 3", wall_s=2)`.
    """
    unknown = set(limits) - set(Limits.__dataclass_fields__)
    if unknown:
        name = sorted(unknown)[0]
        raise UserError(f"unknown sandbox limit {name!r}{did_you_mean(name, list(Limits.__dataclass_fields__))}.")
    key = Limits(**limits)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Sandbox(key)
        sandbox = _shared[key]
    return sandbox.run(code)


@atexit.register
def _close_shared() -> None:
    for sandbox in _shared.values():
        sandbox.close()
