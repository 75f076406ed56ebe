"""IDEA-MCTS, second pass (issues 20, 21, 25): the scorer's range and expected scores, the paper's
row selection, refusals and empty answers, scoring prompts a model cannot copy an answer from,
seeds without rows, and the one-line errors (non-finite knobs, corrupt tree files)."""

from __future__ import annotations

import math
import re

import pytest
from click.testing import CliRunner

from tests.assertions import assert_one_line, raises_one_line
from toolkit import prompts
from toolkit.methods.evolve import PROMPT_DIRS
from toolkit.methods.evolve.expected import expected_value
from toolkit.methods.evolve.scoring import clean_evolution, is_empty, is_refusal, parse_score
from toolkit.teachers.fake import user_text

from .fakes import FakeTeacher, rows
from .test_evolve import SEEDS, _build, _nodes, _trees, evolving

REFUSAL = "I'm sorry, but I can't assist with that."  # verbatim, Qwen2.5-Coder-0.5B on two tea instructions


# --- the score range ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "low", "high", "score"),
    [("Score: 6", 1, 6, 6), ("Score: 6", 1, 5, None), ("I'd say 6/6.", 1, 6, 6), ("5 out of 6", 1, 6, 5),
     ("Score: 0", 0, 3, 0), ("Score: 4", 0, 3, None), ("6", 1, 6, 6), ("Score: N", 1, 6, None)],
)  # fmt: skip
def test_parse_score_in_the_configured_range(text, low, high, score):
    assert parse_score(text, low, high) == score


def test_a_1_to_6_scorer_is_read_not_scored_1(tmp_path):
    def six(request, j):
        text = user_text(request)
        if text.startswith(("Rate the quality", "Rate how complex")):
            return "Score: 6"
        if text.startswith("List the user"):
            return '["tea brewing", "step list", "time limit", "safety", "storage", "serving", "history"]'
        return evolving(request, j)

    manifest = _build(tmp_path / "run", FakeTeacher(six), limit=1, iterations=1, score_range="1-6",
                      reward_threshold=30.0)  # fmt: skip
    row = rows(tmp_path / "run")[0]
    assert (row["scores"]["quality"], row["scores"]["complexity"], row["scores"]["diversity"]) == (6.0, 6.0, 6.0)
    assert row["scores"]["reward"] == 18.0 and manifest.counts["unparsed_scores"] == 0


def test_expected_value_is_the_probability_weighted_mean():
    # softmax over the score tokens only: weights 1 and 3 -> (1*1 + 2*3) / 4
    assert expected_value([0.0, math.log(3)], [1, 2]) == pytest.approx(1.75)
    assert expected_value([5.0, 5.0, 5.0 + math.log(2)], [1, 2, 3]) == pytest.approx((1 + 2 + 6) / 4)
    assert expected_value([-1000.0, 0.0], [1, 6]) == pytest.approx(6.0)  # no overflow, no underflow to nan


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"scorer_mode": "expected", "evolver": "fake:right"}, "give --scorer transformers:MODEL or openai:MODEL@URL"),
     ({"scorer_mode": "expected", "score_range": "1-10"}, "--score-range up to 9"),
     ({"score_range": "5-1"}, "--score-range must be LOW-HIGH"), ({"score_range": "high"}, "--score-range must be")],
)  # fmt: skip
def test_scorer_mode_and_range_errors(fields, message):
    from toolkit.methods.evolve import EvolveConfig

    with raises_one_line(match=re.escape(message)):
        EvolveConfig(source=SEEDS, out="o", **fields)


# --- non-finite knobs and corrupt trees: one line, no traceback ------------------------------------------
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--uct-c", "nan", "--uct-c must be a finite number"), ("--uct-c", "inf", "--uct-c must be a finite number"),
     ("--reward-threshold", "nan", "--reward-threshold must be a finite number"),
     ("--reward-threshold", "-inf", "--reward-threshold must be a finite number")],
)  # fmt: skip
def test_non_finite_knobs_are_refused_before_anything_runs(tmp_path, option, value, message):
    from toolkit.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "evolve", "--source", SEEDS, "--limit", "1", "--evolver",
                                       "fake:right", option, value, "--out", str(out)])  # fmt: skip
    assert_one_line(result, message, code=None)
    assert not out.exists()


