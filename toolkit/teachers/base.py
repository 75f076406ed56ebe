"""The one interface every generation backend implements.

A backend turns chat requests into completions, `n` samples per request. It reports each request's
result through `on_result` as soon as it is done, so the cache (`toolkit.teachers.cache`) can store
every finished call before the next one ends: a build killed at any moment repeats no completed call.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings; part of every cache key."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0

    def to_dict(self) -> dict:
        return dict(_as_dict(self))  # a copy: callers may change it


@dataclass(frozen=True, slots=True)
class Request:
    """One chat prompt and how many samples to draw from it."""

    messages: tuple[dict[str, str], ...]
    n: int = 1
    params: SamplingParams = field(default_factory=SamplingParams)
    # Index of the first sample asked for: the cache sets it when it tops up a request whose first
    # samples it already holds, and backends seed from `params.seed + first_sample`, so the new
    # samples are not re-draws of the cached ones.
    first_sample: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """One sampled answer with its usage."""

    text: str
    finish_reason: str  # "stop", "length", ...
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class CallFailure:
    """A request that failed after every retry; recorded, never silently dropped."""

    error: str


Result = list[Completion] | CallFailure
OnResult = Callable[[int, Result], None]


class Teacher(abc.ABC):
    """A generation backend. Subclasses set `backend`, `model` and `revision` (cache identity), and
    `endpoint` where the same model name can be served from different places (never a credential).

    A build drives backends from one event loop (`toolkit.teachers.session`): a backend whose
    `agenerate` is native async (the openai one) is awaited request by request; any other is fed
    the requests that are waiting, as one `generate` call in a worker thread, so it can batch them.
    `window` is how many problems a build keeps in flight for it.
    """

    backend: str
    model: str
    revision: str = ""
    endpoint: str = ""  # where it is served (the openai base URL, credentials removed); part of the cache key
    native_async: bool = False
    window: int = 64
    # Backends that send calls over the wire report how many are out now and their limit, so the
    # progress line shows whether the client or the server is the bottleneck (None: not counted).
    calls_in_flight: int | None = None
    call_limit: int | None = None

    @abc.abstractmethod
    def generate(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """Return one result per request, in order: `n` completions, or a CallFailure.

        `on_result(i, result)` is called as each request finishes (in any order).
        """

    @property
    def identity(self) -> str:
        """`backend:model@revision`, as written into manifests and cards."""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.backend}:{self.model}{rev}"

    def check_params(self, params: SamplingParams) -> None:  # noqa: B027 - optional hook
        """Raise a UserError for sampling values this backend would refuse, before any call."""

    async def aopen(self) -> None:  # noqa: B027 - optional hook
        """Set up inside the build's event loop before the first cache lookup (a backend may learn
        its `endpoint` there); only where `native_async`."""

    async def agenerate(self, request: Request, on_sample: Callable[[int, Completion], None] | None = None) -> Result:
        """One request, awaited (only where `native_async`); never raises for a failed call.
        `on_sample(j, completion)` may report sample j as soon as it is in, before the others."""
        raise NotImplementedError

    def cancel(self) -> None:  # noqa: B027 - optional hook
        """Stop a `generate` running in another thread soon (the build was interrupted); what it
        returns after this is discarded."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what `agenerate` opened inside the build's event loop (clients, connections)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (servers, GPU memory)."""


@lru_cache(maxsize=256)
def _as_dict(params: SamplingParams) -> dict:
    """SamplingParams as a dict, once per distinct value (every cache key of a build needs it)."""
    return asdict(params)
