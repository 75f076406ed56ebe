"""Paper presets: each sets what its paper did (prompt, samples, filter, balance, pair rule), the
manifest and card say so, and flags given on the command line still win."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner

from toolkit.cli import main
from toolkit.methods import get_method
from toolkit.rundir import read_manifest

from .fakes import FakeTeacher, build, rows

# Commonsense-style multiple choice with five options; gold letters deliberately unbalanced (A x6).
GOLDS = "AAAAAABBBCCCDDEE"


def _mc_source(tmp_path) -> str:
    path = tmp_path / "mc.jsonl"
    lines = [{"question": f"Question number {i}?", "choices": ["alpha", "beta", "gamma", "delta", "epsilon"],
              "answer": gold} for i, gold in enumerate(GOLDS)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"file:{path}"


def test_ranaldi_eacl24_is_the_papers_prompt_one_sample_no_filter_balanced(tmp_path):
    teacher = FakeTeacher(lambda r, j: "Because of alpha, so the answer is B.")  # right only for gold B
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--preset", "ranaldi-eacl24", "--source", _mc_source(tmp_path),
                                       "--choices-field", "choices", "--limit", "10", "--teacher", "fake:unparsable",
                                       "--out", str(out), "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    # and the same values in-process, with a fake that records what it is asked
    assert result.exit_code == 0, result.output
    manifest = build("cot", tmp_path / "again", teachers={"teacher": teacher}, source=_mc_source(tmp_path),
                     choices_field="choices", limit=10, **get_method("cot").presets["ranaldi-eacl24"].values)  # fmt: skip
    first = teacher.calls[0]
    assert first.n == 1 and first.params.temperature == 0.0  # one demonstration per question
    assert first.messages[-1]["content"] == (
        "Choose the answer to the question only from options A, B, C, D, E.\nQuestion: Question number 0?\n"
        "Choices:\nA) alpha\nB) beta\nC) gamma\nD) delta\nE) epsilon\nAnswer: Let's think step by step"
    )
    kept = rows(tmp_path / "again")
    assert len(kept) == manifest.counts["samples"] == 10  # no correctness filter: wrong ones are rows too
    assert Counter(r["gold"] for r in kept) == {"A": 2, "B": 2, "C": 2, "D": 2, "E": 2}  # balanced
    assert sum(r["correct"] for r in kept) == 2
    cli = read_manifest(out)
    assert cli.preset == "ranaldi-eacl24" and cli.preset_values["template"] == "ranaldi-cot"
    assert cli.config["samples"] == 1 and cli.config["keep"] == "all" and cli.config["balance"] is True
    assert cli.stats["class_counts"] == {"A": 2, "B": 2, "C": 2, "D": 2, "E": 2}
    card = (out / "README.md").read_text()
    assert "Built with the preset `ranaldi-eacl24`" in card and "| `template` | `ranaldi-cot` |" in card
    assert "Choose the answer to the question only from options" in card  # the template text itself


def test_balance_is_reproducible_and_a_larger_limit_extends_it(tmp_path):
    from toolkit.builders.balance import balance_classes
    from toolkit.sources import load_source

    problems = load_source(_mc_source(tmp_path), choices_field="choices").problems
    five = balance_classes(problems, 5, seed=0)
    assert [p.gold for p in five] == sorted(p.gold for p in five) == list("ABCDE")
    assert balance_classes(problems, 5, seed=0) == five and balance_classes(problems, 5, seed=1) != five
    ten = balance_classes(problems, 10, seed=0)
    assert {p.id for p in five} < {p.id for p in ten}
    assert len(balance_classes(problems, 100, seed=0)) == 10  # the rarest classes (two problems) cap it


def test_flags_win_over_a_preset_and_the_manifest_keeps_both(tmp_path):
    out = tmp_path / "run"
    args = ["build-dataset", "cot", "--preset", "ranaldi-eacl24", "--samples", "3", "--source", "gym:chain_sum",
            "--limit", "2", "--teacher", "fake:right", "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.config["samples"] == 3 and manifest.preset_values["samples"] == 1
    assert manifest.counts["samples"] == 6


def _student(request, j: int) -> str:
    content = request.messages[-1]["content"]
    if "step by step" in content:  # CoT: 2 + 2 always right, 3 + 3 right on even samples
        if "2 + 2" in content:
            return f"Two and two, path {j}.\nThe answer is 4."
        return f"Three and three, path {j}.\nThe answer is {6 if j % 2 == 0 else 7}."
    return f"The answer is {5 + j}."  # direct answers: a different one per sample


def test_ranaldi_selfrefine24_pairs_correct_cot_with_direct_answers_solved_included(tmp_path):
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in [("What is 2 + 2?", "4"), ("What is 3 + 3?", "6")]))
    from toolkit.builders.config import resolve_config
    from toolkit.builders.engine import build_dataset

    student = FakeTeacher(_student, model="student")
    method = get_method("preference")  # the preset resolved and recorded as `build-dataset --preset` does
    flags = {"out": str(tmp_path / "pref"), "cache": str(tmp_path / "c.sqlite"), "student": "fake:student",
             "source": f"file:{path}", "samples": 4}  # fmt: skip
    config, preset, values = resolve_config(method.config, flags=flags, preset="ranaldi-selfrefine24",
                                            presets=method.presets, method=method.name)  # fmt: skip
    manifest = build_dataset(config, method=method, teachers={"student": student}, preset=preset, preset_values=values)
    direct_calls = [r for r in student.calls if "step by step" not in r.messages[-1]["content"]]
    assert {(r.n, r.params.temperature) for r in direct_calls} == {(4, 0.7)}  # sampled, as many as CoT samples
    pairs = rows(tmp_path / "pref")
    by_q = Counter(r["question"] for r in pairs)
    assert by_q == {"What is 2 + 2?": 4, "What is 3 + 3?": 2}  # one per correct sample; solved 2 + 2 included
    assert all(r["chosen_from"] == "student" and r["rejected_from"] == "direct" for r in pairs)
    assert all(r["chosen_pred"] == r["gold"] and "path" in r["chosen"][0]["content"] for r in pairs)
    assert all(r["rejected"][0]["content"].startswith("The answer is ") for r in pairs)
    assert manifest.counts["all_correct"] == 1 and manifest.counts["skipped"] == 0
    assert manifest.preset == "ranaldi-selfrefine24"  # and what it set, as the paper (and we) chose it:
    assert manifest.preset_values == {"rejected": "direct", "keep_solved": True, "pairs_per_prompt": 0,
                                      "direct_samples": 0}  # fmt: skip
    assert read_manifest(tmp_path / "pref").preset == "ranaldi-selfrefine24"
