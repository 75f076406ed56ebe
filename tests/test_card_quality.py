"""Each card's data-quality section (issue 25 items 11 and 17): rows with reasoning vs bare
answers and the median reasoning length counted from the rows, the method's own counts, rows by
mode or kind, and a warning when a method's defining rows are missing."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from tests.fixtures.runs.builds import make_run
from toolkit.methods import get_method
from toolkit.rundir import RunDir, data_file, read_manifest

from .fakes import FakeTeacher, build, render_card
from .test_counterfactual import fake as cf_fake
from .test_counterfactual import question as cf_question

# What a real small teacher wrote (issue 25): bare answers, a rationale, a contradiction.
COMPLETIONS = [
    "The answer is 6.",  # bare (2 of 4 kept rows on chain_sum)
    "3 + 3 = 6.\nThe answer is 6.",  # 5 tokens: 3 + 3 = 6
    "Mars looks red because of iron oxide on its surface, so it is called the Red Planet.\nAnswer: B",
    "Therefore, the answer is No. All cats are animals, and some animals are pets.\nThe answer is Yes.",
]


def _sft_rows(texts: list[str], **extra: list) -> pa.Table:
    return pa.table({
        "prompt": [[{"role": "user", "content": "What is 3 + 3?"}] for _ in texts],
        "completion": [[{"role": "assistant", "content": t}] for t in texts],
        "id": [f"p{i}" for i in range(len(texts))], **extra,
    })  # fmt: skip


def test_reasoning_and_bare_answers_are_counted_from_the_rows(tmp_path):
    from toolkit.card_quality import quality

    pq.write_table(_sft_rows(COMPLETIONS), tmp_path / "rows.parquet")
    q = quality(tmp_path / "rows.parquet", {"no_reasoning": 1, "contradictions": 1, "samples": 4}, {})
    # tokens outside `The answer is` lines: 0; 5; 19 (Mars ... Planet, Answer, B); 14 (the first line only)
    assert (q.rows, q.with_reasoning, q.bare, q.median_words) == (4, 3, 1, 14)
    assert q.flags == [("bare answers (no reasoning besides the answer)", 1),
                       ("rationales stating two different answers", 1)]  # fmt: skip
    assert q.warnings == []


def test_a_mixed_build_without_programs_is_warned_about(tmp_path):
    from toolkit.card_quality import quality

    pq.write_table(_sft_rows(COMPLETIONS[1:3], mode=["cot", "cot"]), tmp_path / "rows.parquet")
    q = quality(tmp_path / "rows.parquet", {"escape_attempts": 2, "escape_network": 1, "escape_signal": 1}, {},
                warnings=get_method("mixed").card_warnings)
    assert q.groups == {"mode": {"cot": 2}}
    assert q.warnings == ["no POT row was kept: this is not a mixed CoT/PoT dataset"]
    assert q.rejected == {"Programs that tried to leave the sandbox, by kind": {"network": 1, "signal": 1}}
    assert q.flags == [("programs that tried to leave the sandbox (never rows)", 2)]


def test_the_card_shows_the_quality_section(tmp_path):
    run = make_run(tmp_path / "run")
    pq.write_table(_sft_rows(COMPLETIONS), data_file(run))
    manifest = read_manifest(run)
    manifest.counts.update(no_reasoning=1, contradictions=1, refusals=0)
    RunDir(run).write_manifest(manifest)
    card = render_card(run, repo_id="me/quality")
    section = card.split("### Data quality\n")[1].split("\n### ")[0]
    assert "| rows | with reasoning | bare answers | median reasoning length |\n|---|---|---|---|\n| 4 | 3 | 1 | 14 words |" in section
    for line in ("| bare answers (no reasoning besides the answer) | 1 |",
                 "| rationales stating two different answers | 1 |", "| refusals and empty non-answers | 0 |"):  # fmt: skip
        assert line in section, line
    # the only warning: its teacher is the test backend (no model wrote the rows)
    assert [line for line in section.splitlines() if "Warning" in line] == [
        "> **Warning:** the teacher is hubtool's test backend (`fake:`), not a model: what it wrote in these rows is "
        "placeholder text, not fit to train on."]  # fmt: skip


def test_a_counterfactual_card_without_counterfactuals_says_so(tmp_path):
    path = tmp_path / "cases.jsonl"
    # only edits that fail the checks: one too far from the original, one identical to it
    path.write_text("".join(json.dumps({"question": cf_question(c), "answer": a}) + "\n"
                            for c, a in (("far", "no"), ("same", "yes"))))  # fmt: skip
    teacher = FakeTeacher(cf_fake)
    build("counterfactual", tmp_path / "run", teachers={"teacher": teacher, "judge": teacher}, source=f"file:{path}")
    card = render_card(tmp_path / "run", repo_id="me/cf")
    assert "original and counterfactual (label-flipped) examples" not in card
    assert "rows of original examples only (no counterfactual passed every check) with multi-view reasoning for " \
           "supervised fine-tuning, written by" in card  # the build's own headline (stats.what)
    assert ("> **Warning:** no counterfactual (label-flipped) example was kept: these rows are originals only, "
            "which is not counterfactual distillation data.") in card
    assert "0 of 2 counterfactuals were kept" not in card  # the build's warning of the same: said once, above
    assert "- Rows by `is_counterfactual`: `original` " in card
    assert "Edits rejected, by kind: identical 1, too_far 1." in card


def test_a_counterfactual_card_says_what_the_build_warned_and_how_the_checks_ran(tmp_path):
    from .test_counterfactual import CASES, run_cases

    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps({"question": cf_question(c), "answer": a}) + "\n" for c, a in CASES.items()))
    _, _, out = run_cases(tmp_path, path)  # the teacher judges its own edits
    card = render_card(out, repo_id="me/cf")
    top = card.split("## Rows")[0]
    assert ("18 rows of 8 original and 1 counterfactual (label-flipped) examples with multi-view reasoning for "
            "supervised fine-tuning, written by the teacher") in top
    assert "\n**Warning: the judge is the teacher (" in top and "use --judge with another model for an independent check.**" in top
    assert "2. it differs from the original, did not write the target label into the input or change its answer\n" \
           "   format, and its token edit ratio is at most **0.3**;" in card
    assert "3. the judge `fake:fake-model@r1` (the teacher itself: self-confirming), seeing only the edited question" in card
    assert "a strict majority of the readable answers was the target label" in card
    assert ("| rationales | verified (rows) | argued for another label | stated two labels (contradicting) | "
            "no answer stated | cut off | failed problems |\n|---|---|---|---|---|---|---|\n"
            "| 20 | 18 | 2 | 0 | 0 | 0 | 0 |") in card
    from .test_counterfactual import FakeTeacher
    from .test_counterfactual import fake as cf_reply

    _, _, out = run_cases(tmp_path / "other", path, judge=FakeTeacher(cf_reply, model="judge-model"))
    card = render_card(out, repo_id="me/cf")
    assert "self-confirming" not in card
    warned = [line for line in card.splitlines() if "Warning" in line]  # the stand-ins only: teacher and judge
    assert len(warned) == 2 and all("hubtool's test backend (`fake:`)" in line for line in warned), warned
    assert "3. the judge `fake:judge-model@r1`, seeing only the edited question" in card


def test_a_mixed_card_says_how_balance_trims_and_when_it_missed_its_target(tmp_path):
    from toolkit.rundir import read_manifest

    from .test_mixed import FAST, GOOD, _source, _teacher

    out = tmp_path / "run"
    build("mixed", out, teachers={"teacher": _teacher(GOOD)}, source=_source(tmp_path), cot_samples=3, pot_samples=5,
          **FAST)  # fmt: skip
    card = render_card(out, repo_id="me/mixed")
    assert ("never a problem's last row: a solved problem keeps a row, and\none solved in one mode only keeps that mode. "
            "First go the extra rows of easy problems") in card  # fmt: skip
    assert "from the problems where that mode leads the most" not in card
    assert "Problems solved (verified in either mode): 4; problems with kept rows: 4." in card
    assert "PoT share not reached" not in card
    assert "completion tokens (`num_tokens`; how they were counted: estimated: the reply's completion tokens" in card

    manifest = json.loads((out / "manifest.json").read_text())
    manifest["stats"]["balance"] |= {"target_missed": True, "pot_ratio": 0.6, "target_pot_ratio": 0.25}
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert read_manifest(out).stats["balance"]["target_missed"] is True
    card = render_card(out, repo_id="me/mixed")
    assert ("**PoT share not reached** (`target_missed`): the kept mix is 60.0% PoT, not 25.0%; the rest\n"
            "of the over-represented mode were problems' last rows, and balance deletes no problem.") in card


def test_only_roles_played_by_the_test_backend_are_warned_of():
    """cpu-evolve's answers came from `fake:unparsable` (they are not what it measures); its evolver and
    scorer were a served model."""
    from toolkit.card_quality import stand_in_warnings
    from toolkit.manifest import ModelInfo

    served = "openai:qwen-coder-1.5b@http://127.0.0.1:28048/v1"
    models = [ModelInfo(role="evolver", spec=served, backend="openai", model="qwen-coder-1.5b"),
              ModelInfo(role="scorer", spec=served, backend="openai", model="qwen-coder-1.5b"),
              ModelInfo(role="answerer", spec="fake:unparsable", backend="fake", model="unparsable",
                        revision="hubtool-0.1.0")]  # fmt: skip
    assert stand_in_warnings(models) == ["the answerer is hubtool's test backend (`fake:`), not a model: what it "
                                         "wrote in these rows is placeholder text, not fit to train on"]  # fmt: skip
    assert stand_in_warnings(models[:2]) == []
