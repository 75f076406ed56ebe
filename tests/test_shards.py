"""A build cut into shards (`--shard I/N`) and merged (`hubtool merge RUN`) is the single-process build.

Every shard runs with the same fake teacher (its calls counted); the merge replays the whole build
from the shards' cached calls, so its rows (same order), counts and stats equal those of one
process building the same config, for a method with no state (cot), one with per-build state and
`finish` stats (counterfactual) and one with a global `select` (mixed's balancing).
"""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner

from tests.fakes import FakeTeacher, render_card, rows
from tests.test_counterfactual import CASES, fake, question
from tests.test_mixed import GOOD, _source
from tests.test_mixed import _teacher as mixed_teacher
from toolkit import api
from toolkit.builders import shards
from toolkit.cli import main
from toolkit.errors import UserError
from toolkit.hub.resolve import fingerprint
from toolkit.rundir import read_manifest


class Killed(Exception):
    pass


def _chain_source(tmp_path, n=7):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"Calculate {i} + {2 * i} - 1.", "answer": str(3 * i - 1)}) + "\n"
                            for i in range(n)))  # fmt: skip
    return f"file:{path}"


def _cf_source(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"question": question(c), "answer": a}) + "\n" for c, a in CASES.items()))
    return f"file:{path}"


def _cot(tmp_path):
    return "cot", {"teacher": "fake:cycle", "source": _chain_source(tmp_path), "samples": 3, "keep": "all"}, \
        lambda: {"teacher": FakeTeacher.from_spec("cycle")}  # fmt: skip


def _counterfactual(tmp_path):
    def teachers():
        teacher = FakeTeacher(fake)
        return {"teacher": teacher, "judge": teacher}

    return "counterfactual", {"source": _cf_source(tmp_path)}, teachers


def _mixed(tmp_path):
    return "mixed", {"source": _source(tmp_path, 5), "cot_samples": 3, "pot_samples": 5, "exec_timeout": 2.0}, \
        lambda: {"teacher": mixed_teacher(GOOD)}  # fmt: skip


def _preference(tmp_path):
    from tests.test_preference import _source as pref_source
    from tests.test_preference import student_answer

    # one problem's calls fail ("1 + 1"): the merge fails them as the single-process build does
    return "preference", {"source": pref_source(tmp_path), "student": "fake:student", "samples": 4}, \
        lambda: {"student": FakeTeacher(student_answer, model="student")}  # fmt: skip


def _evolve(tmp_path):
    from tests.test_evolve import SEEDS, evolving

    # --rows sample: a draw over every seed's rows at the end (select), and stats gathered per seed
    return "evolve", {"source": SEEDS, "limit": 4, "rows": "sample", "sample_rows": 5}, \
        lambda: dict.fromkeys(("evolver", "scorer", "answerer"), FakeTeacher(evolving))  # fmt: skip


def _calls(teachers) -> int:
    return sum(t.samples_drawn for t in {id(t): t for t in teachers.values()}.values())


def _same(a, b, method):
    """Rows, counts and stats equal; mixed's rows hold a program's measured runtime, which no two
    runs share (a single-process build run twice differs there too)."""
    if method == "mixed":
        for r in a + b:
            r.pop("exec_runtime_s")
    assert a == b


