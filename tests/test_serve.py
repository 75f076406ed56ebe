"""A teacher that starts itself (toolkit/teachers/serve.py, server_process.py).

The server here is a stand-in for `python -m llama_cpp.server` (tests/fixtures/llama_standin): the
same flags, a real HTTP server on 127.0.0.1, no model; it is first on PYTHONPATH, so hubtool starts
it exactly as it would start llama.cpp. CI has no llama.cpp; bench/teacher_serving.py runs the real one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.errors import UserError
from toolkit.teachers.serve import (
    ServedTeacher,
    TeacherServer,
    gguf_sha256,
    llama_server_command,
    llamacpp_command,
    resolve_gguf,
    served_teacher,
    served_weights,
    stable_port,
)
from toolkit.teachers.server_process import choose_port, port_is_free

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "fixtures" / "llama_standin"
LLAMA_SERVER = STANDIN / "bin" / "llama-server"  # stands in for llama.cpp's own binary
CONTENT = b"GGUF\x03\x00\x00\x00stand-in weights, not a model\n"
SHA = "da393c8b7179d9df4244d9fb23a3198cc1d0d043fe57cc62cb9773c782c7df9d"  # sha256 of CONTENT
ANSWER = "We add 2 and 3 step by step.\n2 + 3 = 5.\nThe answer is 5."  # what the stand-in says


@pytest.fixture
def gguf(tmp_path, monkeypatch) -> Path:
    """A small file with a GGUF header, and the stand-in server first on PYTHONPATH."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STANDIN), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HUBTOOL_LLAMA_PYTHON", raising=False)
    path = tmp_path / "coder-q4.gguf"
    path.write_bytes(CONTENT)
    return path


def live_processes(text: str) -> list[int]:
    """Pids of running (not zombie) processes whose command line holds `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def wait_gone(text: str, seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := live_processes(text)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def models_page(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/models", timeout=5) as reply:
        return json.loads(reply.read())


# -- it starts, answers, is stopped --------------------------------------------------------------------
def test_served_teacher_starts_answers_through_the_openai_backend_and_stops(gguf):
    from toolkit.teachers import load_teacher
    from toolkit.teachers.base import Request, SamplingParams

    with served_teacher({"gguf": str(gguf), "alias": "coder", "threads": 2, "n_ctx": 2048}) as teacher:
        url = teacher.spec.removeprefix("openai:coder@")
        assert teacher.spec.startswith("openai:coder@http://127.0.0.1:") and url.endswith("/v1")
        assert (teacher.sha256, teacher.file, teacher.source) == (SHA, gguf, str(gguf))
        [entry] = models_page(url)["data"]
        assert entry["argv"] == ["--model", str(gguf), "--model_alias", "coder", "--host", "127.0.0.1",
                                 "--port", url.split(":")[-1].removesuffix("/v1"), "--n_threads", "2",
                                 "--n_threads_batch", "2", "--n_ctx", "2048"]  # fmt: skip
        reply = load_teacher(teacher.spec).generate_many(
            [Request(({"role": "user", "content": "What is 2 + 3?"},), 1, SamplingParams(max_new_tokens=32))]
        )
        assert [c.text for c in reply[0]] == [ANSWER]
        assert served_weights(url) == {"gguf": "coder-q4.gguf", "file": "coder-q4.gguf", "sha256": SHA}
        assert live_processes(str(gguf)) == [teacher.pid]
    assert live_processes(str(gguf)) == []
    assert port_is_free(int(url.split(":")[-1].removesuffix("/v1")))
    assert served_weights(url) == {}
    assert not teacher.log.exists()  # a clean run leaves no log behind


def test_the_same_file_gets_the_same_port_run_after_run(gguf):
    """A URL-keyed teacher-call cache and the experiment's step fingerprints survive a restart."""
    assert stable_port(SHA) == 24139  # 20000 + 0xda393c8b % 10000
    if not port_is_free(24139):
        pytest.skip("port 24139 is in use on this machine")
    with served_teacher({"gguf": str(gguf), "alias": "coder"}) as first:
        pass
    with served_teacher({"gguf": str(gguf), "alias": "coder"}) as second:
        pass
    assert first.spec == second.spec == "openai:coder@http://127.0.0.1:24139/v1"


