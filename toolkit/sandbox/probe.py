"""Does a mechanism really work here? Each is tried once, in a throwaway forked child.

A kernel can advertise a feature and still refuse it: an outer seccomp policy (some container
runtimes) may forbid installing filters or the Landlock syscalls, a kernel may know seccomp but
not the filter's architecture. Found out at server start, such a mechanism is reported missing
(so the parent warns about it, loudly) instead of failing every program later.
"""

from __future__ import annotations

import os

from toolkit.sandbox import landlock, seccomp


def in_child(fn) -> str:
    """'' if fn() ran to completion in a forked child, else what went wrong (one line)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            fn()
            os.write(write_end, b"ok")
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:300])
        finally:
            os._exit(0)
    os.close(write_end)
    message = os.read(read_end, 400).decode("utf-8", "replace")
    os.close(read_end)
    os.waitpid(pid, 0)
    return "" if message == "ok" else message or "the probe process died"


def seccomp_filter(disabled: bool) -> tuple[seccomp.Filter | None, str]:
    """The filter to give children, or None and why not. One whose denials the server sees (a
    user-notification listener) where the kernel allows it, else one that answers EPERM itself."""
    if disabled:
        return None, "disabled"
    reason = seccomp.unsupported_reason()
    if reason:
        return None, reason
    problem = ""
    for notify in (True, False):
        prepared = seccomp.Filter(notify)
        problem = in_child(lambda: prepared.install(os.getpid()))  # noqa: B023 - called right here
        if not problem:
            return prepared, ""
    return None, f"installing the filter failed: {problem}"


def landlock_problem(disabled: bool) -> str:
    """'' when a Landlock ruleset can be built and applied here, else why not."""
    if disabled:
        return "disabled"
    if landlock.abi_version() < 1:
        return "the kernel has no Landlock (needs Linux >= 5.13 with it enabled)"

    def restrict() -> None:
        ruleset = landlock.Ruleset(read_only=["/"], read_write=[])
        ruleset.restrict_self()

    problem = in_child(restrict)
    return f"applying a ruleset failed: {problem}" if problem else ""
