"""Decontamination: evaluation questions planted in a build are found (verbatim and lightly
reworded), templated siblings are not, and the manifest and card say what was removed."""

from __future__ import annotations

import json
import re

from click.testing import CliRunner

from tests.assertions import assert_one_line
from toolkit.cli import main
from toolkit.decontaminate import Index, common_affixes, index_for, tokens
from toolkit.rundir import read_manifest

from .fakes import FakeTeacher, build, rows

TASK = "hubtool_gym_chain_sum"
REPLY = "Adding the numbers in order gives 0.\nThe answer is 0."  # reasoning, or a build drops it as bare


def _eval_questions(n: int = 4) -> list[str]:
    """Questions the eval task scores, read through lm-eval like `hubtool eval` reads them."""
    from toolkit.sources.eval_tasks import load_tasks, task_manager

    [task] = load_tasks(task_manager(), [TASK])
    return [doc["question"] for doc in list(task.eval_docs)[:n]]


def _train_questions(n: int = 5) -> list[str]:
    from toolkit.sources import load_source

    return [p.question for p in load_source("gym:chain_sum", limit=n).problems]


def test_templates_are_cut_and_questions_match_verbatim_or_reworded():
    questions = [f"State the final answer to the following arithmetic problem: {a} - {b} + {c} =" for a, b, c in
                 [(1, 2, 7), (3, 4, 2), (5, 6, 1), (8, 9, 3), (10, 11, 4)]]  # fmt: skip
    assert common_affixes([tokens(q) for q in questions]) == (
        tokens("State the final answer to the following arithmetic problem:"), ("=",))
    index = Index(8, ["t"])
    index.add_task("t", questions)
    assert index.hits(questions[2]) == {"t"}
    assert index.hits(questions[2].upper().replace(" ", "   ")) == {"t"}  # case and spacing do not count
    assert index.hits("State the final answer to the following arithmetic problem: 5 + 6 + 1 =") == set()
    assert index.hits("State the final answer to the following arithmetic problem: 1 - 2 + 9 =") == set()
    long = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    index.add_task("g", [long])
    assert index.hits("Q: natalia sold clips to 48 of her friends in April; how many in all?") == {"g"}
    assert index.hits("Natalia sold clips to 49 of her friends in April") == set()


def _source(tmp_path, questions: list[str]) -> str:
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": "0"}) + "\n" for q in questions))
    return f"file:{path}"


def test_a_build_leaves_out_planted_eval_questions_before_any_call(tmp_path):
    planted = _eval_questions(4)
    reworded = [planted[0].upper(), planted[1].replace(" ", "  ").rstrip("=") + " ="]
    clean = _train_questions(5)
    teacher = FakeTeacher(lambda r, j: REPLY)
    manifest = build("cot", tmp_path / "run", teachers={"teacher": teacher}, keep="all", samples=1,
                     source=_source(tmp_path, [*planted, *reworded, *clean]), decontaminate="gym_chain_sum")  # fmt: skip
    asked = [c.messages[-1]["content"] for c in teacher.calls]
    assert len(asked) == 5 and all(any(q in a for q in clean) for a in asked)
    assert {r["question"] for r in rows(tmp_path / "run")} == set(clean)
    d = manifest.stats["decontamination"]
    assert (d["removed"], d["checked"], d["n"], d["against"]) == (6, 11, 8, [TASK])
    assert d["removed_by_task"] == {TASK: 6} and manifest.counts["decontaminated"] == 6
    card = (tmp_path / "run" / "README.md").read_text()
    assert "6 of 11 checked items were left out" in card and f"| `{TASK}` | 200 | 6 |" in card


def test_hubtool_decontaminate_filters_a_finished_run(tmp_path):
    planted = _eval_questions(2)
    clean = _train_questions(3)
    out = tmp_path / "run"
    build("cot", out, teachers={"teacher": FakeTeacher(lambda r, j: REPLY)}, keep="all", samples=2,
          source=_source(tmp_path, [*clean, *planted]))  # fmt: skip
    assert len(rows(out)) == 10
    result = CliRunner().invoke(main, ["decontaminate", str(out), "--against", "gym"])
    assert result.exit_code == 0, result.output
    assert f"4 of 10 rows removed ({json.dumps({TASK: 4})})" in result.output
    assert {r["question"] for r in rows(out)} == set(clean)
    manifest = read_manifest(out)
    assert manifest.rows == 6 and manifest.counts["decontaminated"] == 4
    assert "gym_syllogism" in " ".join(manifest.stats["decontamination"]["against"])  # the whole suite
    assert "4 of 10 checked items were left out" in (out / "README.md").read_text()


def _decontaminate(out, against: str = "gym") -> str:
    result = CliRunner().invoke(main, ["decontaminate", str(out), "--against", against])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_removal_survives_the_same_build_again_and_a_higher_limit(tmp_path):
    planted, clean = _eval_questions(3), _train_questions(4)
    source = _source(tmp_path, [clean[0], planted[0], clean[1], planted[1], clean[2], planted[2], clean[3]])
    out, answer = tmp_path / "run", FakeTeacher(lambda r, j: REPLY)
    args = {"teachers": {"teacher": answer}, "keep": "all", "samples": 1, "source": source}
    build("cot", out, limit=4, **args)
    assert "2 of 4 rows removed" in _decontaminate(out)
    build("cot", out, limit=4, **args)  # the same command again
    assert [r["question"] for r in rows(out)] == clean[:2]
    manifest = read_manifest(out)
    assert (manifest.rows, manifest.counts["decontaminated"], manifest.stats["decontamination"]["removed"]) == (2, 2, 2)
    build("cot", out, limit=7, **args)  # extended: the new rows are checked the same way
    assert [r["question"] for r in rows(out)] == clean
    manifest = read_manifest(out)
    d = manifest.stats["decontamination"]
    assert (manifest.rows, d["checked"], d["removed"], d["removed_by_task"]) == (4, 7, 3, {TASK: 3})
    assert "3 of 7 checked items were left out" in (out / "README.md").read_text()


