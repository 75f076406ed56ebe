"""A seccomp-BPF filter for the sandboxed child, built here and installed with prctl via ctypes.

It is a deny list, not an allow list: CPython, numpy and glibc use a wide and changing set of
syscalls, and an allow list that misses one breaks programs in ways that look like their own bugs.
What it denies are the ways out of a process: making processes and running binaries, sockets,
other processes' memory and signals, raising limits, namespaces and mounts, kernel keyrings,
modules, io_uring (whose operations seccomp cannot see), and metadata changes (chmod, chown,
xattrs) that Landlock does not cover, SysV IPC and POSIX message queues (which reach objects outside
the sandbox by key or name, and hold memory past the process's life), and memory the address-space
limit does not see (memfd_create, socketpair buffers, pipes grown past their default size). Denied
calls fail with EPERM, so a program sees an ordinary `PermissionError` rather than dying; a syscall
from a foreign ABI (x32, i386) kills the process.

Where the kernel allows it (Linux >= 5.0), a denial is not answered by the filter itself but handed
to the fork server through a seccomp user-notification descriptor: the server answers EPERM and
counts the call by kind (`KINDS`), so a program that tried to escape is known even if it then
caught the error and set the right `ans` (the program cannot hide a call from the server).

No library is used: `pyseccomp` (last release 2021) needs libseccomp.so, and the filter is ~270
instructions of plain BPF.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import struct

from toolkit.sandbox import linux

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
_RET_USER_NOTIF = 0x7FC00000
_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35
_JSET = 0x45
_RET = 0x06
_OFF_NR, _OFF_ARCH = 0, 4


def _arg_lo(i: int) -> int:
    return 16 + 8 * i  # seccomp_data.args[i], low 32 bits (little-endian)


def _arg_hi(i: int) -> int:
    return 20 + 8 * i


_CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

# Numbers >= 424 are shared by every architecture.
_COMMON = {
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "pidfd_open": 434, "clone3": 435, "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443,
    "memfd_secret": 447, "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466, "open_tree_attr": 467,
}  # fmt: skip
_X86_64 = {
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "clone": 56, "socket": 41, "connect": 42,
    "bind": 49, "listen": 50, "accept": 43, "accept4": 288, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "kcmp": 312, "perf_event_open": 298, "bpf": 321, "userfaultfd": 323,
    "setrlimit": 160, "prlimit64": 302, "unshare": 272, "setns": 308, "mount": 165, "umount2": 166,
    "pivot_root": 155, "chroot": 161, "keyctl": 250, "add_key": 248, "request_key": 249,
    "init_module": 175, "finit_module": 313, "delete_module": 176, "kexec_load": 246,
    "kexec_file_load": 320, "reboot": 169, "swapon": 167, "swapoff": 168, "syslog": 103, "acct": 163,
    "quotactl": 179, "sethostname": 170, "setdomainname": 171, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "iopl": 172, "ioperm": 173, "modify_ldt": 154,
    "name_to_handle_at": 303, "open_by_handle_at": 304, "chmod": 90, "fchmod": 91, "fchmodat": 268,
    "chown": 92, "fchown": 93, "lchown": 94, "fchownat": 260, "utime": 132, "utimes": 235,
    "utimensat": 280, "futimesat": 261, "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190,
    "removexattr": 197, "lremovexattr": 198, "fremovexattr": 199, "truncate": 76, "kill": 62,
    "tkill": 200, "tgkill": 234, "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "lookup_dcookie": 212,
    "vhangup": 153, "uselib": 134, "socketpair": 53, "shmget": 29, "shmat": 30, "shmctl": 31, "shmdt": 67,
    "semget": 64, "semop": 65, "semctl": 66, "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70,
    "msgctl": 71, "mq_open": 240, "mq_unlink": 241, "mq_timedsend": 242, "mq_timedreceive": 243,
    "mq_notify": 244, "mq_getsetattr": 245, "memfd_create": 319, "fcntl": 72, "seccomp": 317, "prctl": 157,
}  # fmt: skip
# The generic table (asm-generic/unistd.h): no fork, open, chmod or other legacy calls.
_AARCH64 = {
    "execve": 221, "execveat": 281, "clone": 220, "socket": 198, "connect": 203, "bind": 200,
    "listen": 201, "accept": 202, "accept4": 242, "ptrace": 117, "process_vm_readv": 270,
    "process_vm_writev": 271, "kcmp": 272, "perf_event_open": 241, "bpf": 280, "userfaultfd": 282,
    "setrlimit": 164, "prlimit64": 261, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
    "pivot_root": 41, "chroot": 51, "keyctl": 219, "add_key": 217, "request_key": 218,
    "init_module": 105, "finit_module": 273, "delete_module": 106, "kexec_load": 104,
    "kexec_file_load": 294, "reboot": 142, "swapon": 224, "swapoff": 225, "syslog": 116, "acct": 89,
    "quotactl": 60, "sethostname": 161, "setdomainname": 162, "settimeofday": 170, "clock_settime": 112,
    "clock_adjtime": 266, "adjtimex": 171, "name_to_handle_at": 264, "open_by_handle_at": 265,
    "fchmod": 52, "fchmodat": 53, "fchown": 55, "fchownat": 54, "utimensat": 88, "setxattr": 5,
    "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15, "fremovexattr": 16,
    "truncate": 45, "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138,
    "rt_tgsigqueueinfo": 240, "lookup_dcookie": 18, "vhangup": 58, "socketpair": 199, "shmget": 194,
    "shmctl": 195, "shmat": 196, "shmdt": 197, "semget": 190, "semctl": 191, "semtimedop": 192, "semop": 193,
    "msgget": 186, "msgctl": 187, "msgrcv": 188, "msgsnd": 189, "mq_open": 180, "mq_unlink": 181,
    "mq_timedsend": 182, "mq_timedreceive": 183, "mq_notify": 184, "mq_getsetattr": 185, "memfd_create": 279,
    "fcntl": 25, "seccomp": 277, "prctl": 167,
}  # fmt: skip
# machine -> (AUDIT_ARCH_*, syscall table, whether x32 numbers must be refused)
_ARCHES = {
    "x86_64": (0xC000003E, {**_X86_64, **_COMMON}, True),
    "amd64": (0xC000003E, {**_X86_64, **_COMMON}, True),
    "aarch64": (0xC00000B7, {**_AARCH64, **_COMMON}, False),
    "arm64": (0xC00000B7, {**_AARCH64, **_COMMON}, False),
}
_NAMES = {nr: name for name, nr in _ARCHES.get(linux.machine(), (0, {}, False))[1].items()}
_SET_MODE_FILTER, _FLAG_NEW_LISTENER = 1, 1 << 3
# ioctls on a listener (linux/seccomp.h): _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1, ..._resp)
_NOTIF_RECV, _NOTIF_SEND = 0xC0502100, 0xC0182101
_NOTIF_SIZE = 80  # id u64, pid u32, flags u32, seccomp_data (nr s32, arch u32, ip u64, args u64[6])

DENIED = (
    "fork", "vfork", "execve", "execveat", "socket", "connect", "bind", "listen", "accept", "accept4",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "perf_event_open", "bpf", "userfaultfd", "setrlimit", "unshare", "setns",
    "mount", "umount2", "pivot_root", "chroot", "mount_setattr", "move_mount", "open_tree",
    "open_tree_attr", "fsopen", "fsconfig", "fsmount", "fspick", "keyctl", "add_key", "request_key",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon",
    "swapoff", "syslog", "acct", "quotactl", "quotactl_fd", "sethostname", "setdomainname",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "modify_ldt",
    "name_to_handle_at", "open_by_handle_at", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime",
    "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
    "lremovexattr", "fremovexattr", "setxattrat", "removexattrat", "truncate", "tkill",
    "lookup_dcookie", "vhangup", "uselib", "socketpair", "shmget", "shmat", "shmctl", "shmdt", "semget",
    "semop", "semctl", "semtimedop", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open", "mq_unlink",
    "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr", "memfd_create", "memfd_secret", "seccomp",
)  # fmt: skip
# What a denied call was after, as the server counts it (ExecResult.denied). Every kind but
# "metadata" (chmod, utime and the like, harmless on a program's own files) is an escape attempt.
_KIND_OF = {
    "process": ("fork", "vfork", "clone", "execve", "execveat"),
    "network": ("socket", "connect", "bind", "listen", "accept", "accept4", "socketpair"),
    "signal": ("kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal"),
    "ipc": ("shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop", "msgget", "msgsnd",
            "msgrcv", "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify",
            "mq_getsetattr"),
    "memory": ("memfd_create", "memfd_secret", "fcntl"),
    "limits": ("setrlimit", "prlimit64"),
    "metadata": ("chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "utime",
                 "utimes", "utimensat", "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr",
                 "lremovexattr", "fremovexattr", "setxattrat", "removexattrat", "truncate"),
}  # fmt: skip  (anything else denied is "system": other processes, namespaces, mounts, the kernel)
KINDS = (*_KIND_OF, "system")
NOT_ESCAPES = ("metadata",)
F_SETPIPE_SZ = 1031  # fcntl command: a pipe's buffer may grow to 1 MB each, outside RLIMIT_AS
# Signals may only go to the child itself (arg 0 is the target process).
SELF_ONLY = ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo")


def unsupported_reason() -> str | None:
    """Why a filter cannot be installed here, or None when it can."""
    if not linux.IS_LINUX:
        return "not Linux"
    if struct.calcsize("P") != 8 or linux.machine() not in _ARCHES:
        return f"no syscall table for {linux.machine()} ({8 * struct.calcsize('P')}-bit Python)"
    try:
        linux.prctl(linux.PR_GET_SECCOMP)
    except OSError as exc:
        return f"the kernel has no seccomp ({exc.strerror})"
    return None


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def build(pid: int, notify: bool = False) -> list[tuple[int, int, int, int]]:
    """The filter's instructions for a child whose process id is `pid` (see the module doc).

    `notify`: denials go to a user-notification listener (the server answers EPERM and counts
    them) rather than failing with EPERM in the filter. Then the program must never install a
    filter of its own (`seccomp`, `prctl(PR_SET_SECCOMP)`): a newer filter's listener would get
    the notification first and could let the call go on.
    """
    arch, table, refuse_x32 = _ARCHES[linux.machine()]
    deny = _RET_USER_NOTIF if notify else _RET_ERRNO | errno.EPERM
    prog = [(_LD_ABS, 0, 0, _OFF_ARCH), (_JEQ, 1, 0, arch), (_RET, 0, 0, _RET_KILL_PROCESS), (_LD_ABS, 0, 0, _OFF_NR)]
    if refuse_x32:
        prog += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, _RET_KILL_PROCESS)]
    for name in DENIED:
        if name in table:
            prog += [(_JEQ, 0, 1, table[name]), (_RET, 0, 0, deny)]
    # glibc tries clone3 first and falls back to clone on ENOSYS; clone's flags can be inspected.
    prog += [(_JEQ, 0, 1, table["clone3"]), (_RET, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    prog += [
        (_JEQ, 0, 5, table["clone"]),
        (_LD_ABS, 0, 0, _arg_lo(0)),
        (_JSET, 2, 0, _CLONE_NAMESPACES),
        (_JSET, 0, 1, _CLONE_THREAD),  # a thread, not a process
        (_RET, 0, 0, _RET_ALLOW),
        (_RET, 0, 0, deny),
    ]
    for name in SELF_ONLY:  # the kernel reads pid_t as the low 32 bits
        prog += _only_if_arg(table[name], 0, pid, allow_when_equal=True, deny=deny)
    prog += _only_if_arg(table["fcntl"], 1, F_SETPIPE_SZ, allow_when_equal=False, deny=deny)
    prog += _only_if_arg(table["prctl"], 0, linux.PR_SET_SECCOMP, allow_when_equal=False, deny=deny)
    # prlimit64 may read limits (new_limit == NULL) but never set them.
    prog += [
        (_JEQ, 0, 6, table["prlimit64"]),
        (_LD_ABS, 0, 0, _arg_lo(2)),
        (_JEQ, 0, 3, 0),
        (_LD_ABS, 0, 0, _arg_hi(2)),
        (_JEQ, 0, 1, 0),
        (_RET, 0, 0, _RET_ALLOW),
        (_RET, 0, 0, deny),
    ]
    prog.append((_RET, 0, 0, _RET_ALLOW))
    return prog


def _only_if_arg(nr: int, arg: int, value: int, *, allow_when_equal: bool, deny: int) -> list:
    """For syscall `nr`: allow when (the low 32 bits of) argument `arg` equals `value` and deny
    otherwise, or the other way round."""
    equal, other = (_RET_ALLOW, deny) if allow_when_equal else (deny, _RET_ALLOW)
    return [(_JEQ, 0, 4, nr), (_LD_ABS, 0, 0, _arg_lo(arg)), (_JEQ, 0, 1, value), (_RET, 0, 0, equal),
            (_RET, 0, 0, other)]  # fmt: skip


def kind_of(nr: int) -> str:
    """What a denied syscall number was after (one of KINDS)."""
    name = _NAMES.get(nr, "")
    return next((kind for kind, names in _KIND_OF.items() if name in names), "system")


class Filter:
    """The filter, packed once in the fork server; a child patches in its pid and installs it.

    Building it in the child would cost about 2 ms a program (ctypes makes its array type anew
    in every child); patching a prebuilt buffer costs microseconds.
    """

    def __init__(self, notify: bool = False) -> None:
        self.notify = notify
        prog = build(0, notify)
        self.length = len(prog)
        self.buffer = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *ins) for ins in prog))
        marker = build(1, notify)  # where the pid goes: the instructions that differ between two pids
        self.pid_offsets = [8 * i + 4 for i, (a, b) in enumerate(zip(prog, marker)) if a != b]
        self.prog = _Prog(self.length, ctypes.cast(self.buffer, ctypes.POINTER(_Filter)))

    def install(self, pid: int) -> int:
        """Install on the calling thread and every thread or process it makes later; the
        listener's descriptor when `notify`, else -1.

        Sets no_new_privs first (required without CAP_SYS_ADMIN; also makes setuid binaries
        inert). Raises OSError when the kernel refuses.
        """
        for offset in self.pid_offsets:
            struct.pack_into("=I", self.buffer, offset, pid)
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        if not self.notify:
            linux.prctl(linux.PR_SET_SECCOMP, 2, ctypes.byref(self.prog))  # SECCOMP_MODE_FILTER
            return -1
        nr = _ARCHES[linux.machine()][1]["seccomp"]
        return linux.syscall(nr, _SET_MODE_FILTER, _FLAG_NEW_LISTENER, ctypes.byref(self.prog))


def install(pid: int) -> None:
    """Build and install in one go (for tests and one-off use; the server uses `Filter`)."""
    Filter().install(pid)


def answer_denial(listener: int) -> str | None:
    """Answer one pending notification on `listener` with EPERM; the kind of call it was, or None
    when there was none (or the calling thread is already gone)."""
    request = bytearray(_NOTIF_SIZE)
    try:
        fcntl.ioctl(listener, _NOTIF_RECV, request)
    except OSError:  # ENOENT: the caller died first; EINTR
        return None
    notif_id, nr = struct.unpack_from("=Q", request, 0)[0], struct.unpack_from("=i", request, 16)[0]
    try:
        fcntl.ioctl(listener, _NOTIF_SEND, struct.pack("=QqiI", notif_id, 0, -errno.EPERM, 0))
    except OSError:
        pass  # the caller is gone: nothing to answer, but it tried
    return kind_of(nr)
