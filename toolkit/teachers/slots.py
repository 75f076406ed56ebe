"""A limit on what is in flight where a call may take several units, taken in turn with bounded
backfilling.

llama.cpp's server decodes each sample of an `n`-sample call in a slot of its own and starts the call
only when n slots are free at once; single-sample calls sent beside it take the slots as they free
up, so a call for 3 samples can wait in the server's queue past any timeout. Counting samples, not
calls, against `--concurrency` (set to the server's slots) keeps that queue empty: a call is sent
when its slots are free. A call that does not fit yet does not hold back smaller ones behind it (a
slot left idle is lost time), but at most `capacity` of them go before it, so it never starves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    """At most `capacity` units held at once; `hold(k)` waits for k of them (at most `capacity`). The
    first waiting call goes first once its units are free; calls behind it that fit go before it
    while fewer than `capacity` have done so."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = self.free = capacity
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._overtaken = 0  # calls that went before the first waiting one

    @asynccontextmanager
    async def hold(self, k: int = 1) -> AsyncIterator[None]:
        k = max(1, min(k, self.capacity))
        await self._acquire(k)
        try:
            yield
        finally:
            self._release(k)

    async def _acquire(self, k: int) -> None:
        if self.free >= k and (not self._waiting or self._overtaken < self.capacity):
            self.free -= k
            self._overtaken += bool(self._waiting)
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((k, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(k)  # granted, then cancelled before it could run: give them back
            else:
                self._admit()  # it no longer blocks those behind it
            raise

    def _release(self, k: int) -> None:
        self.free += k
        self._admit()

    def _admit(self) -> None:
        i = 0
        while i < len(self._waiting):
            k, granted = self._waiting[i]
            if granted.done():  # cancelled while waiting
                del self._waiting[i]
                self._overtaken = 0 if i == 0 else self._overtaken
                continue
            if k <= self.free and (i == 0 or self._overtaken < self.capacity):
                del self._waiting[i]
                self.free -= k
                self._overtaken = 0 if i == 0 else self._overtaken + 1
                granted.set_result(None)
                continue
            if i > 0 and self._overtaken >= self.capacity:
                return
            i += 1
