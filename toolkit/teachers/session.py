"""A generation backend inside a build's event loop: `await session.generate(request)`, cached.

Builders are per-problem coroutines (`toolkit.builders.engine`), so many problems wait on the
teacher at once. A `Session` answers each request from the call cache where it can and awaits the
backend's `generate` for the rest (`toolkit.teachers.base`: the openai backend sends each request as
it comes and reports each sample as its call returns, so it is cached before its siblings end; a
batching backend gathers the requests waiting into one batch).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from toolkit.redact import redact
from toolkit.teachers.base import CallFailure, Completion, Request, Result, Teacher
from toolkit.teachers.cache import CallCache, Usage, call_keys, reading_key

log = logging.getLogger(__name__)


class Session:
    """One backend and the call cache, used by one build (see module doc)."""

    def __init__(self, backend: Teacher, cache: CallCache, role: str = "teacher") -> None:
        self.backend = backend
        self.cache = cache
        self.role = role
        self.usage = Usage()
        self._opening: asyncio.Future[None] | None = None
        self.in_flight = 0  # requests waiting on the backend now (progress lines show it)

    @property
    def identity(self) -> str:
        return self.backend.identity

    @property
    def public_identity(self) -> str:
        return self.backend.public_identity

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

    async def reading(self, kind: str, payload: dict, read: Callable[[], Awaitable[Any]]) -> Any:
        """A deterministic reading of the model that is no sample (an expected scorer's next-token
        log-probabilities or logits): from the call cache where it is there, else `read()` and cached
        (JSON). `payload` is what the reading is taken from (the prompt, the tokens read); a build
        re-run or resumed from its cache reads nothing again."""
        await self._open()
        key = reading_key(self.backend, kind, payload)
        if (hit := self.cache.get(key)) is not None:
            return json.loads(hit.text)
        self.in_flight += 1
        try:
            value = await read()
        finally:
            self.in_flight -= 1
        self.cache.put_many([(key, Completion(json.dumps(value), kind))])
        return value

    async def gather(self, *requests: Request) -> list[Result]:
        """Several requests at once (one batch for a batching backend)."""
        return list(await asyncio.gather(*(self.generate(r) for r in requests)))

    async def _open(self) -> None:
        """The backend's `aopen`, once, before the first cache lookup (it may set the endpoint)."""
        if self._opening is None:
            self._opening = asyncio.ensure_future(self.backend.aopen())
        await asyncio.shield(self._opening)  # a cancelled waiter does not cancel the others' open

    async def _ask(self, request: Request, on_sample: Callable[[int, Completion], None]) -> Result:
        self.in_flight += 1
        try:
            return await self.backend.generate(request, on_sample)
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
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
