"""Counterfactual distillation end to end on the real default model, through the CLI:

    build (teacher = judge = SmolLM2-135M) -> push -> SFT with and without the counterfactual rows
      -> hubtool eval: in-domain, out-of-domain and contrast-set consistency side by side

Tiny on purpose (4 short yes/no questions, 80 new tokens, 1 training step each): it proves the
path, not the method. Every row is real: written by the model and re-checked here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.answer_reading import stated_answer
from toolkit.cli import main
from toolkit.rundir import data_file, read_manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "counterfactual" / "eval"
SMOKE = ROOT / "recipes" / "counterfactual" / "smollm2-135m-lora-smoke.yaml"
# Short enough that the 135M model finishes its rationales within the token budget.
QUESTIONS = [("Is 9 greater than 4?", "yes"), ("Is the sun cold?", "no"), ("Do fish live in water?", "yes"),
             ("Is 2 + 2 equal to 5?", "no")]  # fmt: skip


def hubtool(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_build_push_train_with_and_without_counterfactuals_then_eval(tmp_path, small_torch):
    import pyarrow.parquet as pq

    source = tmp_path / "yesno.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    run = tmp_path / "cf-run"
    hubtool("build-dataset", "counterfactual", "--source", f"file:{source}", "--samples", "2", "--judge-votes", "1",
            "--max-new-tokens", "80", "--batch-size", "32", "--out", run)  # fmt: skip

    manifest, kept = read_manifest(run), pq.read_table(data_file(run)).to_pylist()
    c = manifest.counts
    assert c["problems"] == 4 and c["targets"] == 4 and c["failed"] == 0 and c["cf_generated"] == 4
    assert c["cf_generated"] == sum(c[f"cf_{k}"] for k in ("truncated", "unparsable", "format", "identical", "label_leak",
                                                             "instructions", "too_far", "minimal"))  # fmt: skip
    assert c["cf_minimal"] == c["cf_kept_old_label"] + c["cf_judged_other"] + c["cf_judge_unreadable"] + \
        c["cf_judge_failed"] + c["cf_judged"]  # fmt: skip
    assert c["samples"] == (c["correct"] + c["wrong_label"] + c["contradicting"] + c["no_answer"] + c["truncated"]
                            + c["no_reasoning"]), c  # every sample in one outcome; a bare answer explains no view
    assert len(kept) == c["kept"] == c["correct"] > 0, c  # SFT below needs a row
    for r in kept:  # real rows: re-reading each one agrees with what it says
        text = r["completion"][0]["content"]
        assert stated_answer(text, "yesno").value == r["target_label"] == r["pred"]
        # what follows an answer stated mid-way stays (issue 20 item 1); a closing statement is in house form
        assert f"The answer is {r['target_label']}" in text
        assert r["teacher"].startswith("transformers:smollm2-135m") and r["num_tokens"] > 0

    hubtool("push", run, "test/cf-yesno")
    with_cf, originals = tmp_path / "with-cf", tmp_path / "originals"
    common = ["--set", "dataset_name=test/cf-yesno", "--set", "max_steps=1", "--set", "per_device_train_batch_size=2"]
    hubtool("train", SMOKE, *common, "--output-dir", with_cf)
    hubtool("train", SMOKE, *common, "--where", "is_counterfactual=false", "--output-dir", originals)
    record = json.loads((originals / "hubtool_train.json").read_text())["dataset"]
    assert record["where"] == {"is_counterfactual": "false"} and record["rows"] == c["kept_original"]
    assert json.loads((with_cf / "hubtool_train.json").read_text())["dataset"]["rows"] == c["kept"]

    out = tmp_path / "evals"
    report = hubtool("eval", "-m", with_cf, "-m", originals, "--tasks", "gym_syllogism,cf_sst2,cf_imdb_cad",
                     "--in-domain", "gym_syllogism", "--data-dir", DATA, "--limit", "2", "--max-gen-toks", "16",
                     "--batch-size", "4", "-o", out)  # fmt: skip
    # the gym task asks with its own prompt ([cot]): the students' training prompt needs a label set it lacks
    header = "| model | gym_syllogism (ID) [cot] | cf_sst2 | cf_imdb_cad (contrast) | ID avg | OOD avg | consistency |"
    assert report.count(header) == 2  # one table per filter
    assert "| with-cf | " in report and "| originals | " in report
    scores = json.loads((out / "scores.json").read_text())
    for model in ("with-cf", "originals"):
        assert set(scores["consistency"][model]) == {"hubtool_cf_imdb_cad"}
        assert 0.0 <= scores["consistency"][model]["hubtool_cf_imdb_cad"]["strict-match"] <= 1.0  # one whole pair
