"""Progress of a build: a bar on a terminal, a plain line every PLAIN_EVERY seconds elsewhere (CI
logs, `nohup`, a pipe), so a long build is never silent."""

from __future__ import annotations

import sys
import time

PLAIN_EVERY = 30.0


class Progress:
    def __init__(self, total: int, desc: str, *, enabled: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.start = self._last_line = time.monotonic()
        self.total, self.desc, self.done, self.tokens = total, desc, 0, 0
        self.tty = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=total, desc=desc, unit="problem", disable=not self.tty, dynamic_ncols=True)

    def update(self, tokens: int) -> None:
        """One more problem done; `tokens` is the completion tokens generated so far."""
        self.done += 1
        self.tokens = tokens
        self.bar.set_postfix_str(self._rates(), refresh=False)
        self.bar.update(1)
        now = time.monotonic()
        if not self.tty and now - self._last_line >= PLAIN_EVERY:
            self._last_line = now
            print(f"{self.desc}: {self.done}/{self.total} problems, {self._rates()}", file=sys.stderr, flush=True)

    def _rates(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        return f"{self.done / elapsed:.2f} problems/s, {self.tokens / elapsed:.0f} tok/s"

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self) -> None:
        self.bar.close()
