"""What running one program gave: an outcome from a closed set, the answer, and why it failed."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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
# Kinds of denied calls (toolkit.sandbox.seccomp) that are harmless on a program's own files; every
# other kind (process, network, signal, ipc, memory, limits, system) is an attempt to get out.
NOT_ESCAPES = ("metadata",)


@dataclass(frozen=True, slots=True)
class ExecResult:
    """One program's run. `value` is set only when `outcome == "ok"`: the canonical string of
    `ans` (ints in full, floats and Decimals without trailing zeros as in
    `toolkit.answers.normalize_answer`, Fractions as "p/q", bools "True"/"False", str as is).
    `error` is one line; `stdout` is capped at the limit's `output_chars`. `denied` counts the
    calls the sandbox refused, by kind (seen by the server, so a program cannot hide them; empty
    where the kernel cannot report denials, see `Sandbox.hello["mechanisms"]["denials_observed"]`)."""

    outcome: Outcome
    value: str | None = None
    error: str = ""
    stdout: str = ""
    runtime_s: float = 0.0
    isolation: Isolation = "full"
    denied: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def escape_attempts(self) -> dict[str, int]:
        """The refused calls that were attempts to get out of the sandbox, by kind."""
        return {kind: n for kind, n in self.denied.items() if kind not in NOT_ESCAPES and n}

    def as_dict(self) -> dict:
        """A JSON-ready row."""
        return asdict(self)
