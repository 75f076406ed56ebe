"""The forked child: lock itself down, run the program, report once on fd 3, exit. Never returns.

Order matters. Limits go on first (seccomp later forbids setting them); Landlock and seccomp go on
before any program byte runs; every inherited descriptor except the report pipe is closed, so the
program cannot reach the server's protocol pipes or the ruleset. The report is plain JSON that the
server checks: whatever the program does to this process can at worst forge its own result, which
it could have done by setting `ans`.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import resource
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass
from typing import NoReturn

from toolkit.sandbox import landlock, linux, seccomp
from toolkit.sandbox.answer import BadAnswer, render

REPORT_FD = 3
_MISSING = object()
# Bound now: a program may replace os.write or json.dumps before the report is written.
_write, _exit, _dumps = os.write, os._exit, json.dumps


@dataclass(frozen=True, slots=True)
class Setup:
    """What the server prepared once for all its children."""

    server_pid: int
    baseline_bytes: int  # the server's address space at start, where /proc cannot be read later
    ruleset: landlock.Ruleset | None
    seccomp: seccomp.Filter | None


class OutputLimitExceeded(BaseException):
    """Raised by a write past the cap; a BaseException so `except Exception` does not swallow it."""


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `cap` characters and raises once more are written."""

    def __init__(self, cap: int, keep: bool = True) -> None:
        self.cap, self.keep, self.used, self.parts = cap, keep, 0, []

    @property
    def overflowed(self) -> bool:
        return self.used > self.cap

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        room = self.cap - self.used
        if self.keep and room > 0:
            self.parts.append(text[:room])
        self.used += len(text)
        if self.used > self.cap:
            raise OutputLimitExceeded(f"output limit of {self.cap} characters")
        return len(text)

    def getvalue(self) -> str:
        return "".join(self.parts)


def _lower(rlimit: int, soft: int, hard: int) -> None:
    """Set a limit, never above the hard limit already in force (a user's `ulimit` stays)."""
    _, current = resource.getrlimit(rlimit)
    if current != resource.RLIM_INFINITY:
        soft, hard = min(soft, current), min(hard, current)
    resource.setrlimit(rlimit, (soft, hard))


def _lock_down(limits: dict, workdir: str, report_w: int, setup: Setup, notify: socket.socket | None) -> None:
    os.setpgid(0, 0)  # its own group, so the server can kill whatever it may have started
    if linux.IS_LINUX:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != setup.server_pid:  # the server died between fork and prctl
            _exit(0)
    # The budget goes on top of what this copy of the server already maps (which can have grown
    # since start-up, say after a large request); /proc is still readable at this point.
    baseline = linux.address_space() or setup.baseline_bytes
    # The private temp directory is a tmpfs (RAM) of up to disk_mb: it comes out of the same budget.
    cpu, memory = limits["cpu_s"], baseline + ((limits["memory_mb"] - limits["disk_mb"]) << 20)
    # soft == hard everywhere: a limit can be lowered but never raised again.
    _lower(resource.RLIMIT_AS, memory, memory)
    _lower(resource.RLIMIT_FSIZE, limits["disk_mb"] << 20, limits["disk_mb"] << 20)
    _lower(resource.RLIMIT_CORE, 0, 0)
    _lower(resource.RLIMIT_NOFILE, 256, 256)
    # SIGXCPU at the soft limit, SIGKILL a second later for a program that ignores SIGXCPU.
    _lower(resource.RLIMIT_CPU, cpu, cpu + 1)
    os.chdir(workdir)
    if setup.ruleset is not None:
        setup.ruleset.restrict_self()
    if setup.seccomp is not None:
        listener = setup.seccomp.install(os.getpid())
        if listener >= 0 and notify is not None:  # the server answers (and counts) every denial from now on
            socket.send_fds(notify, [b"L"], [listener])
            os.close(listener)
    if notify is not None:
        notify.detach()  # its fd is closed below (or replaced by dup2); the object must never close fd 3
    # Only now move descriptors around (the ruleset's fd is needed until it is applied); /dev/null
    # opens after the report pipe has fd 3, so it can never land there (Landlock allows it).
    os.dup2(report_w, REPORT_FD)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(REPORT_FD + 1, 1 << 16)
    # The environment, tempfile's directory and the signal dispositions were set once in the
    # server (see `prepare_server_state`): clearing os.environ here alone cost 0.7 ms a program.


