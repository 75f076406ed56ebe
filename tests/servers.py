"""Real servers for tests and benchmarks: `transformers serve` on a free 127.0.0.1 port.

    with transformers_server(resolve_model_path("smollm2-135m")) as base_url:
        ...  # http://127.0.0.1:PORT/v1, ready for requests; the server is stopped on exit

The server is pinned to one model, so requests must name exactly the path it was started with.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

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


class Proxy:
    """A 127.0.0.1 proxy: the first chat calls get `fail` statuses, later ones go to `upstream`.

    `emulate_n` makes it honour `n` the way vLLM does (by asking upstream n times), so the
    one-call path can be tested against a server that itself ignores `n`.
    """

    def __init__(
        self, upstream: str | None = None, fail=(), headers=None, emulate_n=False, delay=0.0
    ) -> None:
        self.upstream, self.fail, self.headers = upstream, list(fail), headers or {}
        self.emulate_n, self.delay = emulate_n, delay  # delay: seconds before answering a chat call
        self.calls: list[tuple[float, dict, dict]] = []  # (time, body, request headers) of chat calls
        self.forwarded = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, body: dict, headers: dict) -> tuple[int, dict, dict]:
        if not path.endswith("/chat/completions"):
            return 404, {}, {"error": "no such route"}
        with self.lock:
            self.calls.append((time.monotonic(), body, headers))
            status = self.fail.pop(0) if self.fail else None
        time.sleep(self.delay)
        if status is not None or self.upstream is None:
            return status or 503, self.headers, {"error": {"message": f"injected {status}"}}
        n = body.get("n", 1) if self.emulate_n else 1
        single = {k: v for k, v in body.items() if k != "n"} if self.emulate_n else body
        answers = [self.forward(path, {**single, "seed": body.get("seed", 0) + j}) for j in range(n)]
        merged = answers[0]
        merged["choices"] = [dict(a["choices"][0], index=j) for j, a in enumerate(answers)]
        merged["usage"]["completion_tokens"] = sum(a["usage"]["completion_tokens"] for a in answers)
        return 200, {}, merged

    def forward(self, path: str, body: dict) -> dict:
        with self.lock:
            self.forwarded += 1
        url = self.upstream.removesuffix("/v1") + path
        return httpx.post(url, json=body, timeout=120).raise_for_status().json()

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.reply(404, {}, {"error": "no models here"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                headers = {k.lower(): v for k, v in self.headers.items()}
                self.reply(*proxy.answer(self.path, body, headers))

            def reply(self, status: int, headers: dict, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {
                    **headers,
                    "Content-Type": "application/json",
                    "Content-Length": len(data),
                }.items():
                    self.send_header(k, str(v))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def proxy_for(request):
    """A factory of proxies, all shut down after the test."""
    made: list[Proxy] = []

    def make(*args, **kwargs) -> Proxy:
        made.append(Proxy(*args, **kwargs))
        return made[-1]

    yield make
    for p in made:
        p.close()
