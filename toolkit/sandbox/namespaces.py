"""The fork server's own isolation, set up once at its start: who it runs as, and which namespaces.

Done once per server rather than per program because creating a network namespace costs
milliseconds and tearing one down is asynchronous work for the kernel; every child the server
forks inherits them for free.

- As root, the server keeps uid 0 only when Landlock and seccomp are both there to contain it
  (Python itself may live where only root can read, as under /root/.pyenv); otherwise it becomes
  `nobody` (65534), since root would read /etc/shadow and signal every root process.
- An unprivileged user namespace (mapped to the same uid, so files keep their owners) makes a
  network namespace possible: only a loopback interface that is down, so no address is reachable,
  not even 127.0.0.1. A mount namespace lets the server put a private, size-capped tmpfs on /tmp:
  what a program writes there never reaches the host and vanishes with the server.
- The capabilities the new user namespace grants (and root's) are dropped once the mounts are
  made, and securebits make sure uid 0 never gets them back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from toolkit.sandbox import linux

NOBODY = 65534


@dataclass(frozen=True, slots=True)
class Namespaces:
    """What the server got: each flag is a namespace in place; `problem` says why one is not."""

    user: bool = False
    net: bool = False
    mount: bool = False
    problem: str = ""


def drop_root() -> bool:
    """Become nobody if running as root; True when that happened."""
    if os.geteuid() != 0:
        return False
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)
    # Changing uid makes the process non-dumpable, which leaves /proc/self/uid_map owned by root
    # and so unwritable for the user namespace that follows.
    linux.prctl(linux.PR_SET_DUMPABLE, 1)
    return True


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _threads() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def enter(tmp_mb: int) -> Namespaces:
    """Move this (single-threaded) process into new user, network and mount namespaces and mount
    a private tmpfs of `tmp_mb` MiB on /tmp. Never raises: what failed is reported."""
    if not linux.IS_LINUX:
        return Namespaces(problem="not Linux")
    if _threads() > 1:
        return Namespaces(problem="the server has threads already (a preloaded module started them)")
    uid, gid = os.getuid(), os.getgid()
    try:
        linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWNET | linux.CLONE_NEWNS)
    except OSError as exc:
        hint = " (unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone or AppArmor)"
        return Namespaces(problem=f"{exc.strerror}{hint if exc.errno in (1, 28, 22) else ''}")
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as exc:
        # Without a mapping the namespaces still hold (the network is still cut off).
        return Namespaces(user=True, net=True, problem=f"uid map: {exc.strerror}")
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={tmp_mb}m,mode=0700")
        mounted, problem = True, ""
    except OSError as exc:
        mounted, problem = False, f"private /tmp: {exc.strerror}"
    return Namespaces(user=True, net=True, mount=mounted, problem=problem)


def drop_capabilities() -> str:
    """Give up every capability for good; '' on success, else what failed."""
    if not linux.IS_LINUX:
        return ""
    try:
        # NOROOT and NO_SETUID_FIXUP, both locked: uid 0 gains nothing back (needs CAP_SETPCAP,
        # which only root or a fresh user namespace has; an ordinary user has nothing to lose).
        linux.prctl(linux.PR_SET_SECUREBITS, 0b101111)
    except OSError:
        pass
    try:
        linux.drop_capabilities()
    except OSError as exc:
        return f"capset: {exc.strerror}"
    return ""
