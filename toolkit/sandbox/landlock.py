"""Landlock: what the child may open, whom it may signal, where it may connect (syscalls 444-446).

The fork server builds one ruleset when it starts (read-only: the Python installation and the
system libraries; read-write: the server's work directory) and each child applies it to itself
just before running the program. Everything else on the file system is refused to open, list,
create, remove or rename: the user's home, the repository, /etc, /proc (and with it other
processes' environments), other temp files. Newer ABIs also let it refuse all TCP binds and
connects (ABI 4) and signals or abstract unix sockets that leave the sandbox (ABI 6). Rights a
running kernel does not know are left out, so a ruleset works on every ABI from 1 on.

Not covered by Landlock at any ABI: stat() and path existence, chmod/chown/xattrs (seccomp denies
those), and file descriptors opened before the ruleset applies (the child closes them all).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

from toolkit.sandbox import linux

# File-system rights, ABI 1 (bits 0-12), then REFER (ABI 2), TRUNCATE (ABI 3), IOCTL_DEV (ABI 5).
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1 = (1 << 13) - 1
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_RULE_PATH_BENEATH = 1
_CREATE_RULESET_VERSION = 1 << 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi_version() -> int:
    """The kernel's Landlock ABI (0 when absent or disabled at boot)."""
    if not linux.IS_LINUX:
        return 0
    try:
        return linux.syscall(linux.SYS_LANDLOCK_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except OSError:
        return 0


def _fs_rights(abi: int) -> int:
    rights = _ABI1
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    if abi >= 5:
        rights |= _IOCTL_DEV
    return rights


def _read_rights(is_dir: bool) -> int:
    return READ_FILE | EXECUTE | (READ_DIR if is_dir else 0)


class Ruleset:
    """A built ruleset, held as a file descriptor; `restrict_self` applies it to the caller."""

    def __init__(self, read_only: Iterable[str], read_write: Iterable[str], devices: Iterable[str] = ()):
        self.abi = abi_version()
        if self.abi < 1:
            raise OSError("Landlock is not available on this kernel")
        handled = _fs_rights(self.abi)
        # The struct grew with the ABI; the kernel rejects sizes it does not know.
        attr = _RulesetAttr(handled, 0, 0)
        size = 8
        if self.abi >= 4:
            attr.net, size = _NET_BIND_TCP | _NET_CONNECT_TCP, 16
        if self.abi >= 6:
            attr.scoped, size = _SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL, 24
        self.fd = linux.syscall(linux.SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, 0)
        self.paths: list[str] = []
        file_rights = WRITE_FILE | READ_FILE | (_TRUNCATE if self.abi >= 3 else 0)
        for path in read_only:
            self._allow(path, lambda is_dir: _read_rights(is_dir))
        for path in devices:  # /dev/null and friends: read and write, nothing else
            self._allow(path, lambda is_dir: 0 if is_dir else file_rights)
        for path in read_write:
            self._allow(path, lambda is_dir: handled if is_dir else handled & (file_rights | EXECUTE))

    def _allow(self, path: str, rights_for) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return  # a path this machine lacks is simply not allowed
        try:
            is_dir = os.path.isdir(path)
            rights = rights_for(is_dir)
            if rights:
                rule = _PathBeneath(rights, fd)
                linux.syscall(linux.SYS_LANDLOCK_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0)
                self.paths.append(path)
        finally:
            os.close(fd)

    @property
    def covers_network(self) -> bool:
        return self.abi >= 4

    @property
    def covers_signals(self) -> bool:
        return self.abi >= 6

    def restrict_self(self) -> None:
        """Apply to the calling thread and all it creates later (needs no_new_privs, set here)."""
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        linux.syscall(linux.SYS_LANDLOCK_RESTRICT_SELF, self.fd, 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
