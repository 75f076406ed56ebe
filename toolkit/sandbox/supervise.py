"""One program in the fork server: fork, watch the child against the clock, reap it, judge it.

The server trusts nothing the child sends: the report is size-capped JSON whose fields are checked
and cut to the limits, and a child that dies, hangs or says nothing gets an outcome from its wait
status and resource usage instead.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import time
from collections import Counter

from toolkit.sandbox import child, seccomp
from toolkit.sandbox.result import OUTCOMES

MAX_REPORT = 4 << 20
# Outcomes only the server can give; a child claiming one is not believed.
_SERVER_ONLY = {"timeout", "killed"}


class ParentGone(Exception):
    """The parent closed the protocol pipe while a program ran: the server should exit."""


def run(code: str, limits: dict, workdir: str, setup: child.Setup, parent_fd: int) -> dict:
    """Run one program in a fresh child; the reply the parent gets (runtime and denials included)."""
    read_end, write_end = os.pipe()
    # The child hands its seccomp listener over this pair, so this process answers its denials.
    notify = socket.socketpair() if setup.seccomp is not None and setup.seccomp.notify else None
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            if notify is not None:
                notify[0].detach()  # closed with every other descriptor, never by this object
            child.main(code, limits, workdir, write_end, setup, notify[1] if notify else None)
        finally:
            os._exit(70)
    os.close(write_end)
    watch = _Watch(pid, read_end, parent_fd, notify[0] if notify else None)
    if notify is not None:
        notify[1].close()
    try:
        report, timed_out = watch.run(start + limits["wall_s"])
    finally:
        _kill_group(pid)  # whatever the child left behind, if it could start anything
        os.close(read_end)
        watch.close()
    _, status, usage = os.wait4(pid, 0)
    runtime = round(time.monotonic() - start, 6)
    reply = judge(report, status, usage.ru_utime + usage.ru_stime, timed_out, limits)
    return {**reply, "runtime_s": runtime, "denied": dict(watch.denied)}


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Watch:
    """Collects a child's report until it exits or the deadline passes, and answers the seccomp
    denials it makes meanwhile (counting them by kind)."""

    def __init__(self, pid: int, read_end: int, parent_fd: int, handoff: socket.socket | None) -> None:
        self.pid, self.read_end, self.parent_fd, self.handoff = pid, read_end, parent_fd, handoff
        self.listener: int | None = None
        self.denied: Counter[str] = Counter()
        self.report, self.reading = bytearray(), True
        try:
            self.pidfd: int | None = os.pidfd_open(pid)  # Linux >= 5.3: wakes up exactly when the child exits
        except (AttributeError, OSError):
            self.pidfd = None
        self.poller = select.poll()
        for fd in (read_end, parent_fd, self.pidfd, handoff.fileno() if handoff else None):
            if fd is not None:
                self.poller.register(fd, select.POLLIN)

    def run(self, deadline: float) -> tuple[bytes, bool]:
        """(report, timed_out)."""
        exited = False
        while not exited:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(self.pid)
                return bytes(self.report), True
            # Without a pidfd, poll in short slices once the pipe is closed.
            slice_s = left if self.pidfd is not None or self.reading else min(left, 0.005)
            for fd, event in self.poller.poll(slice_s * 1000):
                exited |= self._event(fd, event)
            if self.pidfd is None and not self.reading:
                exited = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        if self.reading:  # the child is gone; what it wrote is in the pipe
            self._drain()
        return bytes(self.report), False

    def _event(self, fd: int, event: int) -> bool:
        """Handle one ready descriptor; True when it says the child exited."""
        if fd == self.parent_fd:  # a request-response protocol: readable here means EOF
            _kill_group(self.pid)
            raise ParentGone
        if fd == self.pidfd:
            return True
        if fd == self.read_end:
            chunk = os.read(self.read_end, 1 << 16)
            self.report += chunk
            if not chunk or len(self.report) > MAX_REPORT:
                self.poller.unregister(self.read_end)
                self.reading = False
        elif fd == self.listener:
            kind = seccomp.answer_denial(fd) if event & select.POLLIN else None
            if kind is not None:
                self.denied[kind] += 1
            elif event & (select.POLLHUP | select.POLLERR):  # no task uses the filter any more
                self.poller.unregister(fd)
        elif self.handoff is not None and fd == self.handoff.fileno():
            self._take_listener()
        return False

    def _take_listener(self) -> None:
        try:
            _, fds, _, _ = socket.recv_fds(self.handoff, 4, 1)
        except OSError:
            fds = []
        self.poller.unregister(self.handoff.fileno())
        if fds and self.listener is None:
            self.listener = fds[0]
            self.poller.register(self.listener, select.POLLIN)

    def _drain(self) -> None:
        os.set_blocking(self.read_end, False)
        while len(self.report) <= MAX_REPORT:
            try:
                chunk = os.read(self.read_end, 1 << 16)
            except BlockingIOError:  # a descendant still holds the pipe open
                break
            if not chunk:
                break
            self.report += chunk

    def close(self) -> None:
        for fd in (self.pidfd, self.listener):
            if fd is not None:
                os.close(fd)
        if self.handoff is not None:
            self.handoff.close()


def judge(report: bytes, status: int, cpu_s: float, timed_out: bool, limits: dict) -> dict:
    """The reply for a finished child, from what it reported and how it ended."""
    if timed_out:
        return {"outcome": "timeout", "error": f"wall-clock limit of {limits['wall_s']:g} s exceeded"}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits["cpu_s"]):
            return {"outcome": "timeout", "error": f"CPU limit of {limits['cpu_s']} s exceeded"}
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        hint = {"SIGSEGV": " (segmentation fault)", "SIGXFSZ": " (file size limit)"}.get(name, "")
        return {"outcome": "killed", "error": f"killed by signal {name}{hint}"}
    parsed = _parse(report, limits)
    if parsed is not None:
        return parsed
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return {
        "outcome": "killed",
        "error": f"exited with status {code} without a result (os._exit, or the report pipe was closed)",
    }


def _text(value: object, cap: int) -> str:
    text = value if isinstance(value, str) else ""
    # Lone surrogates (print("\ud800")) would break a parquet or JSON writer downstream.
    return text[:cap].encode("utf-8", "backslashreplace").decode("utf-8")


def _parse(report: bytes, limits: dict) -> dict | None:
    try:
        data = json.loads(report)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    if "setup_error" in data:
        return {"outcome": "killed", "error": "sandbox setup failed: " + _text(data["setup_error"], 300)}
    outcome = data.get("outcome")
    if outcome not in OUTCOMES or outcome in _SERVER_ONLY:
        return None
    value = data.get("value") if outcome == "ok" else None
    if outcome == "ok" and not isinstance(value, str):
        return None
    return {
        "outcome": outcome,
        "value": None if value is None else _text(value, limits["answer_chars"]),
        "error": " ".join(_text(data.get("error"), 300).split()),
        "stdout": _text(data.get("stdout"), limits["output_chars"]),
    }