def test_a_second_decontamination_adds_to_the_first_record(tmp_path):
    planted, clean = _eval_questions(2), _train_questions(2)
    out = tmp_path / "run"
    build("cot", out, teachers={"teacher": FakeTeacher(lambda r, j: REPLY)}, keep="all", samples=1,
          source=_source(tmp_path, [*clean, *planted]))  # fmt: skip
    assert "2 of 4 rows removed" in _decontaminate(out, "gym_chain_sum")
    assert "0 of 2 rows removed" in _decontaminate(out, "gym")
    manifest = read_manifest(out)
    passes = manifest.stats["decontaminations"]
    assert [(p["checked"], p["removed"]) for p in passes] == [(4, 2), (2, 0)]
    d = manifest.stats["decontamination"]
    assert (d["checked"], d["removed"], manifest.counts["decontaminated"], manifest.rows) == (4, 2, 2, 2)
    assert "2 of 4 checked items were left out" in (out / "README.md").read_text()


def test_a_corrupt_data_file_is_one_line_naming_it(tmp_path):
    out = tmp_path / "run"
    build("cot", out, teachers={"teacher": FakeTeacher(lambda r, j: REPLY)}, keep="all", samples=1,
          source=_source(tmp_path, _train_questions(2)))  # fmt: skip
    [data] = (out / "data").glob("train-*.parquet")
    data.write_bytes(b"PAR1" + b"\0" * 64)
    for command in (["decontaminate", str(out), "--against", "gym"], ["inspect", str(out)]):  # issue 21 item 19
        result = CliRunner().invoke(main, command)
        assert_one_line(result, f"Error: {data} is not a readable parquet file (")
        assert result.output.startswith("Error: ")
        assert result.output.endswith("re-run the build's command to write it again\n")


def test_without_the_eval_data_a_re_run_removes_the_same_rows_by_id(monkeypatch):
    from toolkit import decontaminate
    from toolkit.errors import UserError

    def offline(*args, **kwargs):
        raise UserError("the Hub is off")

    monkeypatch.setattr(decontaminate, "index_for", offline)
    earlier = {"stage": "run", "against": [TASK], "n": 8, "documents": {TASK: 200}, "checked": 3, "removed": 1,
               "removed_by_task": {TASK: 1}, "removed_examples": [], "data_dir": None, "removed_ids": ["b"]}  # fmt: skip
    rows_in = [{"id": "a", "question": "q1"}, {"id": "b", "question": "q2"}, {"id": "c", "question": "q3"}]
    kept, passes = decontaminate.reapply([earlier], rows_in)
    assert [r["id"] for r in kept] == ["a", "c"]
    assert (passes[0]["checked"], passes[0]["removed"], passes[0]["removed_ids"]) == (3, 1, ["b"])


def test_prompt_and_vote_variants_are_indexed_as_their_base_task_once(monkeypatch):
    from toolkit.sources import eval_tasks as tasks_mod

    loaded = []
    monkeypatch.setattr(tasks_mod, "load_tasks", lambda manager, names, data_dir: loaded.append(names) or [])
    assert index_for("ranaldi_from_gsm8k").tasks == [
        "hubtool_commonsense_qa", "hubtool_openbookqa", "hubtool_piqa", "hubtool_social_i_qa", "hubtool_gsm8k",
        "hubtool_multiarith"]  # fmt: skip
    assert index_for("gsm8k_ranaldi,gsm8k_maj8,gsm8k").tasks == ["hubtool_gsm8k"]
    assert loaded[1] == ["hubtool_gsm8k"]  # the documents loaded once, not once per variant


_PREMISES = re.compile(r"1\. (.+)\n2\. (.+)\n")


def test_a_template_inside_the_questions_is_left_out_too():
    """Real reasoning-gym syllogisms against the real robust_syllogism documents: with the inner
    phrase ("Does it logically follow that:") counted, every train problem matched some test problem
    by an 8-gram. Now, at n = 10, exactly the problems whose two premises a test problem has are found."""
    from toolkit.sources import load_source
    from toolkit.sources.eval_tasks import load_tasks, task_manager

    tasks = ["hubtool_cf_gym_syllogism", "hubtool_cf_gym_syllogism_contrast"]
    test = [doc["question"] for task in load_tasks(task_manager(), tasks) for doc in task.eval_docs]
    train = [p.question for p in load_source("gym:syllogism", limit=150).problems]
    premises = {_PREMISES.search(q).groups() for q in test}
    shared = {q for q in train if _PREMISES.search(q).groups() in premises}
    index = index_for(tasks, 10)
    assert {q for q in train if index.hits(q)} == shared and len(shared) >= 1
    planted = test[7]
    assert index.hits(planted) and index.hits(planted.replace("Yes or No", "yes or no"))
    other = planted.replace("Does it logically follow that:\n", "Does it logically follow that:\nNot so: ")
    assert index.hits(other)  # the same premises, another conclusion
    eight = index_for(tasks, 8)  # built once: inside the comprehension it was built 150 times (3 minutes)
    assert len([q for q in train if eight.hits(q)]) < 50  # was all 150
