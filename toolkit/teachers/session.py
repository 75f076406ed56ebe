"""A generation backend inside a build's event loop: `await session.generate(request)`, cached.

Builders are per-problem coroutines (`toolkit.builders.engine`), so many problems wait on the
teacher at once. A `Session` answers each request from the call cache where it can and asks the
backend for the rest:
- a native async backend (openai) gets each request as it comes, on one client for the whole build;
- a batching backend (transformers, vllm, fake) gets every request that is waiting as one
  `generate` call in a worker thread. Results come back one by one (`on_result`), so each is
  cached as soon as it is done, and the requests that arrive meanwhile form the next batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from dataclasses import replace
from typing import Any

from toolkit.teachers.base import CallFailure, Completion, Request, Result, Teacher
from toolkit.teachers.cache import CallCache, Usage, call_key

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

    @property
    def identity(self) -> str:
        return self.backend.identity

    async def generate(self, request: Request) -> Result:
        """`request.n` completions (cached ones included, in sample order), or a CallFailure."""
        keys = [call_key(self.backend, request, j) for j in range(request.n)]
        found: list[Completion | None] = [self.cache.get(k) for k in keys]
        missing = [j for j, c in enumerate(found) if c is None]
        self.usage.samples_cached += request.n - len(missing)
        if missing:
            # The backend draws only what is missing, seeded past the cached samples (first_sample).
            pending = replace(request, n=len(missing), first_sample=missing[0])
            result = await self._ask(pending)
            self.usage.calls += 1
            if not isinstance(result, CallFailure) and len(result) < len(missing):
                result = CallFailure(f"the backend returned {len(result)} of {len(missing)} samples")
            if isinstance(result, CallFailure):
                self.usage.failed_calls += 1
                return result
            result = result[: len(missing)]
            self.cache.put_many([(keys[j], c) for j, c in zip(missing, result)])
            self.usage.samples_generated += len(result)
            self.usage.prompt_tokens += result[0].prompt_tokens
            self.usage.completion_tokens += sum(c.completion_tokens for c in result)
            for j, c in zip(missing, result):
                found[j] = c
        completions = [c for c in found if c is not None]
        self.usage.total_prompt_tokens += completions[0].prompt_tokens if completions else 0
        self.usage.total_completion_tokens += sum(c.completion_tokens for c in completions)
        return completions

    async def gather(self, *requests: Request) -> list[Result]:
        """Several requests at once (one batch for a batching backend)."""
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def _ask(self, request: Request) -> Result:
        if self.backend.native_async:
            return await self.backend.agenerate(request)
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
                loop.call_soon_threadsafe(_settle, batch[i][1], result)

            try:
                results = await asyncio.to_thread(self.backend.generate, [r for r, _ in batch], deliver)
            except BaseException as e:  # a setup error (bad model, lost server): every waiter hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                if not isinstance(e, Exception):
                    raise  # cancelled or interrupted: stop draining
                continue
            await asyncio.sleep(0)  # let the delivered results settle first
            for (_, future), result in zip(batch, results):
                _settle(future, result)

    async def aclose(self) -> None:
        if self._drainer is not None and not self._drainer.done():
            self._drainer.cancel()
        if self.backend.native_async:
            await self.backend.aclose()


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
