"""IDEA-MCTS end to end on the real default model, through the CLI:

    evolve (search, score, answer) -> push -> SFT (LoRA, 2 steps) -> hubtool eval (IFEval, local docs, judged)

Tiny on purpose (2 seeds, one expansion of 2 children, 64 new tokens): it proves the pipeline, not the
method. The trees are the model's own: a 135M evolver mostly chats instead of rewriting, and its
rubric replies are mostly unreadable; the build says so in its counts and the card's tables, which
are computed from the trees.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main
from toolkit.rundir import data_file, read_manifest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "evolve"


def hubtool(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_evolve_push_train_eval(tmp_path, small_torch):
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard

    run, student, evals = tmp_path / "evolve", tmp_path / "student", tmp_path / "evals"
    build = ["build-dataset", "evolve", "--source", f"file:{FIXTURES / 'seeds.jsonl'}", "--limit", "2",
             "--children", "2", "--iterations", "1", "--max-depth", "1", "--reward-threshold", "2",
             "--max-new-tokens", "48",
             "--judge-max-new-tokens", "16", "--rows", "all", "--include-seed", "--keep", "all",
             "--batch-size", "16", "--out", run]  # fmt: skip
    out = hubtool(*build)
    assert "evolve: 2 seeds, " in out

    manifest = read_manifest(run)
    c, stats = manifest.counts, manifest.stats
    assert c["failed"] == 0 and c["seeds_done"] == 2 and c["evolver_calls"] == 4 and c["nodes"] == 4
    rows = pq.read_table(data_file(run)).to_pylist()
    trees = {p.stem: json.loads(p.read_text()) for p in (run / "trees").glob("*.json")}
    assert len(trees) == 2 and len(rows) == c["kept"] >= 2  # the two seeds at least (--include-seed)
    # every scored node's reward is at least 3 (> 2): it ends its path, so no rollout follows the expansion
    for tree in trees.values():  # real trees: one expansion of the seed into two evolutions
        root = tree["root"]
        assert root["scores"] and len(root["children"]) == 2 and tree["evolver_calls"] == 2
        assert {k["action"] for k in root["children"]} <= {a["action"] for a in stats["actions"]}
    seeds = [r for r in rows if r["depth"] == 0]
    assert len(seeds) == 2 and all(r["question"] == r["seed"] for r in seeds)
    assert all(r["prompt"] == [{"role": "user", "content": r["question"]}] and r["num_tokens"] > 0 for r in rows)
    assert stats["scores"]["seeds"]["n"] == 2 and stats["scores"]["rows"]["n"] == len(rows)
    assert c["scored"] == 2 + 4 - c["invalid_evolutions"]

    card = DatasetCard((run / "README.md").read_text())
    s = stats["scores"]["seeds"]
    assert f"| seeds (before) | 2 | {s['quality']} | {s['complexity']} | {s['diversity']} | {s['average']} |" in card.text
    assert f"{c['unparsed_scores']} of {c['scored'] * 3}" in card.text

    again = hubtool(*build)  # resumable: everything from the call cache, the same trees
    assert "0 new calls" in again
    assert {p.stem: json.loads(p.read_text()) for p in (run / "trees").glob("*.json")} == trees

    hubtool("push", run, "me/evolve-smoke")
    hubtool("train", ROOT / "recipes/evolve/smollm2-135m-lora-smoke.yaml", "--set", "dataset_name=me/evolve-smoke",
            "--set", "max_steps=2", "--output-dir", student)  # fmt: skip
    assert (student / "adapter_config.json").is_file()

    judge = tmp_path / "judge.jsonl"  # a scripted judge: the point here is the plumbing, not the verdicts
    judge.write_text(json.dumps({"match": ".", "replies": ["Both are alike. [[C]]"]}) + "\n")
    report = hubtool("eval", "--model", "smollm2-135m", "--model", student, "--tasks", "ifeval", "--limit", "2",
                     "--max-gen-toks", "32", "--data-dir", FIXTURES, "--judge", f"fake:{judge}",
                     "--output-dir", evals)  # fmt: skip
    assert "ifeval (ID)" in report and "Judged win rate" in report and "| 2 | 0 | 4 | 0 | 0 | 50.0 |" in report
    scores = json.loads((evals / "scores.json").read_text())
    for model in ("smollm2-135m", "student"):
        assert 0.0 <= scores["scores"][model]["hubtool_ifeval"]["strict-match"] <= 1.0
    assert scores["judged"][0]["model"] == "student" and scores["judged"][0]["docs"] == 2
    assert len((evals / "judge.jsonl").read_text().splitlines()) == 4
