"""The contract every generation backend meets, and the types it speaks.

A backend (a `Teacher` subclass, registered in `toolkit.teachers.BACKENDS`) declares:
- `backend`: its name, the BACKEND of `--teacher BACKEND:MODEL`;
- `Options`: a frozen dataclass of its own options (a `BackendOptions`); the fields made with
  `option(..., cli=True)` become `hubtool build-dataset` flags and config keys, the others are for Python;
- `load(model, options)`: the backend for the MODEL part of a spec (`from_spec` parses the options);
- `async generate(request, on_sample)`: one request's `n` samples, or a `CallFailure`; never raises
  for a failed call. A build's session awaits it for every request it cannot answer from the cache;
- `cancel()`: the calls pending now end soon, each as `CallFailure("cancelled")`;
- `cache_identity`: what the call cache keys on besides the prompt and the sampling values.

Local backends that generate in batches (transformers, vllm, fake) subclass `BatchingTeacher`
instead and implement the synchronous `generate_batch(requests, on_result)`: its `generate` queues
each request, and every request waiting is handed to one `generate_batch` call in a worker thread.
Shared sampling values (temperature, top_p, max_new_tokens, seed) are `SamplingParams`, checked
once when one is made; a backend only narrows them (`max_temperature`).
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from toolkit.errors import UserError
from toolkit.public_paths import public_model

GATHER_ROUNDS = 8  # event-loop turns a batch waits for more requests, while they keep coming
CANCELLED = "cancelled"


def option_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def at_least(config: Any, name: str, low: int) -> None:
    value = getattr(config, name)
    if value is not None and value < low:
        raise UserError(f"{option_name(name)} must be at least {low}, not {value}")


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """Sampling settings; part of every cache key. Checked here, once, for every backend."""

    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise UserError(f"--temperature must be a finite number >= 0 (0 is greedy), not {self.temperature}")
        if not math.isfinite(self.top_p) or not 0 < self.top_p <= 1:
            raise UserError(f"--top-p must be in (0, 1], not {self.top_p}")
        at_least(self, "max_new_tokens", 1)
        at_least(self, "seed", 0)

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
OnSample = Callable[[int, Completion], None]


# -- options ---------------------------------------------------------------------------------------
def option(default: Any = None, *, help: str = "", cli: bool = False, identity: bool = False) -> Any:
    """A backend option. `cli=True`: a `hubtool build-dataset` flag and config key (then `help` is
    its --help text; the flag is shared by every backend that declares the same name).
    `identity=True`: it changes what the model writes, so a value other than the default is part of
    the cache key (`Teacher.cache_identity`)."""
    return field(default=default, metadata={"help": help, "cli": cli, "identity": identity})


@dataclass(frozen=True, kw_only=True)
class BackendOptions:
    """A backend's options. None means "the backend's default"; checks go in `__post_init__`."""

    @classmethod
    def names(cls, *, cli_only: bool = False) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("cli") or not cli_only)

    @classmethod
    def of(cls, backend: str, values: Mapping[str, Any]) -> BackendOptions:
        """The options from keywords; a name this backend does not take is a UserError."""
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            known = ", ".join(cls.names()) or "none"
            raise UserError(f"the {backend} backend has no option {unknown[0]!r}; its options: {known}")
        return cls(**values)

    def given(self) -> dict[str, Any]:
        """The options set to something other than their default."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != f.default}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class NoOptions(BackendOptions):
    """For a backend that takes none."""


# -- the contract -----------------------------------------------------------------------------------
class Teacher(abc.ABC):
    """A generation backend (see the module doc). Instances set `model` and `revision` (the cache
    identity, with `backend`), and `endpoint` where the same model name can be served from different
    places (never a credential). `window` is how many problems a build keeps in flight for it."""

    backend: ClassVar[str]
    Options: ClassVar[type[BackendOptions]] = NoOptions
    model: str
    revision: str = ""
    endpoint: str = ""  # where it is served (the openai base URL, credentials removed); part of the cache key
    options: BackendOptions = NoOptions()
    window: int = 64
    max_temperature: ClassVar[float | None] = None  # the most this backend takes, where it takes less than any
    # Backends that send calls over the wire report how many are out now and their limit, so the
    # progress line shows whether the client or the server is the bottleneck (None: not counted).
    calls_in_flight: int | None = None
    call_limit: int | None = None
    in_flight_unit: str = "calls"  # what they count ("samples" where each sample takes a server slot)

    @classmethod
    def from_spec(cls, model: str, options: BackendOptions | None = None, **values: Any) -> Teacher:
        """The backend a spec names (`openai:MODEL@URL`, or MODEL@URL without the `BACKEND:` part), with
        an `Options` or its fields as keywords."""
        model = model.removeprefix(f"{cls.backend}:")
        if options is None:
            options = cls.Options.of(cls.backend, values)
        elif values:
            raise TypeError("give the options as one Options or as keywords, not both")
        return cls.load(model, options)

    @classmethod
    @abc.abstractmethod
    def load(cls, model: str, options: BackendOptions) -> Teacher:
        """Load or connect what `model` names; a bad name or option is a one-line UserError."""

    @abc.abstractmethod
    async def generate(self, request: Request, on_sample: OnSample | None = None) -> Result:
        """`request.n` completions, or a CallFailure; never raises for a failed call.
        `on_sample(j, completion)` may report sample j as soon as it is in, before the others."""

    def cancel(self) -> None:  # noqa: B027 - the default: nothing pending outlives its task
        """End the calls pending now soon, each as `CallFailure("cancelled")`; later calls run as usual."""

    @property
    def cache_identity(self) -> dict[str, Any]:
        """What the cache keys on besides the prompt and sampling values: backend, model, revision,
        the endpoint where there is one, and the options that change the output where set."""
        identity: dict[str, Any] = {"backend": self.backend, "model": self.model, "revision": self.revision}
        if self.endpoint:  # only where set, so the keys of every other backend stay as they were
            identity["endpoint"] = self.endpoint
        shaping = {f.name for f in dataclasses.fields(self.options) if f.metadata.get("identity")}
        given = {k: v for k, v in self.options.given().items() if k in shaping}
        if given:
            identity["options"] = given
        return identity

    @property
    def identity(self) -> str:
        """`backend:model@revision`, as written into manifests and cards."""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.backend}:{self.model}{rev}"

    @property
    def public_identity(self) -> str:
        """`identity` as a published row may carry it: a model folder of this machine as "a local
        model" (its revision hash still tells one local model from another), never its path."""
        rev = f"@{self.revision}" if self.revision else ""
        return f"{self.backend}:{public_model(self.model)}{rev}"

    def check_params(self, params: SamplingParams) -> None:
        """Sampling values this backend would refuse, before any call (the shared bounds are
        checked when SamplingParams is made)."""
        if self.max_temperature is not None and params.temperature > self.max_temperature:
            raise UserError(f"--temperature {params.temperature} is outside what the {self.backend} backend takes "
                            f"(0 to {self.max_temperature:g})")  # fmt: skip

    async def aopen(self) -> None:  # noqa: B027 - optional hook
        """Set up inside the build's event loop before the first cache lookup (a backend may learn
        its `endpoint` there)."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what `generate` opened inside the build's event loop (clients, connections)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (servers, GPU memory)."""

    def generate_many(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """Every request at once, from synchronous code (scripts, benchmarks): one result per request,
        in order; `on_result(i, result)` as each ends. Runs its own event loop, so any thread may call it."""
        if not requests:
            return []

        async def run() -> list[Result]:
            await self.aopen()
            results: list[Result] = [CallFailure("not run")] * len(requests)

            async def one(i: int) -> None:
                self.check_params(requests[i].params)
                results[i] = await self.generate(requests[i])
                if on_result:
                    on_result(i, results[i])

            try:
                await gather_or_cancel(one(i) for i in range(len(requests)))
            finally:
                await self.aclose()
            return results

        return run_sync(run())


class BatchingTeacher(Teacher):
    """The adapter for a local backend that generates in batches: it implements `generate_batch`,
    and every request waiting in `generate` goes to one `generate_batch` call in a worker thread.
    Results come back one by one (`on_result`), so each is cached as soon as it is done, and the
    requests that arrive meanwhile form the next batch."""

    def __init__(self) -> None:
        self._queue: list[tuple[Request, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._epoch = 0  # counts `cancel` calls: what a batch started before one returns is discarded

    @abc.abstractmethod
    def generate_batch(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        """One result per request, in order; `on_result(i, result)` as each request finishes."""

    def cancel_batch(self) -> None:  # noqa: B027 - optional hook
        """Stop a `generate_batch` running in another thread soon; what it returns after is discarded."""

    def generate_many(self, requests: Sequence[Request], on_result: OnResult | None = None) -> list[Result]:
        for r in requests:
            self.check_params(r.params)
        return self.generate_batch(requests, on_result)

    async def generate(self, request: Request, on_sample: OnSample | None = None) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.append((request, future))
        if self._drainer is None or self._drainer.done() or self._drainer.get_loop() is not loop:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    def cancel(self) -> None:
        """Call from the event loop's thread: the queued requests fail now, the running batch soon."""
        self._epoch += 1
        queued, self._queue = self._queue, []
        for _, future in queued:
            _settle(future, CallFailure(CANCELLED))
        self.cancel_batch()

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            for _ in range(GATHER_ROUNDS):  # let the problems that are ready queue their requests too
                waiting = len(self._queue)
                await asyncio.sleep(0)
                if len(self._queue) == waiting:
                    break
            batch, self._queue, epoch = self._queue, [], self._epoch
            if not batch:
                continue

            def deliver(i: int, result: Result, batch=batch, epoch=epoch) -> None:
                if self._epoch != epoch:
                    result = CallFailure(CANCELLED)
                with contextlib.suppress(RuntimeError):  # a batch cut short by Ctrl-C may end after the loop
                    loop.call_soon_threadsafe(_settle, batch[i][1], result)

            try:
                results = await asyncio.to_thread(self.generate_batch, [r for r, _ in batch], deliver)
            except BaseException as e:  # a setup error (bad model, lost server): every waiter hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if not isinstance(e, Exception):
                    # Cancelled or interrupted (Ctrl-C): stop the batch in its worker thread too, or
                    # the process waits for it to finish before it can exit.
                    self._queue = []
                    self.cancel_batch()
                    raise
                continue
            await asyncio.sleep(0)  # let the delivered results settle first
            for (_, future), result in zip(batch, results):
                _settle(future, CallFailure(CANCELLED) if self._epoch != epoch else result)


def _settle(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


# -- running coroutines ---------------------------------------------------------------------------
async def gather_or_cancel(coros: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """asyncio.gather, but the first exception cancels the other tasks instead of orphaning them."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def run_sync(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to the end from sync code, also when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@lru_cache(maxsize=256)
def _as_dict(params: SamplingParams) -> dict:
    """SamplingParams as a dict, once per distinct value (every cache key of a build needs it)."""
    return asdict(params)
