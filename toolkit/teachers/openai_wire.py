"""What goes over the wire to an OpenAI-compatible server: reading its answers strictly, and when to
ask again. Pure helpers of the openai backend (`toolkit.teachers.openai_backend`).

A server's 200 answer is not trusted to be a chat completion: a proxy's HTML error page, a body cut
short, `choices: null` or a choice without a `message` each raise `MalformedResponse`, which the
backend retries and then records as a failed call, instead of ending the build with a traceback.
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.redact import redact
from toolkit.teachers.base import Completion

MAX_DELAY = 60.0  # seconds; cap on backoff and on a server's Retry-After
NOTICE_EVERY = 10.0  # seconds between the visible "retrying" lines


class MalformedResponse(Exception):
    """A 200 answer that is not a usable chat completion."""


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


def to_completions(response: Any) -> list[Completion]:
    """A ChatCompletion -> one Completion per choice, each carrying the call's prompt tokens.

    Raises MalformedResponse for anything else. A `content: null` choice becomes an empty text,
    which the session counts as a failed sample (never cached)."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        what = f"a {type(response).__name__} body" if not hasattr(response, "choices") else f"choices: {choices!r}"
        raise MalformedResponse(f"not a chat completion ({_short(what if not isinstance(response, str) else response, 120)})")
    if any(getattr(c, "message", None) is None for c in choices):
        raise MalformedResponse("a choice without a message")
    choices = sorted(choices, key=lambda c: c.index if isinstance(c.index, int) else 0)
    texts = [c.message.content if isinstance(c.message.content, str) else "" for c in choices]
    usage = getattr(response, "usage", None)
    prompt = _tokens(usage, "prompt_tokens")
    counts = apportion(_tokens(usage, "completion_tokens"), [len(t) for t in texts])
    return [Completion(t, c.finish_reason or "unknown", prompt, k) for t, c, k in zip(texts, choices, counts)]


def _tokens(usage: Any, name: str) -> int:
    value = getattr(usage, name, 0)
    return value if isinstance(value, int) and value >= 0 else 0


def served_by(response: Any) -> str:
    """What the server says answered: its model name and `system_fingerprint`, where it gives them."""
    model, fingerprint = getattr(response, "model", None), getattr(response, "system_fingerprint", None)
    return " ".join(str(x) for x in (model, fingerprint) if x)


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
    cause = _innermost(error)
    names = {t.__name__ for t in type(cause).__mro__}
    return bool(names & {"ConnectError", "ConnectionRefusedError", "gaierror"})


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
