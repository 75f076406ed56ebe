"""Self-refine end to end on the real default model, through the CLI:

    CoT build (teacher) -> SFT (LoRA) -> preference build from that student -> DPO -> the student answers

Tiny on purpose (4 easy problems, 48 new tokens, 2 training steps): this proves the loop, not
the method. Every row is real: sampled by the model, scored by the shared checker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.answer_reading import stated_answer
from toolkit.answers import is_correct
from toolkit.cli import main
from toolkit.rundir import data_file, read_manifest

pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# Easy enough that the 135M model gets some right and some wrong, so pairs exist.
PROBLEMS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 + 4?", "7"), ("What is 6 + 2?", "8")]
GEN = ["--max-new-tokens", "48", "--batch-size", "32"]  # a preference build's 64 samples in two batches


def hubtool(*args: str) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def rows(run_dir: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(data_file(run_dir)).to_pylist()


def test_cot_sft_preference_dpo(tmp_path):
    source = tmp_path / "easy.jsonl"
    source.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    cot, sft, pref, dpo = (tmp_path / n for n in ("sr-cot", "sr-sft", "sr-pref", "sr-dpo"))

    # 1. the teacher's CoT demonstrations (all kept: a 135M teacher is mostly wrong)
    hubtool("build-dataset", "cot", "--source", f"file:{source}", "--samples", "2", "--keep", "all", *GEN, "--out", cot)
    # 2. SFT: the CoT student, a LoRA adapter folder
    hubtool("train", RECIPES / "cot/smollm2-135m-lora-smoke.yaml", "--set", f"dataset_name={cot}",
            "--set", "max_steps=2", "--output-dir", sft)  # fmt: skip
    assert (sft / "adapter_config.json").is_file()

    # 3. the student samples its own reasoning on the CoT dataset's prompts, paired by the paper's rule:
    #    chosen = its correct CoT answer, rejected = its direct answer, solved questions included
    args = ["build-dataset", "preference", "--preset", "ranaldi-selfrefine24", "--student", f"transformers:{sft}",
            "--from-dataset", cot, "--samples", "8", *GEN, "--out", pref]  # fmt: skip
    out = hubtool(*args)
    assert "preference: 4 problems, 32 samples" in out
    manifest = read_manifest(pref)
    c, pairs = manifest.counts, rows(pref)
    assert manifest.teacher_identity.startswith(f"transformers:{sft}@local-") and manifest.preset == "ranaldi-selfrefine24"
    assert c["failed"] == 0 and c["direct"] == 32 and c["pairs"] == len(pairs)
    assert sum(manifest.stats["pass_rate_histogram"].values()) == 4
    assert pairs, f"the student solved nothing in 32 samples: {c}"  # DPO below needs one pair

    cot_prompts = {r["id"]: r["prompt"] for r in rows(cot)}
    for r in pairs:  # the rows are real: re-scoring them agrees with what they say
        assert r["prompt"] == cot_prompts[r["id"]]
        assert (r["chosen_from"], r["rejected_from"]) == ("student", "direct")
        chosen, rejected = r["chosen"][0]["content"], r["rejected"][0]["content"]
        assert chosen.strip() != rejected.strip()
        assert stated_answer(chosen, "number").value == r["chosen_pred"]
        assert is_correct(r["chosen_pred"], r["gold"], "number")
        found = stated_answer(rejected, "number")
        assert (found.value if found else None) == r["rejected_pred"]
    per_problem = {i: sum(r["id"] == i for r in pairs) for i in cot_prompts}
    correct = {i: round(rate * 8) for i, rate in ((r["id"], r["pass_rate"]) for r in pairs)}
    assert all(per_problem[i] <= correct[i] for i in correct)  # at most one pair per correct sample
    assert c["skipped"] == c["none_correct"]  # solved problems are paired, not skipped

    again = hubtool(*args)  # resumable like every build: all from the call cache
    assert "0 new calls" in again and rows(pref) == pairs

    # 4. DPO on the student's own pairs, then the refined student loads and answers
    hubtool("train", RECIPES / "self-refine/dpo-lora-smoke.yaml", "--set", f"model_name_or_path={sft}",
            "--set", f"dataset_name={pref}", "--set", "max_steps=2", "--output-dir", dpo)  # fmt: skip
    from toolkit.teachers import Request, SamplingParams, load_teacher

    student = load_teacher(f"transformers:{dpo}")
    try:
        [answer] = student.generate_many([Request(tuple(pairs[0]["prompt"]), params=SamplingParams(temperature=0, max_new_tokens=24))])
    finally:
        student.close()
    assert answer[0].text.strip() and answer[0].completion_tokens > 0
