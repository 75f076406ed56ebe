"""Any OpenAI-compatible server as a teacher: vLLM `serve`, TGI, llama.cpp, `transformers serve`, OpenAI.

At most `concurrency` HTTP calls are in flight (samples, on llama.cpp's server, which gives each
sample a slot: toolkit.teachers.slots); how a request's samples become calls, and how each call is
retried, is `toolkit.teachers.openai_calls`.

Calls go over one aiohttp connection pool for the whole build, not the `openai` client: against a
fast server the client's own CPU is the limit, and aiohttp spends about a fifth of what
`openai.AsyncOpenAI` does per call (bench/README.md). The wire format is plain OpenAI JSON.

The cache identity (`endpoint`) is the base URL without credentials plus, where the server lists
it, the weights it serves (vLLM's `root`): two servers, or two models behind one name, never share
cached answers, and so does an `extra_body` other than none. `MODEL@URL1,URL2,...` lists replicas
of one model (`vllm serve` on several nodes): the list is the cache identity, so which replica
answered a call changes no key; a build sends every call to the first, and a shard (`--shard`,
`--engine ray`) to the one its index picks (`pin`), spreading the shards over the replicas.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from toolkit.errors import UnreachableServerError, UserError
from toolkit.redact import redact_url, remember, remember_url
from toolkit.teachers.base import (
    CANCELLED,
    BackendOptions,
    CallFailure,
    Completion,
    OnSample,
    Request,
    Result,
    Teacher,
    at_least,
    option,
)
from toolkit.teachers.openai_answers import (
    describe_weights,
    first_token_logprobs,
    llamacpp_props,
    models_entry,
    to_completions,
)
from toolkit.teachers.openai_calls import CallFailed, Calls
from toolkit.teachers.openai_wire import (
    HTTPStatusError,
    MalformedResponse,
    NoLogprobs,
    ResponseTooLarge,
    RetryNotice,
    WireClient,
    _cause,
    apportion,
    backoff_delay,
    check_base_url,
    is_connect_failure,
    parse_retry_after,
    split_model_url,
)
from toolkit.teachers.serve import served_weights
from toolkit.teachers.slots import Slots

__all__ = ["OpenAIOptions", "OpenAITeacher", "apportion", "backoff_delay", "parse_retry_after", "redact_url",
           "split_model_url", "to_completions"]  # fmt: skip
log = logging.getLogger(__name__)

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "no-key"  # local servers ignore the key, but the client refuses to run without one
# A generation call not answered in full within 3 minutes is stuck rather than slow (raise --timeout
# for very long completions): the deadline covers connecting, waiting and reading, so a server that
# trickles bytes is cut off too. 3 retries ride out a restart or a burst of 429s. A hung server thus
# costs a call about 4 x 180 s, not the client library's 600 s x 6.
DEFAULT_TIMEOUT = 180.0
DEFAULT_RETRIES = 3

@dataclass(frozen=True, kw_only=True)
class OpenAIOptions(BackendOptions):
    concurrency: int | None = option(None, cli=True, help="openai: requests in flight.")
    api_key_env: str | None = option(
        None, cli=True, help="openai: environment variable holding the API key (default OPENAI_API_KEY).")
    timeout: float | None = option(None, cli=True, help="openai: seconds a call may take in all (connecting, "
                                   "waiting, reading the answer) before it is retried (default 180; raise it "
                                   "for very long completions).")  # fmt: skip
    max_retries: int | None = option(None, cli=True, help="openai: retries of a call after a 429, 5xx, timeout "
                                     "or broken answer, before it is recorded in failed.jsonl (default 3).")  # fmt: skip
    backoff: float | None = option(None, help="Seconds before the first retry, doubled for each next (default 1).")
    # Changes what the server writes (vLLM's `top_k`, a generation config): part of the cache key where set.
    extra_body: Mapping[str, Any] | str | None = option(
        None, identity=True, help="Fields added to every call's JSON body (a dict, or JSON text).")

    def __post_init__(self) -> None:
        at_least(self, "concurrency", 1)
        at_least(self, "max_retries", 0)
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UserError(f"--timeout must be a number of seconds > 0, not {self.timeout}")
        if self.backoff is not None and not (math.isfinite(self.backoff) and self.backoff >= 0):
            raise UserError(f"openai backoff must be a number of seconds >= 0, not {self.backoff}")
        if isinstance(self.extra_body, str):
            object.__setattr__(self, "extra_body", _json_object(self.extra_body))
        if not self.extra_body:  # {} asks for nothing more than None: the same cache key
            object.__setattr__(self, "extra_body", None)


class OpenAITeacher(Calls, Teacher):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint."""

    backend = "openai"
    Options = OpenAIOptions
    max_temperature = 2.0  # the OpenAI API's range; vLLM and TGI take the same

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str = NO_KEY,
        concurrency: int = 16,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_RETRIES,
        backoff: float = 1.0,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        self.options = OpenAIOptions(concurrency=concurrency, timeout=timeout, max_retries=max_retries,
                                     backoff=backoff, extra_body=extra_body)  # checks them  # fmt: skip
        check_base_url(base_url)
        if not base_url.startswith(("http://", "https://")):
            raise UserError(
                f"base URL {redact_url(base_url)!r} must start with http:// or https://, e.g. http://127.0.0.1:8000/v1"
            )
        remember_url(base_url, "the teacher URL")
        if api_key != NO_KEY:
            remember(api_key, "the API key")
        self.model = model
        self.revision = ""  # servers report no weights revision; `endpoint` tells servers apart
        self.base_url = base_url.rstrip("/")
        self.urls = (self.base_url,)  # `load` lists the replicas of MODEL@URL1,URL2 here; `pin` picks one
        self._url = redact_url(self.base_url)  # for messages and logs
        self.endpoint = self._url
        self._api_key = api_key
        self.concurrency = self.call_limit = concurrency
        self.calls_in_flight = 0
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.extra_body = dict(self.options.extra_body or {})
        self.served: Counter[str] = Counter()  # what the server said answered (model, fingerprint)
        # What the server says of the weights behind the name (an alias like `coder` says nothing):
        # its /v1/models entry (vLLM's `root`, llama.cpp's `owned_by` and sizes), llama.cpp's model
        # file; the file and its `sha256` when hubtool started the server itself (serve.served_weights).
        self.weights: dict[str, str] = {}
        self._probed = False
        self._estimated = False  # said once: the server would not count a choice's tokens (`_recount`)
        self._session: tuple[Any, Slots] | None = None  # the build's client, see aopen
        # llama.cpp's server gives each sample a slot: its calls count their samples (toolkit.teachers.slots)
        self.slot_per_sample = False
        self._notice = RetryNotice(log)
        self._pending: set[asyncio.Future[list[Completion]]] = set()  # the calls `cancel` ends
        self.window = max(64, 4 * concurrency)
        is_openai = urlsplit(self.base_url).hostname == "api.openai.com"
        # OpenAI's reasoning models refuse `max_tokens`; most other servers only know `max_tokens`.
        self._max_tokens_field = "max_completion_tokens" if is_openai else "max_tokens"

    @classmethod
    def load(cls, model: str, options: BackendOptions) -> OpenAITeacher:
        """`MODEL@BASE_URL`, or MODEL with `$OPENAI_BASE_URL` (default: OpenAI). Key from `$api_key_env`.

        `extra_body` (a dict or JSON text) adds server-specific fields to every call, e.g. vLLM's
        `top_k`, or `{"generation_config": "{\"do_sample\": true}"}` so that `transformers serve`
        samples at all for a model whose generation config is greedy.
        """
        assert isinstance(options, OpenAIOptions)
        name, url = split_model_url(model)
        url = url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        urls = [u.strip() for u in url.split(",")] if "," in url else [url]  # replicas: MODEL@URL1,URL2,...
        if any(not u for u in urls):
            raise UserError(f"teacher {redact_url(model)!r} lists an empty URL; write MODEL@URL1,URL2")
        url = urls[0]
        for u in urls:
            check_base_url(u)
        if not name:
            raise UserError(f"teacher {redact_url(model)!r} names no model; use openai:MODEL@BASE_URL")
        key_env = options.api_key_env or "OPENAI_API_KEY"
        api_key = os.environ.get(key_env)
        remember(api_key, f"${key_env}")
        if not api_key and urlsplit(url).hostname == "api.openai.com":
            raise UserError(
                f"{key_env} is not set; export your OpenAI key, or give a local server as MODEL@URL"
            )
        opts = {"concurrency": options.concurrency, "timeout": options.timeout, "max_retries": options.max_retries,
                "backoff": options.backoff, "extra_body": options.extra_body}  # fmt: skip
        teacher = cls(name, url, api_key=api_key or NO_KEY, **{k: v for k, v in opts.items() if v is not None})
        teacher.options = options  # as given: the defaults it left unset stay unset
        if len(urls) > 1:
            for u in urls[1:]:
                cls(name, u)  # checked as the first was (scheme, port), and its credentials kept out of logs
            teacher.urls = tuple(u.rstrip("/") for u in urls)
            # replicas of one model: the cache key is the list, whichever of them answered a call
            teacher.endpoint = ",".join(redact_url(u) for u in teacher.urls)
        return teacher

    def pin(self, index: int) -> None:
        """Send every call to server `index` mod the number listed (a shard's own, by its index);
        the cache key stays the list. A backend given one URL has nothing to choose."""
        if len(self.urls) > 1:
            self.base_url = self.urls[index % len(self.urls)]
            self._url = redact_url(self.base_url)

    def record_weights_file(self, path: str | Path) -> None:
        """The hook for a server hubtool starts itself: the weights file it was given, by name and
        content hash, becomes part of the teacher's identity in the manifest and card."""
        import hashlib

        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        self.weights.update(file=Path(path).name, sha256=h.hexdigest())

    def __repr__(self) -> str:
        return f"OpenAITeacher(model={self.model!r}, base_url={self._url!r})"

    async def aopen(self) -> None:
        """The client this event loop keeps for the whole build, and one look at the server: is it
        there (fail fast), and which weights does it serve (part of `endpoint`)."""
        if self._session is None:
            client = self._client()
            self._session = (client, Slots(self.concurrency))
            await self._probe(client)

    async def generate(self, request: Request, on_sample: OnSample | None = None) -> Result:
        """One request on the build's client; `on_sample(j, completion)` as each sample arrives."""
        self.check_params(request.params)
        call = asyncio.ensure_future(self._open_and_sample(request, on_sample))
        self._pending.add(call)
        try:
            return await call
        except CallFailed as e:
            log.warning("request failed: %s", e)
            return CallFailure(str(e))
        except asyncio.CancelledError:
            if call.cancelled() and not _cancelling():
                return CallFailure(CANCELLED)  # ended by `cancel`, not by the caller's own cancellation
            raise
        finally:
            self._pending.discard(call)
            if not call.done():
                call.cancel()

    async def _open_and_sample(self, request: Request, on_sample: OnSample | None) -> list[Completion]:
        await self.aopen()
        assert self._session is not None
        client, sem = self._session
        return await self._samples(client, sem, request, on_sample)

    def cancel(self) -> None:
        """Call from the event loop's thread: every call in flight or waiting ends at once."""
        for call in list(self._pending):
            call.cancel()

    async def aclose(self) -> None:
        if self._session is not None:
            client, self._session = self._session[0], None
            await client.close()

    def _client(self) -> WireClient:
        return WireClient(self.base_url, self._api_key, timeout=self.timeout, connections=self.concurrency)

    async def _probe(self, client: WireClient) -> None:
        """Fail fast, once, when nothing listens at the base URL (any HTTP answer will do); learn
        the served weights where the server lists them."""
        import aiohttp

        if self._probed:
            return
        try:
            page = await client.models(timeout=min(self.timeout, 10.0))
        except asyncio.TimeoutError:
            pass  # connected but slow: the real calls will tell
        except aiohttp.ClientError as e:
            if is_connect_failure(e):
                raise UnreachableServerError(
                    f"cannot reach {self._url} ({_cause(e)}); is the server running? "
                    "start it (e.g. `vllm serve MODEL`, `transformers serve MODEL`) or fix the URL after '@'"
                ) from None
        except (HTTPStatusError, MalformedResponse, ResponseTooLarge, ValueError):
            pass  # no /models, a key wanted for it, no JSON or too much of it there: it did answer
        else:
            entry = models_entry(page, self.model)
            self.weights.update(describe_weights(entry))
            root = entry.get("root") if entry.get("id") == self.model else None  # the cache key, as before
            if isinstance(root, str) and root and root != self.model:
                self.endpoint = f"{self.endpoint} root={redact_url(root)}"
            if entry.get("owned_by") == "llamacpp":  # llama.cpp's server names its model file in /props
                self.weights.update(await llamacpp_props(client))
                self.slot_per_sample, self.in_flight_unit = True, "samples"
        # a server hubtool started itself (teacher_server:) is named by its file and sha256, not its alias
        self.weights.update(served_weights(self.base_url))
        self._probed = True

    async def next_token_logprobs(self, messages: Sequence[Mapping[str, str]], top: int = 20) -> dict[str, float]:
        """The `top` likeliest tokens to come next after `messages` and their log-probabilities (greedy,
        one token). Where the last message is the assistant's, servers that continue it (llama.cpp's)
        give the tokens that would follow its text."""
        await self.aopen()
        assert self._session is not None
        client, sem = self._session
        body = {"model": self.model, "messages": list(messages), self._max_tokens_field: 1, "temperature": 0.0,
                "logprobs": True, "top_logprobs": top, **self.extra_body}  # fmt: skip
        try:
            return (await self._post(client, sem, body, 1, first_token_logprobs))[1]
        except NoLogprobs as e:
            raise UserError(f"{self._url}: {e}; a score read from log-probabilities needs a server that gives "
                            "them (llama.cpp's llama-server, vLLM)") from None  # fmt: skip

def _cancelling() -> bool:
    """Whether the task running now is being cancelled itself."""
    task = asyncio.current_task()
    return bool(task is not None and task.cancelling())


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
