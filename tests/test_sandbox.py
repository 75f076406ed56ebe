"""The sandbox for model-written Python: normal answers, a hostile battery, degraded modes, recovery.

The hostile programs run once, together, through one sandbox (`battery`); each case is then a test
of its own. Every hostile program is followed in the same run by `ans = 2 + 3`, which must still
come back as "5": a builder has to be able to keep going after anything a program does. A case
whose protection depends on a kernel feature the machine lacks is skipped, saying which.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.sandbox import OUTCOMES, ExecResult, Limits, Sandbox, run_program
from toolkit.sandbox import client as sandbox_client
from toolkit.sandbox.answer import BadAnswer, render
from toolkit.sandbox.probe import in_child
from toolkit.sandbox.supervise import judge

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox isolates on Linux")

REPO = Path(__file__).resolve().parents[1]
# A clone under /tmp lies beneath the sandbox's private tmpfs: a program finds no repository there
# at all, rather than one it may not open. Either way it reads and writes nothing of it.
REPO_REFUSED = "FileNotFoundError|PermissionError" if str(REPO).startswith("/tmp/") else "PermissionError"
LIMITS = Limits(wall_s=1.5, cpu_s=1, memory_mb=256, output_chars=1000, answer_chars=1000, disk_mb=16)
SECRET = "hubtool-test-secret-" + uuid.uuid4().hex
API_KEY = "sk-test-" + uuid.uuid4().hex
CHECK = "ans = 2 + 3"


@pytest.fixture(scope="module")
def box():
    """One sandbox for the module, started while the parent's environment holds secrets."""
    saved = {k: os.environ.get(k) for k in ("HUBTOOL_TEST_SECRET", "OPENAI_API_KEY")}
    os.environ["HUBTOOL_TEST_SECRET"], os.environ["OPENAI_API_KEY"] = SECRET, API_KEY
    sandbox = Sandbox(LIMITS, workers=2).start()
    yield sandbox
    sandbox.close()
    _LISTENER.close()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def mechanisms(sandbox: Sandbox) -> dict[str, bool]:
    """The protections a case may depend on, as this machine gave them."""
    m = sandbox.hello["mechanisms"]
    return {
        "seccomp": m["seccomp"],
        "landlock": m["landlock_abi"] >= 1,
        "network": m["network_namespace"] or m["seccomp"] or m["landlock_abi"] >= 4,
        "signals": m["seccomp"] or m["landlock_abi"] >= 6,
        "shadow": m["landlock_abi"] >= 1 or m["uid"] != 0,
        "tmp": m["landlock_abi"] >= 1 or m["private_tmp"],
    }


def require(sandbox: Sandbox, needs: tuple[str, ...]) -> None:
    have = mechanisms(sandbox)
    missing = [n for n in needs if not have[n]]
    if missing:
        pytest.skip(f"no {'/'.join(missing)} protection on this machine: {sandbox.hello['missing']}")


# --- the hostile battery ----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    outcomes: tuple[str, ...]
    needs: tuple[str, ...] = ()
    error: str = ""  # a piece the one-line error must contain (a regular expression)
    absent: str = ""  # a host path the program tried to create
    dangerous: bool = False  # not even run where `needs` are missing (it would harm this machine)


_LISTENER = socket.socket()
_LISTENER.bind(("127.0.0.1", 0))
_LISTENER.listen(8)
PORT = _LISTENER.getsockname()[1]
TMP_MARKER = f"/tmp/hubtool-pwned-{uuid.uuid4().hex}"
REPO_MARKER = REPO / f"pwned-{uuid.uuid4().hex}.txt"
SYSTEM_MARKER = f"/tmp/hubtool-system-{uuid.uuid4().hex}"
# Not under /tmp, which a private tmpfs may hide from programs anyway: this is Landlock's test.
FAKE_HOME = Path("/var/tmp" if os.path.isdir("/var/tmp") else Path.home()) / f"hubtool-home-{uuid.uuid4().hex}"
FAKE_KEY = FAKE_HOME / ".ssh" / "id_rsa"


