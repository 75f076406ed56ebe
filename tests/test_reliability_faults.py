"""A misbehaving OpenAI-compatible server loses nothing (issue 11).

For every fault the server can inject (tests/fault_server.py), a build finishes, every problem is
accounted for in the manifest counts, failed.jsonl names every failed call, and a re-run against
the healed server makes exactly the missing calls and ends with the rows of a clean build. Also:
empty answers are never cached, the cache tells servers apart, calls time out and retry visibly,
and each sample is cached the moment its call returns.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.assertions import assert_one_line
from toolkit.cli import main
from toolkit.rundir import FAILED, data_file, read_manifest

from .fault_server import MODES, FaultServer, cot_args, write_sums

ROOT = Path(__file__).parents[1]
PROBLEMS, SAMPLES = 6, 2
FAULTY = (1, 4)  # the problems whose calls get the fault


def _faulty(question: str) -> bool:
    return any(f"What is {i} + {i}?" in question for i in FAULTY)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Retries wait 10 ms (Retry-After still honoured): the fault server answers at once."""
    from toolkit.teachers import openai_calls

    monkeypatch.setattr(openai_calls, "backoff_delay", lambda attempt, base, retry_after=None: 0.01
                        if retry_after is None else retry_after)  # fmt: skip


@pytest.fixture(scope="module")
def clean_rows(tmp_path_factory) -> list[dict]:
    """The rows of a build against a healthy server, with a cache of its own."""
    tmp = tmp_path_factory.mktemp("clean")
    write_sums(tmp / "sums.jsonl", PROBLEMS)
    with FaultServer("ok") as server:
        result = CliRunner().invoke(main, cot_args(server.url, tmp / "sums.jsonl", tmp / "run", tmp / "c.sqlite"))
    assert result.exit_code == 0, result.output
    return _rows(tmp / "run")


def _rows(run: Path) -> list[dict]:
    return pq.read_table(data_file(run)).to_pylist()


def _failed(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / FAILED).read_text().splitlines()]


def _cached(cache: Path) -> list[str]:
    if not cache.exists():
        return []
    with sqlite3.connect(cache) as db:
        try:
            return [row[0] for row in db.execute("SELECT text FROM samples")]
        except sqlite3.OperationalError:  # no table yet
            return []


@pytest.mark.parametrize("mode", [m for m in MODES if m not in ("ok", "echo_ok", "huge_usage")])  # huge_usage: not a fault
def test_each_fault_loses_nothing_and_a_rerun_makes_only_the_missing_calls(tmp_path, mode, clean_rows, caplog):
    questions = write_sums(tmp_path / "sums.jsonl", PROBLEMS)
    with FaultServer(mode, faulty=_faulty) as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite")
        first = CliRunner().invoke(main, args)
        assert first.exit_code == 0, first.output
        assert "Traceback" not in first.output and "0 failed" not in first.output

        c = read_manifest(tmp_path / "run").counts
        assert c["problems"] == PROBLEMS and c["failed"] == len(FAULTY)
        assert c["samples"] + c["failed"] * SAMPLES == PROBLEMS * SAMPLES  # every sample asked is accounted for
        assert c["kept"] == c["samples"]  # --keep all: nothing dropped
        failed = _failed(tmp_path / "run")
        assert sorted(f["question"] for f in failed) == [questions[i] for i in FAULTY]
        assert all(f["error"] and f["role"] == "teacher" for f in failed)
        assert all(text.strip() for text in _cached(tmp_path / "c.sqlite"))  # no empty answer cached
        if mode in ("error", "429", "garbage", "html", "no_choices", "null_choices", "no_message", "hang", "close"):
            assert any("retrying a call (1/1)" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

        server.mode = "ok"
        before = server.answered()
        again = CliRunner().invoke(main, args)
        assert again.exit_code == 0, again.output
        assert server.answered() - before == len(FAULTY) * SAMPLES  # exactly the missing samples, nothing else
        assert read_manifest(tmp_path / "run").counts["failed"] == 0 and _failed(tmp_path / "run") == []
    assert _rows(tmp_path / "run") == clean_rows


def test_a_hung_server_costs_timeout_times_tries_not_an_hour(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 2)
    with FaultServer("hang") as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite", samples=1,
                        more=["--timeout", "0.3", "--max-retries", "2"])  # fmt: skip
        start = time.monotonic()
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert time.monotonic() - start < 15
        assert server.answered() == 2 * 3  # each call: the first try and 2 retries
    assert {f["error"] for f in _failed(tmp_path / "run")} == {"no answer within 0.3 s (--timeout) (after 2 retries)"}


