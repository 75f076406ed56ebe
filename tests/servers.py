"""A failing proxy for tests, in front of a real server (`Proxy`, the `proxy_for` fixture), and a
server that replays recorded answers (`JsonServer`); the real servers themselves
(`transformers_server`, `free_port`) are in bench/servers.py, which the benchmarks run.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest


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


class JsonServer:
    """A 127.0.0.1 server of JSON answers: `get(path)` and `post(path, body)` give (status, payload),
    for replaying a real server's recorded answers (tests/fixtures/llamacpp_*)."""

    def __init__(self, post, get=lambda path: (404, {"error": {"message": "File Not Found"}})) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.reply(*get(self.path))

            def do_POST(self):
                self.reply(*post(self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))

            def reply(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def models_page(model: str, owned_by: str):
    """GET: /v1/models listing one model, as llama.cpp's server lists its one (`owned_by` "llamacpp")."""
    return lambda path: (200, {"data": [{"id": model, "object": "model", "owned_by": owned_by}]}) \
        if path.endswith("/models") else (404, {"error": {"message": "File Not Found"}})