@pytest.fixture(scope="module")
def planted_key():
    """A readable-by-anyone private key in a fake home: only the sandbox can keep it unread."""
    FAKE_KEY.parent.mkdir(parents=True)
    FAKE_KEY.write_text("-----BEGIN OPENSSH PRIVATE KEY----- not a real one")
    FAKE_KEY.chmod(0o644)
    for p in (FAKE_KEY.parent, FAKE_HOME):
        p.chmod(0o755)
    yield FAKE_KEY
    assert FAKE_KEY.stat().st_mode & 0o777 == 0o644, "a program changed the mode of a user's file"
    shutil.rmtree(FAKE_HOME, ignore_errors=True)
    for marker in (REPO_MARKER, Path(TMP_MARKER), Path(TMP_MARKER + "-2"), Path(SYSTEM_MARKER)):
        marker.unlink(missing_ok=True)  # only there if a protection failed (and a test said so)


CASES = [
    Case("infinite loop", "while True:\n    pass", ("timeout",)),
    Case("cpu burner", "ans = sum(i * i for i in range(10**12))", ("timeout",)),
    Case("sleep past the wall clock", "import time\ntime.sleep(60)", ("timeout",), error="wall-clock"),
    Case("fork bomb", "import os\nwhile True:\n    os.fork()", ("exception",), ("seccomp",), "PermissionError",
         dangerous=True),  # fmt: skip
    Case("os.fork", "import os\npid = os.fork()\nans = pid", ("exception",), ("seccomp",), "PermissionError"),
    Case("subprocess.run ls", "import subprocess\nans = subprocess.run(['ls']).returncode", ("exception",),
         ("seccomp",)),  # fmt: skip
    Case("os.system", f"import os\nans = os.system('touch {SYSTEM_MARKER}')", ("ok",), ("seccomp",),
         absent=SYSTEM_MARKER),  # fmt: skip
    Case("bytearray(10**10)", "x = bytearray(10**10)", ("memory",)),
    Case("list growth", "x = []\nwhile True:\n    x.append(bytearray(10**6))", ("memory",)),
    Case("numpy giant array", "import numpy as np\nx = np.ones((10**5, 10**5))", ("memory",)),
    Case("read ~/.ssh/id_rsa", f"ans = open({str(FAKE_KEY)!r}).read()", ("exception",), ("landlock",),
         "PermissionError"),  # fmt: skip
    Case("read /etc/shadow", "ans = open('/etc/shadow').read()", ("exception",), ("shadow",)),
    Case("read /etc/passwd", "ans = open('/etc/passwd').read()", ("exception",), ("landlock",), "PermissionError"),
    Case("read the repository", f"ans = open({str(REPO / 'README.md')!r}).read()[:50]", ("exception",),
         ("landlock",), REPO_REFUSED),  # fmt: skip
    Case("list the home directory", f"import os\nans = str(os.listdir({str(FAKE_HOME)!r}))",
         ("exception",), ("landlock",)),  # fmt: skip
    Case("parent's /proc environ", f"ans = open('/proc/{os.getpid()}/environ').read()", ("exception",),
         ("landlock",)),  # fmt: skip
    Case("environment secrets", "import os\nans = repr(dict(os.environ))", ("ok",)),
    Case("write /tmp", f"open({TMP_MARKER!r}, 'w').write('x')\nans = 1", ("exception",), ("landlock",),
         "PermissionError", absent=TMP_MARKER),  # fmt: skip
    Case("write /tmp, host view", f"open({TMP_MARKER + '-2'!r}, 'w').write('x')\nans = 1", ("exception", "ok"),
         ("tmp",), absent=TMP_MARKER + "-2"),  # fmt: skip  (a private /tmp alone lets it write, unseen)
    Case("write into the repository", f"open({str(REPO_MARKER)!r}, 'w').write('x')\nans = 1", ("exception",),
         ("landlock",), REPO_REFUSED, absent=str(REPO_MARKER)),  # fmt: skip
    Case("chmod a user's file", f"import os\nos.chmod({str(FAKE_KEY)!r}, 0o777)", ("exception",), ("seccomp",),
         "PermissionError"),  # fmt: skip
    Case("socket to a local listener", f"import socket\nsocket.create_connection(('127.0.0.1', {PORT}), 1)",
         ("exception",), ("network",)),  # fmt: skip
    Case("ctypes segfault", "import ctypes\nctypes.string_at(0)", ("killed",), error="SIGSEGV"),
    Case("kill the parent", "import os\nos.kill(os.getppid(), 9)\nans = 1", ("exception",), ("signals",)),
    Case("kill everything (-1)", "import os\nos.kill(-1, 9)\nans = 1", ("exception", "killed"), ("signals",),
         dangerous=True),  # fmt: skip
    Case("ignore SIGXCPU and spin", "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n"
         "    pass", ("timeout",)),  # fmt: skip
    Case("ignore SIGTERM and sleep", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
         "time.sleep(60)", ("timeout",)),  # fmt: skip
    Case("os._exit(0)", "import os\nans = 1\nos._exit(0)", ("killed",)),
    Case("sys.exit()", "import sys\nans = 1\nsys.exit()", ("exception",), error="SystemExit"),
    Case("recursion", "def f(n):\n    return f(n + 1)\nf(0)", ("exception",), error="RecursionError"),
    # Python-to-Python calls do not use the C stack in 3.11: the frames fill memory or the CPU limit.
    Case("deep recursion, limit raised", "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n"
         "    return f(n + 1)\nf(0)", ("memory", "timeout")),  # fmt: skip
    Case("C stack overflow", "import sys\nsys.setrecursionlimit(10**7)\nx = []\nfor _ in range(10**5):\n"
         "    x = [x]\nans = repr(x)", ("killed", "timeout")),  # fmt: skip  (SIGSEGV, unless the CPU limit is first)
    Case("10**10**8", "ans = 10**10**8", ("timeout", "memory")),
    Case("huge int answer", "ans = 2**100000", ("bad_answer",), error="digits"),
    Case("print('x'*10**8)", "print('x' * 10**8)", ("output_limit",)),
    Case("print forever", "while True:\n    print(1)", ("output_limit",)),
    Case("stderr forever", "import sys\nwhile True:\n    sys.stderr.write('x' * 100)", ("output_limit",)),
    Case("spinning threads", "import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(4):\n"
         "    threading.Thread(target=spin, daemon=True).start()\nspin()", ("timeout",)),  # fmt: skip
    Case("raise a limit", "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (100, 100))", ("exception",)),
    Case("raise a limit, then spin", "import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_AS, "
         "(-1, -1))\nexcept Exception:\n    pass\nwhile True:\n    pass", ("timeout",)),  # fmt: skip
    Case("close the report pipe", "import os\nfor fd in range(3, 64):\n    try:\n        os.close(fd)\n"
         "    except OSError:\n        pass\nans = 1", ("killed",)),  # fmt: skip
    Case("forge a server verdict", "import os\nos.write(3, b'{\"outcome\": \"timeout\"}')\nos._exit(0)",
         ("killed",)),  # fmt: skip
    Case("fill the disk", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * 2**20)\n    f.flush()",
         ("exception",)),  # fmt: skip
    Case("unshare via ctypes", "import ctypes\nans = ctypes.CDLL(None).unshare(0x10000000)", ("ok",), ("seccomp",)),
    Case("read stdin", "ans = input()", ("exception",), error="EOFError"),
    Case("SysV shared memory, 64 MB", "import ctypes\nans = ctypes.CDLL(None).shmget(0x4855, 64 << 20, 0o1666)",
         ("ok",), ("seccomp",)),  # fmt: skip  (value -1: test_sysv_ipc_is_refused_and_counted goes further)
    Case("memfd past the memory limit", "import os\nfor _ in range(60):\n    os.write(os.memfd_create('x'), "
         "b'x' * (15 << 20))\nans = 1", ("exception",), ("seccomp",), "PermissionError"),  # fmt: skip
]


