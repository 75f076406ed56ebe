"""Progress of a build: a bar on a terminal, a plain line every PLAIN_EVERY seconds elsewhere (CI
logs, `nohup`, a pipe), so a long build is never silent.

The plain line comes from a timer thread, not from finished problems: a build whose server has
stalled still says so every PLAIN_EVERY seconds, with the requests it is waiting on and, for a
server backend, the calls out on the wire against the limit. Once a problem has finished it also
says about how long the rest will take, at the pace so far (a CPU experiment's teacher step runs
for hours; tqdm's bar says as much on a terminal).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

PLAIN_EVERY = 30.0  # seconds


def time_left(done: int, total: int, elapsed: float) -> str | None:
    """'about 4 min left': the problems not done at the pace of those done; None before the first."""
    if done <= 0 or done >= total:
        return None
    seconds = (total - done) * elapsed / done
    if seconds < 90:
        return f"about {seconds:.0f} s left"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


class Progress:
    def __init__(self, total: int, desc: str, *, enabled: bool | None = None,
                 in_flight: Callable[[], str] | None = None, every: float | None = None,
                 tokens: Callable[[], int] | None = None) -> None:  # fmt: skip
        from tqdm.auto import tqdm

        self.start = time.monotonic()
        self.total, self.desc, self.done, self.tokens = total, desc, 0, 0
        self.in_flight = in_flight
        # the tokens generated so far, read when a line is written: a method whose problems each wait
        # on many samples (preference: 6 paths and a direct answer) finishes its first problem minutes
        # in, and tok/s counted at finished problems would read 0 while the model writes
        self.tokens_now = tokens
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=total, desc=desc, unit="problem", disable=not self.tty, dynamic_ncols=True)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if not self.tty:
            every = PLAIN_EVERY if every is None else every
            self._ticker = threading.Thread(target=self._tick, args=(every,), name="hubtool-progress", daemon=True)
            self._ticker.start()

    def update(self, tokens: int) -> None:
        """One more problem done; `tokens` is the completion tokens generated so far."""
        self.done += 1
        self.tokens = tokens
        self.bar.set_postfix_str(self._rates(), refresh=False)
        self.bar.update(1)

    def line(self) -> str:
        flight = f", {self.in_flight()}" if self.in_flight else ""
        left = time_left(self.done, self.total, self.elapsed)
        return (f"{self.desc}: {self.done}/{self.total} problems, {self._rates()}{flight}, {self.elapsed:.0f} s"
                f"{f', {left}' if left else ''}")  # fmt: skip

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            print(self.line(), file=sys.stderr, flush=True)

    def _rates(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        tokens = self.tokens_now() if self.tokens_now is not None else self.tokens
        return f"{self.done / elapsed:.2f} problems/s, {tokens / elapsed:.0f} tok/s"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=1)
        self.bar.close()
