"""A progress bar with problems/s and tokens/s, fed by the teacher's per-request callback."""

from __future__ import annotations

import sys
import time

from toolkit.teachers.base import CallFailure, Result


class Progress:
    def __init__(self, total: int, desc: str, *, enabled: bool | None = None) -> None:
        from tqdm.auto import tqdm

        self.start = time.monotonic()
        self.tokens = 0
        self.done = 0
        enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = tqdm(total=total, desc=desc, unit="problem", disable=not enabled, dynamic_ncols=True)

    def update(self, result: Result) -> None:
        self.done += 1
        if not isinstance(result, CallFailure):
            self.tokens += sum(c.completion_tokens for c in result)
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.done / elapsed:.2f} problems/s, {self.tokens / elapsed:.0f} tok/s", refresh=False)
        self.bar.update(1)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self) -> None:
        self.bar.close()