@pytest.fixture(scope="module")
def battery(box, planted_key):
    """{case id: (result, the check program's result right after it)}, all run in one go."""
    have = mechanisms(box)
    cases = [c for c in CASES if not c.dangerous or all(have[n] for n in c.needs)]
    servers_before = {s.proc.pid for s in box._all}
    results = box.run_many([p for case in cases for p in (case.code, CHECK)])
    yield {case.id: (results[2 * i], results[2 * i + 1]) for i, case in enumerate(cases)}, servers_before


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_program_is_contained(box, battery, case):
    require(box, case.needs)
    result, after = battery[0][case.id]
    assert result.outcome in case.outcomes, result
    assert re.search(case.error, result.error), result
    assert "\n" not in result.error
    assert after.outcome == "ok" and after.value == "5", f"the sandbox did not recover: {after}"
    if case.absent:
        assert not Path(case.absent).exists(), f"{case.absent} was written on the host"


def test_nothing_reached_the_local_listener(box, battery):
    require(box, ("network",))
    _LISTENER.settimeout(0.2)
    with pytest.raises(socket.timeout):
        _LISTENER.accept()


def test_programs_cannot_kill_their_server(box, battery):
    require(box, ("signals",))
    _, servers_before = battery
    assert servers_before == {s.proc.pid for s in box._all}


