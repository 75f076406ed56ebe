"""The sandbox's second hostile pass (issue 21): SysV IPC, memory outside the address space, a
virtualenv in the temp directory, a program too big to compile, and escape attempts reported.

Each test here failed on 9fb9b19: a sandboxed program read a host shared-memory segment by its key
and left its own behind, held 900 MB in memfds under a 512 MB limit, could not import from a venv
made under /tmp, was called a syntax error when the compiler ran out of memory, and could try to
kill its server or open a socket, catch the error and answer right with nobody the wiser.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.sandbox import Limits, Sandbox

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox isolates on Linux")

LIMITS = Limits(wall_s=5, cpu_s=3, memory_mb=256, disk_mb=16)
IPC_CREAT, IPC_RMID = 0o1000, 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]


@pytest.fixture(scope="module")
def box():
    with Sandbox(LIMITS, workers=1).start() as sandbox:
        yield sandbox


def _mechanism(box: Sandbox, name: str) -> bool:
    return bool(box.hello["mechanisms"].get(name))


def _kernel_notifies() -> bool:
    """Whether this kernel can hand seccomp denials to a listener (so the sandbox must report them)."""
    try:
        return "user_notif" in Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split()
    except OSError:
        return False


def _require_reports(box: Sandbox) -> None:
    if not (_mechanism(box, "seccomp") and _kernel_notifies()):
        pytest.skip("no seccomp user notification on this machine")


# --- SysV IPC and POSIX message queues -----------------------------------------------------------


@pytest.fixture
def host_segment():
    """A mode-600 shared-memory segment on the host, holding a secret, found by its key."""
    key = 0x48554200 + os.getpid() % 0xFF
    shmid = _libc.shmget(key, 4096, IPC_CREAT | 0o600)
    assert shmid >= 0, os.strerror(ctypes.get_errno())
    address = _libc.shmat(shmid, None, 0)
    ctypes.memmove(address, b"host-secret-in-shm\0", 19)
    _libc.shmdt(ctypes.c_void_p(address))
    yield key
    _libc.shmctl(shmid, IPC_RMID, None)


def _reader(key: int) -> str:
    return (
        "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.shmat.restype = ctypes.c_void_p\n"
        f"shmid = libc.shmget({key}, 0, 0)\n"
        "ans = 'no segment' if shmid < 0 else ctypes.string_at(libc.shmat(shmid, None, 0), 18).decode()"
    )


# A 64 MB segment under a fresh key, attached and touched, then left behind at exit.
LEAVER = (
    "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.shmat.restype = ctypes.c_void_p\n"
    "libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]\n"
    "shmid = libc.shmget(0x48554299, 64 << 20, 0o1666)\n"
    "if shmid >= 0:\n    ctypes.memset(libc.shmat(shmid, None, 0), 1, 64 << 20)\n"
    "ans = shmid"
)


def _host_has_segment(key: int) -> bool:
    shmid = _libc.shmget(key, 0, 0)
    if shmid >= 0:
        _libc.shmctl(shmid, IPC_RMID, None)  # it should not be there; do not leave it either
    return shmid >= 0


def test_sysv_ipc_is_refused_and_counted(box, host_segment):
    if not _mechanism(box, "seccomp"):
        pytest.skip("no seccomp here")
    read = box.run(_reader(host_segment))
    assert (read.outcome, read.value) == ("ok", "no segment"), read
    left = box.run(LEAVER)
    assert (left.outcome, left.value) == ("ok", "-1"), left
    assert not _host_has_segment(0x48554299)
    mq = box.run("import ctypes\nans = ctypes.CDLL(None).mq_open(b'/hubtool-mq', 0o100 | 2, 0o600, None)")
    assert (mq.outcome, mq.value) == ("ok", "-1"), mq
    if _kernel_notifies():
        assert (read.denied, left.denied, mq.denied) == ({"ipc": 1}, {"ipc": 1}, {"ipc": 1})
        assert read.escape_attempts == {"ipc": 1}


def test_an_ipc_namespace_holds_where_seccomp_is_missing(host_segment):
    """Without seccomp the calls go through, but in the server's own IPC namespace: the host's
    segment is not there, and what the program made is not on the host and dies with the server."""
    with Sandbox(LIMITS, workers=1, disable={"seccomp"}, preload=()) as sandbox:
        read = sandbox.run(_reader(host_segment))
        if not sandbox.hello["mechanisms"].get("ipc_namespace"):
            pytest.skip(f"no IPC namespace here: {sandbox.hello['missing']}")
        assert (read.outcome, read.value) == ("ok", "no segment"), read
        left = sandbox.run(LEAVER)
        assert left.outcome == "ok" and left.value != "-1", left  # it made one, in its namespace
        assert not _host_has_segment(0x48554299)


# --- memory outside the address-space limit -----------------------------------------------------


def test_memfd_cannot_beat_the_memory_limit(box):
    """60 memfds of 15 MB (900 MB) under a 256 MB limit: memfd_create is refused."""
    code = ("import os\nfds = []\nfor _ in range(60):\n    fd = os.memfd_create('x')\n"
            "    os.write(fd, b'x' * (15 << 20))\n    fds.append(fd)\nans = len(fds)")  # fmt: skip
    result = box.run(code)
    assert result.outcome == "exception" and result.error.startswith("PermissionError"), result
    if _kernel_notifies():
        assert result.denied == {"memory": 1}


def test_dev_shm_and_socket_buffers_are_refused(box):
    shm = box.run("open('/dev/shm/hubtool-x', 'wb').write(b'x' * 1000)\nans = 1")
    # a read-only tmpfs covers /dev/shm (EROFS); where there is no mount namespace, Landlock refuses it
    assert shm.outcome == "exception" and ("Read-only file system" in shm.error or "PermissionError" in shm.error)
    assert not Path("/dev/shm/hubtool-x").exists()
    pair = box.run("import socket\nans = socket.socketpair()")
    assert pair.outcome == "exception" and pair.error.startswith("PermissionError"), pair
    pipe = box.run("import fcntl, os\nr, w = os.pipe()\nans = fcntl.fcntl(w, 1031, 1 << 20)")
    assert pipe.outcome == "exception" and pipe.error.startswith("PermissionError"), pipe
    plain = box.run("import os\nr, w = os.pipe()\nos.write(w, b'abc')\nans = os.read(r, 3).decode()")
    assert (plain.outcome, plain.value) == ("ok", "abc")


def test_the_private_tmp_counts_against_the_memory_limit():
    """memory_mb is all a program may hold: a 30 MB file in its tmpfs plus 80 MB of heap is over 96."""
    with Sandbox(Limits(wall_s=5, cpu_s=3, memory_mb=96, disk_mb=32), workers=1, preload=()) as sandbox:
        both = sandbox.run("open('big', 'wb').write(b'x' * (30 << 20))\nx = bytearray(80 << 20)\nans = 1")
        assert both.outcome == "memory", both
        small = sandbox.run("open('big', 'wb').write(b'x' * (30 << 20))\nx = bytearray(20 << 20)\nans = 1")
        assert (small.outcome, small.value) == ("ok", "1"), small


def test_a_tmpfs_as_big_as_the_memory_limit_is_refused():
    with raises_one_line(match="disk_mb=64") as info:
        Limits(memory_mb=64, disk_mb=64)
    assert "\n" not in str(info.value)


# --- a Python installation in the temp directory ------------------------------------------------


@pytest.mark.parametrize("where", ["temp", "/dev/shm"])  # both lie under a mount of the sandbox's own
def test_a_virtualenv_in_the_temp_directory_is_visible_read_only(where):
    base = tempfile.gettempdir() if where == "temp" else where
    if not os.access(base, os.W_OK):
        pytest.skip(f"{base} is not writable here")
    root = Path(tempfile.mkdtemp(prefix="hubtool-venv-", dir=base))
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
        python = str(root / "venv" / "bin" / "python")
        purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        package = Path(purelib) / "hubtool_probe_pkg"
        package.mkdir()
        (package / "__init__.py").write_text("VALUE = 42\n")
        with Sandbox(LIMITS, workers=1, python=python, preload=()) as sandbox:
            imported = sandbox.run("import hubtool_probe_pkg\nans = hubtool_probe_pkg.VALUE")
            assert (imported.outcome, imported.value, imported.isolation) == ("ok", "42", "full"), imported
            written = sandbox.run(f"open({str(package / 'evil.py')!r}, 'w').write('x')\nans = 1")
            assert written.outcome == "exception", written
            assert not (package / "evil.py").exists()
            wiped = sandbox.run("ans = 1")  # the work-dir wipe left the bound venv alone
            assert wiped.value == "1" and (package / "__init__.py").read_text() == "VALUE = 42\n"
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)


# --- a program too big to compile ---------------------------------------------------------------


def test_a_program_too_big_to_compile_is_a_memory_failure_not_a_syntax_error():
    code = "x = [" + ",".join(str(i) for i in range(1_500_000)) + "]\nans = len(x)\n"  # about 10 MB
    assert len(code) > 10_000_000
    with Sandbox(Limits(wall_s=20, cpu_s=10, memory_mb=128), workers=1, preload=()) as sandbox:
        result = sandbox.run(code)
    assert result.outcome == "memory", result
    assert result.error == f"MemoryError while compiling the program ({len(code)} characters) under the memory" \
        " limit of 128 MB"


# --- escape attempts are reported -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "denied"),
    [
        ("import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\nans = -4", "-4", {"signal": 1}),
        ("import socket\ntry:\n    socket.socket()\nexcept OSError:\n    pass\nans = 5", "5", {"network": 1}),
        ("import os\ntry:\n    os.fork()\nexcept OSError:\n    pass\nans = 6", "6", {"process": 1}),
        ("import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_CPU, (99, 99))\nexcept (OSError, ValueError):"
         "\n    pass\nans = 8", "8", {"limits": 1}),
        # A filter of its own would get notifications before the server's and could let calls through.
        ("import ctypes\nans = ctypes.CDLL(None).prctl(22, 2, 0)", "-1", {"system": 1}),
        ("import os\nopen('f', 'w').close()\ntry:\n    os.chmod('f', 0o600)\nexcept OSError:\n    pass\nans = 9", "9",
         {"metadata": 1}),
        ("import math\nans = math.factorial(5)", "120", {}),
    ],
)
def test_every_refused_call_is_reported_by_kind(box, code, value, denied):
    _require_reports(box)
    result = box.run(code)
    assert (result.outcome, result.value, result.denied) == ("ok", value, denied), result
    assert result.escape_attempts == ({} if "metadata" in denied else denied)


def test_a_program_cannot_hide_its_attempts_by_exiting_or_forging(box):
    _require_reports(box)
    forged = box.run("import os\ntry:\n    os.kill(1, 9)\nexcept OSError:\n    pass\n"
                     "os.write(3, b'{\"outcome\": \"ok\", \"value\": \"1\", \"denied\": {}}')\nos._exit(0)")  # fmt: skip
    assert forged.denied == {"signal": 1}, forged
    spin = box.run("import socket\nfor _ in range(3):\n    try:\n        socket.socket()\n    except OSError:\n"
                   "        pass\nwhile True:\n    pass")  # fmt: skip
    assert spin.outcome == "timeout" and spin.denied == {"network": 3}, spin


def test_without_a_listener_the_filter_still_refuses_and_reports_nothing(tmp_path):
    """The fallback for a kernel without user notification: EPERM from the filter itself."""
    from toolkit.sandbox import seccomp, supervise
    from toolkit.sandbox.child import Setup

    if seccomp.unsupported_reason():
        pytest.skip(seccomp.unsupported_reason())
    limits = {"wall_s": 5, "cpu_s": 3, "memory_mb": 256, "output_chars": 100, "answer_chars": 100, "disk_mb": 16}
    code = "import os\ntry:\n    os.kill(os.getppid(), 0)\nexcept OSError as e:\n    print(e)\nans = 3"
    parent_r, parent_w = os.pipe()  # stands for the server's protocol pipe: never readable here
    try:
        for notify, denied in ((False, {}), (True, {"signal": 1})):
            setup = Setup(server_pid=os.getpid(), baseline_bytes=0, ruleset=None, seccomp=seccomp.Filter(notify))
            reply = supervise.run(code, limits, str(tmp_path), setup, parent_r)
            assert (reply["value"], reply["stdout"], reply["denied"]) == ("3", "[Errno 1] Operation not permitted\n",
                                                                        denied)  # fmt: skip
    finally:
        os.close(parent_r)
        os.close(parent_w)


def test_dev_shm_is_covered_even_without_landlock():
    marker = f"/dev/shm/hubtool-shm-{os.getpid()}"
    with Sandbox(LIMITS, workers=1, disable={"landlock"}, preload=()) as sandbox:
        result = sandbox.run(f"open({marker!r}, 'wb').write(b'x' * 1000)\nans = 1")
        if not sandbox.hello["mechanisms"]["private_tmp"]:
            pytest.skip(f"no mount namespace here: {sandbox.hello['missing']}")
    exists = os.path.exists(marker)
    if exists:
        os.unlink(marker)
    assert result.outcome == "exception" and "Read-only file system" in result.error, result
    assert not exists
