"""A first-come, first-served limit on what is in flight, where a call may take several units.

llama.cpp's server decodes each sample of an `n`-sample call in a slot of its own and starts the call
only when n slots are free at once; single-sample calls sent beside it take the slots as they free
up, so a call for 3 samples can wait in the server's queue past any timeout. Counting samples, not
calls, against `--concurrency` (set to the server's slots) keeps that queue empty: a call is sent
when its slots are free, in the order the calls came.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    """At most `capacity` units held at once; `hold(k)` waits for k of them (at most `capacity`),
    and no call overtakes one that waits before it."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self.capacity = self.free = capacity
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    @asynccontextmanager
    async def hold(self, k: int = 1) -> AsyncIterator[None]:
        k = max(1, min(k, self.capacity))
        await self._acquire(k)
        try:
            yield
        finally:
            self._release(k)

    async def _acquire(self, k: int) -> None:
        if not self._waiting and self.free >= k:
            self.free -= k
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((k, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self._release(k)  # granted, then cancelled before it could run: give them back
            else:
                self._wake()  # it no longer blocks those behind it
            raise

    def _release(self, k: int) -> None:
        self.free += k
        self._wake()

    def _wake(self) -> None:
        while self._waiting:
            k, granted = self._waiting[0]
            if granted.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if k > self.free:
                return
            self._waiting.popleft()
            self.free -= k
            granted.set_result(None)