def test_environment_holds_no_secrets(box, battery):
    result, _ = battery[0]["environment secrets"]
    assert os.environ["HUBTOOL_TEST_SECRET"] == SECRET  # planted in the parent...
    assert SECRET not in result.value and API_KEY not in result.value  # ...and not visible inside
    assert "OPENAI_API_KEY" not in result.value and "HUBTOOL" not in result.value
    assert set(ast.literal_eval(result.value)) <= {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR"}


def test_os_system_ran_nothing(box, battery):
    require(box, ("seccomp",))
    result, _ = battery[0]["os.system"]
    assert result.value != "0"  # the shell never started
    assert not Path(SYSTEM_MARKER).exists()


def test_output_is_capped(box, battery):
    for case_id in ("print('x'*10**8)", "print forever"):
        result, _ = battery[0][case_id]
        assert len(result.stdout) == LIMITS.output_chars


def test_ctypes_unshare_fails(box, battery):
    require(box, ("seccomp",))
    assert battery[0]["unshare via ctypes"][0].value == "-1"
    assert battery[0]["SysV shared memory, 64 MB"][0].value == "-1"


# --- normal programs ---------------------------------------------------------------------------

NORMAL = [
    ("ans = 2 + 3", "ok", "5"),
    ("ans = 12 / 4", "ok", "3"),
    ("ans = 0.1 + 0.2", "ok", "0.30000000000000004"),
    ("from fractions import Fraction\nans = Fraction(3, 4)", "ok", "3/4"),
    ("from fractions import Fraction\nans = Fraction(8, 4)", "ok", "2"),
    ("from decimal import Decimal\nans = Decimal('1.50')", "ok", "1.5"),
    ("ans = 3 > 2", "ok", "True"),
    ("ans = 'forty-two'", "ok", "forty-two"),
    ("import numpy as np\nans = np.int64(7)", "ok", "7"),
    ("import numpy as np\nans = np.float32(0.5)", "ok", "0.5"),
    ("import numpy as np\nans = np.array([1, 2, 3]).sum()", "ok", "6"),
    ("import math\nans = math.comb(10, 3)", "ok", "120"),
    ("def solution():\n    return 7 * 6\nans = solution()", "ok", "42"),
    ("open('scratch.txt', 'w').write('hi')\nans = open('scratch.txt').read()", "ok", "hi"),
    ("ans = 1 +", "syntax", None),
    ("  ans = 1", "syntax", None),
    ("ans = '\x00'", "syntax", None),  # a NUL byte in the source
    ("ans = '\\x00'", "ok", "\x00"),
    ("x = 1\ny = 0\nans = x / y", "exception", None),
    ("x = 5\nprint(x)", "no_answer", None),
    ("ans = None", "no_answer", None),
]


@pytest.mark.parametrize(("code", "outcome", "value"), NORMAL, ids=[c[0][:30] for c in NORMAL])
def test_normal_program(box, code, outcome, value):
    result = box.run(code)
    assert (result.outcome, result.value) == (outcome, value), result
    assert result.runtime_s > 0 and result.isolation in ("full", "partial", "minimal")


def test_exception_error_is_one_line_with_the_line_number(box):
    result = box.run("x = 1\ny = 0\nans = x / y")
    assert result.error == "ZeroDivisionError: division by zero (line 3)"


def test_syntax_error_names_the_line(box):
    result = box.run("a = 1\nb = (2 +\n")
    assert result.outcome == "syntax" and "line 2" in result.error and "\n" not in result.error


def test_stdout_is_kept_and_every_program_starts_from_an_empty_directory(box):
    result = box.run("print('hello')\nopen('left-behind.txt', 'w').write('x')\nans = 1")
    assert result.stdout == "hello\n"
    for _ in range(3):  # whichever server answers, its work directory is empty again
        assert box.run("import os\nans = str(os.listdir('.'))").value == "[]"


def test_threads_that_finish_are_fine(box):
    code = "import threading\nout = []\nt = threading.Thread(target=lambda: out.append(6 * 7))\nt.start()\nt.join()\n"
    assert box.run(code + "ans = out[0]").value == "42"


def test_as_dict_is_a_json_row(box):
    row = box.run("print('hi')\nans = 5").as_dict()
    assert json.loads(json.dumps(row)) == row
    assert set(row) == {"outcome", "value", "error", "stdout", "runtime_s", "isolation", "denied"}


def test_run_many_keeps_order_and_is_fast_enough(box):
    codes = [f"ans = sum(range({i}))" for i in range(100)]
    start = time.monotonic()
    results = box.run_many(codes, workers=2)
    elapsed = time.monotonic() - start
    assert [r.value for r in results] == [str(sum(range(i))) for i in range(100)]
    # A fork server does ~300 programs/s here; a fresh Python per program ~50/s. This bound is
    # loose for a loaded CI machine, yet fails if every program started a new interpreter.
    assert elapsed < 5.0, f"100 programs took {elapsed:.1f} s"


def test_run_program_convenience():
    result = run_program("ans = 6 * 7", wall_s=3)
    assert isinstance(result, ExecResult) and result.value == "42"


def test_run_program_rejects_an_unknown_limit():
    with raises_one_line(match="wall_s"):
        run_program("ans = 1", wal_s=3)


@pytest.mark.parametrize("bad", [{"wall_s": 0}, {"cpu_s": 1.5}, {"memory_mb": -1}, {"output_chars": True}])
def test_limits_are_checked(bad):
    with raises_one_line(match=next(iter(bad))):
        Limits(**bad)


def test_unknown_mechanism_is_a_user_error():
    with raises_one_line(match="did you mean 'seccomp'"):
        Sandbox(disable={"secomp"})


# --- pure parts -------------------------------------------------------------------------------

RENDERED = [
    (5, "5"), (-0, "0"), (True, "True"), (3.0, "3"), (0.1, "0.1"), (1e-7, "0.0000001"), (1e20, "100000000000000000000"),
    (float("nan"), "nan"), (float("-inf"), "-inf"), (Fraction(3, 4), "3/4"), (Fraction(-6, 3), "-2"),
    (Decimal("1.50"), "1.5"), (Decimal("1E+3"), "1000"), (Decimal("-0.0"), "0"), ("x", "x"), ([1, 2], "[1, 2]"),
    (2 + 1j, "(2+1j)"),
]  # fmt: skip


@pytest.mark.parametrize(("value", "text"), RENDERED, ids=[repr(v) for v, _ in RENDERED])
def test_render(value, text):
    assert render(value, 1000) == text


@pytest.mark.parametrize(
    "value",
    [10**5000, 2**100000, Fraction(1, 10**2000), Decimal("1E+999999999"), "y" * 1001],
    ids=["10**5000", "2**100000", "1/10**2000", "1E+999999999", "long str"],  # str() of these ints raises
)
def test_render_refuses_what_is_too_long(value):
    with pytest.raises(BadAnswer):
        render(value, 1000)


def test_render_honours_an_answer_limit_past_4300_digits():
    before = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    try:
        assert render(10**5000, 6000) == "1" + "0" * 5000
    finally:
        if before:
            sys.set_int_max_str_digits(before)  # render raised it for this process


def test_a_missing_python_is_a_user_error():
    with raises_one_line(match="cannot start"):
        Sandbox(python="/nonexistent/python3").run(CHECK)


def test_render_numpy_and_sympy_scalars():
    np = pytest.importorskip("numpy")
    assert render(np.bool_(True), 100) == "True"
    assert render(np.float64(2.50), 100) == "2.5"
    sympy = pytest.importorskip("sympy")
    assert render(sympy.Rational(3, 6), 100) == "1/2"
    assert render(sympy.Integer(9), 100) == "9"


def test_probe_reports_what_went_wrong_in_the_child():
    assert in_child(lambda: None) == ""
    assert in_child(lambda: 1 / 0) == "ZeroDivisionError: division by zero"
    assert in_child(lambda: os.kill(os.getpid(), signal.SIGKILL)) == "the probe process died"


LIMIT_DICT = LIMITS.to_dict()


def test_judge_believes_no_forged_verdict():
    exited_ok = 0  # wait status of a normal exit
    assert judge(b'{"outcome": "timeout"}', exited_ok, 0.0, False, LIMIT_DICT)["outcome"] == "killed"
    assert judge(b'{"outcome": "ok"}', exited_ok, 0.0, False, LIMIT_DICT)["outcome"] == "killed"  # no value
    assert judge(b"not json", exited_ok, 0.0, False, LIMIT_DICT)["outcome"] == "killed"
    good = judge(b'{"outcome": "ok", "value": "' + b"9" * 5000 + b'"}', exited_ok, 0.0, False, LIMIT_DICT)
    assert good["outcome"] == "ok" and len(good["value"]) == LIMITS.answer_chars
    assert judge(b"", signal.SIGKILL, 1.2, False, LIMIT_DICT)["outcome"] == "timeout"  # CPU hard limit
    assert judge(b"", signal.SIGKILL, 0.1, False, LIMIT_DICT)["outcome"] == "killed"
    assert set(OUTCOMES) >= {"ok", "syntax", "exception", "timeout", "killed", "memory", "no_answer", "output_limit"}


# --- degraded isolation, recovery, unprivileged users -------------------------------------------


def test_missing_mechanism_is_loud_and_recorded(caplog, monkeypatch):
    import toolkit.sandbox.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "_warned", set())  # once per process: another test may have warned
    caplog.set_level("WARNING", logger="toolkit.sandbox")
    with Sandbox(LIMITS, workers=1, disable={"landlock"}, preload=()) as sandbox:
        result = sandbox.run(CHECK)
    assert result.value == "5" and result.isolation == "partial"
    assert any("landlock" in r.getMessage() and "not 'full'" in r.getMessage() for r in caplog.records)