@pytest.mark.parametrize(
    "content",
    [b'{"seed_id": "x", "root": {"id": 0, "chil', b"[1]", b'{"root": 5}', b'{"root": {"children": 7}}',
     b"\xff\xfe\x00binary", b'{"root": {"children": [3]}}', b""],
)  # fmt: skip
def test_inspect_a_corrupt_tree_is_one_line(tmp_path, content):
    from toolkit.cli import main

    _build(tmp_path / "run", limit=1, iterations=1)
    first = sorted((tmp_path / "run" / "trees").glob("*.json"))[0]
    first.write_bytes(content)
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "run"), "--tree", "first"])
    assert_one_line(result, "is not a readable search tree", code=None)
    assert first.name in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # no traceback


# --- refusals, empty answers, seeds without rows --------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "refusal"),
    [(REFUSAL, True), ("I'm sorry, but I can't assist with that request.", True),
     ("I’m sorry, but I cannot help with that.", True), ("Sorry, I can't help with creating that content.", True),
     ("As an AI language model, I cannot provide personal opinions on tea.", True),
     ("I cannot assist with that.", True), ("I apologize, but I am unable to fulfil this request.", True),
     ("I'm sorry to hear your tea went cold. Reheat it gently: 1. Pour it into a pan. 2. Warm it on low heat.",
      False),
     ("Sorry for the confusion! Green tea is steeped at 80 °C for two to three minutes.", False),
     ("I can't stress enough how much the water temperature matters: green tea at 80 °C, black at 95 °C.", False),
     ("I'm sorry, but I can't give medical advice. " + "However, here is what is generally known about "
      "caffeine in tea: a cup of black tea holds about 40-70 mg, green tea 20-45 mg, and herbal infusions "
      "usually none. Most adults tolerate up to 400 mg a day; pregnant people are advised to stay under "
      "200 mg. Brewing longer extracts more caffeine, so a short steep gives a milder cup.", False)],
)  # fmt: skip
def test_is_refusal(text, refusal):
    assert is_refusal(text) is refusal


@pytest.mark.parametrize(("text", "empty"), [("", True), ("  \n ", True), ("...", True), ("```\n```", True),
                                             ("**\n**", True), ("4", False), ("Yes.", False)])  # fmt: skip
def test_is_empty(text, empty):
    assert is_empty(text) is empty


def test_a_refusal_is_a_failed_evolution():
    assert clean_evolution(REFUSAL, "Describe how to brew green tea.", "stop") == (REFUSAL, "refusal")


def test_refusals_and_empty_answers_are_dropped_counted_and_their_seeds_counted(tmp_path):
    """Seed 1 (the poem) is answered with a refusal, seed 2 (the leap year) with nothing but
    punctuation, seed 3 properly: seeds 1 and 2 end without rows, whatever --keep says."""

    def answering(request, j):
        text = user_text(request)
        if "instruction rewriter" in text or text.startswith(("Rate", "List the user")):
            return evolving(request, j)
        if "poem" in text:
            return REFUSAL
        return " ... " if "leap year" in text else f"Answer to: {text}"

    manifest = _build(tmp_path / "run", FakeTeacher(answering), limit=3, keep="all")
    trees = _trees(tmp_path / "run")
    path_nodes = {k: sum(1 for n in _nodes(t["root"]) if n["on_path"] and n["depth"] > 0) for k, t in trees.items()}
    seeds = {t["seed"]: k for k, t in trees.items()}
    poem, leap = seeds["Write a short poem about the sea."], seeds["Explain what a leap year is."]
    c = manifest.counts
    assert (c["refusals"], c["empty_answers"]) == (path_nodes[poem], path_nodes[leap])
    assert c["seeds_without_rows"] == 2 and c["seeds_done"] == 3
    kept = rows(tmp_path / "run")
    assert {r["seed_id"] for r in kept} == set(trees) - {poem, leap} and len(kept) == c["kept"]
    assert c["answered"] == c["refusals"] + c["empty_answers"] + c["kept"]
    assert not any(is_refusal(r["completion"][0]["content"]) for r in kept)


# --- scoring prompts hold no example a model can copy as its answer --------------------------------------
@pytest.mark.parametrize("name", ["evolve_quality", "evolve_complexity", "evolve_diversity", "evolve"])
def test_no_scoring_prompt_shows_a_copyable_example(name):
    text = prompts.render(name, dirs=PROMPT_DIRS, instruction="Describe how to brew green tea.", low=1, high=5, action="deepen",
                          directive="Ask for the reasons behind each step.")  # fmt: skip
    assert re.findall(r'"[^"\n]+"|“[^”\n]+”|\[[^\]\n]*"[^\]\n]*\]', text) == []  # no quoted example, no JSON one
    assert not re.search(r"(?i)score\s*:\s*[0-9N]\b", text)  # no "Score: N" a reply could repeat


