"""A fault-injecting OpenAI-compatible server on 127.0.0.1: canned chat completions, no model.

    with FaultServer("garbage", faulty=lambda q: "1 + 1" in q) as server:
        ...  # server.url is http://127.0.0.1:PORT/v1; server.mode = "ok" heals it for a re-run

A healthy answer solves the arithmetic in the last user message the way `fake:right` does and names
the seed it was drawn with, so the rows of a build tell which sample came from which call. It
ignores `n` (one choice per call, as `transformers serve` does) unless `honour_n=True`.

A call whose question `faulty` accepts gets the fault of `mode` (by default every call does):

    ok         a healthy answer
    error      HTTP 500 with a JSON error body
    429        HTTP 429 with `Retry-After: 0`
    garbage    HTTP 200 with a body that is not JSON
    html       HTTP 200, `text/html`, an error page
    no_choices HTTP 200 JSON without `choices`       null_choices  `choices: null`
    no_message HTTP 200 JSON whose choice has no `message`
    null       HTTP 200 with `content: null`          empty  `content: ""`
    hang       no answer until the client gives up (or the server closes)
    close      headers and half a body, then the connection is closed
    echo       HTTP 400 whose error message echoes the request's Authorization header (decoded
               when it is Basic auth), as careless servers do
    echo_ok    a healthy answer that starts by repeating the Authorization header
    trickle    a healthy answer sent one byte every `trickle_every` seconds (leading blanks first, which
               JSON allows), so no single read ever waits long
    bomb       a healthy answer padded to BOMB_BYTES, sent gzip-compressed (about 1000:1)
    huge_usage a healthy answer whose `usage.completion_tokens` is 10**30

`faulty` may also return a mode's name instead of True, to give different questions different faults.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("ok", "error", "429", "garbage", "html", "no_choices", "null_choices", "no_message", "null", "empty",
         "hang", "close", "echo", "echo_ok", "trickle", "bomb", "huge_usage")  # fmt: skip
BOMB_BYTES = 200 << 20  # the gzip bomb: ~200 KB on the wire, 200 MB decoded
ROOT = "/weights/fault-model-v1"  # what /v1/models reports as the served weights (vLLM's `root`)


def healthy_text(question: str, seed: int) -> str:
    from toolkit.teachers.fake import _number, solve_arithmetic

    found = solve_arithmetic(question)
    if found is None:
        return f"I cannot tell (draw {seed})."
    expression, value = found
    return f"Let's work out {expression} (draw {seed}).\n{expression} = {_number(value)}.\nThe answer is {_number(value)}."


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that hangs up mid-reply (it cut off a gzip bomb or a trickle: what these faults test)
        # is no error of the server's; socketserver would print its traceback to stderr, which a test's
        # CliRunner reads as the command's output.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class FaultServer:
    def __init__(self, mode: str = "ok", *, faulty: Callable[[str], bool | str] | None = None, honour_n: bool = False,
                 delay: float = 0.0, root: str = ROOT, trickle_every: float = 2.0,
                 models: list[dict[str, Any]] | None = None, props: dict[str, Any] | None = None) -> None:  # fmt: skip
        assert mode in MODES, mode
        self.mode, self.faulty, self.honour_n, self.delay, self.root = mode, faulty, honour_n, delay, root
        self.trickle_every = trickle_every
        # /v1/models entries (default: vLLM's shape, `fault-model` with `root`) and llama.cpp's /props
        self.models = models
        self.props = props
        self.calls: list[dict[str, Any]] = []  # every chat call: body, question, seed, whether it was faulted
        self.finished = 0  # chat calls whose answer has been written out
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.httpd = _Server(("127.0.0.1", 0), _handler(self))
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.closing.set()  # hanging handlers return
        self.httpd.shutdown()
        self.httpd.server_close()

    def answered(self, faulted: bool | None = None) -> int:
        """Chat calls received (only the faulted, or only the healthy ones, when asked)."""
        with self.lock:
            return sum(1 for c in self.calls if faulted is None or c["faulted"] == faulted)

    def chat(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes | None]:
        """(status, headers, body) for one chat call; body None means: break the connection."""
        question = next((m.get("content") or "" for m in reversed(body.get("messages") or []) if m.get("role") == "user"), "")
        seed = int(body.get("seed") or 0)
        chosen = True if self.faulty is None else self.faulty(question)
        mode = chosen if isinstance(chosen, str) else self.mode if chosen else "ok"
        with self.lock:
            self.calls.append({"body": body, "question": question, "seed": seed, "faulted": mode != "ok"})
        if self.delay:
            self.closing.wait(self.delay)
        n = int(body.get("n") or 1) if self.honour_n else 1
        if mode == "ok":
            return 200, {}, _json(completion(body, [healthy_text(question, seed + j) for j in range(n)]))
        if mode == "error":
            return 500, {}, _json({"error": {"message": "injected server error", "type": "server_error"}})
        if mode == "429":
            return 429, {"Retry-After": "0"}, _json({"error": {"message": "slow down", "type": "rate_limit"}})
        if mode == "garbage":
            return 200, {}, b"this is not JSON {"
        if mode == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>"
        if mode in ("no_choices", "null_choices"):
            reply = completion(body, ["x"])
            reply.pop("choices") if mode == "no_choices" else reply.update(choices=None)
            return 200, {}, _json(reply)
        if mode == "no_message":
            reply = completion(body, ["x"])
            del reply["choices"][0]["message"]
            return 200, {}, _json(reply)
        if mode in ("null", "empty"):
            return 200, {}, _json(completion(body, [None if mode == "null" else ""]))
        if mode == "hang":
            self.closing.wait(60)
            return 503, {}, _json({"error": {"message": "gave up hanging"}})
        if mode == "close":
            return 200, {}, None
        if mode in ("trickle", "bomb", "huge_usage"):
            reply = completion(body, [healthy_text(question, seed)])
            if mode == "huge_usage":
                reply["usage"]["completion_tokens"] = 10**30
                return 200, {}, _json(reply)
            if mode == "bomb":
                return 200, {"Content-Encoding": "gzip"}, gzip_bomb(reply)
            return 200, {"X-Trickle": "1"}, b" " * 200 + _json(reply)
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            auth += " (" + base64.b64decode(auth.split()[1]).decode(errors="replace") + ")"
        if mode == "echo_ok":
            return 200, {}, _json(completion(body, [f"(you sent {auth})\n{healthy_text(question, seed)}"]))
        return 400, {}, _json({"error": {"message": f"bad request; you sent Authorization: {auth}"}})


def completion(body: dict[str, Any], texts: list[str | None]) -> dict[str, Any]:
    """A chat.completion in OpenAI's shape, one choice per text."""
    return {
        "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()),
        "model": body.get("model", "?"), "system_fingerprint": "fp_fault",
        "choices": [{"index": j, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                    for j, t in enumerate(texts)],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7 * len(texts), "total_tokens": 10 + 7 * len(texts)},
    }  # fmt: skip


