"""Real servers for benchmarks and tests: `transformers serve` on a free 127.0.0.1 port.

    with transformers_server(resolve_model_path("smollm2-135m")) as base_url:
        ...  # http://127.0.0.1:PORT/v1, ready for requests; the server is stopped on exit

The server is pinned to one model, so requests must name exactly the path it was started with.
Here, in bench/, because the benchmarks run it outside pytest (bench/ never imports tests/); the
server tests import it from here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

log = logging.getLogger(__name__)


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_ready(proc: subprocess.Popen, url: str, log_path: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the server's log if it dies or never gets there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_log_tail(log_path)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout:g} s:\n{_log_tail(log_path)}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def transformers_server(
    model_path: str, *, continuous_batching: bool = False, threads: int | None = None, timeout: float = 180.0
) -> Iterator[str]:
    """Start `transformers serve MODEL_PATH` offline on 127.0.0.1; yield its base URL (…/v1).

    Without continuous batching requests run one at a time and honour per-request sampling
    settings; with it they are batched, but the sampling settings of the first request stick.
    `threads` caps torch's CPU threads (OMP_NUM_THREADS); on a shared CPU 1 beats oversubscription.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", model_path]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    if continuous_batching:
        cmd.append("--continuous-batching")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    fd, name = tempfile.mkstemp(prefix="transformers-serve-", suffix=".log")
    log_path = Path(name)
    with os.fdopen(fd, "w") as log_file:
        proc = subprocess.Popen(
            cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    try:
        wait_ready(proc, f"http://127.0.0.1:{port}/health", log_path, timeout)
        log.info("transformers serve %s on port %d (log: %s)", model_path, port, log_path)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop(proc)
        log_path.unlink(missing_ok=True)