def test_a_preload_that_fails_is_said(caplog):
    caplog.set_level("WARNING", logger="toolkit.sandbox")
    with Sandbox(LIMITS, workers=1, preload=("math", "no_such_module_here")) as sandbox:
        assert sandbox.run("import math\nans = math.floor(2.5)").value == "2"
        assert sandbox.hello["preload_failed"] == ["no_such_module_here (ModuleNotFoundError)"]
    assert any("no_such_module_here" in r.getMessage() for r in caplog.records)


def test_no_mechanisms_at_all_still_limits_and_recovers(caplog):
    """Without seccomp a program can kill its server: the program is reported, the server replaced."""
    caplog.set_level("WARNING", logger="toolkit.sandbox")
    with Sandbox(LIMITS, workers=1, disable={"namespaces", "landlock", "seccomp"}, preload=()) as sandbox:
        assert sandbox.run(CHECK).isolation == "minimal"
        assert any("'minimal'" in r.getMessage() for r in caplog.records)
        assert sandbox.run("while True:\n    pass").outcome == "timeout"
        killed = sandbox.run("import os\nos.kill(os.getppid(), 9)\nimport time\ntime.sleep(5)")
        assert killed.outcome == "killed" and "server died" in killed.error
        assert sandbox.run(CHECK).value == "5"


