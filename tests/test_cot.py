"""The CoT builder's logic on a fake teacher: filtering, normalising, resuming, extending."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from toolkit import prompts
from toolkit.builders import SourceOptions, build_dataset
from toolkit.builders.cot import CoTOptions, prompt_messages
from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.rundir import FAILED, data_file
from toolkit.teachers.base import CallFailure

from .fakes import FakeTeacher


def _source(tmp_path, n=6):
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {i * 2}?", "answer": str(i * 3)}) + "\n" for i in range(n)))
    return path


def _solver(request, j):
    """Sample 0 right (with a sloppy ending), sample 1 wrong, sample 2 garbage."""
    a, b = map(int, re.findall(r"What is (\d+) \+ (\d+)", request.messages[-1]["content"])[0])
    return [f"{a} plus {b} makes {a + b}.\nFinal answer: {a + b}", f"I think it is {a + b + 1}. The answer is {a + b + 1}.", "hmm"][j % 3]


def _build(tmp_path, teacher, *, limit=None, keep="correct", samples=3, out="run"):
    source = SourceOptions(spec=f"file:{_source(tmp_path)}", limit=limit)
    options = CoTOptions(samples=samples, keep=keep)
    return build_dataset("cot", tmp_path / out, source=source, options=options, teacher=teacher,
                         cache_path=tmp_path / "calls.sqlite")  # fmt: skip


def _rows(tmp_path, out="run"):
    return pq.read_table(data_file(tmp_path / out)).to_pylist()


def test_keeps_correct_rationales_normalised_to_the_convention(tmp_path):
    manifest = _build(tmp_path, FakeTeacher(_solver))
    rows = _rows(tmp_path)
    assert len(rows) == 6 and all(r["correct"] and r["sample_idx"] == 0 for r in rows)
    assert rows[1]["completion"][0]["content"] == "1 plus 2 makes 3.\nThe answer is 3."
    assert rows[1]["prompt"][-1]["role"] == "user" and "What is 1 + 2?" in rows[1]["prompt"][-1]["content"]
    c = manifest["counts"]
    assert (c["problems"], c["samples"], c["correct"], c["kept"], c["failed"]) == (6, 18, 6, 6, 0)
    assert manifest["status"] == "complete" and manifest["teacher_identity"] == "fake:fake-model@r1"
    assert "Let's think step by step" in manifest["prompt_template"]
    assert {r["id"] for r in rows} == {r["id"] for r in rows} and len({r["id"] for r in rows}) == 6


def test_keep_all_records_wrong_and_unparsed_samples(tmp_path):
    _build(tmp_path, FakeTeacher(_solver), keep="all")
    rows = _rows(tmp_path)
    assert len(rows) == 18
    assert sorted((r["correct"], r["pred"] is None) for r in rows).count((False, True)) == 6


def test_rerun_repeats_no_call_and_gives_the_same_rows(tmp_path):
    _build(tmp_path, FakeTeacher(_solver))
    first = _rows(tmp_path)
    again = FakeTeacher(_solver)
    manifest = _build(tmp_path, again)
    assert again.calls == [] and manifest["usage"]["samples_cached"] == 18
    assert _rows(tmp_path) == first


def test_raising_the_limit_only_generates_the_new_problems(tmp_path):
    _build(tmp_path, FakeTeacher(_solver), limit=2)
    more = FakeTeacher(_solver)
    _build(tmp_path, more, limit=5)
    asked = [r.messages[-1]["content"] for r in more.calls]
    assert len(asked) == 3 and all(f"What is {i} + {2 * i}?" in q for i, q in zip(range(2, 5), asked))
    assert len(_rows(tmp_path)) == 5


def test_failed_calls_are_recorded_and_retried(tmp_path):
    broken = FakeTeacher(lambda r, j: CallFailure("HTTP 500") if "What is 3 +" in r.messages[-1]["content"] else _solver(r, j))
    manifest = _build(tmp_path, broken)
    assert manifest["counts"]["failed"] == 1 and manifest["usage"]["failed_calls"] == 1
    failed = [json.loads(line) for line in (tmp_path / "run" / FAILED).read_text().splitlines()]
    assert failed[0]["error"] == "HTTP 500" and "3 + 6" in failed[0]["question"]
    healed = FakeTeacher(_solver)
    manifest = _build(tmp_path, healed)
    assert len(healed.calls) == 1 and manifest["counts"]["failed"] == 0 and len(_rows(tmp_path)) == 6


def test_a_different_teacher_cannot_reuse_the_directory(tmp_path):
    _build(tmp_path, FakeTeacher(_solver))
    with pytest.raises(UserError, match="different build"):
        _build(tmp_path, FakeTeacher(_solver, model="other"))


def test_cot_template_renders_questions_options_and_exemplars():
    problem = Problem("p1", "x", "Which is a fruit?", "B", "option", ("stone", "apple"))
    shots = ({"question": "2+2?", "rationale": "2+2=4. The answer is 4."},)
    text = prompt_messages(problem, CoTOptions(fewshot=shots, system="Be brief."))
    assert text[0] == {"role": "system", "content": "Be brief."}
    body = text[1]["content"]
    assert "(A) stone\n(B) apple" in body and "Answer: 2+2=4. The answer is 4." in body
    assert body.endswith('"The answer is <letter>."')
    with pytest.raises(UserError, match="undefined variables: question"):
        prompts.check_template("cot", {"choices", "exemplars", "answer_hint"})