def test_timeout_and_retry_defaults_and_checks(tmp_path):
    from toolkit.teachers.openai_backend import DEFAULT_RETRIES, DEFAULT_TIMEOUT, OpenAITeacher

    t = OpenAITeacher.from_spec("m@http://127.0.0.1:9/v1")
    assert (t.timeout, t.max_retries) == (DEFAULT_TIMEOUT, DEFAULT_RETRIES) and DEFAULT_TIMEOUT * (DEFAULT_RETRIES + 1) <= 900
    t = OpenAITeacher.from_spec("m@http://127.0.0.1:9/v1", timeout=7.5, max_retries=0)
    assert (t.timeout, t.max_retries) == (7.5, 0)
    for flags, message in [(["--timeout", "0"], "--timeout must be"), (["--timeout", "nan"], "--timeout must be"),
                           (["--max-retries", "-1"], "--max-retries must be at least 0")]:  # fmt: skip
        result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", "gym:chain_sum", *flags,
                                           "--out", str(tmp_path / "run")])  # fmt: skip
        assert_one_line(result, message)


def test_empty_answers_are_failures_and_never_cached(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 3)
    with FaultServer("null") as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite")
        assert CliRunner().invoke(main, args).exit_code == 0
        assert read_manifest(tmp_path / "run").counts["failed"] == 3 and _cached(tmp_path / "c.sqlite") == []
        assert "empty completion" in _failed(tmp_path / "run")[0]["error"]
        server.mode = "ok"
        before = server.answered()
        assert CliRunner().invoke(main, args).exit_code == 0
        assert server.answered() - before == 3 * SAMPLES  # nothing was cached: every sample asked again
    assert all(r["completion"][0]["content"] for r in _rows(tmp_path / "run"))


def test_the_cache_tells_servers_and_served_weights_apart_without_credentials(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 2)
    cache = tmp_path / "c.sqlite"
    with FaultServer("ok") as good, FaultServer("error") as broken:
        assert CliRunner().invoke(main, cot_args(good.url, tmp_path / "sums.jsonl", tmp_path / "a", cache)).exit_code == 0
        # another server answering 500 to everything does not "succeed" from the first one's answers
        result = CliRunner().invoke(main, cot_args(broken.url, tmp_path / "sums.jsonl", tmp_path / "b", cache))
        assert result.exit_code == 0 and broken.answered() > 0
        assert read_manifest(tmp_path / "b").counts["failed"] == 2
        # the same URL serving other weights (its /v1/models `root`) is another teacher too
        good.root = "/weights/fault-model-v2"
        before = good.answered()
        assert CliRunner().invoke(main, cot_args(good.url, tmp_path / "sums.jsonl", tmp_path / "c", cache)).exit_code == 0
        assert good.answered() - before == 2 * SAMPLES
        # a credential in the URL is not part of the identity, and never stored
        secret_url = good.url.replace("http://", "http://user:NotInTheCache123@")
        before = good.answered()
        assert CliRunner().invoke(main, cot_args(secret_url, tmp_path / "sums.jsonl", tmp_path / "d", cache)).exit_code == 0
        assert good.answered() == before
    assert b"NotInTheCache123" not in cache.read_bytes()
    served = read_manifest(tmp_path / "a").models[0].served
    assert served == "fault-model fp_fault"  # what the server said answered, in the manifest


def test_openai_sampling_values_are_checked_before_any_call(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 2)
    with FaultServer("ok") as server:
        result = CliRunner().invoke(main, cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run",
                                                   tmp_path / "c.sqlite", more=["--temperature", "2.5"]))  # fmt: skip
        assert_one_line(result, "--temperature 2.5 is outside")
        assert server.answered() == 0


def _python(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "toolkit", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_sample_is_cached_when_its_call_returns_not_when_its_problem_ends(tmp_path, clean_rows):
    """A server that ignores n gets one call per sample, the first wave covering every problem once:
    killed after 4 finished calls, the build has kept 4 samples, and the re-run asks only the rest."""
    write_sums(tmp_path / "sums.jsonl", PROBLEMS)
    cache = tmp_path / "c.sqlite"
    with FaultServer("ok", delay=0.4) as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", cache, concurrency=2,
                        more=["--timeout", "10"])  # fmt: skip
        build = _python(*args)
        _wait(lambda: server.finished >= 4 or build.poll() is not None)
        time.sleep(0.15)  # the client stores what it got; the next two calls are still out
        build.send_signal(signal.SIGKILL)
        build.wait()
        kept = len(_cached(cache))
        assert kept >= 3, f"{kept} samples cached after {server.finished} finished calls"
        assert kept < PROBLEMS * SAMPLES
        server.delay = 0
        before = server.answered()
        rerun = _python(*args)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err[-2000:]
        assert server.answered() - before == PROBLEMS * SAMPLES - kept  # no finished call asked again
    assert _rows(tmp_path / "run") == clean_rows


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 2)
    with FaultServer("ok", delay=30) as server:
        # As from a terminal: a test run started in the background (`cmd &` in a script) ignores SIGINT,
        # and its children would inherit that and never see the Ctrl-C.
        build = _python(*cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite"),
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        _wait(lambda: server.answered() > 0 or build.poll() is not None)
        build.send_signal(signal.SIGINT)
        _, err = build.communicate(timeout=60)
    assert build.returncode == 130, err
    assert err.strip().splitlines() == ["interrupted; finished teacher calls are cached, so the same command resumes"]


def test_a_build_without_a_terminal_prints_progress_while_it_waits(tmp_path, monkeypatch):
    from toolkit.builders import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.3)
    write_sums(tmp_path / "sums.jsonl", 2)
    with FaultServer("ok", delay=1.2) as server:
        result = CliRunner().invoke(main, cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run",
                                                   tmp_path / "c.sqlite", samples=1, more=["--timeout", "5"]))  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("cot: 0/2 problems")]
    # said while nothing had finished yet: both requests wait, both calls are out (limit 4)
    assert lines and "2 requests waiting, 2/4 calls in flight" in lines[-1], result.output


