"""A stand-in OpenAI-compatible server: every chat completion answers after a fixed latency, so a
benchmark against it measures the client's own cost and nothing of a model.

    python bench/standin.py --port 8901 --latency 0.3 [--ignore-n]

POST /v1/chat/completions  n choices (1 with --ignore-n, like `transformers serve`), each
                           "We add the numbers.\\nThe answer is 42.", with usage
GET  /v1/models            one model
GET  /stats                requests served, and how many were in flight (max, mean at arrival);
                           `?reset=1` starts the count again
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

TEXT = "We add the numbers step by step.\nThe answer is 42."


class Standin:
    def __init__(self, latency: float, ignore_n: bool) -> None:
        self.latency, self.ignore_n = latency, ignore_n
        self.reset()

    def reset(self) -> None:
        self.in_flight = self.max_in_flight = self.served = self.arrivals = 0
        self.in_flight_sum = 0

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.in_flight += 1
        self.arrivals += 1
        self.in_flight_sum += self.in_flight
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        self.served += 1
        n = 1 if self.ignore_n else int(body.get("n") or 1)
        choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": TEXT}}
                   for i in range(n)]  # fmt: skip
        return web.json_response({
            "id": f"chatcmpl-{self.served}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "standin"), "choices": choices,
            "usage": {"prompt_tokens": 40, "completion_tokens": 12 * n, "total_tokens": 40 + 12 * n},
        })  # fmt: skip

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "standin", "object": "model"}]})

    async def stats(self, request: web.Request) -> web.Response:
        out = {"served": self.served, "max_in_flight": self.max_in_flight,
               "mean_in_flight": self.in_flight_sum / self.arrivals if self.arrivals else 0.0}  # fmt: skip
        if request.query.get("reset"):
            self.reset()
        return web.Response(text=json.dumps(out), content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--ignore-n", action="store_true")
    args = parser.parse_args()
    standin = Standin(args.latency, args.ignore_n)
    app = web.Application()
    app.router.add_post("/v1/chat/completions", standin.chat)
    app.router.add_get("/v1/models", standin.models)
    app.router.add_get("/stats", standin.stats)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