def gzip_bomb(reply: dict[str, Any]) -> bytes:
    """`reply` with a BOMB_BYTES blank-padded prefix (valid JSON), gzip-compressed chunk by chunk."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: the gzip container
    block = b" " * (1 << 20)
    parts = [packer.compress(block) for _ in range(BOMB_BYTES >> 20)]
    return b"".join([*parts, packer.compress(_json(reply)), packer.flush()])


def _json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def _handler(server: FaultServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers do

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                data = server.models if server.models is not None else [{"id": "fault-model", "object": "model",
                                                                          "root": server.root}]  # fmt: skip
                self.reply(200, {}, _json({"object": "list", "data": data}))
            elif self.path.rstrip("/") == "/props" and server.props is not None:
                self.reply(200, {}, _json(server.props))
            else:
                self.reply(404, {}, _json({"error": {"message": "no such route"}}))

        def do_POST(self) -> None:
            data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.endswith("/chat/completions"):
                self.reply(404, {}, _json({"error": {"message": "no such route"}}))
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(data)
            except ValueError:
                self.reply(400, {}, _json({"error": {"message": "the request body is not JSON"}}))
                return
            status, extra, payload = server.chat(body, headers)
            if payload is None:  # half a response, then the connection drops
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "4096")
                self.end_headers()
                self.wfile.write(b'{"id": "chatcmpl-')
                self.wfile.flush()
                self.close_connection = True
                return
            self.reply(status, extra, payload)
            with server.lock:
                server.finished += 1

        def reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
            try:
                self.send_response(status)
                trickle = headers.pop("X-Trickle", None)
                headers = {"Content-Type": "application/json", **headers, "Content-Length": str(len(payload))}
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if trickle:  # one byte at a time until done or closing
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        if server.closing.wait(server.trickle_every):
                            self.close_connection = True
                            return
                    return
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout): nothing to tell it

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


# -- driving builds against it ---------------------------------------------------------------------
def write_sums(path, problems: int) -> list[str]:
    """A file: source of `problems` questions "What is i + i?"; returns the questions."""
    questions = [f"What is {i} + {i}?" for i in range(problems)]
    path.write_text("".join(json.dumps({"question": q, "answer": 2 * i}) + "\n" for i, q in enumerate(questions)))
    return questions


def cot_args(url: str, source, out, cache, *, samples: int = 2, concurrency: int = 4, more=()) -> list[str]:
    """`hubtool build-dataset cot ...` against an OpenAI-compatible URL, fast failure settings."""
    return ["build-dataset", "cot", "--source", f"file:{source}", "--teacher", f"openai:fault-model@{url}",
            "--samples", str(samples), "--keep", "all", "--concurrency", str(concurrency), "--timeout", "0.5",
            "--max-retries", "1", "--out", str(out), "--cache", str(cache), *more]  # fmt: skip
