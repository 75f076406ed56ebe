"""A build killed with SIGKILL and re-run repeats no completed call and ends with the same rows.

The teacher is the real default model behind `transformers serve` on 127.0.0.1; a counting proxy
in front of it tells how many calls the server was asked for. `transformers serve` ignores `n`, so
with several samples per problem hubtool sends one call per sample, and the first wave of calls
covers every problem once: each sample must be cached as its call returns, not when its problem's
other samples are in (issue 11).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from bench.servers import transformers_server
from toolkit.rundir import MANIFEST, data_file

pytestmark = pytest.mark.slow
PROBLEMS = 8


def _command(model: str, url: str, src, out, cache, samples: int, concurrency: int) -> list[str]:
    return [
        sys.executable, "-m", "toolkit", "build-dataset", "cot", "--source", f"file:{src}",
        "--teacher", f"openai:{model}@{url}", "--samples", str(samples), "--temperature", "0",
        "--max-new-tokens", "12", "--concurrency", str(concurrency), "--keep", "all", "--out", str(out),
        "--cache", str(cache),
    ]  # fmt: skip


def _cached_samples(cache) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache) as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:  # the build has not created its table yet
        return 0


@pytest.fixture(scope="module")
def server():
    from toolkit.teachers.models import resolve_model_path

    model = resolve_model_path("smollm2-135m")
    with transformers_server(model, threads=1) as url:
        yield model, url


@pytest.mark.parametrize(
    ("samples", "concurrency"),
    [(1, 1), (2, 2)],  # (2, 2): a server that ignores n, fewer calls in flight than problems
    ids=["one-sample", "samples-of-a-server-that-ignores-n"],
)
def test_sigkill_then_rerun_repeats_no_finished_call(tmp_path, proxy_for, server, samples, concurrency):
    model, url = server
    src = tmp_path / "sums.jsonl"
    src.write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": 2 * i}) + "\n" for i in range(PROBLEMS)))
    env = {**os.environ, "HUBTOOL_HOME": str(tmp_path / "home")}
    total = PROBLEMS * samples
    proxy = proxy_for(url)
    cmd = _command(model, proxy.url, src, tmp_path / "run", tmp_path / "calls.sqlite", samples, concurrency)
    build = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _cached_samples(tmp_path / "calls.sqlite") < 3 and time.monotonic() < deadline and build.poll() is None:
        time.sleep(0.05)
    assert build.poll() is None, build.stderr.read().decode()[-2000:]
    build.send_signal(signal.SIGKILL)
    build.wait()
    done = _cached_samples(tmp_path / "calls.sqlite")
    asked = len(proxy.calls)
    assert 3 <= done < total
    # every call that came back was kept: only the ones still in flight at the kill are missing
    assert asked - done <= concurrency + 1, f"{asked} calls asked, {done} samples kept"
    assert json.loads((tmp_path / "run" / MANIFEST).read_text())["status"] == "running"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert len(proxy.calls) - asked == total - done  # not one finished call asked again
    assert f"{done} cached samples" in rerun.stdout

    whole = _command(model, proxy.url, src, tmp_path / "whole", tmp_path / "other.sqlite", samples, concurrency)
    assert subprocess.run(whole, env=env, capture_output=True).returncode == 0
    resumed = pq.read_table(data_file(tmp_path / "run")).to_pylist()
    uninterrupted = pq.read_table(data_file(tmp_path / "whole")).to_pylist()
    assert len(resumed) == total and resumed == uninterrupted