def test_a_hung_server_is_replaced(monkeypatch):
    monkeypatch.setattr(sandbox_client, "REPLY_SLACK_S", 0.5)
    with Sandbox(Limits(wall_s=0.5), workers=1, preload=()) as sandbox:
        assert sandbox.run(CHECK).value == "5"
        hung = next(iter(sandbox._all))
        os.kill(hung.proc.pid, signal.SIGSTOP)
        result = sandbox.run("ans = 1")
        assert result.outcome == "timeout" and "stopped answering" in result.error
        assert sandbox.run(CHECK).value == "5"
        assert hung.proc.poll() is not None  # killed, not left stopped


def test_servers_exit_when_the_parent_is_killed(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from toolkit.sandbox import Sandbox
        box = Sandbox(workers=1, preload=()).start()
        print(*[s.proc.pid for s in box._all], flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    pids = [int(p) for p in parent.stdout.readline().split()]
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert pids and not any(_alive(p) for p in pids)


def _in_a_fork(fn) -> str:
    """Run fn() in a forked copy of this process; what it returned, as text."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.write(write_end, str(fn()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    out = os.read(read_end, 1000).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    return out


def test_a_forked_process_starts_its_own_servers_and_leaves_the_parents_alone(box):
    box.run(CHECK)  # the parent's servers exist
    servers = {s.proc.pid for s in box._all}
    assert _in_a_fork(lambda: box.run("ans = 6 * 7").value) == "42"
    assert _in_a_fork(box.close) == "None"  # closing the copy must not close the parent's servers
    assert {s.proc.pid for s in box._all} == servers and all(s.alive() for s in box._all)
    assert box.run(CHECK).value == "5"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_works_for_an_unprivileged_user():
    """The whole design must work without root: run a few programs as `nobody`."""
    if os.geteuid() != 0:
        pytest.skip("already unprivileged: every other test here runs as an ordinary user")
    setpriv = shutil.which("setpriv")
    python = next((p for p in (sys.executable, "/usr/bin/python3") if _runs_as_nobody(setpriv, p)), None)
    if setpriv is None or python is None:
        pytest.skip("no setpriv, or no Python (and repository) that the nobody user can run")
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from toolkit.sandbox import Sandbox, Limits
        with Sandbox(Limits(wall_s=2, cpu_s=1), workers=1, preload=()) as box:
            out = [box.run(c).as_dict() for c in ("ans = 2 + 3", "open('/etc/passwd').read()", "while True: pass")]
            print(json.dumps({{"results": out, "hello": box.hello}}))
    """)
    done = subprocess.run(_as_nobody(setpriv) + [python, "-c", script], capture_output=True, text=True, cwd="/",
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ok, passwd, loop = report["results"]
    assert report["hello"]["mechanisms"]["uid"] == 65534
    assert (ok["outcome"], ok["value"]) == ("ok", "5")
    assert loop["outcome"] == "timeout"
    if report["hello"]["mechanisms"]["landlock_abi"] >= 1:
        assert passwd["outcome"] == "exception" and "PermissionError" in passwd["error"]


def _as_nobody(setpriv: str) -> list[str]:
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def _runs_as_nobody(setpriv: str | None, python: str) -> bool:
    if setpriv is None or not os.path.exists(python):
        return False
    # The sandbox starts its servers with sys.executable, so that must run as nobody too (a venv
    # whose base Python lives under /root does not, whatever the venv's own link says).
    # And the repository must be readable by nobody (a CI clone may sit under a private home).
    check = (
        f"import subprocess, sys; assert sys.version_info >= (3, 10); sys.path.insert(0, {str(REPO)!r}); "
        "import toolkit.sandbox; subprocess.run([sys.executable, '-c', ''], check=True)"
    )
    done = subprocess.run(_as_nobody(setpriv) + [python, "-c", check], capture_output=True, cwd="/")
    return done.returncode == 0
