"""A generation backend inside a build's event loop: `await session.generate(request)`, cached.

Builders are per-problem coroutines (`toolkit.builders.engine`), so many problems wait on the
teacher at once. A `Session` answers each request from the call cache where it can and asks the
backend for the rest:
- a native async backend (openai) gets each request as it comes, on one client for the whole build,
  and reports each sample as its call returns (`on_sample`), so it is cached before its siblings end;
- a batching backend (transformers, vllm, fake) gets every request that is waiting as one
  `generate` call in a worker thread. Results come back one by one (`on_result`), so each is
  cached as soon as it is done, and the requests that arrive meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import replace
from typing import Any

from toolkit.redact import redact
from toolkit.teachers.base import CallFailure, Completion, Request, Result, Teacher
from toolkit.teachers.cache import CallCache, Usage, call_keys

log = logging.getLogger(__name__)
GATHER_ROUNDS = 8  # event-loop turns a batch waits for more requests, while they keep coming


class Session:
    """One backend and the call cache, used by one build (see module doc)."""

    def __init__(self, backend: Teacher, cache: CallCache, role: str = "teacher") -> None:
        self.backend = backend
        self.cache = cache
        self.role = role
        self.usage = Usage()
        self._queue: list[tuple[Request, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self._opening: asyncio.Future[None] | None = None
        self.in_flight = 0  # requests waiting on the backend now (progress lines show it)

    @property
    def identity(self) -> str:
        return self.backend.identity

    async def generate(self, request: Request) -> Result:
        """`request.n` completions (cached ones included, in sample order), or a CallFailure.

        Each sample is cached the moment it arrives, so a build killed while a problem's other
        samples are still out keeps it; an empty completion is a failure and never cached."""
        await self._open()
        self.backend.check_params(request.params)
        keys = call_keys(self.backend, request, range(request.n))
        found: list[Completion | None] = self.cache.get_many(keys)
        missing = [j for j, c in enumerate(found) if c is None]
        self.usage.samples_cached += request.n - len(missing)
        runs = _runs(missing)
        if len(runs) == 1:  # the usual case (nothing cached, or a top-up): no extra task
            errors = [await self._fill(request, runs[0], keys, found)]
        else:
            errors = list(await asyncio.gather(*(self._fill(request, run, keys, found) for run in runs)))
        errors = [e for e in errors if e]
        if errors:
            return CallFailure("; ".join(errors))
        completions = [c for c in found if c is not None]
        self.usage.total_prompt_tokens += completions[0].prompt_tokens if completions else 0
        self.usage.total_completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    async def _fill(self, request: Request, run: list[int], keys: list[str], found: list[Completion | None]) -> str:
        """Draw samples `run` (consecutive indices) into `found`, caching each as it comes; the
        error, or "" when all came. Seeded at the run's first sample (`first_sample`), so sample j
        is the same draw whether its neighbours were cached or not."""
        empty: list[int] = []

        def accept(i: int, completion: Completion) -> tuple[str, Completion] | None:
            """Sample run[i] into `found`; what to cache, or None (a repeat, or empty)."""
            j = run[i] if i < len(run) else None
            if j is None or found[j] is not None or j in empty:
                return None
            if not completion.text.strip():
                empty.append(j)  # a null or empty answer: nothing to learn from, and a re-run asks again
                return None
            found[j] = completion = _redacted(completion)
            self.usage.samples_generated += 1
            self.usage.completion_tokens += completion.completion_tokens
            return keys[j], completion

        def on_sample(i: int, completion: Completion) -> None:  # a sample ahead of its siblings: cache it now
            if item := accept(i, completion):
                self.cache.put_many([item])

        result = await self._ask(replace(request, n=len(run), first_sample=run[0]), on_sample)
        self.usage.calls += 1
        if not isinstance(result, CallFailure):
            self.cache.put_many([item for i, c in enumerate(result) if (item := accept(i, c))])
            drawn = [c for c in result if c.text.strip()]
            self.usage.prompt_tokens += drawn[0].prompt_tokens if drawn else 0
        error = result.error if isinstance(result, CallFailure) else ""
        if not error and len(result) < len(run):
            error = f"the backend returned {len(result)} of {len(run)} samples"
        if empty:
            error = "; ".join(filter(None, [f"sample {', '.join(map(str, sorted(empty)))}: empty completion "
                                            "(no text; not cached, a re-run asks again)", error]))  # fmt: skip
        if error:
            self.usage.failed_calls += 1
        return error

    async def gather(self, *requests: Request) -> list[Result]:
        """Several requests at once (one batch for a batching backend)."""
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def _open(self) -> None:
        """The backend's `aopen`, once, before the first cache lookup (it may set the endpoint)."""
        if not self.backend.native_async:
            return
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.backend.aopen())
        await asyncio.shield(self._opening)  # a cancelled waiter does not cancel the others' open

    async def _ask(self, request: Request, on_sample: Callable[[int, Completion], None]) -> Result:
        self.in_flight += 1
        try:
            if self.backend.native_async:
                return await self.backend.agenerate(request, on_sample)
            return await self._queued(request)
        finally:
            self.in_flight -= 1

    async def _queued(self, request: Request) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            for _ in range(GATHER_ROUNDS):  # let the problems that are ready queue their requests too
                waiting = len(self._queue)
                await asyncio.sleep(0)
                if len(self._queue) == waiting:
                    break
            batch, self._queue = self._queue, []

            def deliver(i: int, result: Result, batch=batch) -> None:
                with contextlib.suppress(RuntimeError):  # a batch cut short by Ctrl-C may end after the loop
                    loop.call_soon_threadsafe(_settle, batch[i][1], result)

            try:
                results = await asyncio.to_thread(self.backend.generate, [r for r, _ in batch], deliver)
            except BaseException as e:  # a setup error (bad model, lost server): every waiter hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if not isinstance(e, Exception):
                    # Cancelled or interrupted (Ctrl-C): stop the batch in its worker thread too, or
                    # the process waits for it to finish before it can exit.
                    self.backend.cancel()
                    raise
                continue
            await asyncio.sleep(0)  # let the delivered results settle first
            for (_, future), result in zip(batch, results):
                _settle(future, result)

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
        if self.backend.native_async:
            await self.backend.aclose()


def _runs(indices: list[int]) -> list[list[int]]:
    """[0, 1, 3] -> [[0, 1], [3]]: consecutive indices grouped."""
    runs: list[list[int]] = []
    for j in indices:
        if runs and runs[-1][-1] == j - 1:
            runs[-1].append(j)
        else:
            runs.append([j])
    return runs


def _redacted(completion: Completion) -> Completion:
    """A completion that repeats a credential (a server echoing the key) is cached without it."""
    text = redact(completion.text, shapes=False)
    return completion if text == completion.text else replace(completion, text=text)


def _settle(future: asyncio.Future[Result], result: Result) -> None:
    if not future.done():
        future.set_result(result)


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
