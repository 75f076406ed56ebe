"""Thin ctypes access to the Linux calls the sandbox needs and Python does not wrap.

Every wrapper raises `OSError` with the real errno on failure, so callers can tell "this kernel
lacks the feature" (ENOSYS, EINVAL, EPERM) from a bug. Nothing here is imported by the parent
process's hot path; the fork server and its children use it.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

IS_LINUX = sys.platform.startswith("linux")

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_SET_SECUREBITS = 28
PR_SET_NO_NEW_PRIVS = 38

# Namespace and mount flags (linux/sched.h, linux/mount.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_RDONLY = 0x1
MS_REC = 0x4000
MS_PRIVATE = 1 << 18

# The syscalls that have one number on every architecture (added after the tables were unified).
SYS_LANDLOCK_CREATE_RULESET = 444
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446

_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    """The C library of this process (loaded once, errno kept per call)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _arg(value: object) -> object:
    """Ints (and None) travel as C longs; ctypes pointers and byref() objects as they are."""
    return ctypes.c_long(value or 0) if value is None or isinstance(value, int) else value


def prctl(option: int, *args: object) -> int:
    fn = libc().prctl
    fn.restype = ctypes.c_int
    padded = [_arg(a) for a in (*args, 0, 0, 0, 0)[:4]]
    return _check(fn(ctypes.c_int(option), *padded), f"prctl({option})")


def syscall(number: int, *args: object) -> int:
    """A raw syscall; pass pointers as ctypes.byref()/pointer(), everything else as ints."""
    fn = libc().syscall
    fn.restype = ctypes.c_long
    return _check(fn(ctypes.c_long(number), *[_arg(a) for a in args]), f"syscall({number})")


def unshare(flags: int) -> None:
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    fn = libc().mount
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _check(fn(enc[0], enc[1], enc[2], flags, enc[3]), f"mount {target}")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Empty this process's capability sets (v3 ABI: two 32-bit words)."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    _check(libc().capset(ctypes.byref(header), data), "capset")


def address_space() -> int:
    """This process's virtual memory size in bytes (0 where /proc cannot tell)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def machine() -> str:
    """The CPU architecture as the kernel names it (x86_64, aarch64, ...)."""
    return platform.machine().lower()
