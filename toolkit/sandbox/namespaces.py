"""The fork server's own isolation, set up once at its start: who it runs as, and which namespaces.

Done once per server rather than per program because creating a network namespace costs
milliseconds and tearing one down is asynchronous work for the kernel; every child the server
forks inherits them for free.

- As root, the server keeps uid 0 only when Landlock and seccomp are both there to contain it
  (Python itself may live where only root can read, e.g. a pyenv in root's home); otherwise it becomes
  `nobody` (65534), since root would read /etc/shadow and signal every root process.
- An unprivileged user namespace (mapped to the same uid, so files keep their owners) makes a
  network namespace possible: only a loopback interface that is down, so no address is reachable,
  not even 127.0.0.1. A mount namespace lets the server put a private, size-capped tmpfs on /tmp:
  what a program writes there never reaches the host and vanishes with the server. Parts of the
  Python installation that live under /tmp (a virtualenv made in the temp directory) are bound back
  into it, read-only, at their own paths, so the tmpfs hides nothing a program needs.
- An IPC namespace of its own: SysV shared memory, semaphores and message queues, and POSIX message
  queues, are the server's alone (seccomp refuses those calls to programs anyway; this holds where
  seccomp is missing: a host segment cannot be reached by its key).
- The capabilities the new user namespace grants (and root's) are dropped once the mounts are
  made, and securebits make sure uid 0 never gets them back.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from toolkit.sandbox import linux

NOBODY = 65534


@dataclass(frozen=True, slots=True)
class Namespaces:
    """What the server got: each flag is a namespace in place; `problem` says why one is not."""

    user: bool = False
    net: bool = False
    mount: bool = False
    ipc: bool = False
    problem: str = ""
    kept: tuple[str, ...] = ()  # paths under /tmp bound back into the private tmpfs


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


def enter(tmp_mb: int, keep: Sequence[str] = ()) -> Namespaces:
    """Move this (single-threaded) process into new user, network, IPC and mount namespaces and mount
    a private tmpfs of `tmp_mb` MiB on /tmp, with the directories in `keep` that lie under /tmp bound
    back read-only. Never raises: what failed is reported."""
    if not linux.IS_LINUX:
        return Namespaces(problem="not Linux")
    if _threads() > 1:
        return Namespaces(problem="the server has threads already (a preloaded module started them)")
    uid, gid = os.getuid(), os.getgid()
    try:
        linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWNET | linux.CLONE_NEWNS | linux.CLONE_NEWIPC)
    except OSError as exc:
        hint = " (unprivileged user namespaces are disabled: sysctl kernel.unprivileged_userns_clone or AppArmor)"
        return Namespaces(problem=f"{exc.strerror}{hint if exc.errno in (1, 28, 22) else ''}")
    try:
        _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"{uid} {uid} 1")
        _write("/proc/self/gid_map", f"{gid} {gid} 1")
    except OSError as exc:
        # Without a mapping the namespaces still hold (the network is still cut off).
        return Namespaces(user=True, net=True, ipc=True, problem=f"uid map: {exc.strerror}")
    kept: list[str] = []
    try:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
        hidden = _under_tmp(keep)
        # Opened before the tmpfs covers them; bound back through /proc/self/fd afterwards.
        fds = {path: os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for path in hidden}
        linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, f"size={tmp_mb}m,mode=0700")
        mounted, problem = True, ""
        _cover_dev_shm(keep)
        for path, fd in fds.items():
            if _bind_back(path, fd):
                kept.append(path)
            os.close(fd)
    except OSError as exc:
        mounted, problem = False, f"private /tmp: {exc.strerror}"
    return Namespaces(user=True, net=True, mount=mounted, ipc=True, problem=problem, kept=tuple(kept))


def _cover_dev_shm(keep: Sequence[str]) -> None:
    """An empty read-only tmpfs over /dev/shm: POSIX shared memory (files there are RAM that no
    rlimit counts, and the host's are other programs' data) is out of reach even without Landlock.
    Not where the Python installation itself lives there (Landlock alone keeps programs out then)."""
    if os.path.isdir("/dev/shm") and not any(os.path.realpath(p).startswith("/dev/shm/") for p in keep):
        try:
            linux.mount("tmpfs", "/dev/shm", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_RDONLY, "size=4k")
        except OSError:
            pass  # Landlock still refuses it, where there is Landlock


def _under_tmp(paths: Sequence[str]) -> list[str]:
    """The real paths among `paths` that lie under /tmp, outermost only."""
    real = sorted({os.path.realpath(p) for p in paths if os.path.isdir(p)})
    inside = [p for p in real if p.startswith("/tmp/")]
    return [p for p in inside if not any(p.startswith(q + "/") for q in inside if q != p)]


def _bind_back(path: str, fd: int) -> bool:
    """Bind the directory open as `fd` (now under the tmpfs) at `path` again, read-only."""
    try:
        os.makedirs(path, 0o755, exist_ok=True)
        linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, path, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID
                    | linux.MS_NODEV)  # fmt: skip
    except OSError:
        return False
    return True


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
