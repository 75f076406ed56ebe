"""What goes over the wire to an OpenAI-compatible server: reading its answers strictly, and when to
ask again. Pure helpers of the openai backend (`toolkit.teachers.openai_backend`).

`WireClient` is the transport: one aiohttp session (a keep-alive connection pool) posting plain
OpenAI JSON and reading the answer as bytes, parsed once with `json.loads`.

A server's 200 answer is not trusted to be a chat completion: a proxy's HTML error page, a body cut
short, `choices: null` or a choice without a `message` each raise `MalformedResponse` (the answer is
read in `toolkit.teachers.openai_answers`), which the backend retries and then records as a failed
call, instead of ending the build with a traceback.

Bounds on what a server can make the client do: a call ends after `timeout` seconds in all
(connecting, waiting and reading the body: a server that trickles one byte a second is cut off like a
silent one), and an answer is read up to `answer_limit` bytes once decoded (a gzip bomb fails the
call instead of filling memory). Credentials are only what the user gave (the key, a URL's
user:password): `~/.netrc` is not read, proxies from the environment are.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
import ssl
import time
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from toolkit.redact import redact

MAX_DELAY = 60.0  # seconds; cap on backoff and on a server's Retry-After
NOTICE_EVERY = 10.0  # seconds between the visible "retrying" lines
# The most a 2xx answer may hold once decoded: 1 MiB plus 1 KiB per token asked for (max_tokens x n).
# A token is a few bytes of text, at most ~30 JSON-escaped; the rest is room for logprobs and the
# envelope. An error answer is read up to ERROR_LIMIT only (its message is all we use).
ANSWER_BASE = 1 << 20
ANSWER_PER_TOKEN = 1 << 10
ERROR_LIMIT = 64 << 10
MODELS_LIMIT = 8 << 20  # /v1/models: OpenAI's own list is ~100 KB
CHUNK = 64 << 10


class MalformedResponse(Exception):
    """A 200 answer that is not a usable chat completion."""


class NoLogprobs(Exception):
    """A well-formed answer without the log-probabilities it was asked for."""


class ResponseTooLarge(Exception):
    """A 2xx answer past its size limit once decoded: the call fails (asking again would be the same)."""


class HTTPStatusError(Exception):
    """A non-2xx answer: its status, the server's message and its headers (for Retry-After)."""

    def __init__(self, status_code: int, message: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code, self.message, self.headers = status_code, message, headers


class WireClient:
    """POST /chat/completions and GET /models on one connection pool. A call that has not ended
    within `timeout` seconds in all raises asyncio.TimeoutError; a connection that fails raises
    aiohttp.ClientError; a non-2xx answer HTTPStatusError; a 2xx answer that is not JSON
    MalformedResponse, one past its size limit ResponseTooLarge. Proxies from the environment
    (HTTPS_PROXY, NO_PROXY) are honoured; ~/.netrc is not read (aiohttp's `trust_env` would read it
    and then refuse to combine its login with our Authorization header). Made inside the event loop
    that uses it."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float, connections: int) -> None:
        import aiohttp

        parts = urlsplit(base_url.rstrip("/"))
        authorization = f"Bearer {api_key}"
        if parts.username is not None:  # user:password@host: basic auth for a gateway, as httpx does
            login = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(login).decode()
            parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        self._base = urlunsplit(parts)
        self._proxy = env_proxy(self._base)
        self.timeout = timeout
        self._http = aiohttp.ClientSession(
            headers={"Authorization": authorization, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=timeout, sock_read=timeout),
            connector=aiohttp.TCPConnector(limit=connections, ssl=_tls_context()),
            trust_env=False,
        )

    async def chat(self, body: Mapping[str, Any], limit: int | None = None) -> Any:
        """`limit`: the most bytes the decoded answer may hold (default: answer_limit of the body)."""
        limit = limit or answer_limit(body.get("max_tokens") or body.get("max_completion_tokens"), body.get("n"))
        return await self._request("POST", "/chat/completions", limit, self.timeout, data=json.dumps(body).encode())

    async def models(self, timeout: float) -> Any:
        return await self._request("GET", "/models", MODELS_LIMIT, timeout)

    async def props(self, timeout: float) -> Any:
        """llama.cpp's server properties, at the server's root (beside /v1)."""
        return await self._request("GET", "/props", MODELS_LIMIT, timeout, root=True)

    async def tokenize(self, text: str, timeout: float) -> int:
        """How many tokens llama.cpp's server makes of `text` (`POST /tokenize` at its root, answered
        at once, beside the slots)."""
        page = await self._request("POST", "/tokenize", MODELS_LIMIT, timeout, root=True,
                                   data=json.dumps({"content": text}).encode())  # fmt: skip
        tokens = page.get("tokens") if isinstance(page, dict) else None
        if not isinstance(tokens, list):
            raise MalformedResponse("no token list from /tokenize")
        return len(tokens)

    async def _request(self, method: str, path: str, limit: int, timeout: float, root: bool = False,
                       **options: Any) -> Any:  # fmt: skip
        # One deadline over the whole call: aiohttp's own timeouts bound each wait, not their sum.
        base = self._base.removesuffix("/v1") if root else self._base
        raw = await asyncio.wait_for(self._fetch(method, base + path, limit, **options), timeout)
        try:
            return json.loads(raw)
        except ValueError:  # not JSON, or not UTF-8: a proxy's error page, a body cut short
            text = raw.decode("utf-8", "replace")
            raise MalformedResponse(f"not JSON ({_short(text or 'an empty body', 120)})") from None

    async def _fetch(self, method: str, url: str, limit: int, **options: Any) -> bytes:
        async with self._http.request(method, url, proxy=self._proxy, **options) as response:
            ok = 200 <= response.status < 300
            raw = await read_capped(response.content, limit if ok else ERROR_LIMIT, strict=ok)
            if not ok:
                raise HTTPStatusError(response.status, error_message(raw), response.headers)
        return raw

    async def close(self) -> None:
        await self._http.close()


def answer_limit(max_tokens: Any, n: Any) -> int:
    """The most bytes a decoded answer asking for `max_tokens` tokens in each of `n` choices may hold."""
    tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 4096
    return ANSWER_BASE + ANSWER_PER_TOKEN * tokens * (n if isinstance(n, int) and n > 0 else 1)


async def read_capped(content: Any, limit: int, *, strict: bool) -> bytes:
    """The decoded body, read in chunks up to `limit` bytes: past it, ResponseTooLarge (`strict`)
    or the first `limit` bytes (an error page, whose start is its message)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            if strict:
                raise ResponseTooLarge(
                    f"the answer is over {limit / (1 << 20):.1f} MiB decoded (the limit: 1 MiB + 1 KiB per token "
                    "asked for, max_tokens x n)"
                )
            chunks.append(chunk[: len(chunk) - (size - limit)])
            break
        chunks.append(chunk)
    return b"".join(chunks)


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTP(S)_PROXY, honouring NO_PROXY), or None."""
    proxies = urllib.request.getproxies_environment()
    host = urlsplit(url).hostname or ""
    if not proxies or urllib.request.proxy_bypass_environment(host, proxies):
        return None
    return proxies.get(urlsplit(url).scheme)


def check_base_url(url: str) -> None:
    """A base URL Python can take apart (`http://[::1/v1` cannot: ValueError), as a UserError."""
    from toolkit.errors import UserError

    try:
        urlsplit(url).port  # noqa: B018 - reading it checks it (a port past 65535 raises)
    except ValueError as e:
        raise UserError(
            f"teacher base URL is not a valid URL ({e}); write it like http://127.0.0.1:8000/v1 "
            "or http://[::1]:8000/v1"
        ) from None


def _tls_context() -> ssl.SSLContext:
    """Certifi's CA bundle where installed (as httpx and the openai client use), so HTTPS works on
    systems whose Python has no CA store of its own (python.org builds on macOS); else the system's."""
    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def error_message(raw: bytes) -> str:
    """The message of an error answer: OpenAI's `{"error": {"message": ...}}`, vLLM's and TGI's
    `message`/`detail`/`error` fields, or the body itself."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text or "no body"
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
            if isinstance(value, str) and value:
                return value
    return text


def split_model_url(spec: str) -> tuple[str, str | None]:
    """'MODEL@BASE_URL' -> (MODEL, BASE_URL); a spec without '@http' has no URL."""
    model, sep, rest = spec.partition("@http")
    return (model, "http" + rest) if sep else (spec, None)


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


class RetryNotice:
    """The visible side of retrying: one WARNING line at most every NOTICE_EVERY seconds (a stalled
    server with 64 calls in flight would otherwise print 64 lines a wave), the rest at INFO."""

    def __init__(self, log: logging.Logger, every: float = NOTICE_EVERY) -> None:
        self.log, self.every, self.last, self.quiet = log, every, -float("inf"), 0

    def retrying(self, attempt: int, retries: int, delay: float, error: str) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            more = f" ({self.quiet} more retries since the last line)" if self.quiet else ""
            self.log.warning("retrying a call (%d/%d) in %.1f s after %s%s", attempt, retries, delay, error, more)
            self.last, self.quiet = now, 0
        else:
            self.quiet += 1
            self.log.info("retry %d/%d in %.1f s after %s", attempt, retries, delay, error)


def is_connect_failure(error: BaseException) -> bool:
    """Whether a connection error means nothing listens (refused, no route, DNS), as opposed to a
    server that answered and then broke the connection mid-response."""
    names = {t.__name__ for e in (error, _innermost(error)) for t in type(e).__mro__}
    return bool(names & {"ClientConnectorError", "ConnectError", "ConnectionRefusedError", "gaierror"})


def _innermost(e: BaseException) -> BaseException:
    while e.__cause__ is not None:
        e = e.__cause__
    return e


def _short(message: Any, limit: int = 300) -> str:
    """One line, credentials masked (servers echo headers and URLs back), at most `limit` chars."""
    line = redact(" ".join(str(message).split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _cause(e: BaseException) -> str:
    """The innermost reason of a connection error ('Connection refused'), not the client's wrapper."""
    inner = _innermost(e)
    return _short(str(inner) or type(inner).__name__, 120)
