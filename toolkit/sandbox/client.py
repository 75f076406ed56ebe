"""The parent's handle on one fork server process: start it, send it programs, kill it.

The server gets a clean environment (no API keys, tokens or HF/OpenAI settings reach it, hence
none reach a program), `-I` (no PYTHON* variables, no user site-packages, no current directory on
the path), `/` as its working directory and a session of its own, so a Ctrl-C meant for the parent
does not tear it down mid-program. It exits by itself when the parent's end of its stdin closes,
which happens even when the parent is killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from toolkit.errors import UserError
from toolkit.sandbox import protocol
from toolkit.sandbox.limits import Limits
from toolkit.sandbox.server import BOOT

_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds `toolkit/`
# Room beyond the wall-clock limit for the fork, the report and the work-dir wipe; a server that
# takes longer than this is hung and gets replaced.
REPLY_SLACK_S = 10.0
START_TIMEOUT_S = 120.0


def server_environment() -> dict[str, str]:
    """The whole environment a server (and so every program) sees."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/nonexistent",
        # One thread per library: a server must stay single-threaded to enter a user namespace,
        # and idle BLAS threads would count against every program's memory limit.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
    if os.environ.get("LD_LIBRARY_PATH"):  # some Pythons do not start without it
        env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
    return env


class ServerProcess:
    """One running fork server; not thread-safe (the pool hands it to one thread at a time)."""

    def __init__(self, config: dict, python: str | None = None) -> None:
        python = python or sys.executable
        try:
            self.proc = subprocess.Popen(
                [python, "-I", "-c", BOOT, _ROOT, json.dumps(config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=server_environment(),
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            raise UserError(f"cannot start the sandbox's Python {python!r}: {exc.strerror}") from exc
        self._to, self._from = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        os.set_blocking(self._to, False)  # so a write can time out (see protocol.write_all)
        try:
            self.hello = protocol.receive(self._from, time.monotonic() + START_TIMEOUT_S)
        except (protocol.PeerGone, protocol.PeerTimeout, ValueError) as exc:
            self.kill()
            raise UserError(
                f"the sandbox server ({python} -I) did not start ({type(exc).__name__}); its error, if any,"
                " is on stderr above"
            ) from exc
        if self.hello.get("probe_error"):
            self.kill()
            raise UserError(
                f"the sandbox failed its self-test ({self.hello['probe_error']}); run with"
                " disable={'landlock'} or {'seccomp'} to find the mechanism this kernel rejects"
            )

    @property
    def isolation(self) -> str:
        return self.hello["isolation"]

    def run(self, code: str, limits: Limits) -> dict:
        """The server's reply for one program. PeerGone: the server died; PeerTimeout: it hung."""
        deadline = time.monotonic() + limits.wall_s + REPLY_SLACK_S
        protocol.send(self._to, {"code": code, "limits": limits.to_dict()}, deadline)
        return protocol.receive(self._from, deadline)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the server (its programs die with it: they hold PR_SET_PDEATHSIG)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._reap()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the server to exit (its stdin closes), kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def _reap(self) -> None:
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass
        workroot = getattr(self, "hello", {}).get("workroot")
        if workroot:  # only when no private tmpfs held it; a killed server leaves it behind
            shutil.rmtree(workroot, ignore_errors=True)
