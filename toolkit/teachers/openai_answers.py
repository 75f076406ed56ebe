"""A server's JSON answers, read: chat completions into `Completion`s (a malformed one raises
`MalformedResponse`, which the backend retries), the first token's top log-probabilities, the token
counts a server reports, and what it says of the weights it serves (`/v1/models`, llama.cpp's
`/props`). The transport that fetches them is `toolkit.teachers.openai_wire`."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from typing import Any

from toolkit.teachers.base import Completion
from toolkit.teachers.openai_wire import (
    HTTPStatusError,
    MalformedResponse,
    NoLogprobs,
    WireClient,
    _short,
    apportion,
)


def to_completions(response: Any, max_tokens: int | None = None) -> list[Completion]:
    """A chat completion (parsed JSON) -> one Completion per choice, each carrying the call's
    prompt tokens. The usage's completion tokens are split over the choices by length, except where
    it is the first choice's alone (`first_choice_usage`): that one gets it, a choice cut at the
    limit `max_tokens`, and the others an estimate at the first choice's characters per token (the
    backend asks the server to count them, `OpenAITeacher._recount`).

    Raises MalformedResponse for anything else. A `content: null` choice becomes an empty text,
    which the session counts as a failed sample (never cached)."""
    if not isinstance(response, dict) or "choices" not in response:
        what = f"keys {sorted(response)}" if isinstance(response, dict) else f"a JSON {type(response).__name__}"
        raise MalformedResponse(f"not a chat completion ({_short(what, 120)})")
    choices = response["choices"]
    if not isinstance(choices, list) or not choices:
        raise MalformedResponse(f"not a chat completion (choices: {_short(repr(choices), 100)})")
    if any(not isinstance(c, dict) or not isinstance(c.get("message"), dict) for c in choices):
        raise MalformedResponse("a choice without a message")
    choices = sorted(choices, key=lambda c: c["index"] if isinstance(c.get("index"), int) else 0)
    texts = [c["message"].get("content") for c in choices]
    texts = [t if isinstance(t, str) else "" for t in texts]
    usage = response.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    prompt = _tokens(usage, "prompt_tokens")
    total = _tokens(usage, "completion_tokens")
    if first_choice_usage(response):
        per_char = total / len(texts[0]) if texts[0] else 0.25
        counts = [total] + [max_tokens if c.get("finish_reason") == "length" and max_tokens else round(len(t) * per_char)
                            for t, c in zip(texts[1:], choices[1:])]  # fmt: skip
    else:
        counts = apportion(total, [len(t) for t in texts])
    return [Completion(t, c.get("finish_reason") or "unknown", prompt, k) for t, c, k in zip(texts, choices, counts)]


def first_token_logprobs(response: Any) -> dict[str, float]:
    """{token: log-probability} of the likeliest tokens at the first position of the first choice
    (OpenAI's `logprobs.content[0].top_logprobs`, as llama.cpp and vLLM answer it). Raises
    MalformedResponse for what is no chat completion, NoLogprobs for one without them (a server that
    ignores `logprobs`, as `transformers serve` does)."""
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise MalformedResponse("not a chat completion")
    logprobs = choices[0].get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not content:
        raise NoLogprobs("the server gave no log-probabilities (it ignores `logprobs`)")
    first = content[0] if isinstance(content[0], dict) else {}
    top = first.get("top_logprobs")
    if not isinstance(top, list) or not top:
        raise NoLogprobs("the server gave no top_logprobs")
    out: dict[str, float] = {}
    for entry in top:
        token, value = (entry.get("token"), entry.get("logprob")) if isinstance(entry, dict) else (None, None)
        if isinstance(token, str) and isinstance(value, (int, float)) and math.isfinite(value):
            out[token] = max(out.get(token, -math.inf), float(value))
    return out


def first_choice_usage(response: Mapping[str, Any]) -> bool:
    """Whether an answer of several choices reports the usage of its first choice alone, as
    llama.cpp's server does: it merges the n results of an `n > 1` call into the first one's JSON,
    whose `usage` and `timings` are that choice's (OpenAI and vLLM report the sum over the
    choices). Told by llama.cpp's own `timings`, whose `predicted_n` is then the usage's count."""
    choices, usage, timings = response.get("choices"), response.get("usage"), response.get("timings")
    if not (isinstance(choices, list) and len(choices) > 1 and isinstance(usage, dict) and isinstance(timings, dict)):
        return False
    predicted = timings.get("predicted_n")
    return isinstance(predicted, int) and predicted == _tokens(usage, "completion_tokens")


MAX_TOKENS_COUNT = 2**31 - 1  # no call makes more; a build's sums stay far inside SQLite's 64-bit integers


def _tokens(usage: Mapping[str, Any], name: str) -> int:
    """A token count the server reported, or 0 (unknown, as when it reports none) when it is not a
    plausible one: not an integer, negative, or past MAX_TOKENS_COUNT (`1e30`, `10**30`)."""
    value = usage.get(name, 0)
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS_COUNT
    return value if ok else 0


def served_by(response: Mapping[str, Any]) -> str:
    """What the server says answered: its model name and `system_fingerprint`, where it gives them."""
    return " ".join(str(x) for x in (response.get("model"), response.get("system_fingerprint")) if x)


WEIGHT_KEYS = ("id", "root", "parent", "owned_by", "max_model_len")  # vLLM, llama.cpp, TGI, OpenAI
META_KEYS = ("n_params", "size", "n_ctx_train", "n_vocab")  # llama.cpp's `meta` of the loaded file


def models_entry(page: Any, model: str) -> dict[str, Any]:
    """The /v1/models entry for `model`, or the only entry when the server lists one (llama.cpp
    answers any name with its one model); {} when neither."""
    data = page.get("data") if isinstance(page, dict) else None
    entries = [m for m in data or [] if isinstance(m, dict)]
    named = [m for m in entries if m.get("id") == model]
    return named[0] if named else entries[0] if len(entries) == 1 else {}


def describe_weights(entry: Mapping[str, Any]) -> dict[str, str]:
    """What a /v1/models entry says of the weights, as short strings (nothing nested, nothing long)."""
    meta = entry.get("meta") if isinstance(entry.get("meta"), dict) else {}
    found = {**{k: entry.get(k) for k in WEIGHT_KEYS}, **{k: meta.get(k) for k in META_KEYS}}
    return {k: _short(v, 200) for k, v in found.items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)
            and str(v)}  # fmt: skip


async def llamacpp_props(client: WireClient) -> dict[str, str]:
    """llama.cpp's `GET /props` `model_path` (the .gguf it loaded); {} when it does not answer."""
    import aiohttp

    try:
        props = await client.props(timeout=5.0)
    except (asyncio.TimeoutError, aiohttp.ClientError, HTTPStatusError, MalformedResponse, ValueError):
        return {}
    path = props.get("model_path") if isinstance(props, dict) else None
    return {"model_path": _short(path, 300)} if isinstance(path, str) and path else {}