def test_a_taken_port_is_left_alone():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        other = choose_port(taken)
        assert other != taken and port_is_free(other)
    assert choose_port(taken) == taken  # free again


# -- nothing is left behind ----------------------------------------------------------------------------
PARENT = """
import sys, time
from toolkit.teachers.serve import served_teacher
with served_teacher({"gguf": sys.argv[1], "alias": "coder"}) as teacher:
    try:  # the pid inside the try: a signal sent the moment the test reads it must still reach `finally`
        print(teacher.pid, flush=True)
        time.sleep(120)
    finally:
        print("unwound", flush=True)
"""


@pytest.fixture
def start_parent():
    """A Python process that serves the teacher and waits; killed at the end, whatever happened."""
    started: list[subprocess.Popen] = []

    def start(gguf: Path) -> tuple[subprocess.Popen, int]:
        started.append(launch_parent(gguf))
        return started[-1], int(started[-1].first_line)

    yield start
    for parent in started:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def launch_parent(gguf: Path) -> subprocess.Popen:
    # SIGINT at its default, as a terminal gives it: a test run started in the background (CI, `cmd &`)
    # ignores SIGINT, and a child inherits that, so Ctrl-C would never reach it
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(gguf)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    parent.first_line = line = parent.stdout.readline()
    assert line.strip().isdigit(), parent.stderr.read() if parent.poll() is not None else line
    assert sorted(live_processes(str(gguf))) == sorted([parent.pid, int(line)])  # its argv names the file too
    return parent


def test_a_sigkilled_parent_leaves_no_server(gguf, start_parent):
    parent, pid = start_parent(gguf)
    parent.send_signal(signal.SIGKILL)  # no Python code runs: only the kernel's parent-death signal
    parent.wait(timeout=10)
    assert wait_gone(str(gguf)) == []


# Python ends on an uncaught KeyboardInterrupt by killing itself with SIGINT (returncode -2);
# SIGTERM becomes SystemExit(143) while a server runs.
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, -signal.SIGINT), (signal.SIGTERM, 128 + signal.SIGTERM)])
def test_ctrl_c_or_sigterm_unwinds_the_parent_and_stops_the_server(gguf, start_parent, sig, code):
    parent, pid = start_parent(gguf)
    parent.send_signal(sig)
    out, err = parent.communicate(timeout=20)
    assert out == "unwound\n"  # the `with` block was left through Python, not cut off
    assert parent.returncode == code, err
    assert live_processes(str(gguf)) == []  # stopped before the parent exited, not after


# -- a server that fails -------------------------------------------------------------------------------
def test_a_server_that_exits_at_once_is_one_line_naming_its_log(gguf, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "exit")
    with pytest.raises(UserError) as e:
        with served_teacher({"gguf": str(gguf), "alias": "coder"}):
            pytest.fail("the block must not run")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("the teacher server exited with code 3 before it answered (last line: error: "
                              f"failed to load model from {gguf}); full log: ")  # fmt: skip
    log = Path(message.rsplit("full log: ", 1)[1])
    assert log.read_text() == f"error: failed to load model from {gguf}\n"
    assert live_processes(str(gguf)) == []


def test_a_server_that_never_answers_is_stopped_at_the_deadline(gguf, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "silent")
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        with served_teacher({"gguf": str(gguf), "alias": "coder", "startup_timeout": 1.5}):
            pytest.fail("the block must not run")
    took = time.monotonic() - start
    message = str(e.value)
    assert "\n" not in message and "/v1/models within 1.5 s (stopped;" in message and "full log: " in message
    assert 1.5 <= took < 10
    assert live_processes(str(gguf)) == []