def prepare_server_state(environ: dict[str, str], workdir: str) -> None:
    """Process-wide state every child should start with, set once in the server before forking."""
    os.environ.clear()
    os.environ.update(environ, HOME=workdir, TMPDIR=workdir)
    tempfile.tempdir = workdir
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big file is an OSError, not a death


def describe(exc: BaseException) -> str:
    """One line: the exception type, its message and the program line that raised it."""
    try:
        message = str(exc)
    except BaseException:  # a hostile __str__
        message = "<unprintable>"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<program>":
            line = tb.tb_lineno
        tb = tb.tb_next
    if line is not None:
        text += f" (line {line})"
    return " ".join(text.split())[:300]


def execute(code: str, limits: dict) -> dict:
    """Compile and run `code`, and say what happened (the report's fields but runtime)."""
    out, err = CappedText(limits["output_chars"]), CappedText(limits["output_chars"], keep=False)
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO("")
    sys.argv = ["<program>"]
    try:
        compiled = compile(code, "<program>", "exec", dont_inherit=True)
    except MemoryError:  # a huge program: the compiler ran out of the memory limit, not a syntax error
        return {"outcome": "memory", "error": f"MemoryError while compiling the program ({len(code)} characters)"
                f" under the memory limit of {limits['memory_mb']} MB"}  # fmt: skip
    except BaseException as exc:  # SyntaxError, null bytes (ValueError), too deep nesting (RecursionError) ...
        return {"outcome": "syntax", "error": describe(exc)}
    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    outcome, error = "ok", ""
    try:
        exec(compiled, namespace)
    except OutputLimitExceeded:
        outcome = "output_limit"
    except MemoryError as exc:
        namespace.clear()  # what filled memory must not also sink the report
        outcome, error = "memory", describe(exc) + f" (memory limit {limits['memory_mb']} MB)"
    except BaseException as exc:  # SystemExit too: a program that exits has not answered
        outcome, error = "exception", describe(exc)
    if out.overflowed or err.overflowed:  # even if the program caught the exception
        outcome, error = "output_limit", f"wrote more than {limits['output_chars']} characters"
    report = {"outcome": outcome, "error": error, "stdout": out.getvalue()}
    if outcome != "ok":
        return report
    value = namespace.get("ans", _MISSING)
    if value is _MISSING or value is None:
        return {**report, "outcome": "no_answer", "error": "the program set no `ans`" if value is _MISSING
                else "`ans` is None"}  # fmt: skip
    try:
        report["value"] = render(value, limits["answer_chars"])
    except BadAnswer as exc:
        report.update(outcome="bad_answer", error=str(exc))
    except MemoryError:
        report.update(outcome="memory", error="MemoryError while rendering ans")
    except BaseException as exc:
        report.update(outcome="bad_answer", error="rendering ans raised " + describe(exc))
    return report


def main(code: str, limits: dict, workdir: str, report_w: int, setup: Setup,
         notify: socket.socket | None = None) -> NoReturn:  # fmt: skip
    """The child's whole life; called right after fork(). `notify`: where the seccomp listener
    goes (see supervise.py)."""
    try:
        _lock_down(limits, workdir, report_w, setup, notify)
    except BaseException as exc:  # fail closed: the program does not run half-protected
        _send({"setup_error": f"{type(exc).__name__}: {exc}"}, report_w)
        _exit(71)
    try:
        report = execute(code, limits)
    except BaseException as exc:
        report = {"outcome": "exception", "error": "sandbox: " + describe(exc)}
    _send(report, REPORT_FD)
    _exit(0)


def _send(report: dict, fd: int) -> None:
    try:
        data = _dumps(report).encode()
        while data:
            data = data[_write(fd, data) :]
    except BaseException:
        _exit(72)
