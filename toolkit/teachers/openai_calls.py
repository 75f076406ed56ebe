"""The calls behind the openai backend's requests: n samples asked for in as few calls as the server
takes, each call retried (a mixin of `toolkit.teachers.openai_backend.OpenAITeacher`).

The `n` samples of a request are asked for in one call; a server that returns fewer choices
(`transformers serve` ignores `n`) is remembered and gets single-sample calls from then on, sample j
with seed + j so the samples differ, and each sample is reported (`on_sample`) as its call returns,
so the cache keeps it even when its siblings never finish. A server that refuses an `n` above its
limit (llama.cpp's server: its slots) is remembered too and gets calls of at most that many, sample
j of each part with seed + j. llama.cpp's server reports the first choice's tokens alone; the others
are counted by its `/tokenize` (`_recount`).

Each call waits at most `timeout` seconds and is retried up to `max_retries` times with exponential
backoff and jitter on 429, 5xx, timeouts, broken connections and malformed answers, honouring
`Retry-After`, with a visible line while it retries. A bad key or an unknown model stops the build
with one message; a server lost for good stops it too (a re-run resumes from the cache).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from toolkit.errors import UnreachableServerError, UserError
from toolkit.teachers.base import Completion, OnSample, Request
from toolkit.teachers.openai_answers import first_choice_usage, served_by, to_completions
from toolkit.teachers.openai_wire import (
    HTTPStatusError,
    MalformedResponse,
    ResponseTooLarge,
    WireClient,
    _cause,
    _short,
    backoff_delay,
    is_connect_failure,
    parse_retry_after,
)
from toolkit.teachers.slots import Slots

log = logging.getLogger("toolkit.teachers.openai_backend")  # the backend's lines, as before the split
RETRY_STATUS = frozenset({408, 409, 429})
# base URL -> whether that server honours `n`, learned from its first multi-sample answer.
_N_SUPPORT: dict[str, bool] = {}
T = TypeVar("T")
# base URL -> the most samples one call may ask of it, learned from its refusal (llama.cpp's server
# refuses an `n` above its slots: "Field 'n': Value must be between 1 <= value <= 4, but got 8").
_N_LIMIT: dict[str, int] = {}
_N_REFUSED = re.compile(r"""\bn\b['"]?:.*?<=\s*value\s*<=\s*(\d+)""", re.IGNORECASE)


class CallFailed(Exception):
    """A call that failed for good: a status not worth retrying, or every retry used up."""


class NTooLarge(Exception):
    """The server refused the call's `n`: it takes at most `limit` samples a call."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} samples a call")
        self.limit = limit


class Calls:
    """Requests to calls, and calls retried: the part of `OpenAITeacher` that talks to the server.
    Reads the teacher's model, base URL, options (timeout, retries, backoff, extra_body) and counters."""

    async def _samples(self, client: WireClient, sem: Slots, request: Request,
                       on_sample: OnSample | None = None) -> list[Completion]:  # fmt: skip
        """The request's n completions: one call asking for n, then single calls for any missing,
        each reported to `on_sample` as it arrives."""
        n, seed = request.n, request.params.seed + request.first_sample
        got: list[Completion] = []
        while len(got) < n and (n == 1 or _N_SUPPORT.get(self.base_url, True)):
            k = min(n - len(got), _N_LIMIT.get(self.base_url, n))  # samples j..j+k-1 in one call, seed + j
            if k == 1 and n > 1:
                break  # one sample a call: the single calls below
            try:
                part = (await self._call(client, sem, request, k, seed + len(got)))[:k]
            except NTooLarge as e:
                if _N_LIMIT.get(self.base_url) != e.limit:
                    log.info("%s takes at most %d samples a call; asking in parts from now on", self._url, e.limit)
                _N_LIMIT[self.base_url] = e.limit
                continue
            for j, completion in enumerate(part, start=len(got)):
                if on_sample:
                    on_sample(j, completion)
            got += part
            if k > 1 and _N_SUPPORT.get(self.base_url) is None:
                _N_SUPPORT[self.base_url] = len(part) >= k
                if len(part) < k:
                    log.info("%s ignores n (asked %d, got %d); one call per sample from now on", self._url, k, len(part))
            if len(part) < k:
                break
        if len(got) < n:
            got += await self._singles(client, sem, request, range(len(got), n), seed, on_sample)
        return got

    async def _singles(self, client: WireClient, sem: Slots, request: Request, indices: range, seed: int,
                       on_sample: OnSample | None) -> list[Completion]:  # fmt: skip
        """Sample j by itself (seed + j). A failed sample does not cancel its siblings: what
        finishes is reported and kept, and the request fails after all have ended."""

        async def single(j: int) -> Completion:
            completion = (await self._call(client, sem, request, 1, seed + j))[0]
            if on_sample:
                on_sample(j, completion)
            return completion

        outcomes = await asyncio.gather(*(single(j) for j in indices), return_exceptions=True)
        errors = [(j, o) for j, o in zip(indices, outcomes) if isinstance(o, BaseException)]
        for _, error in errors:
            if not isinstance(error, CallFailed):
                raise error  # a setup error (bad key, lost server) or a bug: the build stops
        if errors:
            which = ", ".join(str(j) for j, _ in errors)
            raise CallFailed(f"sample {which} of {request.n}: {errors[0][1]}")
        return [o for o in outcomes if isinstance(o, Completion)]

    def _body(self, request: Request, n: int, seed: int) -> dict[str, Any]:
        p = request.params
        body = {
            "model": self.model,
            "messages": list(request.messages),
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": seed,
            self._max_tokens_field: p.max_new_tokens,
        }
        if n > 1:
            body["n"] = n
        body.update(self.extra_body)  # server-specific fields, as the openai client's extra_body
        return body

    async def _call(self, client: WireClient, sem: Slots, request: Request, n: int,
                    seed: int) -> list[Completion]:  # fmt: skip
        """One chat completion, parsed, retried; its slots (one, or n on llama.cpp's server) are held
        only while the call is in flight."""
        body = self._body(request, n, seed)
        answer, completions = await self._post(client, sem, body, n,
                                               lambda r: to_completions(r, body.get(self._max_tokens_field)))
        return await self._recount(client, completions) if first_choice_usage(answer) else completions

    async def _post(self, client: WireClient, sem: Slots, body: dict[str, Any], n: int,
                    read: Callable[[Any], T]) -> tuple[Any, T]:  # fmt: skip
        """POST `body`, retried, and its answer read by `read` (a malformed one is retried too)."""
        import aiohttp

        error, lost_server = "", False
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                weight = min(n, self.concurrency) if self.slot_per_sample else 1
                async with sem.hold(weight):
                    self.calls_in_flight += weight
                    try:
                        response = await client.chat(body)
                    finally:
                        self.calls_in_flight -= weight
                value = read(response)
                self.served[served_by(response)] += 1
                return response, value
            except HTTPStatusError as e:
                self._raise_if_setup_error(e)
                refused = _N_REFUSED.search(e.message) if n > 1 and e.status_code == 400 else None
                if refused and 1 <= int(refused.group(1)) < n:
                    raise NTooLarge(int(refused.group(1))) from None
                error = f"HTTP {e.status_code}: {_short(e.message)}"
                if e.status_code not in RETRY_STATUS and e.status_code < 500:
                    raise CallFailed(error) from None
                retry_after = parse_retry_after(e.headers)
                lost_server = False
            except asyncio.TimeoutError:
                error, lost_server = f"no answer within {self.timeout:g} s (--timeout)", False
            except aiohttp.ClientError as e:
                lost_server = is_connect_failure(e)
                error = f"connection failed: {_cause(e)}" if lost_server else f"connection broken mid-answer: {_cause(e)}"
            except MalformedResponse as e:
                error, lost_server = f"malformed answer: {e}", False
            except ResponseTooLarge as e:
                raise CallFailed(str(e)) from None
            if attempt < self.max_retries:
                delay = backoff_delay(attempt, self.backoff, retry_after)
                self._notice.retrying(attempt + 1, self.max_retries, delay, error)
                await asyncio.sleep(delay)
        if lost_server:
            raise UnreachableServerError(
                f"lost {self._url} ({error}) after {self.max_retries} retries; "
                "is the server still running? re-run the same command to resume"
            )
        raise CallFailed(f"{error} (after {self.max_retries} retries)")

    async def _recount(self, client: WireClient, completions: list[Completion]) -> list[Completion]:
        """The tokens of each choice after the first that did not stop at the limit, counted by the
        server (llama.cpp reports the first choice's alone, `first_choice_usage`): its text's tokens
        plus the end-of-turn token it stopped at. Where the server does not count them, the
        estimate stays, said once."""
        import aiohttp

        counted = list(completions)
        for j, c in enumerate(completions[1:], start=1):
            if c.finish_reason == "length":
                continue  # it made exactly max_tokens
            try:
                tokens = await client.tokenize(c.text, timeout=min(self.timeout, 10.0))
            except (asyncio.TimeoutError, aiohttp.ClientError, HTTPStatusError, MalformedResponse, ResponseTooLarge) as e:
                if not self._estimated:
                    log.warning("%s reports one choice's tokens for an n-sample call and did not count the others "
                                "(%s); their token counts are estimates", self._url, _cause(e))  # fmt: skip
                    self._estimated = True
                return counted
            counted[j] = replace(c, completion_tokens=tokens + (c.finish_reason == "stop"))
        return counted

    def _raise_if_setup_error(self, e: Any) -> None:
        """A bad key or an unknown model fails every call alike: stop with one clear message."""
        if e.status_code in (401, 403):
            raise UserError(
                f"{self._url} refused the API key (HTTP {e.status_code}); set the right key in its env var"
            )
        if e.status_code == 404:
            raise UserError(
                f"{self._url} answered 404 for model {self.model!r}: {_short(e.message)}; "
                "check the model name and that the URL ends in /v1"
            )
