"""Mixed distillation end to end on real models, through the CLI:

    build-dataset mixed (the embedded default teacher: sampled, programs run in the sandbox, verified)
      -> push -> hubtool train recipes/mixed/... (2 steps, the mixed loss) -> hubtool eval in three modes

The 135M teacher keeps no row here (its right answers come without reasoning), so the data pushed and
trained on is the same build by the rule-based fake teacher; training and evaluation are real.

Tiny on purpose (4 easy problems, 96 new tokens, 2 training steps, 2 eval documents): this proves the
pipeline, not the method. Every row is real, and re-judging it agrees with what it says. The 135M
default rarely writes a program that sets `ans`; the fast tests cover the PoT path with scripted
teachers, and the optional test below runs it with a small coder model when its file is here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.answer_reading import stated_answer
from toolkit.answers import is_correct
from toolkit.cli import main
from toolkit.methods.mixed.programs import extract_program
from toolkit.rundir import read_manifest
from toolkit.sandbox import run_program

from .fakes import rows

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "mixed" / "smollm2-135m-lora-smoke.yaml"
EVAL_DATA = ROOT / "tests" / "fixtures" / "eval"
PROBLEMS = [("What is 2 + 3?", "5"), ("What is 10 - 4?", "6"), ("What is 3 + 4?", "7"), ("What is 6 + 2?", "8")]
CODER = Path(os.environ.get("HUBTOOL_DEV_CODER", "") or "no-coder-model-given.gguf")  # a local coder GGUF, optional


def hubtool(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "easy.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in PROBLEMS))
    return path


def _assert_rows_are_real(kept: list[dict]) -> None:
    """Re-judging every kept row agrees with what it says: the stated answer or the program's `ans`."""
    for r in kept:
        text = r["completion"][0]["content"]
        assert r["correct"] and is_correct(r["pred"], r["gold"], "number")
        if r["mode"] == "cot":
            assert stated_answer(text, "number").value == r["pred"] and r["exec_outcome"] is None
            assert r["prompt"][0]["content"].startswith("Answer with a chain of thought (CoT).")
        else:
            result = run_program(extract_program(text), wall_s=5)
            assert result.ok and result.value == r["exec_value"] == r["pred"] and r["exec_outcome"] == "ok"
            assert r["prompt"][0]["content"].startswith("Answer with a program of thought (PoT).")


def test_build_push_train_eval_in_three_modes(tmp_path):
    run, student, evals = tmp_path / "mixed-run", tmp_path / "mixed-student", tmp_path / "evals"

    # 1. the real default teacher writes rationales and programs; programs run in the sandbox
    out = hubtool("build-dataset", "mixed", "--source", f"file:{_source(tmp_path)}", "--cot-samples", "6",
                  "--pot-samples", "2", "--max-new-tokens", "96", "--batch-size", "32", "--out", run)  # fmt: skip
    assert "mixed: 4 problems, 32 samples" in out
    manifest, kept = read_manifest(run), rows(run)
    c, stats = manifest.counts, manifest.stats
    assert (c["cot_samples"], c["pot_samples"], c["failed"]) == (24, 8, 0)
    assert c["cot_verified"] + sum(stats["failures"]["cot"].values()) == 24  # every rationale accounted for
    pot_failures = sum(stats["failures"]["pot"].values())
    assert c["pot_verified"] + pot_failures == 8  # every program accounted for, by kind
    assert c["pot_executed"] == 8 - stats["failures"]["pot"]["truncated"] - stats["failures"]["pot"]["no_program"]
    assert stats["sandbox"]["isolation"] in ("full", "partial", "minimal")
    # The 135M answers these mostly bare ("The answer is 5.") or with an equation and no answer line:
    # counted, never kept (a bare right answer teaches a student no method).
    assert stats["failures"]["cot"]["no_reasoning"] > 0
    _assert_rows_are_real(kept)
    assert c["kept"] == len(kept) == c["kept_cot"] + c["kept_pot"]
    print("mixed e2e build:", json.dumps({"counts": c, "verification": stats["verification"],
                                          "failures": stats["failures"], "balance": stats["balance"]}))  # fmt: skip

    # The rest of the pipeline needs rows the 135M does not write: the same problems built by the
    # rule-based fake teacher (worked steps, then the answer line), through the same command.
    run = tmp_path / "mixed-run-fake"
    hubtool("build-dataset", "mixed", "--teacher", "fake:right", "--source", f"file:{_source(tmp_path)}",
            "--cot-samples", "2", "--pot-samples", "1", "--out", run)  # fmt: skip
    kept, c = rows(run), read_manifest(run).counts
    assert c["kept_cot"] == 4 and len(kept) == c["kept"]  # one CoT row per problem (the duplicate counted)
    _assert_rows_are_real(kept)

    # 2. push, 3. train by name with the mixed loss
    hubtool("push", run, "e2e/mixed-easy")
    hubtool("train", RECIPE, "--set", "dataset_name=e2e/mixed-easy", "--set", "max_steps=2", "--output-dir", student)
    record = json.loads((student / "hubtool_train.json").read_text())
    assert record["loss"]["alpha"] == 0.5 and record["training"]["global_steps"] == 2
    assert record["loss"]["rows_per_mode"] == {m: n for m, n in (("cot", c["kept_cot"]), ("pot", c["kept_pot"])) if n}

    # 4. the student in three modes, side by side
    tasks = "mixed_gsm8k_cot,mixed_gsm8k_pot,mixed_gsm8k_mixed"
    shown = hubtool("eval", "-m", student, "--tasks", tasks, "--data-dir", EVAL_DATA, "--limit", "2",
                    "--max-gen-toks", "24", "--batch-size", "8", "-o", evals)  # fmt: skip
    assert "| model | benchmark | cot | pot | mixed |" in shown
    scores = json.loads((evals / "scores.json").read_text())
    assert set(scores["modes"]) == {f"hubtool_{t}" for t in tasks.split(",")}
    assert all(scores["samples"][t] == 2 for t in scores["modes"])
    samples = [json.loads(line) for line in (evals / "mixed-student" / "samples_hubtool_mixed_gsm8k_mixed.jsonl").open()]
    assert all(len(s["resps"]) == 2 and all(len(r) == 4 for r in s["resps"]) for s in samples)  # 4 CoT + 4 PoT
    print("mixed e2e eval:", json.dumps(scores["scores"]))


@pytest.mark.skipif(not CODER.is_file(), reason="optional: set HUBTOOL_DEV_CODER to a small coder GGUF (e.g. Qwen2.5-Coder-0.5B-Instruct)")
def test_a_coder_teacher_writes_programs_that_verify(tmp_path):
    """With Qwen2.5-Coder-0.5B (a GGUF file fetched for development), real programs pass the sandbox."""
    run = tmp_path / "coder-run"
    hubtool("build-dataset", "mixed", "--source", f"file:{_source(tmp_path)}", "--teacher", f"transformers:{CODER}",
            "--cot-samples", "1", "--pot-samples", "2", "--max-new-tokens", "96", "--temperature", "0.2",
            "--batch-size", "12", "--out", run)  # fmt: skip
    manifest, kept = read_manifest(run), rows(run)
    assert manifest.counts["pot_verified"] >= 2, manifest.stats
    assert any(r["mode"] == "pot" for r in kept)
    _assert_rows_are_real(kept)
