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
import time

from toolkit.sandbox import child
from toolkit.sandbox.result import OUTCOMES

MAX_REPORT = 4 << 20
# Outcomes only the server can give; a child claiming one is not believed.
_SERVER_ONLY = {"timeout", "killed"}


class ParentGone(Exception):
    """The parent closed the protocol pipe while a program ran: the server should exit."""


def run(code: str, limits: dict, workdir: str, setup: child.Setup, parent_fd: int) -> dict:
    """Run one program in a fresh child; the reply the parent gets (runtime included)."""
    read_end, write_end = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            os.close(read_end)
            child.main(code, limits, workdir, write_end, setup)
        finally:
            os._exit(70)
    os.close(write_end)
    try:
        report, timed_out = _watch(pid, read_end, start + limits["wall_s"], parent_fd)
    finally:
        _kill_group(pid)  # whatever the child left behind, if it could start anything
        os.close(read_end)
    _, status, usage = os.wait4(pid, 0)
    runtime = round(time.monotonic() - start, 6)
    reply = judge(report, status, usage.ru_utime + usage.ru_stime, timed_out, limits)
    return {**reply, "runtime_s": runtime}


def _kill_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _watch(pid: int, read_end: int, deadline: float, parent_fd: int) -> tuple[bytes, bool]:
    """Collect the report until the child exits or the deadline passes; (report, timed_out)."""
    try:
        pidfd = os.pidfd_open(pid)  # Linux >= 5.3: wakes up exactly when the child exits
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    poller.register(read_end, select.POLLIN)
    poller.register(parent_fd, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    report, reading, exited = bytearray(), True, False
    try:
        while not exited:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(pid)
                return bytes(report), True
            # Without a pidfd, poll in short slices once the pipe is closed.
            slice_s = left if pidfd is not None or reading else min(left, 0.005)
            for fd, _ in poller.poll(slice_s * 1000):
                if fd == parent_fd:  # a request-response protocol: readable here means EOF
                    _kill_group(pid)
                    raise ParentGone
                if fd == pidfd:
                    exited = True
                elif fd == read_end:
                    chunk = os.read(read_end, 1 << 16)
                    report += chunk
                    if not chunk or len(report) > MAX_REPORT:
                        poller.unregister(read_end)
                        reading = False
            if pidfd is None and not reading:
                exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        if reading:  # the child is gone; what it wrote is in the pipe
            os.set_blocking(read_end, False)
            while len(report) <= MAX_REPORT:
                try:
                    chunk = os.read(read_end, 1 << 16)
                except BlockingIOError:  # a descendant still holds the pipe open
                    break
                if not chunk:
                    break
                report += chunk
        return bytes(report), False
    finally:
        if pidfd is not None:
            os.close(pidfd)


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
