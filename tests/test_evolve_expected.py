"""`--scorer-mode expected` on the embedded model (SmolLM2-135M, transformers): the score is the
probability-weighted mean over the score tokens, checked against a computation made here from the
model's own logits, and a build reads its quality and complexity that way."""

from __future__ import annotations

import asyncio
import math

import pytest

from toolkit import prompts
from toolkit.methods import get_method

from .fakes import FakeTeacher, build
from .test_evolve import SEEDS, _nodes, _trees, evolving

pytestmark = pytest.mark.slow

EVOLVE_PROMPTS = get_method("evolve").prompt_dirs  # the scoring templates are the method's own
INSTRUCTION = "Describe how to brew green tea, in three steps, for someone who has never made tea."


@pytest.fixture(scope="module")
def smollm():
    import torch

    from toolkit.teachers import load_teacher

    torch.set_num_threads(1)
    return load_teacher("transformers:smollm2-135m")


def _by_hand(backend, prompt: str, low: int, high: int) -> float:
    """The expected score computed here: SmolLM2's tokenizer writes "Score: 3" as Score, :, Ġ, 3 (the
    space and each digit are tokens of their own), so the reply is begun with "Score: " and the next
    token's logits are read at the digit tokens "1".."6"."""
    import torch

    tok = backend.tokenizer
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    ids = tok(text + "Score: ", add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        logits = backend.lm(**ids).logits[0, -1]
    digits = tok.convert_tokens_to_ids([str(v) for v in range(low, high + 1)])
    assert tok.unk_token_id not in digits
    picked = [float(logits[i]) for i in digits]
    weights = [math.exp(x - max(picked)) for x in picked]
    return sum(v * w for v, w in zip(range(low, high + 1), weights)) / sum(weights)


@pytest.mark.parametrize(("template", "low", "high"), [("evolve_quality", 1, 5), ("evolve_complexity", 1, 6)])
def test_expected_score_is_the_probability_weighted_mean(smollm, template, low, high):
    from toolkit.methods.evolve.expected import ExpectedScorer

    scorer = ExpectedScorer(smollm, low, high)
    tok = smollm.tokenizer
    assert scorer.prefix == "Score: " and scorer.ids == tok.convert_tokens_to_ids([str(v) for v in range(low, high + 1)])
    prompt = prompts.render(template, instruction=INSTRUCTION, low=low, high=high, dirs=EVOLVE_PROMPTS)
    value = asyncio.run(scorer.score(prompt))
    assert value == pytest.approx(_by_hand(smollm, prompt, low, high), abs=1e-5)
    assert low < value < high and value != round(value)  # a mean over the scores, not one of them


def test_a_build_reads_quality_and_complexity_from_the_logits(tmp_path, smollm, monkeypatch):
    """Fake evolver and answerer, the real model as the scorer: the seed's quality and complexity are
    the expected scores of its rendered rubric prompts, its diversity the tags the model wrote."""
    fake = FakeTeacher(evolving)
    manifest = build("evolve", tmp_path / "run", teachers={"evolver": fake, "scorer": smollm, "answerer": fake},
                     source=SEEDS, limit=1, children=2, iterations=1, max_depth=1, scorer_mode="expected",
                     scorer="transformers:smollm2-135m", judge_max_new_tokens=24)  # fmt: skip
    tree = next(iter(_trees(tmp_path / "run").values()))
    root = tree["root"]
    seed = tree["seed"]
    for key, template in (("quality", "evolve_quality"), ("complexity", "evolve_complexity")):
        prompt = prompts.render(template, instruction=seed, low=1, high=5, dirs=EVOLVE_PROMPTS)
        assert root["scores"][key] == pytest.approx(_by_hand(smollm, prompt, 1, 5), abs=1e-3)
    assert manifest.counts["scored"] == sum(1 for n in _nodes(root) if not n["invalid"])
    assert all(n["scores"]["quality"] != round(n["scores"]["quality"]) for n in _nodes(root) if n["scores"])

    # Re-run from the call cache (a killed build resumed): the logits it read are cached too, so the
    # scorer reads nothing again, and the tree is the same.
    from toolkit.methods.evolve.expected import ExpectedScorer

    def no_forward_pass(self, text):
        raise AssertionError(f"read the logits again for {text[-60:]!r}")

    monkeypatch.setattr(ExpectedScorer, "logits", no_forward_pass)
    again = build("evolve", tmp_path / "again", teachers={"evolver": fake, "scorer": smollm, "answerer": fake},
                  source=SEEDS, limit=1, children=2, iterations=1, max_depth=1, scorer_mode="expected",
                  scorer="transformers:smollm2-135m", judge_max_new_tokens=24)  # fmt: skip
    assert next(iter(_trees(tmp_path / "again").values()))["root"] == root
    assert again.counts["scored"] == manifest.counts["scored"] and not again.counts["failed"]


def test_a_sharded_build_with_expected_scores_merges_into_the_single_process_build(tmp_path, smollm):
    """The scorer's readings are cached with the calls, so the merge (stand-ins that load no weights)
    reads every score back from the shards' caches: the same trees and rows as one process."""
    from toolkit import api

    from .fakes import rows

    options = {"source": SEEDS, "limit": 2, "children": 2, "iterations": 1, "max_depth": 1, "scorer_mode": "expected",
               "scorer": "transformers:smollm2-135m", "judge_max_new_tokens": 8}  # fmt: skip (tags: short)

    def teachers():
        fake = FakeTeacher(evolving)
        return {"evolver": fake, "scorer": smollm, "answerer": fake}

    single = api.build("evolve", out=str(tmp_path / "single"), cache=str(tmp_path / "single.sqlite"),
                       teachers=teachers(), **options)  # fmt: skip
    for i in range(2):
        api.build("evolve", out=str(tmp_path / "sharded"), shard=f"{i}/2", teachers=teachers(), **options)
    merged = api.merge(tmp_path / "sharded")
    assert rows(tmp_path / "sharded") == rows(single.run_dir) and merged.manifest.counts == single.manifest.counts
    assert _trees(tmp_path / "sharded") == _trees(single.run_dir)
    assert all(n["scores"]["quality"] != round(n["scores"]["quality"]) for t in _trees(single.run_dir).values()
               for n in _nodes(t["root"]) if n["scores"])  # read from the logits, not written  # fmt: skip