def test_the_progress_line_counts_tokens_as_samples_come_not_as_problems_finish(tmp_path, monkeypatch):
    """A problem that waits on several samples finishes late (a preference build's first problem takes
    minutes on a CPU); its samples that came already count in tok/s, which does not read 0 meanwhile."""
    from toolkit.builders import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.3)
    write_sums(tmp_path / "sums.jsonl", 1)
    calls = []

    def first_fast_then_hang(question: str) -> str:
        calls.append(question)
        return "ok" if len(calls) == 1 else "hang"

    with FaultServer("ok", faulty=first_fast_then_hang) as server:
        result = CliRunner().invoke(main, cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run",
                                                   tmp_path / "c.sqlite", samples=2, more=["--timeout", "3"]))  # fmt: skip
    lines = [line for line in result.output.splitlines() if line.startswith("cot: 0/1 problems")]
    assert lines, result.output
    rates = [int(re.search(r"(\d+) tok/s", line).group(1)) for line in lines]
    assert rates[-1] > 0, lines  # one sample came while the other hung: its tokens are counted


@pytest.mark.parametrize(("done", "total", "elapsed", "said"), [
    (0, 200, 120.0, None),  # no pace yet
    (84, 200, 2640.0, "about 61 min left"),  # cpu-mixed's teacher step: 116 problems at 31.4 s each
    (2, 10, 60.0, "about 4 min left"),
    (9, 10, 45.0, "about 5 s left"),
    (10, 1000, 600.0, "about 16.5 h left"),
    (10, 10, 60.0, None),  # done
])  # fmt: skip
def test_the_progress_line_says_how_long_the_rest_takes_at_the_pace_so_far(done, total, elapsed, said):
    from toolkit.builders.progress import Progress, time_left

    assert time_left(done, total, elapsed) == said
    progress = Progress(total, "mixed", enabled=False, every=3600)
    progress.done, progress.start = done, progress.start - elapsed
    assert progress.line().endswith(f", {said}" if said else " s")
    progress.close()


def test_one_writer_per_run_directory(tmp_path):
    from toolkit.rundir import RunDir

    write_sums(tmp_path / "sums.jsonl", 2)
    holder = RunDir(tmp_path / "run")
    holder.claim()  # another build, still writing
    try:
        result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", f"file:{tmp_path / 'sums.jsonl'}",
                                           "--teacher", "fake:right", "--out", str(tmp_path / "run"),
                                           "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
        assert result.exit_code == 1 and "being written by another build" in result.output
        assert len(result.output.strip().splitlines()) == 1
    finally:
        holder.release()
    assert not (tmp_path / "run").exists()  # the refused build left nothing behind


def test_two_builds_into_one_out_one_wins_and_its_rows_stay(tmp_path):
    """The issue's race: --limit 4 and --limit 6 into one --out at once. One build is refused with
    one line; the other finishes, and its data file is there."""
    write_sums(tmp_path / "sums.jsonl", 6)
    with FaultServer("ok", delay=1.0) as server:  # the first build to claim --out still runs when the other tries
        builds = [_python(*cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite",
                                    samples=1, more=["--limit", str(n), "--timeout", "10"])) for n in (4, 6)]  # fmt: skip
        outcomes = [(b.wait(timeout=120), b.stderr.read()) for b in builds]
        push = _python("push", str(tmp_path / "run"), "me/raced", env={"HUBTOOL_HOME": str(tmp_path / "home")})
        push.wait(timeout=60)
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 1], outcomes
    refused = next(err for code, err in outcomes if code == 1)
    assert refused.strip().splitlines()[-1].endswith("is being written by another build right now; wait for it "
                                                     "to finish, or use another --out")  # fmt: skip
    manifest = read_manifest(tmp_path / "run")
    assert manifest.status == "complete" and len(_rows(tmp_path / "run")) == manifest.rows in (4, 6)
    assert push.returncode == 0