def test_a_reply_that_repeats_a_prompts_example_is_not_scored(tmp_path):
    """A user's own tag prompt with examples: tags equal to them are copies, not judgments."""
    template = tmp_path / "tags.jinja"
    template.write_text('List the intents of the instruction, e.g. "poem writing", "word limit", '
                        '"historical knowledge".\n\nInstruction:\n{{ instruction }}\n\nReply with a JSON list.')  # fmt: skip

    def copying(request, j):
        text = user_text(request)
        if text.startswith("List the intents"):
            if "+" in text:  # an evolved instruction: three of its own tags and one copied
                return '["tea brewing", "step order", "poem writing", "water temperature"]'
            return '["poem writing", "word limit", "historical knowledge"]'  # the seed: copies only
        return evolving(request, j)

    manifest = _build(tmp_path / "run", FakeTeacher(copying), limit=1, iterations=1, diversity_template=str(template))
    tree = next(iter(_trees(tmp_path / "run").values()))
    root = tree["root"]
    assert root["scores"]["diversity"] == 1.0 and root["scores"]["unparsed"] == 1 and root["tags"] == []
    evolved = [n for n in _nodes(root) if n["depth"] > 0 and not n["invalid"]]
    assert evolved and all(n["scores"]["diversity"] == 3.0 and n["tags"] == ["tea brewing", "step order",
                                                                           "water temperature"] for n in evolved)  # fmt: skip
    assert manifest.counts["copied_tags"] == 3 + len(evolved)


# --- the paper's row selection ----------------------------------------------------------------------------
def _pool(tree: dict) -> set[int]:
    """Valid evolved nodes on a path from the seed to a terminal node (or to a path's last node)."""
    out: set[int] = set()

    def down(node: dict, above: list[dict]) -> None:
        here = [*above, node]
        if not node["invalid"] and (node["terminal"] or (node["on_path"] and not any(k["on_path"] for k in node["children"]))):
            out.update(n["id"] for n in here if n["depth"] > 0)
        for kid in node["children"]:
            if not kid["invalid"]:
                down(kid, here)

    down(tree["root"], [])
    return out


def test_rows_sample_draws_n_rows_over_all_seeds_paths(tmp_path):
    manifest = _build(tmp_path / "run", rows="sample", sample_rows=5, limit=3, reward_threshold=9.0, iterations=3)
    trees = _trees(tmp_path / "run")
    pool = {(k, i) for k, t in trees.items() for i in _pool(t)}
    kept = rows(tmp_path / "run")
    assert len(kept) == 5 and {(r["seed_id"], r["node"]) for r in kept} <= pool
    assert manifest.counts["answered"] == len(pool) and manifest.counts["not_sampled"] == len(pool) - 5
    assert manifest.counts["kept"] == 5
    assert manifest.stats["scores"]["rows"]["n"] == 5 and sum(manifest.stats["depth_histogram"].values()) == 5
    # terminal siblings that no simulation passed through are in the pool (they were dropped before)
    on_paths = {(k, n["id"]) for k, t in trees.items() for n in _nodes(t["root"]) if n["on_path"] and n["depth"]}
    assert pool - on_paths
    again = _build(tmp_path / "again", rows="sample", sample_rows=5, limit=3, reward_threshold=9.0, iterations=3)
    # seeded: the same build draws the same rows
    assert [r["id"] for r in rows(tmp_path / "again")] == [r["id"] for r in kept] and again.counts == manifest.counts


def test_the_preset_is_the_papers_selection():
    from toolkit.methods.evolve import PRESETS

    assert PRESETS["idea-mcts"].values["rows"] == "sample" and PRESETS["idea-mcts"].values["sample_rows"] == 1000



def test_the_outcome_line_speaks_of_seeds_rows_and_evolutions():
    """What the summary line should say for this method (`stats.outcome`), on a build where one seed
    kept no row: counts a user can act on, none of CoT's "samples, correct"."""
    from collections import Counter

    from toolkit.methods.evolve.stats import outcome

    counts = Counter(problems=2, seeds_done=2, seeds_without_rows=1, kept=3, answered=5, refusals=2,
                     evolver_calls=12, invalid_evolutions=4, scored=10, unparsed_scores=1)  # fmt: skip
    assert outcome(counts) == ("2 seeds, 1 with rows, 1 without; 3 rows from 5 answered instructions (2 refusals); "
                               "12 evolutions (4 failed), 10 scored (1 unreadable judgments)")  # fmt: skip