def test_a_port_that_answers_for_another_model_does_not_pass_the_health_check(gguf, monkeypatch, tmp_path):
    """Something else on the port (another model's server) must not be taken for ours."""
    from toolkit.teachers.server_process import ServerProcess, start, wait_ready

    with served_teacher({"gguf": str(gguf), "alias": "coder"}) as first:
        port = int(first.spec.rsplit(":", 1)[1].removesuffix("/v1"))
        monkeypatch.setenv("STANDIN_MODE", "silent")
        ours = ServerProcess(llamacpp_command(TeacherServer(str(gguf)), gguf, "other", port), port, "other",
                             tmp_path / "other.log")  # fmt: skip
        start(ours)
        with raises_one_line(match="did not answer on http://127.0.0.1:.*/v1/models within 1 s"):
            wait_ready(ours, timeout=1.0)
        assert live_processes(str(gguf)) == [first.pid]  # ours stopped at the deadline, the other untouched


# -- where the file comes from, and its identity --------------------------------------------------------
def test_path_and_gguf_dir_override_the_hub_and_a_missing_file_says_how_to_get_it(gguf, tmp_path, monkeypatch):
    hub = "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert resolve_gguf(TeacherServer(hub, path=str(gguf))) == gguf
    monkeypatch.delenv("HUBTOOL_GGUF_DIR", raising=False)
    with pytest.raises(UserError) as e:
        resolve_gguf(TeacherServer(hub))
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("cannot get qwen2.5-coder-1.5b-instruct-q4_k_m.gguf from "
                                   "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (")  # fmt: skip
    assert str(e.value).endswith("download it once with `hf download Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF "
                                 "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`, or give `path:` or "
                                 "$HUBTOOL_GGUF_DIR (a folder that holds the file)")  # fmt: skip
    folder = tmp_path / "ggufs"
    folder.mkdir()
    (folder / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").write_bytes(CONTENT)
    monkeypatch.setenv("HUBTOOL_GGUF_DIR", str(folder))
    assert resolve_gguf(TeacherServer(hub)) == folder / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def test_a_hub_file_in_the_hf_cache_resolves_offline(gguf, tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    repo = cache / "models--Qwen--Qwen2.5-Coder-0.5B-Instruct-GGUF"
    commit = "a" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "blobs" / SHA).write_bytes(CONTENT)  # the HF cache's layout: the file is a link to its blob
    (repo / "snapshots" / commit / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf").symlink_to(repo / "blobs" / SHA)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    with served_teacher({"gguf": spec, "backend": "transformers"}) as teacher:  # named by the file, not the blob
        file = repo / "snapshots" / commit / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
        assert teacher == ServedTeacher(f"transformers:{file}", spec, file, SHA)
        assert teacher.identity() == {"gguf": spec, "file": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "sha256": SHA}


def test_not_a_gguf_and_bad_hub_names_are_one_line_errors(tmp_path):
    text = tmp_path / "model.gguf"
    text.write_text("not weights")
    with raises_one_line(match=r"model.gguf \(from gguf:\) is not a GGUF file \(no GGUF header\)$"):
        resolve_gguf(TeacherServer(str(text)))
    with raises_one_line(match="does not exist"):
        resolve_gguf(TeacherServer(str(tmp_path / "absent.gguf")))
    with raises_one_line(match="'hf:Qwen/model.gguf' is not a Hub file; write hf:ORG/NAME/FILE.gguf"):
        resolve_gguf(TeacherServer("hf:Qwen/model.gguf"))


def test_the_sha256_is_hashed_once_per_path_size_and_mtime(gguf):
    assert gguf_sha256(gguf) == SHA
    stamp = gguf.stat()
    gguf.write_bytes(CONTENT.replace(b"model\n", b"modeL\n"))  # same size
    os.utime(gguf, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert gguf_sha256(gguf) == SHA  # remembered, not re-read
    os.utime(gguf, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
    assert gguf_sha256(gguf) == "9129063727fce8a44a807117cb6ff373319028d6689d27539429a22474c2b048"


# -- the experiment file's mapping, and the command --------------------------------------------------------
def test_the_mapping_is_checked_with_a_hint_for_a_typo():
    assert TeacherServer.from_config("hf:A/B/c.gguf") == TeacherServer("hf:A/B/c.gguf")
    with raises_one_line(match=r"unknown key 'alais' \(did you mean 'alias'\?\)"):
        TeacherServer.from_config({"gguf": "hf:A/B/c.gguf", "alais": "x"})
    with raises_one_line(match="backend 'vllm' is not one of llamacpp, llama-server, transformers"):
        TeacherServer.from_config({"gguf": "hf:A/B/c.gguf", "backend": "vllm"})
    with raises_one_line(match=r"parallel: 4 needs backend: llama-server \(the llamacpp backend answers one "
                               r"request at a time\)"):  # fmt: skip
        TeacherServer.from_config({"gguf": "hf:A/B/c.gguf", "parallel": 4})
    for bad in (0, "4", True):
        with raises_one_line(match="parallel must be a whole number of slots >= 1"):
            TeacherServer.from_config({"gguf": "hf:A/B/c.gguf", "backend": "llama-server", "parallel": bad})
    with raises_one_line(match="teacher_server needs `gguf: hf:ORG/NAME/FILE.gguf`"):
        TeacherServer.from_config({"path": "x.gguf"})


def test_the_llamacpp_command_runs_the_configured_python(monkeypatch):
    monkeypatch.setenv("HUBTOOL_LLAMA_PYTHON", "/opt/llama/bin/python")
    server = TeacherServer("hf:A/B/c.gguf", threads=3, n_ctx=8192)
    assert llamacpp_command(server, Path("/m/c.gguf"), "coder", 24139) == [
        "/opt/llama/bin/python", "-m", "llama_cpp.server", "--model", "/m/c.gguf", "--model_alias", "coder",
        "--host", "127.0.0.1", "--port", "24139", "--n_threads", "3", "--n_threads_batch", "3",
        "--n_ctx", "8192"]  # fmt: skip
    explicit = TeacherServer("hf:A/B/c.gguf", python="/venv/bin/python", threads=1)
    assert llamacpp_command(explicit, Path("/m/c.gguf"), "c", 1)[0] == "/venv/bin/python"


# -- llama.cpp's own server: parallel slots ------------------------------------------------------------
def test_llama_server_serves_with_its_slots_and_names_its_file(gguf, monkeypatch):
    from toolkit.teachers import load_teacher
    from toolkit.teachers.base import Request, SamplingParams

    monkeypatch.setenv("HUBTOOL_LLAMA_SERVER", str(LLAMA_SERVER))
    config = {"gguf": str(gguf), "alias": "coder", "backend": "llama-server", "parallel": 4, "threads": 2,
              "n_ctx": 2048}  # fmt: skip
    with served_teacher(config) as teacher:
        url = teacher.spec.removeprefix("openai:coder@")
        [entry] = models_page(url)["data"]
        # 4 slots of 2048 tokens each: llama-server shares --ctx-size among its slots
        assert entry["argv"] == ["--model", str(gguf), "--alias", "coder", "--host", "127.0.0.1", "--port",
                                 url.split(":")[-1].removesuffix("/v1"), "--threads", "2", "--threads-batch", "2",
                                 "--parallel", "4", "--ctx-size", "8192", "--jinja", "--no-webui"]  # fmt: skip
        backend = load_teacher(teacher.spec)
        reply = backend.generate_many(
            [Request(({"role": "user", "content": f"What is {i} + 3?"},), 1, SamplingParams(max_new_tokens=32))
             for i in range(4)]  # fmt: skip
        )
        assert [c.text for r in reply for c in r] == [ANSWER] * 4
        assert backend.weights["model_path"] == str(gguf)  # read from llama-server's /props
        assert live_processes(str(gguf)) == [teacher.pid]
    assert live_processes(str(gguf)) == []


def test_llama_server_missing_is_one_line_saying_where_it_looked(gguf, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no llama-server on it
    monkeypatch.delenv("HUBTOOL_LLAMA_SERVER", raising=False)
    with raises_one_line(match="backend llama-server, but there is no llama-server on the PATH; install llama.cpp"):
        with served_teacher({"gguf": str(gguf), "backend": "llama-server"}):
            pytest.fail("the block must not run")
    with raises_one_line(match=r"no '/opt/none/llama-server' \(from \$HUBTOOL_LLAMA_SERVER\)"):
        monkeypatch.setenv("HUBTOOL_LLAMA_SERVER", "/opt/none/llama-server")
        with served_teacher({"gguf": str(gguf), "backend": "llama-server"}):
            pytest.fail("the block must not run")
    assert llama_server_command(TeacherServer("x.gguf", backend="llama-server"), "/b/llama-server", Path("/m/x.gguf"),
                                "x", 1)[:3] == ["/b/llama-server", "--model", "/m/x.gguf"]  # fmt: skip


def test_an_error_in_the_block_stops_the_server_and_keeps_its_log(gguf):
    with pytest.raises(RuntimeError, match="build failed"):
        with served_teacher({"gguf": str(gguf), "alias": "coder"}) as teacher:
            raise RuntimeError("build failed")
    assert live_processes(str(gguf)) == []
    assert teacher.log.exists()


def test_on_demand_starts_the_server_only_when_a_step_asks_for_it(gguf):
    from toolkit.teachers.serve import TeacherOnDemand

    with TeacherOnDemand({"gguf": str(gguf), "alias": "coder"}) as teacher:
        assert teacher.fingerprint == f"llamacpp:coder sha256={SHA}"  # the file is named, nothing started
        assert live_processes(str(gguf)) == []
        spec = teacher.spec
        assert spec == teacher.spec and spec.startswith("openai:coder@http://127.0.0.1:")  # started once
        assert live_processes(str(gguf)) == [teacher.served.pid]
    assert live_processes(str(gguf)) == []


def test_atexit_stops_a_server_left_running_outside_a_with_block(gguf):
    """Hooks run last-registered first: `check` (registered before the module is imported) sees
    whether the module's own hook stopped the server, before the parent-death signal could."""
    script = """
import atexit, os, sys
def check():
    state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] if os.path.exists(f"/proc/{pid}") else "gone"
    print("server at exit:", "gone" if state in ("gone", "Z") else "running", flush=True)
atexit.register(check)
from toolkit.teachers.serve import served_teacher
cm = served_teacher({"gguf": sys.argv[1], "alias": "coder"})  # kept: a dropped one stops at once
pid = cm.__enter__().pid
sys.exit(0)
"""
    done = subprocess.run([sys.executable, "-c", script, str(gguf)], capture_output=True, text=True, timeout=60)
    assert done.stdout == "server at exit: gone\n", done.stderr
    assert live_processes(str(gguf)) == []


def test_a_forked_worker_that_exits_through_python_leaves_the_server_to_its_owner(gguf):
    """A worker forked mid-build (a pool, a dataloader) that unwinds the `with` and runs the atexit
    hooks it inherited must not stop the server its parent is still using."""
    script = """
import os, sys, urllib.request
from toolkit.teachers.serve import served_teacher
with served_teacher({"gguf": sys.argv[1], "alias": "coder"}) as teacher:
    child = os.fork()
    if child == 0:
        sys.exit(0)
    os.waitpid(child, 0)
    print(urllib.request.urlopen(teacher.spec.split("@", 1)[1] + "/models").status, flush=True)
"""
    done = subprocess.run([sys.executable, "-c", script, str(gguf)], capture_output=True, text=True, timeout=60)
    assert done.stdout == "200\n", done.stderr
    assert live_processes(str(gguf)) == []


def test_a_python_without_llama_cpp_says_how_to_install_it(gguf, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # no stand-in: the real `python -m llama_cpp.server`
    with pytest.raises(UserError) as e:
        with served_teacher({"gguf": str(gguf), "python": sys.executable}):
            pytest.fail("the block must not run")
    assert "\n" not in str(e.value)
    assert (f"(last line: {sys.executable}: Error while finding module specification for 'llama_cpp.server' "
            "(ModuleNotFoundError: No module named 'llama_cpp')); install it with pip install "
            "'hubtool[llamacpp]', or set `python:` or $HUBTOOL_LLAMA_PYTHON to a Python that has "
            "llama-cpp-python[server]; full log: ") in str(e.value)  # fmt: skip