def _timeless(value):
    """Stats without measured times (mixed's sandbox runtimes): the rest must be equal."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if "runtime" not in k}
    return value


def _sharded(tmp_path, method, options, make_teachers, n):
    out = tmp_path / "sharded"
    calls = 0
    for i in range(n):
        teachers = make_teachers()
        api.build(method, out=str(out), shard=f"{i}/{n}", teachers=teachers, **options)
        calls += _calls(teachers)
    return out, calls


@pytest.mark.parametrize("case", [_cot, _counterfactual, _mixed, _preference, _evolve],
                         ids=["cot", "counterfactual", "mixed", "preference", "evolve"])
def test_every_shard_then_merge_is_the_single_process_build(tmp_path, case):
    method, options, make_teachers = case(tmp_path)
    single_teachers = make_teachers()
    single = api.build(method, out=str(tmp_path / "single"), cache=str(tmp_path / "single.sqlite"),
                       teachers=single_teachers, **options)  # fmt: skip
    out, calls = _sharded(tmp_path, method, options, make_teachers, 3)
    assert calls == _calls(single_teachers)  # each call made once, by one shard
    merged = api.merge(out)
    _same(rows(out), rows(single.run_dir), method)
    assert merged.manifest.counts == single.manifest.counts
    assert _timeless(merged.manifest.stats) == _timeless(single.manifest.stats)
    assert merged.manifest.rows == single.manifest.rows
    assert merged.manifest.teacher == single.manifest.teacher
    assert merged.manifest.usage  # what the shards paid for
    assert (out / "failed.jsonl").read_text() == (single.run_dir / "failed.jsonl").read_text()  # preference: one
    trees = sorted(p.name for p in (single.run_dir / "trees").glob("*.json"))  # evolve's search trees
    assert sorted(p.name for p in (out / "trees").glob("*.json")) == trees
    card = render_card(out)
    assert "--shard" not in card and method in card


def test_more_shards_than_problems_and_a_rerun_makes_no_call(tmp_path):
    method, options, make_teachers = _cot(tmp_path)
    options = {**options, "source": _chain_source(tmp_path, 3)}
    out, calls = _sharded(tmp_path, method, options, make_teachers, 5)  # two shards hold no problem
    assert calls == 3 * 3
    again, calls_again = _sharded(tmp_path, method, options, make_teachers, 5)
    assert calls_again == 0  # every shard is done: nothing is asked
    assert len(rows(api.merge(out).run_dir)) == 9
    plan = shards.read_plan(out)
    assert plan["shards"] == 5 and plan["problem_count"] == 3


def test_a_failed_shard_resumes_from_its_own_cache(tmp_path):
    method, options, make_teachers = _cot(tmp_path)
    out = tmp_path / "sharded"
    failing = FakeTeacher.from_spec("cycle")
    answer = failing.answer
    seen = []

    def flaky(request, j):
        seen.append(1)
        if len(seen) > 4:
            raise Killed  # the job dies mid-shard
        return answer(request, j)

    failing.answer = flaky
    with pytest.raises(Killed):
        api.build(method, out=str(out), shard="0/2", teachers={"teacher": failing}, **options)
    assert read_manifest(shards.shard_dir(out, shards.Shard(0, 2))).status == "running"
    with pytest.raises(UserError, match=r"cannot merge .*: 2 of 2 shards not done: 0/2 \(unfinished\), 1/2 \(missing\)"):
        api.merge(out)
    db = sqlite3.connect(shards.shard_dir(out, shards.Shard(0, 2)) / shards.CACHE)
    cached = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    db.close()
    assert cached > 0  # what was answered before the kill
    teachers = make_teachers()
    api.build(method, out=str(out), shard="0/2", teachers=teachers, **options)
    lo, hi = shards.Shard(0, 2).bounds(7)
    assert _calls(teachers) == (hi - lo) * 3 - cached  # resumed: none of the cached samples asked again
    with pytest.raises(UserError, match=r"1 of 2 shards not done: 1/2 \(missing\)"):
        api.merge(out)


def test_a_shard_with_other_options_is_refused_in_one_line(tmp_path):
    method, options, make_teachers = _cot(tmp_path)
    out = tmp_path / "sharded"
    api.build(method, out=str(out), shard="0/2", teachers=make_teachers(), **options)
    with pytest.raises(UserError, match=r"shard 1/2 is not part of .* \(config.samples differs: 3 vs 2\)") as e:
        api.build(method, out=str(out), shard="1/2", teachers=make_teachers(), **{**options, "samples": 2})
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"it is cut into 2 shards, not 3"):
        api.build(method, out=str(out), shard="1/3", teachers=make_teachers(), **options)
    for bad in ("2/2", "1", "-1/2", "a/b"):
        with pytest.raises(UserError, match="give I/N with 0 <= I < N"):
            api.build(method, out=str(out), shard=bad, teachers=make_teachers(), **options)


def test_merge_refuses_a_call_no_shard_made(tmp_path):
    method, options, make_teachers = _cot(tmp_path)
    out, _ = _sharded(tmp_path, method, options, make_teachers, 2)
    db = sqlite3.connect(shards.shard_dir(out, shards.Shard(1, 2)) / shards.CACHE)
    with db:
        db.execute("DELETE FROM samples WHERE rowid = (SELECT MAX(rowid) FROM samples)")
    db.close()
    with pytest.raises(UserError, match=r"cannot merge: a teacher call of problem '\w+' \(shard 1/2\) is in no "
                                        r"shard's call cache .*; remove .*00001-of-00002, run shard 1/2 again"):
        api.merge(out)


def test_shard_caches_use_the_rollback_journal(tmp_path):
    method, options, make_teachers = _cot(tmp_path)
    out, _ = _sharded(tmp_path, method, options, make_teachers, 2)
    db = sqlite3.connect(shards.shard_dir(out, shards.Shard(0, 2)) / shards.CACHE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not WAL: shared filesystems
    db.close()


def test_cli_shard_and_merge(tmp_path):
    src = _chain_source(tmp_path, 4)
    out = tmp_path / "run"
    runner = CliRunner()
    common = ["build-dataset", "cot", "--teacher", "fake:right", "--source", src, "--out", str(out),
              "--cache", str(tmp_path / "ignored.sqlite")]  # fmt: skip
    result = runner.invoke(main, ["merge", str(out)])
    assert result.exit_code != 0 and "holds no sharded build" in result.output
    for i in range(2):
        result = runner.invoke(main, [*common, "--shard", f"{i}/2"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["merge", str(out)])
    assert result.exit_code == 0, result.output
    assert "cot: 4 problems" in result.output
    manifest = read_manifest(out)
    assert "--shard" not in manifest.command and manifest.status == "complete"
    assert len(rows(out)) == manifest.rows == manifest.counts["samples"] and (out / "README.md").is_file()
    before = fingerprint(out)  # what training records of its dataset: the data, not the shards' parts
    shutil.rmtree(out / "shards")  # the merged build stands alone
    assert fingerprint(out) == before and len(rows(out)) == manifest.rows


def test_the_replay_counts_tokens_with_the_shards_tokenizer_and_loads_no_weights(smol_path):
    """mixed counts a row's tokens with a transformers teacher's tokenizer: the merge's stand-in loads
    that tokenizer (not the weights), so the counts are the shards'."""
    from transformers import AutoTokenizer

    from toolkit.teachers.replay import ReplayTeacher, identity_record

    class Shard:  # what a shard's transformers backend looks like after its run
        backend, model, revision, endpoint, window = "transformers", smol_path, "abc", "", 128
        cache_identity = {"backend": "transformers", "model": smol_path, "revision": "abc", "options": {"dtype": "bf16"}}
        tokenizer = AutoTokenizer.from_pretrained(smol_path)

    record = identity_record(Shard())
    assert record["tokenizer"] and record["window"] == 128
    replay = ReplayTeacher("teacher", record, lambda request: ("p", "fix"))
    text = "Here is the program: ans = 3 + 4"
    assert replay.tokenizer(text).input_ids == Shard.tokenizer(text).input_ids
    assert not hasattr(replay, "lm") and replay.identity == "transformers:" + smol_path + "@abc"
    # the cache key is the shards' own, options that shaped the output included (dtype here)
    assert replay.cache_identity == {"backend": "transformers", "model": smol_path, "revision": "abc",
                                     "options": {"dtype": "bf16"}}  # fmt: skip


def test_shards_started_at_once_as_processes_agree_and_merge(tmp_path):
    """A job array: every shard a process of its own, all started together (one of them publishes the plan)."""
    import os
    import subprocess
    import sys

    src = _chain_source(tmp_path, 6)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "toolkit", "build-dataset", "cot", "--teacher", "fake:cycle", "--source", src,
            "--samples", "2", "--keep", "all", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "HUBTOOL_HOME": str(tmp_path / "home")}
    jobs = [subprocess.Popen([*argv, "--shard", f"{i}/3"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for i in range(3)]  # fmt: skip
    for job in jobs:
        _, err = job.communicate(timeout=120)
        assert job.returncode == 0, err.decode()
    merged = api.merge(out)
    single = api.build("cot", teacher="fake:cycle", source=src, samples=2, keep="all", out=str(tmp_path / "single"),
                       cache=str(tmp_path / "single.sqlite"))  # fmt: skip
    assert rows(out) == rows(single.run_dir) and merged.manifest.counts == single.manifest.counts
    assert sum(u["calls"] for u in merged.manifest.usage.values()) == 6  # one call per problem, each by one shard
