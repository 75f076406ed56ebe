"""`--engine ray`: a build's shards run by Ray actors, then merged, is the single-process build.

One local Ray cluster for the module (`ray.init(address="local", num_cpus=2)`: a fresh one, never a
cluster left running on this machine). Calls are counted where they cannot be lost: in a file the
fake teacher appends to from inside the actors, and at stand-in servers (tests.fault_server) for the
driver started as a process of its own and killed.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import FakeTeacher, render_card, rows
from tests.fault_server import FaultServer, write_sums
from tests.test_shards import _chain_source, _counterfactual, _timeless
from toolkit import api
from toolkit.builders import ray_engine, shards
from toolkit.builders.engine import build_dataset, plan_shards
from toolkit.errors import UserError
from toolkit.methods import get_method
from toolkit.rundir import read_manifest
from toolkit.teachers.fake import rule_reply
from toolkit.teachers.openai_backend import OpenAITeacher

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _same_build(a, b):
    assert rows(a.run_dir) == rows(b.run_dir)
    assert a.manifest.counts == b.manifest.counts and a.manifest.rows == b.manifest.rows
    assert _timeless(a.manifest.stats) == _timeless(b.manifest.stats)
    assert a.manifest.teacher == b.manifest.teacher


def test_cot_on_two_workers_is_the_single_process_build(cluster, tmp_path):
    options = {"teacher": "fake:cycle", "source": _chain_source(tmp_path, 9), "samples": 3, "keep": "all"}
    on_ray = api.build("cot", out=str(tmp_path / "ray"), engine="ray", workers=2, **options)
    single = api.build("cot", out=str(tmp_path / "single"), cache=str(tmp_path / "single.sqlite"), **options)
    _same_build(on_ray, single)
    assert shards.read_plan(on_ray.run_dir)["shards"] == 8  # 4 per worker
    assert sum(u["calls"] for u in on_ray.manifest.usage.values()) == 9  # one call per problem, each once
    assert "--engine" not in on_ray.manifest.command and "cot" in render_card(on_ray.run_dir)
    # run again with other --workers: the run keeps its plan's 8 shards, all committed, and asks nothing
    again = api.build("cot", out=str(tmp_path / "ray"), engine="ray", workers=1, **options)
    assert rows(again.run_dir) == rows(single.run_dir) and shards.read_plan(again.run_dir)["shards"] == 8
    assert sum(u["calls"] for u in again.manifest.usage.values()) == 9  # the shards' usage, unchanged
    with pytest.raises(UserError, match=r"--shards 3: .* is cut into 8 shards already; leave --shards out"):
        api.build("cot", out=str(tmp_path / "ray"), engine="ray", workers=1, shards=3, **options)


def test_counterfactual_on_two_workers_is_the_single_process_build(cluster, tmp_path):
    method, options, make_teachers = _counterfactual(tmp_path)
    on_ray = api.build(method, out=str(tmp_path / "ray"), engine="ray", workers=2, shards=3, teachers=make_teachers(),
                       **options)  # fmt: skip
    single = api.build(method, out=str(tmp_path / "single"), cache=str(tmp_path / "single.sqlite"),
                       teachers=make_teachers(), **options)  # fmt: skip
    _same_build(on_ray, single)
    assert on_ray.manifest.stats and (on_ray.run_dir / "failed.jsonl").read_text() == \
        (single.run_dir / "failed.jsonl").read_text()  # fmt: skip


class Dying:
    """cycle's answers, each call counted in a file; the `at`-th call (once: a marker file) ends its
    actor's process with os._exit, after noting how many calls the shard caches hold by then."""

    def __init__(self, folder: Path, at: int) -> None:
        self.folder, self.at = folder, at

    def __call__(self, request, j):
        with open(self.folder / "calls.log", "a") as f:
            f.write("x\n")
        made = len((self.folder / "calls.log").read_text().splitlines())
        if made >= self.at:
            try:  # once: of the threads and actors that get here, one makes the marker
                fd = os.open(self.folder / "died.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                committed = sum(_cached(p) for p in (self.folder / "ray" / "shards").glob("*/calls.sqlite"))
                made = len((self.folder / "calls.log").read_text().splitlines())  # the other actor's too, by now
                os.write(fd, json.dumps({"made": made, "committed": committed}).encode())
                os._exit(1)
        time.sleep(0.02)  # a call takes a moment, as a server's does
        return rule_reply("cycle", request, j)


def _cached(path: Path) -> int:
    db = sqlite3.connect(path, timeout=30)
    try:
        return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not there yet
        return 0
    finally:
        db.close()


def test_a_worker_killed_mid_shard_repeats_only_the_calls_in_flight(cluster, tmp_path):
    problems, samples = 10, 3
    options = {"source": _chain_source(tmp_path, problems), "samples": samples, "keep": "all"}
    teacher = FakeTeacher(Dying(tmp_path, at=11), model="fake-cycle")
    on_ray = api.build("cot", out=str(tmp_path / "ray"), engine="ray", workers=2, shards=4,
                       teachers={"teacher": teacher}, **options)  # fmt: skip
    died = json.loads((tmp_path / "died.json").read_text())  # it did die, mid-build
    single = api.build("cot", out=str(tmp_path / "single"), cache=str(tmp_path / "single.sqlite"),
                       teachers={"teacher": FakeTeacher(lambda r, j: rule_reply("cycle", r, j), model="fake-cycle")},
                       **options)  # fmt: skip
    _same_build(on_ray, single)
    made = len((tmp_path / "calls.log").read_text().splitlines())
    in_flight = died["made"] - died["committed"]  # made, not yet in a shard's cache when it died
    assert problems * samples < made <= problems * samples + in_flight, died


def _server_args(urls, source, out, gcs):
    return [sys.executable, "-m", "toolkit", "build-dataset", "cot", "--source", f"file:{source}",
            "--teacher", "openai:fault-model@" + ",".join(urls), "--samples", "2", "--keep", "all",
            "--timeout", "60", "--out", str(out), "--engine", "ray", "--workers", "2", "--shards", "4",
            "--ray-address", gcs]  # fmt: skip


def test_a_killed_driver_run_again_repeats_no_call_and_its_actors_are_fenced(cluster, tmp_path):
    problems = 8
    questions = write_sums(tmp_path / "sums.jsonl", problems)
    held = set(questions[4:])  # shards 2/4 and 3/4 hang at first: the driver dies while they wait
    hold = [True]

    def faulty(question):
        return "hang" if hold[0] and any(q in question for q in held) else False  # the prompt holds it

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with FaultServer(faulty=faulty) as a, FaultServer(faulty=faulty) as b:
        argv = _server_args([a.url, b.url], tmp_path / "sums.jsonl", out, cluster)
        log = open(tmp_path / "driver.log", "wb")  # noqa: SIM115 - the killed driver's output, for a failure
        driver = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        plan_deadline = time.monotonic() + 90
        while time.monotonic() < plan_deadline:
            done = [i for i in range(4) if (shards.shard_dir(out, shards.Shard(i, 4)) / "manifest.json").is_file()
                    and read_manifest(shards.shard_dir(out, shards.Shard(i, 4))).status == "complete"]  # fmt: skip
            if len(done) == 2 and a.answered(faulted=True) + b.answered(faulted=True) >= 2:
                break
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()
            time.sleep(0.2)
        assert done == [0, 1]
        first = ray_engine.read_lease(out)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        log.close()
        hold[0] = False
        healthy_before = a.answered(faulted=False) + b.answered(faulted=False)
        assert healthy_before == 4 * 2  # shards 0 and 1: two problems each, two samples each
        again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
        assert again.returncode == 0, again.stdout + again.stderr
        healthy = a.answered(faulted=False) + b.answered(faulted=False)
        assert healthy == problems * 2  # every sample asked once over both runs: none repeated
        assert a.answered(faulted=False) and b.answered(faulted=False)  # the shards went to both replicas
        assert ray_engine.read_lease(out) not in (None, first)  # the second driver's lease
        single = api.build("cot", source=f"file:{tmp_path / 'sums.jsonl'}", teacher=f"openai:fault-model@{a.url},{b.url}",
                           samples=2, keep="all", timeout=60, out=str(tmp_path / "single"),
                           cache=str(tmp_path / "single.sqlite"))  # fmt: skip
    assert rows(out) == rows(single.run_dir)
    manifest = read_manifest(out)
    assert manifest.counts == single.manifest.counts and manifest.status == "complete"
    assert "--engine" not in manifest.command and "--shards" not in manifest.command


def test_an_actor_of_an_old_driver_commits_nothing(cluster, tmp_path):
    """The lease: an actor whose driver's attempt is no longer the run's starts no shard and
    commits none, even one it has finished running."""
    import ray

    options = {"teacher": "fake:cycle", "source": _chain_source(tmp_path, 4), "samples": 2, "keep": "all"}
    config, method = _config("cot", out=str(tmp_path / "run"), **options), get_method("cot")
    plan_shards(config, method=method, count=2)
    old = ray_engine.take_lease(tmp_path / "run")
    payload = {"config": config, "method": method, "teachers": None, "preset": None, "preset_values": {},
               "command": "hubtool build-dataset cot"}  # fmt: skip
    actor = ray.remote(ray_engine.ShardWorker).remote(payload, str(tmp_path / "run"), old)
    ray_engine.take_lease(tmp_path / "run")  # a new driver started
    with pytest.raises(ray.exceptions.RayTaskError, match="is leased to driver attempt"):
        ray.get(actor.run.remote(0, 2))
    ray.kill(actor)
    assert not (shards.shard_dir(tmp_path / "run", shards.Shard(0, 2)) / "manifest.json").exists()
    # fenced at the commit itself: the shard ran (its calls are cached) but is not done
    worker = ray_engine.ShardWorker(payload, str(tmp_path / "run"), old)
    with pytest.raises(ray_engine.LeaseLost):
        build_dataset(config, method=method, shard=shards.Shard(1, 2), fence=worker.fence, command="c")
    folder = shards.shard_dir(tmp_path / "run", shards.Shard(1, 2))
    assert read_manifest(folder).status == "running" and _cached(folder / "calls.sqlite") == 2 * 2


class Unstartable(ray_engine.ShardWorker):
    def __init__(self, *args):
        raise ModuleNotFoundError("No module named 'toolkit'")  # what a node without hubtool gives


def test_a_worker_that_cannot_start_stops_the_build_in_one_line(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_engine, "ShardWorker", Unstartable)
    with pytest.raises(UserError, match=r"a Ray worker could not start \(.*No module named 'toolkit'.*\); is hubtool"):
        api.build("cot", teacher="fake:cycle", source=_chain_source(tmp_path, 2), out=str(tmp_path / "run"),
                  engine="ray", workers=1)  # fmt: skip


def _config(method, **values):
    from toolkit.builders.config import resolve_config

    m = get_method(method)
    return resolve_config(m.config, flags=values, config_file=None, preset=None, presets=m.presets, method=(m.name,))[0]


def test_engine_options_are_checked_in_one_line(tmp_path):
    options = {"teacher": "fake:cycle", "source": _chain_source(tmp_path, 2), "out": str(tmp_path / "run")}
    with pytest.raises(UserError, match="apply to --engine ray"):
        api.build("cot", workers=2, **options)
    with pytest.raises(UserError, match="give one of the two"):
        api.build("cot", engine="ray", shard="0/2", **options)
    with pytest.raises(UserError, match="unknown engine 'spark'"):
        api.build("cot", engine="spark", **options)


def test_without_ray_the_engine_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra gives: ImportError
    with pytest.raises(UserError, match=r'--engine ray needs Ray .*pip install "hubtool\[ray\]"'):
        api.build("cot", teacher="fake:cycle", source=_chain_source(tmp_path, 2), out=str(tmp_path / "run"),
                  engine="ray", workers=2)  # fmt: skip


def test_a_list_of_servers_is_one_cache_identity():
    one = OpenAITeacher.from_spec("m@http://127.0.0.1:9001/v1")
    assert one.cache_identity == {"backend": "openai", "model": "m", "revision": "", "endpoint": "http://127.0.0.1:9001/v1"}
    one.pin(3)  # one URL: nothing to choose
    assert one.base_url == "http://127.0.0.1:9001/v1"
    many = OpenAITeacher.from_spec("m@http://127.0.0.1:9001/v1,http://127.0.0.1:9002/v1")
    identity = dict(many.cache_identity)
    assert identity["endpoint"] == "http://127.0.0.1:9001/v1,http://127.0.0.1:9002/v1"
    many.pin(3)
    assert many.base_url == "http://127.0.0.1:9002/v1" and many.cache_identity == identity  # whoever answers
    with pytest.raises(UserError, match="lists an empty URL"):
        OpenAITeacher.from_spec("m@http://127.0.0.1:9001/v1,")


def test_the_default_build_never_imports_ray(tmp_path):
    code = ("import sys, json\n"
            "from toolkit.cli import main\n"
            "try:\n"
            f"    main(['build-dataset', 'cot', '--teacher', 'fake:right', '--source', {_chain_source(tmp_path, 2)!r},"
            f" '--out', {str(tmp_path / 'run')!r}])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))))\n")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HUBTOOL_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "run" / "manifest.json").is_file()  # it did build
