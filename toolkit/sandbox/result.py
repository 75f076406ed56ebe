"""What running one program gave: an outcome from a closed set, the answer, and why it failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

Outcome = Literal[
    "ok",  # ran to the end and left a usable `ans`
    "syntax",  # did not compile
    "exception",  # raised (SystemExit included): `error` has the type, message and line
    "timeout",  # wall-clock or CPU limit
    "killed",  # died without reporting: a signal, a segfault, os._exit, a crashed sandbox server
    "memory",  # MemoryError under the memory limit
    "no_answer",  # ran fine but left no `ans` (or `ans = None`)
    "output_limit",  # wrote more than `output_chars`
    "bad_answer",  # `ans` cannot be rendered: an int too long to print, a failing __str__, ...
]
OUTCOMES: tuple[str, ...] = get_args(Outcome)

# How much of the isolation this machine gave (see toolkit/sandbox/README.md):
# full = namespaces + seccomp + Landlock; partial = seccomp with one of the others missing;
# minimal = no seccomp (rlimits, a clean environment and process-group kills only).
Isolation = Literal["full", "partial", "minimal"]


@dataclass(frozen=True, slots=True)
class ExecResult:
    """One program's run. `value` is set only when `outcome == "ok"`: the canonical string of
    `ans` (ints in full, floats and Decimals without trailing zeros as in
    `toolkit.answers.normalize_answer`, Fractions as "p/q", bools "True"/"False", str as is).
    `error` is one line; `stdout` is capped at the limit's `output_chars`."""

    outcome: Outcome
    value: str | None = None
    error: str = ""
    stdout: str = ""
    runtime_s: float = 0.0
    isolation: Isolation = "full"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def as_dict(self) -> dict:
        """A JSON-ready row."""
        return asdict(self)
