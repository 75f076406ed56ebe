"""An experiment's `teacher_server:`: one line names the teacher, `hubtool run` starts it when a step
that reads `{teacher}` runs and stops it for sure; builds against it name the file and its sha256.

The server is the stand-in for `python -m llama_cpp.server` (tests/fixtures/llama_standin, see
tests/test_serve.py): the same flags, a real HTTP server, no model; it answers every question with
"... The answer is 5."
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.errors import UserError
from toolkit.experiments import load_experiment, run_experiment

from .test_serve import live_processes

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "fixtures" / "llama_standin"
CONTENT = b"GGUF\x03\x00\x00\x00a stand-in teacher for an experiment\n"
SHA = "eb7c40794685a81a97383801bc52286f8bb33fdf270022c39bebef64d3a250c9"  # sha256sum of CONTENT
PORT = 28729  # stable_port(SHA): 20000 + 0xeb7c4079 % 10000


@pytest.fixture
def gguf(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(STANDIN), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HUBTOOL_LLAMA_PYTHON", raising=False)
    monkeypatch.delenv("STANDIN_MODE", raising=False)
    path = tmp_path / "teacher.gguf"
    path.write_bytes(CONTENT)
    return path


def _sums(path: Path, answer: int = 5) -> Path:
    path.write_text(json.dumps({"question": "What is 2 + 3?", "answer": answer}) + "\n")
    return path


def _experiment(tmp_path: Path, gguf: Path, steps: dict, name: str = "exp.yaml") -> Path:
    spec = {"name": "served", "decontaminate": False,
            "teacher_server": {"gguf": str(gguf), "alias": "coder", "threads": 1}, "steps": steps}  # fmt: skip
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _cot(source: Path) -> dict:
    return {"build": "cot", "with": {"source": f"file:{source}", "samples": 1, "teacher": "{teacher}", "concurrency": 1}}


@contextlib.contextmanager
def _taken(port: int):
    """Something listens on `port` while the block runs (ours, unless something else already does)."""
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no listener
        with contextlib.suppress(OSError):
            busy.bind(("127.0.0.1", port))
            busy.listen()
        yield


def _run(path: Path, work: Path, **kw):
    lines: list[str] = []
    return run_experiment(path, workdir=work, echo=lines.append, **kw), lines


# -- the run ----------------------------------------------------------------------------------------------
def test_the_teacher_starts_for_its_step_stops_after_it_and_an_up_to_date_rerun_starts_nothing(
    gguf, tmp_path, monkeypatch
):
    from toolkit.experiments import runner
    from toolkit.rundir import read_manifest

    alive_during_push: list[list[int]] = []
    push = runner.EXECUTE["push"]

    def watched_push(*args):
        alive_during_push.append(live_processes(str(gguf)))
        return push(*args)

    monkeypatch.setitem(runner.EXECUTE, "push", watched_push)
    steps = {"cot": _cot(_sums(tmp_path / "sums.jsonl")), "data": {"push": "cot", "name": "exp/served-cot"}}
    path, work = _experiment(tmp_path, gguf, steps), tmp_path / "work"
    with _taken(PORT):  # the file's own port is taken: this run's server gets another one
        first, lines = _run(path, work)
    assert first.actions == {"cot": "run", "data": "run"}
    manifest = read_manifest(work / "builds" / "cot")
    assert manifest.rows == 1 and manifest.teacher.startswith("openai:coder@http://127.0.0.1:")
    assert manifest.teacher != f"openai:coder@http://127.0.0.1:{PORT}/v1"
    assert lines[:3] == ["[cot] build: running  cot", f"teacher_server: starting {gguf} for step 'cot'",
                         "teacher_server: stopped (no later step reads {teacher})"]  # fmt: skip
    assert alive_during_push == [[]]  # stopped before the push: nothing later needs it
    assert live_processes(str(gguf)) == []

    monkeypatch.setenv("STANDIN_MODE", "exit")  # a server started now would fail the run
    again, lines = _run(path, work)  # the port is free now: a URL-keyed fingerprint would differ
    assert again.actions == {"cot": "skip", "data": "skip"}
    assert lines[:2] == ["[cot] build: up to date, skipped", "[data] push: up to date, skipped"]

    gguf.write_bytes(CONTENT.replace(b"experiment", b"experimenT"))  # other weights, same name and alias
    os.utime(gguf, ns=(0, 10**18))
    monkeypatch.delenv("STANDIN_MODE")
    third, _ = _run(path, work)
    assert third.actions["cot"] == "run"
    assert live_processes(str(gguf)) == []


def test_a_failing_later_step_leaves_no_server(gguf, tmp_path):
    steps = {"cot": _cot(_sums(tmp_path / "right.jsonl")), "wrong": _cot(_sums(tmp_path / "wrong.jsonl", answer=7))}
    path = _experiment(tmp_path, gguf, steps)
    with raises_one_line(match="step 'wrong' built no rows") as failed:
        _run(path, tmp_path / "work")  # the stand-in's "The answer is 5." is wrong for 7: no row kept
    # stopped by the runner, not by the garbage collector: the traceback `failed` holds keeps the
    # runner's frames, and with them anything it left open
    assert failed.traceback and live_processes(str(gguf)) == []


def test_ctrl_c_in_a_step_between_two_that_read_the_teacher_leaves_no_server(gguf, tmp_path, monkeypatch):
    from toolkit.experiments import runner

    alive: list[list[int]] = []

    def interrupted(*args):
        alive.append(live_processes(str(gguf)))
        raise KeyboardInterrupt

    monkeypatch.setitem(runner.EXECUTE, "push", interrupted)
    source = _sums(tmp_path / "sums.jsonl")
    steps = {"cot": _cot(source), "data": {"push": "cot", "name": "exp/served-cot"}, "more": _cot(source)}
    with pytest.raises(KeyboardInterrupt) as interrupt:
        _run(_experiment(tmp_path, gguf, steps), tmp_path / "work")
    assert len(alive) == 1 and len(alive[0]) == 1  # the server was up when Ctrl-C came (`more` reads it)
    assert interrupt.traceback and live_processes(str(gguf)) == []  # the runner's frames still held, as above


# -- the dry run -----------------------------------------------------------------------------------------
def test_a_dry_run_names_the_file_and_resolves_teacher_without_starting_it(gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDIN_MODE", "exit")
    path = _experiment(tmp_path, gguf, {"cot": _cot(_sums(tmp_path / "sums.jsonl"))})
    plan, lines = _run(path, tmp_path / "work", dry_run=True)
    assert plan.actions == {"cot": "run"}
    assert lines == ["teacher_server: {teacher} = openai:coder@http://127.0.0.1:28729/v1 (llamacpp serving "
                     "teacher.gguf, sha256 eb7c40794685); started when a step that reads it runs",
                     "[cot] build: run  cot"]  # fmt: skip


def test_cpu_effect_names_the_official_hub_file_and_dry_runs_with_or_without_it(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HUBTOOL_GGUF_DIR", raising=False)
    path = ROOT / "experiments" / "cpu-effect.yaml"
    experiment = load_experiment(path)
    assert experiment.teacher_server.gguf == ("hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/"
                                              "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")  # fmt: skip
    assert experiment.step("cot").spec["with"]["teacher"] == "{teacher}"
    assert [s.id for s in experiment.steps if s.uses_teacher] == ["cot"]
    _, lines = _run(path, tmp_path / "work", dry_run=True)
    assert lines[0] == ("teacher_server: {teacher} = openai:qwen-coder-1.5b@http://127.0.0.1:PORT/v1 (llama-server "
                        "serving qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, not on this machine: the run downloads it "
                        "from Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (offline: give path: or $HUBTOOL_GGUF_DIR)); "
                        "started when a step that reads it runs")  # fmt: skip
    folder = tmp_path / "ggufs"
    folder.mkdir()
    (folder / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").write_bytes(CONTENT)
    monkeypatch.setenv("HUBTOOL_GGUF_DIR", str(folder))
    _, lines = _run(path, tmp_path / "work", dry_run=True)
    assert lines[0] == ("teacher_server: {teacher} = openai:qwen-coder-1.5b@http://127.0.0.1:28729/v1 (llama-server "
                        "serving qwen2.5-coder-1.5b-instruct-q4_k_m.gguf, sha256 eb7c40794685); started when a step "
                        "that reads it runs")  # fmt: skip


# -- the file's checks -----------------------------------------------------------------------------------
KNOWN = "gguf, path, revision, alias, backend, threads, n_ctx, parallel, python, binary, port, startup_timeout"


@pytest.mark.parametrize(
    ("server", "steps", "problems"),
    [
        ({"gguf": "coder.gguf", "alais": "coder"}, {"teacher": {"push": "x", "name": "a/b"}},
         ["teacher_server: unknown key 'alais' (did you mean 'alias'?); known: " + KNOWN,
          "step 'teacher': the id is taken by {teacher}, the experiment's teacher_server; rename the step"]),
        ({"gguf": "hf:Qwen/model.gguf", "threads": "two", "alias": "my coder"}, {},
         ["teacher_server: threads: 'two' is not an integer",
          "teacher_server: alias: 'my coder' is not a model name (letters, digits, '-', '_', '.')",
          "teacher_server: gguf: 'hf:Qwen/model.gguf' is not a Hub file; write hf:ORG/NAME/FILE.gguf, e.g. "
          "hf:Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"]),
        (None, {},
         ["step 'cot': {teacher} names the experiment's teacher, but the file has no "
          "`teacher_server: {gguf: hf:ORG/NAME/FILE.gguf}`"]),
        ({"alias": "coder"}, {},
         ["teacher_server needs `gguf: hf:ORG/NAME/FILE.gguf` (or a local .gguf path)"]),
    ],
)  # fmt: skip
def test_teacher_server_problems_are_listed_with_the_others(tmp_path, server, steps, problems):
    spec = {"name": "x", "steps": {**steps, "cot": {"build": "cot", "with": {"source": "gym:chain_sum", "teacher": "{teacher}"}},
                                   "eval": {"eval": {"base": "smollm2-135m"}, "tasks": ["gym_chain_sun"]}}}  # fmt: skip
    if server is not None:
        spec["teacher_server"] = server
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(UserError) as e:
        load_experiment(path)
    typo = "step 'eval': eval: 'gym_chain_sun' is no eval suite or task (did you mean 'gym_chain_sum'?)"
    head = f"experiment {path} has {len(problems) + 1} problems; nothing was run:"
    assert str(e.value).split("\n") == [head, *(f"  {p}" for p in [*problems, typo])]


# -- the identity of a served teacher ---------------------------------------------------------------------
def test_a_build_against_a_served_teacher_records_the_file_and_its_sha256(gguf, tmp_path):
    from toolkit.cli import main
    from toolkit.rundir import read_manifest
    from toolkit.teachers.serve import served_teacher

    with served_teacher({"gguf": str(gguf), "alias": "coder"}) as teacher:
        result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", f"file:{_sums(tmp_path / 's.jsonl')}",
                                           "--teacher", teacher.spec, "--samples", "1", "--out", str(tmp_path / "run"),
                                           "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
        assert result.exit_code == 0, result.output
    [model] = read_manifest(tmp_path / "run").models
    assert model.weights == {"id": "coder", "owned_by": "me", "gguf": "teacher.gguf", "file": "teacher.gguf",
                             "sha256": SHA}  # fmt: skip
    card = (tmp_path / "run" / "README.md").read_text()
    assert f"sha256 `{SHA}`" in card and "did not say which weights" not in card
