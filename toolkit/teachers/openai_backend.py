"""Any OpenAI-compatible server as a teacher: vLLM `serve`, TGI, llama.cpp, `transformers serve`, OpenAI.

`generate` owns its event loop, so it can be called from any thread. At most `concurrency` HTTP
calls are in flight; each is retried with exponential backoff and jitter on 429, 5xx, timeouts and
dropped connections, honouring `Retry-After`. The `n` samples of a request are asked for in one
call; a server that returns fewer choices (`transformers serve` ignores `n`) is remembered and gets
single-sample calls from then on, sample j with seed + j so the samples differ.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from toolkit.errors import UnreachableServerError, UserError
from toolkit.teachers.base import CallFailure, Completion, OnResult, Request, Result, Teacher
from toolkit.teachers.session import gather_or_cancel

log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"  # local servers ignore the key, but the client refuses to run without one
MAX_DELAY = 60.0  # seconds; cap on backoff and on a server's Retry-After
RETRY_STATUS = frozenset({408, 409, 429})

# base URL -> whether that server honours `n`, learned from its first multi-sample answer.
_N_SUPPORT: dict[str, bool] = {}


class CallFailed(Exception):
    """A call that failed for good: a status not worth retrying, or every retry used up."""


def split_model_url(spec: str) -> tuple[str, str | None]:
    """'MODEL@BASE_URL' -> (MODEL, BASE_URL); a spec without '@http' has no URL."""
    model, sep, rest = spec.partition("@http")
    return (model, "http" + rest) if sep else (spec, None)


def redact_url(url: str) -> str:
    """The URL without any user:password part, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds a server asked us to wait (`retry-after-ms`, `retry-after` seconds or HTTP date)."""
    if ms := headers.get("retry-after-ms"):
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base: float, retry_after: float | None = None) -> float:
    """Wait before retry `attempt` (0-based): Retry-After if given, else base * 2^attempt, half jittered."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, MAX_DELAY)
    cap = min(MAX_DELAY, base * 2**attempt)
    return cap / 2 + random.uniform(0, cap / 2)


def apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split a token total over choices by text length; servers report one total for all n choices."""
    if not weights:
        return []
    if sum(weights) == 0:
        weights = [1] * len(weights)
    shares = [total * w / sum(weights) for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def to_completions(response: Any) -> list[Completion]:
    """A ChatCompletion -> one Completion per choice, each carrying the call's prompt tokens."""
    usage = response.usage
    prompt = usage.prompt_tokens if usage else 0
    choices = sorted(response.choices, key=lambda c: c.index)
    texts = [c.message.content or "" for c in choices]
    counts = apportion(usage.completion_tokens if usage else 0, [len(t) for t in texts])
    return [Completion(t, c.finish_reason or "unknown", prompt, k) for t, c, k in zip(texts, choices, counts)]


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to the end from sync code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class OpenAITeacher(Teacher):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    backend = "openai"
    native_async = True

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str = NO_KEY,
        concurrency: int = 16,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or backoff < 0:
            raise UserError(
                "openai teacher: concurrency must be >= 1, max_retries >= 0, timeout > 0 and backoff >= 0"
            )
        if not base_url.startswith(("http://", "https://")):
            raise UserError(
                f"base URL {base_url!r} must start with http:// or https://, e.g. http://127.0.0.1:8000/v1"
            )
        self.model = model
        self.revision = ""  # servers report no weights revision; the host is not one either
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.concurrency = concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(extra_body or {})
        self._reachable = False
        self._session: tuple[Any, asyncio.Semaphore] | None = None  # the build's client, see agenerate
        self.window = max(64, 4 * concurrency)
        is_openai = urlsplit(self.base_url).hostname == "api.openai.com"
        # OpenAI's reasoning models refuse `max_tokens`; most other servers only know `max_tokens`.
        self._max_tokens_field = "max_completion_tokens" if is_openai else "max_tokens"

    @classmethod
    def from_spec(
        cls,
        model: str,
        *,
        api_key_env: str | None = None,
        concurrency: int | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff: float | None = None,
        extra_body: Mapping[str, Any] | str | None = None,
        **_other_backends: Any,
    ) -> OpenAITeacher:
        """`MODEL@BASE_URL`, or MODEL with `$OPENAI_BASE_URL` (default: OpenAI). Key from `$api_key_env`.

        `extra_body` (a dict or JSON text) adds server-specific fields to every call, e.g. vLLM's
        `top_k`, or `{"generation_config": "{\"do_sample\": true}"}` so that `transformers serve`
        samples at all for a model whose generation config is greedy.
        """
        name, url = split_model_url(model)
        url = url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        if not name:
            raise UserError(f"teacher {model!r} names no model; use openai:MODEL@BASE_URL")
        key_env = api_key_env or "OPENAI_API_KEY"
        api_key = os.environ.get(key_env)
        if not api_key and urlsplit(url).hostname == "api.openai.com":
            raise UserError(
                f"{key_env} is not set; export your OpenAI key, or give a local server as MODEL@URL"
            )
        opts = {
            "concurrency": concurrency,
            "timeout": timeout,
            "max_retries": max_retries,
            "backoff": backoff,
        }
        opts["extra_body"] = _json_object(extra_body) if isinstance(extra_body, str) else extra_body
        return cls(name, url, api_key=api_key or NO_KEY, **{k: v for k, v in opts.items() if v is not None})

    def __repr__(self) -> str:
        return f"OpenAITeacher(model={self.model!r}, base_url={redact_url(self.base_url)!r})"

    def generate(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """Concurrent calls; `on_result` runs as each request ends. Raises only for setup errors."""
        if not requests:
            return []
        return run_sync(self._generate(requests, on_result))

    async def agenerate(self, request: Request) -> Result:
        """One request on the client this event loop keeps for the whole build (see `aclose`)."""
        if self._session is None:
            import openai

            client = openai.AsyncOpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
            )
            self._session = (client, asyncio.Semaphore(self.concurrency))
            await self._check_reachable(client)
        client, sem = self._session
        try:
            return await self._samples(client, sem, request)
        except CallFailed as e:
            log.warning("request failed: %s", e)
            return CallFailure(str(e))

    async def aclose(self) -> None:
        if self._session is not None:
            client, self._session = self._session[0], None
            await client.close()

    async def _generate(self, requests: Sequence[Request], on_result: OnResult | None) -> list[Result]:
        import openai

        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
        )
        results: list[Result] = [CallFailure("not run")] * len(requests)
        sem = asyncio.Semaphore(self.concurrency)

        async def one(i: int) -> None:
            try:
                result: Result = await self._samples(client, sem, requests[i])
            except CallFailed as e:
                log.warning("request %d failed: %s", i, e)
                result = CallFailure(str(e))
            results[i] = result
            if on_result:
                on_result(i, result)

        try:
            await self._check_reachable(client)
            await gather_or_cancel(one(i) for i in range(len(requests)))
        finally:
            await client.close()
        return results

    async def _check_reachable(self, client: Any) -> None:
        """Fail fast, once, when nothing listens at the base URL (any HTTP answer will do)."""
        import openai

        if self._reachable:
            return
        try:
            await client.with_options(timeout=min(self.timeout, 10.0)).models.list()
        except openai.APITimeoutError:
            pass  # connected but slow: the real calls will tell
        except openai.APIConnectionError as e:
            raise UnreachableServerError(
                f"cannot reach {redact_url(self.base_url)} ({_cause(e)}); is the server running? "
                "start it (e.g. `vllm serve MODEL`, `transformers serve MODEL`) or fix the URL after '@'"
            ) from None
        except openai.APIStatusError:
            pass  # some servers have no /models, or want a key for it; they did answer
        self._reachable = True

    async def _samples(self, client: Any, sem: asyncio.Semaphore, request: Request) -> list[Completion]:
        """The request's n completions: one call asking for n, then single calls for any missing."""
        n, seed = request.n, request.params.seed + request.first_sample
        got: list[Completion] = []
        if n == 1 or _N_SUPPORT.get(self.base_url, True):
            got = to_completions(await self._call(client, sem, request, n, seed))[:n]
            if n > 1 and _N_SUPPORT.get(self.base_url) is None:
                _N_SUPPORT[self.base_url] = len(got) >= n
                if len(got) < n:
                    log.info(
                        "%s ignores n (asked %d, got %d); one call per sample from now on",
                        redact_url(self.base_url),
                        n,
                        len(got),
                    )
        if len(got) < n:
            singles = [self._call(client, sem, request, 1, seed + j) for j in range(len(got), n)]
            for response in await gather_or_cancel(singles):
                got += to_completions(response)[:1]
        if len(got) < n:
            raise CallFailed(f"server returned {len(got)} of {n} choices")
        return got

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
        return body

    async def _call(self, client: Any, sem: asyncio.Semaphore, request: Request, n: int, seed: int) -> Any:
        """One chat completion, retried; the semaphore is held only while a call is in flight."""
        import openai

        body = self._body(request, n, seed)
        error, lost_server = "", False
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                async with sem:
                    return await client.chat.completions.create(**body, extra_body=self.extra_body or None)
            except openai.APIStatusError as e:
                self._raise_if_setup_error(e)
                error = f"HTTP {e.status_code}: {_short(e.message)}"
                if e.status_code not in RETRY_STATUS and e.status_code < 500:
                    raise CallFailed(error) from None
                retry_after = parse_retry_after(e.response.headers)
                lost_server = False
            except openai.APITimeoutError:
                error, lost_server = f"no answer within {self.timeout:g} s", False
            except openai.APIConnectionError as e:
                error, lost_server = f"connection failed: {_cause(e)}", True
            if attempt < self.max_retries:
                delay = backoff_delay(attempt, self.backoff, retry_after)
                log.info("retry %d/%d in %.1f s after %s", attempt + 1, self.max_retries, delay, error)
                await asyncio.sleep(delay)
        if lost_server:
            raise UnreachableServerError(
                f"lost {redact_url(self.base_url)} ({error}) after {self.max_retries} retries; "
                "is the server still running? re-run the same command to resume"
            )
        raise CallFailed(f"{error} (after {self.max_retries} retries)")

    def _raise_if_setup_error(self, e: Any) -> None:
        """A bad key or an unknown model fails every call alike: stop with one clear message."""
        url = redact_url(self.base_url)
        if e.status_code in (401, 403):
            raise UserError(
                f"{url} refused the API key (HTTP {e.status_code}); set the right key in its env var"
            )
        if e.status_code == 404:
            raise UserError(
                f"{url} answered 404 for model {self.model!r}: {_short(e.message)}; "
                "check the model name and that the URL ends in /v1"
            )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(
            f"extra_body is not valid JSON ({e}); give an object like '{{\"top_k\": 20}}'"
        ) from None
    if not isinstance(value, dict):
        raise UserError(f"extra_body must be a JSON object, not {type(value).__name__}")
    return value


def _short(message: str, limit: int = 300) -> str:
    line = " ".join(str(message).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cause(e: BaseException) -> str:
    """The innermost reason of a connection error ('Connection refused'), not the client's wrapper."""
    while e.__cause__ is not None:
        e = e.__cause__
    return _short(str(e) or type(e).__name__, 120)
