"""A local OpenAI-compatible server as a child process that cannot outlive hubtool.

    with running(lambda port: ["python", "-m", "llama_cpp.server", ..., "--port", str(port)],
                 alias="coder") as server:
        ...  # server.url is http://127.0.0.1:PORT/v1, answering; the server is gone after the block

The process manager knows nothing of llama.cpp: it takes a command for a port. How no server is
left behind, whatever happens to hubtool:

- normal exit, an exception, Ctrl-C (KeyboardInterrupt): the context manager stops it (SIGTERM to
  its process group, SIGKILL after a grace period);
- `sys.exit` or the end of the program while one still runs outside a `with`: an atexit hook;
- SIGTERM to hubtool: while a server runs, SIGTERM raises SystemExit (when nobody else handles
  SIGTERM), so the two above run;
- SIGKILL of hubtool, or a crash of the interpreter: the child asked the kernel for SIGKILL when
  its parent dies (PR_SET_PDEATHSIG, Linux), before it exec'd the server.

The child runs in its own session, so a Ctrl-C at the terminal reaches hubtool only; hubtool then
stops the server itself, after whatever it finishes on the way out.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import UserError
from toolkit.paths import hubtool_home

log = logging.getLogger(__name__)

# Runs in the child before the server: ask for SIGKILL when the parent dies (PR_SET_PDEATHSIG = 1,
# SIGKILL = 9), give up if the parent is already gone (it died between fork and prctl), then exec
# the server in this same process. A launcher instead of preexec_fn: preexec_fn is unsafe in a
# parent that has threads (the call cache's writer, aiohttp's resolver).
LAUNCHER = """\
import ctypes, os, sys
if sys.platform.startswith("linux"):
    u = ctypes.c_ulong
    ctypes.CDLL(None, use_errno=True).prctl(ctypes.c_int(1), u(9), u(0), u(0), u(0))
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""
GRACE_S = 5.0  # from SIGTERM to SIGKILL when stopping


@dataclass
class ServerProcess:
    command: list[str]
    port: int
    alias: str  # the model name it must list on /v1/models before it counts as up
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    hints: Mapping[str, str] = field(default_factory=dict)  # text in its log -> what to do about it
    owner: int = field(default_factory=os.getpid)  # a forked child inherits this object, not the server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


def port_is_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port. SO_REUSEADDR as servers bind: a closed connection's
    TIME_WAIT does not stop them, a listening socket does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens there, else a free port the OS picks (bind to 0)."""
    if preferred and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: ServerProcess, env: Mapping[str, str] | None = None) -> None:
    """Start the command in its own session, output to the log file, parent-death signal set."""
    server.log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-c", LAUNCHER, str(os.getpid()), *server.command]
    with open(server.log_path, "ab") as out:
        server.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                       env=dict(env) if env is not None else None, start_new_session=True)  # fmt: skip
    _LIVE[server.proc.pid] = server
    log.info("started %s (pid %d, log %s)", " ".join(server.command[:3]), server.proc.pid, server.log_path)


def wait_ready(server: ServerProcess, timeout: float, poll_s: float = 0.25) -> None:
    """Poll /v1/models until it lists the alias; a one-line UserError naming the log when the server
    exits first or the deadline passes (the server is stopped then)."""
    assert server.proc is not None
    deadline = time.monotonic() + timeout
    while True:
        code = server.proc.poll()
        if code is not None:
            stop(server)
            tail = _tail(server.log_path)
            advice = next((f"; {fix}" for text, fix in server.hints.items() if text in tail), "")
            raise UserError(f"the teacher server exited with code {code} before it answered "
                            f"({_last_line(server.log_path)}){advice}; full log: {server.log_path}")  # fmt: skip
        if _lists_alias(server.url, server.alias):
            return
        if time.monotonic() >= deadline:
            stop(server)
            raise UserError(f"the teacher server did not answer on {server.url}/models within {timeout:g} s "
                            f"(stopped; raise startup_timeout for a big model or a slow disk); "
                            f"full log: {server.log_path}")  # fmt: skip
        time.sleep(poll_s)


def stop(server: ServerProcess, grace: float = GRACE_S) -> None:
    """SIGTERM to the server's process group, SIGKILL after `grace` seconds; idempotent. Only the
    process that started it stops it: a forked worker that unwinds or exits leaves it running."""
    proc = server.proc
    if proc is None or server.owner != os.getpid():
        return
    _LIVE.pop(proc.pid, None)
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    else:
        _signal_group(proc.pid, signal.SIGKILL)  # anything it started and left behind


@contextlib.contextmanager
def running(command_for: Callable[[int], list[str]], *, alias: str, timeout: float = 600.0,
            port: int | None = None, env: Mapping[str, str] | None = None, log_dir: Path | None = None,
            name: str = "teacher", hints: Mapping[str, str] | None = None) -> Iterator[ServerProcess]:  # fmt: skip
    """Start `command_for(port)`, wait until it serves `alias`, yield it, stop it for sure.

    `port`: the one to use when free (a stable port keeps URL-keyed call caches valid across runs);
    otherwise, or when the server loses a race for it, a port the OS picks. The log is deleted after
    a clean run and kept when anything failed.
    """
    chosen = choose_port(port)
    for attempt in range(2):
        server = ServerProcess(command_for(chosen), chosen, alias, _log_file(log_dir, name), hints=hints or {})
        with _sigterm_exits():
            try:
                start(server, env)
                try:
                    wait_ready(server, timeout)
                except UserError:
                    if attempt > 0 or "address already in use" not in _tail(server.log_path).lower():
                        raise
                    server.log_path.unlink(missing_ok=True)
                    chosen = choose_port(None)  # another process took the port between our check and its bind
                    continue
                yield server
            finally:
                stop(server)  # also on Ctrl-C while it loads, and when the caller's block fails
        server.log_path.unlink(missing_ok=True)
        return


# -- helpers --------------------------------------------------------------------------------------------
_LIVE: dict[int, ServerProcess] = {}  # pid -> server, for the atexit hook


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE.values()):
        stop(server, grace=1.0)


_SIGTERM_USERS = 0
_SIGTERM_LOCK = threading.Lock()


def _raise_exit(signum, frame) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """While a server runs, make SIGTERM unwind Python (so `finally` stops it), unless the program
    already handles SIGTERM itself; only the main thread can install a handler."""
    global _SIGTERM_USERS
    installed = False
    if threading.current_thread() is threading.main_thread():
        with _SIGTERM_LOCK:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, _raise_exit):
                signal.signal(signal.SIGTERM, _raise_exit)
                _SIGTERM_USERS += 1
                installed = True
    try:
        yield
    finally:
        if installed:
            with _SIGTERM_LOCK:
                _SIGTERM_USERS -= 1
                if _SIGTERM_USERS == 0 and signal.getsignal(signal.SIGTERM) is _raise_exit:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the child leads its own session, so its group id is its pid


def _lists_alias(url: str, alias: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
            page = json.loads(reply.read(1 << 20))
    except (OSError, ValueError):  # not listening yet, loading (503), or not JSON
        return False
    data = page.get("data") if isinstance(page, dict) else None
    return any(isinstance(m, dict) and m.get("id") == alias for m in data or [])


def _log_file(log_dir: Path | None, name: str) -> Path:
    folder = log_dir or hubtool_home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=folder)
    os.close(fd)
    return Path(path)


def _tail(path: Path, size: int = 4096) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _last_line(path: Path) -> str:
    lines = [line.strip() for line in _tail(path).splitlines() if line.strip()]
    return f"last line: {' '.join(lines[-1].split())[:200]}" if lines else "it wrote nothing"
