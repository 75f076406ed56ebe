"""IDEA-MCTS (`build-dataset evolve`) on the fake teacher: the search pinned step by step (UCT order,
expansion, terminal rules, backpropagation), determinism across a kill and a resume, the baseline's
budget, the parsers, the rows, the trees, the card and the CLI."""

from __future__ import annotations

import json
import math
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit import prompts
from toolkit.methods.evolve import PROMPT_DIRS
from toolkit.methods.evolve import search as S
from toolkit.methods.evolve import tree as T
from toolkit.methods.evolve.actions import DEFAULT_ACTIONS, load_actions
from toolkit.methods.evolve.scoring import clean_evolution, parse_score, parse_tags
from toolkit.teachers.base import CallFailure, Completion
from toolkit.teachers.fake import user_text

from .fakes import FakeTeacher, build, rows

FIXTURES = Path(__file__).parent / "fixtures" / "evolve"
SEEDS = f"file:{FIXTURES / 'seeds.jsonl'}"


# --- a fake evolver and scorer that make the search legible -------------------------------------------
def evolving(request, j):
    """Evolution appends "+ACTION#node"; complexity = 1 + evolutions; tags = the distinct actions (max 5);
    quality 4; anything else is answered."""
    text = user_text(request)
    if "instruction rewriter" in text:
        given = text.split("Given instruction:\n", 1)[1].split("\n\nWrite only", 1)[0]
        action = re.search(r"applying this change \(([^)]+)\)", text).group(1)
        return f"{given} +{action}#{request.params.seed}"
    instruction = text.split("Instruction:\n", 1)[-1].split("\n\nReply with", 1)[0]
    if text.startswith("Rate the quality"):
        return "Score: 4"
    if text.startswith("Rate how complex"):
        return f"Score: {min(5, 1 + instruction.count(' +'))}"
    if text.startswith("List the user intentions"):
        return json.dumps(sorted({a.split("#")[0] for a in re.findall(r"\+(\S+)", instruction)}) or ["writing"])
    return f"Answer to: {text}"


def _build(out: Path, teacher=None, **fields):
    teacher = teacher or FakeTeacher(evolving)
    fields.setdefault("source", SEEDS)
    fields.setdefault("limit", 3)
    return build("evolve", out, teachers=dict.fromkeys(("evolver", "scorer", "answerer"), teacher), **fields)


def _trees(run: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run / "trees").glob("*.json"))}


def _nodes(node: dict):
    yield node
    for child in node["children"]:
        yield from _nodes(child)


# --- the pure search: UCT, selection, terminal rules, backpropagation ----------------------------------
def _node(i, parent=None, *, visits=0, value=0.0, reward=6.0, kind="tree", terminal=False, invalid=None):
    node = T.Node(id=i, instruction=f"n{i}", depth=parent.depth + 1 if parent else 0, kind=kind if parent else "root",
                  parent=parent, visits=visits, value=value, terminal=terminal, invalid=invalid,
                  scores=T.Scores(2, 2, reward - 4, reward))  # fmt: skip
    if parent:
        parent.children.append(node)
    return node


@pytest.mark.parametrize(("c", "chosen"), [(0.0, "B"), (0.5, "B"), (1.0, "A"), (2.0, "A")])
def test_uct_trades_the_mean_against_the_visits(c, chosen):
    root = _node(0, visits=7, value=31.0)
    a = _node(1, root, visits=1, value=4.0)  # Q 4, rarely tried
    b = _node(2, root, visits=6, value=27.0)  # Q 4.5, well tried
    assert T.uct(a, 7, 1.0) == pytest.approx(4 + math.sqrt(math.log(7)))
    assert T.uct(b, 7, 1.0) == pytest.approx(4.5 + math.sqrt(math.log(7) / 6))
    a.children, b.children = [], []
    assert T.select(root, c) is {"A": a, "B": b}[chosen]


def test_selection_order_on_a_hand_made_tree():
    root = _node(0, visits=4, value=40.0)
    a = _node(1, root, visits=3, value=33.0, reward=7)  # Q 11
    b = _node(2, root, visits=1, value=7.0, reward=9)  # Q 7
    a1 = _node(3, a, visits=2, value=20.0)
    a2 = _node(4, a, visits=1, value=13.0)  # the better grandchild
    # C=0: A (11 > 7), then A's best mean: a2 (13 > 10)
    assert T.select(root, 0.0) is a2
    # Large C favours the less visited side: B (1 visit) over A (3)
    assert T.select(root, 10.0) is b
    # Unvisited children come first: the higher reward, then the older node
    u1 = _node(5, a, reward=8)
    u2 = _node(6, a, reward=9)
    u3 = _node(7, a, reward=9)
    assert T.select(root, 0.0) is u2
    u2.visits, u2.value = 1, 1.0
    assert T.select(root, 0.0) is u3
    # Closed nodes are never selected: terminal, invalid, or with every child closed
    for n in (a1, a2, u1, u3):
        n.terminal = True
    u2.invalid = "empty"
    assert not T.is_open(a) and T.select(root, 0.0) is b
    b.terminal = True
    assert T.select(root, 0.0) is None
    _node(8, b, reward=1)  # a terminal node's children do not reopen it
    assert T.select(root, 0.0) is None


@pytest.mark.parametrize(
    ("depth", "reward", "terminal"),
    [(1, 9.0, False), (3, 10.0, False), (3, 10.5, True), (4, 3.0, False), (5, 3.0, True), (6, None, True),
     (2, None, False)],
)
def test_terminal_rule(depth, reward, terminal):
    """The paper: a path ends past depth 4 (depth > 4, so depth 4 is still open) or once the reward
    passes the threshold (10)."""
    assert T.is_terminal(depth, reward, 4, 10.0) is terminal


def test_backpropagation_adds_one_return_to_the_whole_path():
    root = _node(0)
    a = _node(1, root)
    b = _node(2, a)
    sibling = _node(3, root)
    T.backpropagate(b, 9.0)
    T.backpropagate(a, 3.0)
    assert [(n.visits, n.value) for n in (root, a, b, sibling)] == [(2, 12.0), (2, 12.0), (1, 9.0), (0, 0.0)]
    assert a.mean_value == 6.0 and T.uct(sibling, root.visits, 1.0) == math.inf
    T.mark_path(b)
    assert [n.on_path for n in (root, a, b, sibling)] == [True, True, True, False]


def test_best_new_child_and_row_nodes():
    root = _node(0)
    kids = [_node(1, root, reward=7), _node(2, root, reward=9, invalid="empty"), _node(3, root, reward=8),
            _node(4, root, reward=8)]  # fmt: skip
    assert T.best_new(kids) is kids[2]  # the invalid one never starts a simulation; ties: the older
    assert T.best_new([kids[1]]) is None
    T.mark_path(kids[3])
    assert [n.id for n in S.row_nodes(root, "paths", False)] == [4]
    assert [n.id for n in S.row_nodes(root, "paths", True)] == [0, 4]
    assert [n.id for n in S.row_nodes(root, "all", False)] == [1, 3, 4]


# --- the search on the fake models ---------------------------------------------------------------------
class ScriptedOracle:
    """Evolution appends the action; the reward is whatever `rewards` says for the depth."""

    def __init__(self, rewards):
        self.rewards, self.calls = rewards, []

    async def evolve(self, instruction, action, node_id):
        self.calls.append((instruction, action.name, node_id))
        return f"{instruction}+{action.name}", None

    async def score(self, instruction):
        r = self.rewards(instruction.count("+"))
        return T.Scores(r / 3, r / 3, r / 3, r), ()


def _search(rewards, **knobs):
    import asyncio

    oracle = ScriptedOracle(rewards)
    search = S.Search(oracle, DEFAULT_ACTIONS, S.Knobs(**knobs), S.rng_for("seed", 0))

    async def go():
        root = await search.root("seed")
        return await search.mcts(root)

    return asyncio.run(go()), search, oracle


def test_each_iteration_expands_one_leaf_into_children_and_rolls_one_out():
    """Rewards 5 + depth (never past 10 before depth 5). Worked by hand, C = 1:
    it 1: the seed -> #1-#5 (reward 6); rollout from #1 (the oldest best) to depth 5 (reward 10);
          returns: #1 gets 10, #2-#5 their own 6 each -> root N 5, value 34.
          (rollout nodes #6-#9)
    it 2: UCT at the root: #1 10 + sqrt(ln 5) beats 6 + sqrt(ln 5): #1 -> #10-#14 (reward 7); rollout
          from #10 to depth 5 (10); returns 10, 7, 7, 7, 7 -> #1 N 6, value 48; root N 10, value 72.
    it 3: #1 8 + sqrt(ln 10 / 6) = 8.62 beats #2 6 + sqrt(ln 10) = 7.52; below #1, #10 (10 + ...) wins:
          #10 -> five depth-3 nodes (reward 8), rollout to depth 5."""
    root, search, oracle = _search(lambda depth: 5.0 + depth, children=5, iterations=3, max_depth=4)
    expanded = [n.id for n in T.walk(root) if n.tree_children]
    assert expanded == [0, 1, 10]
    for n in T.walk(root):  # one expansion never repeats an action
        assert len({k.action for k in n.tree_children}) == len(n.tree_children)
    ends = [n for n in T.walk(root) if n.on_path and not any(k.on_path for k in n.children)]
    assert [(e.depth, e.terminal, e.reward) for e in ends] == [(5, True, 10.0)] * 3
    rollouts = [n for n in T.walk(root) if n.kind == "rollout"]
    assert len(rollouts) == 4 + 3 + 2 and search.calls == 15 + 9 == len(oracle.calls)
    by_id = {n.id: n for n in T.walk(root)}
    assert (root.visits, root.value) == (15, pytest.approx(10 + 24 + 10 + 28 + 10 + 32))
    assert [(by_id[i].visits, by_id[i].value) for i in (1, 2, 5, 10, 11)] == [
        (11, pytest.approx(48 + 10 + 32)), (1, 6.0), (1, 6.0), (6, pytest.approx(10 + 10 + 32)), (1, 7.0)]
    assert all(n.visits == 0 for n in rollouts)


def test_uct_c_changes_the_tree():
    """The same scripted scorer, C = 100: in iteration 3 the rarely visited #2 (6 + 100 * sqrt(ln 10)
    = 157.7) beats #1 (8 + 100 * sqrt(ln 10 / 6) = 69.9), so the seed's second child is expanded
    instead of #10; with C = 0 the means decide as with C = 1 (#1, then #10)."""
    trees = {c: _search(lambda depth: 5.0 + depth, children=5, iterations=3, max_depth=4, uct_c=c)
             for c in (0.0, 1.0, 100.0)}  # fmt: skip
    expanded = {c: [n.id for n in T.walk(r) if n.tree_children] for c, (r, _, _) in trees.items()}
    assert expanded == {0.0: [0, 1, 10], 1.0: [0, 1, 10], 100.0: [0, 1, 2]}
    assert trees[100.0][1].calls == 15 + 4 + 3 + 3  # the third rollout starts at depth 2 again (not 3)
    assert trees[1.0][1].calls == 15 + 4 + 3 + 2


def test_selection_after_an_expansion_pins_the_choice():
    """A hand-made tree as the search leaves it after one expansion and one rollout: #1 was simulated
    (return 12), #2 and #3 returned their own rewards 9 and 11, #4 failed (no visit, closed)."""
    root = _node(0, visits=3, value=32.0)
    a = _node(1, root, visits=1, value=12.0, reward=8)
    b = _node(2, root, visits=1, value=9.0, reward=9)
    c = _node(3, root, visits=1, value=11.0, reward=11)
    _node(4, root, invalid="empty", terminal=True)
    for c_value, chosen in ((0.0, a), (1.0, a), (100.0, a)):  # equal visits: the best mean, whatever C
        assert T.select(root, c_value) is chosen
    a.visits, a.value, root.visits, root.value = 6, 48.0, 8, 68.0  # #1 explored below: Q 8 over 6 visits
    # C=0: c (11) > b (9) > a (8); C=1: c 11 + 1.44 beats a 8 + 0.59; C=100 is the same choice here
    assert [T.select(root, x) for x in (0.0, 1.0, 100.0)] == [c, c, c]
    c.value = 5.0  # Q 5: now C decides between a (8 + C * 0.589) and b (9 + C * 1.442)
    assert [T.select(root, x) for x in (0.0, 1.0)] == [b, b]
    b.visits, b.value, root.visits = 4, 20.0, 11  # b: Q 5 over 4 visits; a: Q 8 over 6; c: Q 5 over 1
    # a 8 + C * 0.632, b 5 + C * 0.774, c 5 + C * 1.549: the mean wins at C <= 1, the visits at C = 10
    assert [T.select(root, x) for x in (0.0, 1.0, 10.0)] == [a, a, c]


def test_a_reward_past_the_threshold_ends_paths_and_the_search():
    """Every evolution scores 15 > 10: each new node is terminal, the root closes after one expansion."""
    root, search, _ = _search(lambda depth: 6.0 if depth == 0 else 15.0, children=5, iterations=3)
    assert search.iterations_run == 1 and search.calls == 5
    assert all(k.terminal and k.depth == 1 for k in root.children)
    assert (root.visits, root.value) == (5, 75.0)  # every scored child returned its reward
    assert [n.id for n in S.row_nodes(root, "paths", False)] == [1]  # the simulated (best, oldest) child
    # the paper's pool: every root-to-terminal path, the terminal siblings included
    assert [n.id for n in S.row_nodes(root, "sample", False)] == [1, 2, 3, 4, 5]


def test_chains_end_by_the_searchs_rule_and_stop_at_either_budget():
    import asyncio

    def chains(rewards, budget, scorer_budget=None, **knobs):
        search = S.Search(ScriptedOracle(rewards), DEFAULT_ACTIONS, S.Knobs(**knobs), S.rng_for("seed", 0))

        async def go():
            return await search.chains(await search.root("seed"), budget, scorer_budget)

        return asyncio.run(go()), search

    # every evolution scores 15 > 10: each chain ends at depth 1, as a search path would
    root, search = chains(lambda depth: 6.0 if depth == 0 else 15.0, 6)
    assert [k.depth for k in root.children] == [1] * 6 and all(k.terminal and k.on_path for k in root.children)
    # rewards never pass the threshold: a chain runs past max_depth (2) to depth 3, then a new one starts
    root, search = chains(lambda depth: 6.0, 7, max_depth=2)
    assert [n.depth for n in T.walk(root)] == [0, 1, 2, 3, 1, 2, 3, 1] and search.calls == 7
    # the scorer budget (the seed's score included) stops it first: 4 scores = the seed + 3 evolutions
    root, search = chains(lambda depth: 6.0, 10, 4, max_depth=2)
    assert (search.calls, search.scored) == (3, 4)


def test_children_beyond_the_actions_reuse_them_with_distinct_seeds(tmp_path):
    actions = tmp_path / "actions.yaml"
    actions.write_text("shorter: Make it shorter.\nformal: Make it formal.\n")
    teacher = FakeTeacher(evolving)
    _build(tmp_path / "run", teacher, limit=1, actions=str(actions), children=3, iterations=1, max_depth=1,
           reward_threshold=5.0)  # every new node is terminal: no rollout
    evolutions = [r for r in teacher.calls if "instruction rewriter" in user_text(r)]
    assert len(evolutions) == 3
    used = [re.search(r"\((\w+)\):", user_text(r)).group(1) for r in evolutions]
    assert set(used[:2]) == {"shorter", "formal"}  # all different while there are enough
    assert len({(user_text(r), r.params.seed) for r in evolutions}) == 3  # three distinct cache keys


# --- builds on the fake teacher ------------------------------------------------------------------------
def test_rows_are_the_answered_path_nodes(tmp_path):
    manifest = _build(tmp_path / "run")
    kept = rows(tmp_path / "run")
    trees = _trees(tmp_path / "run")
    assert len(trees) == 3 and manifest.counts["seeds_done"] == 3
    on_path = {(t["seed_id"], n["id"]) for t in trees.values() for n in _nodes(t["root"]) if n["on_path"] and n["depth"] > 0}
    assert {(r["seed_id"], r["node"]) for r in kept} == on_path
    row = kept[0]
    assert row["prompt"] == [{"role": "user", "content": row["question"]}]
    assert row["completion"][0]["content"] == f"Answer to: {row['question']}"
    assert (row["gold"], row["pred"], row["correct"], row["answer_type"]) == ("", None, True, "none")
    assert row["question"].startswith(row["seed"]) and row["depth"] == len(row["actions"]) == row["question"].count(" +")
    assert set(row["scores"]) == {"quality", "complexity", "diversity", "reward", "unparsed"}
    assert row["scores"]["reward"] == row["scores"]["quality"] + row["scores"]["complexity"] + row["scores"]["diversity"]
    assert row["id"] == f"{row['seed_id']}-{row['node']}" and len({r["id"] for r in kept}) == len(kept)
    tree = trees[row["seed_id"]]
    node = next(n for n in _nodes(tree["root"]) if n["id"] == row["node"])
    assert node["instruction"] == row["question"] and node["visits"] == row["visits"]
    stats = manifest.stats
    assert stats["scores"]["rows"]["n"] == len(kept) and stats["scores"]["seeds"]["n"] == 3
    assert stats["scores"]["seeds"]["complexity"] == 1.0 and stats["scores"]["rows"]["complexity"] > 1.0
    assert sum(stats["depth_histogram"].values()) == len(kept)
    assert sum(a["applied"] for a in stats["actions"]) == manifest.counts["evolver_calls"] == stats["evolver_calls"]["total"]
    assert sum(a["kept"] for a in stats["actions"]) == len(kept)


def test_the_card_shows_the_computed_tables(tmp_path):
    from huggingface_hub import DatasetCard

    manifest = _build(tmp_path / "run")
    card = DatasetCard((tmp_path / "run" / "README.md").read_text())
    assert card.data.pretty_name and "idea-mcts" in card.data.tags and card.data.task_categories
    text = card.text
    # The fake scorer's scores for 3 seeds, 3 iterations of 5 children: written out, and consistent by hand
    # (average = sum / 3; the 54 evolutions are the actions' 54; rows 18 = kept 18 = depths 3 + 6 + 9).
    assert manifest.rows == 18
    assert ("| seeds (before) | 3 | 4.0 | 1.0 | 1.0 | 2.0 | 6.0 |\n"
            "| rows (after) | 18 | 4.0 | 3.333 | 2.333 | 3.222 | 9.667 |\n"
            "| every evolved instruction | 54 | 4.0 | 3.111 | 2.074 | 3.062 | 9.185 |\n") in text
    assert ("| `add_goals` | 3 | 0 | 1 |\n| `add_constraints` | 4 | 0 | 2 |\n| `add_requirements` | 2 | 0 | 0 |\n"
            "| `add_skills` | 4 | 0 | 0 |\n| `add_reasoning` | 5 | 0 | 2 |\n| `add_domain_knowledge` | 7 | 0 | 3 |\n"
            "| `add_life_topic` | 6 | 0 | 1 |\n| `add_application` | 6 | 0 | 4 |\n| `add_emotion` | 4 | 0 | 2 |\n"
            "| `format_input` | 5 | 0 | 2 |\n| `format_output` | 6 | 0 | 1 |\n| `create_new` | 2 | 0 | 0 |\n") in text
    assert "| depth | rows |\n|---|---|\n| 1 | 3 |\n| 2 | 6 |\n| 3 | 9 |\n" in text
    assert "2.19" in text and "3.81" in text  # the paper's anchor, named as the paper's
    assert "`fake:fake-model@r1`" in text  # the scorer that actually ran


def test_kill_and_resume_grow_the_same_trees(tmp_path):
    """A build that dies after 40 model calls, re-run on the same cache, ends with the trees and rows of
    an uninterrupted build, and asks the model only for what the cache lacks."""
    whole = _build(tmp_path / "whole" / "run")
    lock, asked = threading.Lock(), []

    def dying(request, j):
        with lock:
            asked.append(request)
            if len(asked) > 40:
                raise RuntimeError("killed")
        return evolving(request, j)

    with pytest.raises(RuntimeError, match="killed"):
        _build(tmp_path / "run", FakeTeacher(dying))
    again = FakeTeacher(evolving)
    resumed = _build(tmp_path / "run", again)
    assert _trees(tmp_path / "run") == _trees(tmp_path / "whole" / "run")
    assert rows(tmp_path / "run") == rows(tmp_path / "whole" / "run")
    assert resumed.stats == whole.stats
    total = sum(whole.usage[k]["calls"] for k in whole.usage)
    assert len(again.calls) == total - 40  # the 40 finished calls came from the cache
    assert resumed.usage["evolver,scorer,answerer"]["samples_cached"] == 40


def test_a_failed_call_drops_its_seed_and_a_rerun_retries_it(tmp_path):
    def flaky(request, j):
        if "Explain what a leap year is" in user_text(request) and "Rate the quality" in user_text(request):
            return CallFailure("server overloaded")
        return evolving(request, j)

    first = _build(tmp_path / "run", FakeTeacher(flaky))
    assert first.counts["failed"] == 1 and first.counts["seeds_done"] == 2 and len(_trees(tmp_path / "run")) == 2
    failed = [json.loads(line) for line in (tmp_path / "run" / "failed.jsonl").read_text().splitlines()]
    assert failed[0]["role"] == "scorer" and failed[0]["error"] == "server overloaded"
    second = _build(tmp_path / "run")
    assert second.counts["failed"] == 0 and len(_trees(tmp_path / "run")) == 3


def test_the_baseline_spends_the_searchs_budget_seed_by_seed(tmp_path):
    search = _build(tmp_path / "mcts", limit=4)
    spent = {k: t["evolver_calls"] for k, t in _trees(tmp_path / "mcts").items()}
    chains = _build(tmp_path / "none", search="none", budget_from=str(tmp_path / "mcts"), limit=4)
    assert {k: t["evolver_calls"] for k, t in _trees(tmp_path / "none").items()} == spent
    scored = {k: t["scorer_calls"] for k, t in _trees(tmp_path / "mcts").items()}
    assert {k: t["scorer_calls"] for k, t in _trees(tmp_path / "none").items()} == scored
    assert chains.counts["evolver_calls"] == search.counts["evolver_calls"] and chains.counts["budget_fallback"] == 0
    for tree in _trees(tmp_path / "none").values():
        nodes = list(_nodes(tree["root"]))[1:]
        assert all(n["kind"] == "chain" and n["visits"] == 0 and n["depth"] <= 5 for n in nodes)
        assert all(n["on_path"] for n in nodes)  # every chain node lies on a root-to-end path
    default = _build(tmp_path / "default", search="none", limit=1)
    assert default.counts["evolver_calls"] == S.max_budget(S.Knobs()) == 27
    assert default.stats["evolver_calls"]["budget"] == 27


def test_unreadable_judgments_are_counted_not_fatal(tmp_path):
    def mumbling(request, j):
        text = user_text(request)
        if text.startswith(("Rate the quality", "List the user")):
            return "It is rather nice, I think."
        return evolving(request, j)

    manifest = _build(tmp_path / "run", FakeTeacher(mumbling), limit=1, iterations=1)
    assert manifest.counts["unparsed_scores"] == 2 * manifest.counts["scored"]
    row = rows(tmp_path / "run")[0]
    assert row["scores"]["quality"] == 1.0 and row["scores"]["diversity"] == 1.0 and row["scores"]["unparsed"] == 2


def test_failed_evolutions_end_their_path(tmp_path):
    def stubborn(request, j):
        text = user_text(request)
        if "instruction rewriter" in text and "+add" not in text:  # the seed itself is echoed once
            return text.split("Given instruction:\n", 1)[1].split("\n\nWrite only", 1)[0]
        if "instruction rewriter" in text:
            return Completion("An unfinished", "length", 3, 2)
        return evolving(request, j)

    manifest = _build(tmp_path / "run", FakeTeacher(stubborn), limit=1)
    tree = next(iter(_trees(tmp_path / "run").values()))
    kids = tree["root"]["children"]
    assert manifest.counts["invalid_evolutions"] == 5 and [k["invalid"] for k in kids] == ["unchanged"] * 5
    assert tree["iterations_run"] == 1 and manifest.counts["kept"] == 0  # the root closed: nothing to expand


def test_cut_off_answers_are_dropped_or_flagged(tmp_path):
    def cut(request, j):
        text = user_text(request)
        if text.startswith(("I want", "Rate", "List")):
            return evolving(request, j)
        return Completion("Step one is to", "length", 5, 4)

    dropped = _build(tmp_path / "complete", FakeTeacher(cut), limit=1, iterations=1)
    assert dropped.counts["kept"] == 0 and dropped.counts["truncated"] == dropped.counts["answered"] > 0
    flagged = _build(tmp_path / "all", FakeTeacher(cut), limit=1, iterations=1, keep="all")
    kept = rows(tmp_path / "all")
    assert kept and all(not r["correct"] and r["finish_reason"] == "length" for r in kept)
    assert kept[0]["completion"][0]["content"] == "Step one is to" and flagged.counts["kept"] == len(kept)


def test_rows_per_seed_and_include_seed(tmp_path):
    _build(tmp_path / "run", limit=2, rows_per_seed=2, include_seed=True, rows="all")
    kept = rows(tmp_path / "run")
    assert len(kept) == 4
    again = tmp_path / "again"
    _build(again, limit=2, rows_per_seed=2, include_seed=True, rows="all")
    assert [r["id"] for r in rows(again)] == [r["id"] for r in kept]  # the draw is the seed's own


def test_alpaca_input_field_and_seed_ids(tmp_path):
    from toolkit.methods.evolve import EvolveConfig
    from toolkit.methods.evolve.seeds import load_seeds

    config = EvolveConfig(source=SEEDS, input_field="input", out=str(tmp_path / "o"))
    loaded = load_seeds(config)
    assert len(loaded.problems) == 8 and loaded.info.answer_type == "none"
    assert loaded.problems[3].question.startswith("Summarize the text below in one sentence.\n\nBees visit")
    plain = load_seeds(EvolveConfig(source=SEEDS, out="o")).problems
    assert [p.id for p in plain] == [p.id for p in loaded.problems]  # ids: source, split, index
    assert load_seeds(EvolveConfig(source=SEEDS, limit=2, out="o")).problems == plain[:2]
    assert plain[3].question == "Summarize the text below in one sentence."
    with raises_one_line(match="no field 'prompt_text'"):
        load_seeds(EvolveConfig(source=SEEDS, question_field="prompt_text", out="o"))
    with raises_one_line(match="no gold answer"):
        load_seeds(EvolveConfig(source=SEEDS, answer_field="output", out="o"))


# --- parsers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "score"),
    [("Score: 4", 4), ("score = 5/5", 5), ("I'd say 3/5.", 3), ("Score: 2\nActually, Score: 3", 3), ("4", 4),
     (" **5** ", 5), ("Score: 7", None), ("Score: 3.5", None), ("It is good.", None), ("", None), ("Score:", None)],
)  # fmt: skip
def test_parse_score(text, score):
    assert parse_score(text) == score


@pytest.mark.parametrize(
    ("text", "tags"),
    [('["Poem writing", "word limit", "poem writing"]', ("poem writing", "word limit")),
     ('Tags: [{"tag": "math", "explanation": "..."}, {"tag": "proof"}]', ("math", "proof")),
     ("- cooking\n- recipe format\n", ("cooking", "recipe format")),
     ('["unterminated', None), ("no tags here", None), ("[]", None), ("", None)],
)  # fmt: skip
def test_parse_tags(text, tags):
    assert parse_tags(text) == tags


@pytest.mark.parametrize(
    ("text", "finish", "expected"),
    [("New instruction: Write a sonnet.", "stop", ("Write a sonnet.", None)),
     ('"Write a sonnet about rain."', "stop", ("Write a sonnet about rain.", None)),
     ("#Rewritten Prompt#: Write a sonnet.", "stop", ("Write a sonnet.", None)),
     ("Write a poem.", "stop", ("Write a poem.", "unchanged")),
     ("write a POEM", "stop", ("write a POEM", "unchanged")),
     ("   ", "stop", ("", "empty")),
     ("Write a sonnet whose", "length", ("Write a sonnet whose", "cut off")),
     ("Given instruction: Write a poem. New: ...", "stop", ("Given instruction: Write a poem. New: ...", "template words"))],
)  # fmt: skip
def test_clean_evolution(text, finish, expected):
    assert clean_evolution(text, "Write a poem.", finish) == expected


def test_an_evolution_that_writes_back_the_actions_directive_is_no_instruction():
    # replies of the served Qwen2.5-Coder-1.5B to the evolve prompt (cpu-evolve's call cache)
    by_name = {a.name: a.directive for a in DEFAULT_ACTIONS}
    fmt, goals = by_name["format_output"], by_name["add_goals"]
    for reply, directive in [(fmt, fmt), (goals, goals), (f'"{fmt}"', fmt)]:
        assert clean_evolution(reply, "Explain what a leap year is.", "stop", directive) == (directive, "template words")
    evolved = "Explain what a leap year is, in a table with one row per rule."
    assert clean_evolution(evolved, "Explain what a leap year is.", "stop", fmt) == (evolved, None)
    # the directive's name written as a label before the instruction (a real reply, add_emotion) goes
    emotion = by_name["add_emotion"]
    reply = "Add emotional expression: How do you play tic-tac-toe, and what are the rules for winning?"
    assert clean_evolution(reply, "Describe the rules of tic-tac-toe.", "stop", emotion) == (
        "How do you play tic-tac-toe, and what are the rules for winning?", None)
    assert clean_evolution("Add emotional expression: Write a poem.", "Write a poem.", "stop", emotion) == (
        "Write a poem.", "unchanged")


@pytest.mark.parametrize("reply", [  # the served Qwen2.5-Coder-1.5B's replies in cpu-evolve's search, verbatim
    "Sure.", "Certainly.", "Sure, please provide the instruction and the concrete user and purpose.",
    "Sure, I'll respond based on the emotional expression of the person who asked."])  # fmt: skip
def test_an_acknowledgement_without_an_instruction_is_a_failed_evolution(reply):
    assert clean_evolution(reply, "Describe a healthy breakfast.", "stop") == (reply, "no instruction")


def test_an_acknowledgement_before_an_instruction_is_taken_off():
    assert clean_evolution("Sure! Describe a healthy breakfast for a marathon runner.", "Describe a healthy breakfast.",
                           "stop") == ("Describe a healthy breakfast for a marathon runner.", None)  # fmt: skip
    # instructions that begin like a request or in the first person stay as they are
    for kept in ("Please provide a recipe for a healthy breakfast with three steps.",
                 "I'll be hosting six guests: plan a healthy breakfast for them."):  # fmt: skip
        assert clean_evolution(kept, "Describe a healthy breakfast.", "stop") == (kept, None)


def test_every_prompt_template_renders():
    for action in DEFAULT_ACTIONS:
        text = prompts.render("evolve", dirs=PROMPT_DIRS, instruction="Write a poem.", action=action.name, directive=action.directive)
        assert "Write a poem." in text and action.directive in text
    for name in ("evolve_quality", "evolve_complexity"):
        assert "a whole number from 1 to 5." in prompts.render(name, dirs=PROMPT_DIRS, instruction="Write a poem.", low=1, high=5)
        assert "from 1 (lowest) to 6 (highest)" in prompts.render(name, dirs=PROMPT_DIRS, instruction="Write a poem.", low=1, high=6)
    assert "JSON list" in prompts.render("evolve_diversity", dirs=PROMPT_DIRS, instruction="Write a poem.")
    assert len(DEFAULT_ACTIONS) == 12 and len({a.name for a in DEFAULT_ACTIONS}) == 12


# --- config and setup errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [({"children": 0}, "--children must be at least 1"), ({"uct_c": -1.0}, "--uct-c must be a finite number of at least 0"),
     ({"budget": 5}, "use them with --search none"), ({"search": "none", "budget": 5, "budget_from": "x"}, "not both"),
     ({"search": "tree"}, "--search: 'tree' is not one of mcts, none")],
)  # fmt: skip
def test_bad_options_are_user_errors(fields, message):
    from toolkit.methods.evolve import EvolveConfig

    with raises_one_line(match=re.escape(message)):
        EvolveConfig(source=SEEDS, out="o", **fields)


def test_scorer_and_answerer_default_to_the_evolver():
    from toolkit.methods.evolve import EvolveConfig

    c = EvolveConfig(source=SEEDS, out="o", evolver="fake:right")
    assert (c.scorer, c.answerer) == ("fake:right", "fake:right")
    assert EvolveConfig(source=SEEDS, out="o", evolver="fake:right", scorer="fake:cycle").scorer == "fake:cycle"


@pytest.mark.parametrize(
    ("content", "message"),
    [("[]", "give a mapping"), ("a b: x", "a name of letters"), ("x: ''", "has no directive"),
     ("- {name: a, directive: x}\n- {name: a, directive: y}", "must be unique; repeated: a"), ("{", "not valid")],
)  # fmt: skip
def test_bad_actions_files(tmp_path, content, message):
    path = tmp_path / "actions.yaml"
    path.write_text(content)
    with raises_one_line(match=message):
        load_actions(path)


def test_setup_fails_before_any_model_call(tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("Rewrite {{ instruction }} with {{ strategy }}")
    teacher = FakeTeacher(evolving)
    with raises_one_line(match="undefined variables: strategy"):
        _build(tmp_path / "run", teacher, template=str(bad))
    with raises_one_line(match="no trees"):
        _build(tmp_path / "run2", teacher, search="none", budget_from=str(tmp_path))
    assert teacher.calls == []


# --- the CLI -------------------------------------------------------------------------------------------
def test_cli_builds_with_a_fake_script_and_inspect_prints_a_tree(tmp_path):
    from toolkit.cli import main

    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["build-dataset", "idea-mcts", "--source", SEEDS, "--limit", "2",
                                  "--evolver", f"fake:{FIXTURES / 'script.jsonl'}", "--iterations", "2",
                                  "--cache", str(tmp_path / "calls.sqlite"), "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    # the summary line speaks of seeds and evolutions (issue 25 item 14), not of CoT's samples and correct
    assert result.output.startswith("evolve: 2 seeds, ") and "evolutions (" in result.output.splitlines()[-1]
    assert " correct" not in result.output.splitlines()[-1]
    # The script rewrites every instruction into the same haiku task: a second evolution is "unchanged".
    shown = runner.invoke(main, ["inspect", str(out), "--tree", "first"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "search mcts" in lines[0] and lines[1].startswith("#0 d0 seed | q4 c3 d3 r10")
    assert any("invalid: unchanged" in line for line in lines) and any(line.startswith("├─ #1 d1 ") for line in lines)
    assert "trees    2 in" in runner.invoke(main, ["inspect", str(out)]).output
    missing = runner.invoke(main, ["inspect", str(out), "--tree", "nope"])
    assert missing.exit_code != 0 and "no tree 'nope'" in missing.output


# --- comparing builds (toolkit.methods.evolve.compare; bench/evolve_search.py and experiment reports) ----
def _tnode(i, depth, reward, children=(), *, terminal=False, on_path=False, invalid=False, tags=()):
    return {"id": i, "depth": depth, "scores": {"reward": reward}, "children": list(children), "terminal": terminal,
            "on_path": on_path, "invalid": invalid, "tags": list(tags)}  # fmt: skip


def test_the_path_pool_is_every_valid_node_on_a_root_to_terminal_path():
    from toolkit.methods.evolve.compare import path_pool

    #   0 (seed) - 1 - 3 (terminal)       1 and 3 are on a finished path
    #            \     4 (invalid, terminal)
    #             - 2 (on the followed path, its children off it) - 5 (not on the path, not terminal)
    root = _tnode(0, 0, 5.0, [
        _tnode(1, 1, 6.0, [_tnode(3, 2, 8.0, terminal=True), _tnode(4, 2, 9.0, terminal=True, invalid=True)]),
        _tnode(2, 1, 7.0, [_tnode(5, 2, 9.5)], on_path=True),
    ], on_path=True)  # fmt: skip
    assert sorted(n["id"] for n in path_pool(root)) == [1, 2, 3]


def test_paired_differences_and_their_intervals_on_known_numbers():
    from toolkit.methods.evolve.compare import bootstrap, over_seeds, paired

    assert bootstrap([0.5] * 7) == (0.5, 0.5, 0.5)
    assert bootstrap([1.0, -1.0]) == (0.0, -1.0, 1.0)

    def seed(mean, best, tags, seed_reward=5.0, calls=(3, 4), node_tags=(("x",), ("y",))):
        return {"mean": mean, "best": best, "tags": tags, "seed_reward": seed_reward, "pool": len(node_tags),
                "evolver_calls": calls[0], "scorer_calls": calls[1], "node_tags": [list(t) for t in node_tags]}  # fmt: skip

    # seed a: search's 3 nodes tagged x, y, x, chains' 2 nodes x, x. Drawing 2 of search's 3 nodes,
    # x is always drawn and y in 2 of the 3 pairs: 1 + 2/3 distinct tags, against chains' 1.
    search = {"a": seed(7.0, 8.0, 3, node_tags=(("x",), ("y", "y"), ("x",))), "b": seed(6.0, 6.0, 2),
              "c": seed(None, None, 0, node_tags=())}  # fmt: skip
    chains = {"a": seed(6.0, 8.0, 1, node_tags=(("x",), ("x",))), "b": seed(6.5, 7.0, 2, calls=(3, 5)),
              "c": seed(5.0, 5.0, 1, node_tags=(("z",),))}  # fmt: skip
    lines, numbers = paired(search, chains, "search", "chains")
    assert lines[0] == "search vs chains: calls matched exactly (evolver and scorer) on 2 of 3 seeds"
    assert lines[4] == "| path pool: mean reward | 2 | +0.250 | [-0.500, +1.000] | 1 / 0 / 1 |"
    assert lines[5] == "| path pool: best reward | 2 | -0.500 | [-1.000, +0.000] | 0 / 1 / 1 |"
    assert lines[6] == "| path pool: distinct tags | 3 | +0.333 | [-1.000, +2.000] | 1 / 1 / 1 |"
    # seed a +2/3, seed b 0 (2 tags each at 2 nodes), seed c left out (an empty pool)
    assert lines[7] == ("| path pool: distinct tags in as many nodes as the smaller pool (rarefied) | 2 | +0.333 "
                        "| [+0.000, +0.667] | 1 / 1 / 0 |")  # fmt: skip
    assert numbers["mean"]["mean"] == 0.25 and numbers["calls_matched"] == 2
    lines, numbers = over_seeds(search, "search")
    assert lines[2] == "| path pool: mean reward | 2 | +1.500 | [+1.000, +2.000] | 2 / 0 / 0 |"
    assert numbers["best"] == {"n": 2, "mean": 2.0, "low": 1.0, "high": 3.0, "higher": 2, "equal": 0}


def test_an_experiment_report_compares_its_evolve_builds(tmp_path):
    """Two builds of one method in an experiment: its report gets the method's comparison section."""
    from toolkit.experiments.report import write_experiment_report
    from toolkit.experiments.spec import Experiment, Step
    from toolkit.methods.evolve.compare import compare_builds

    _build(tmp_path / "mcts", limit=4)
    _build(tmp_path / "chains", search="none", budget_from=str(tmp_path / "mcts"), limit=4)
    steps = [Step("mcts", "build", {"build": "evolve"}), Step("chains", "build", {"build": "idea-mcts"}),
             Step("answers", "build", {"build": "cot"})]  # fmt: skip
    experiment = Experiment(name="evolve-bench", about="Search against chains.", path=tmp_path / "e.yaml", steps=steps)
    outputs = {"mcts": str(tmp_path / "mcts"), "chains": str(tmp_path / "chains"), "answers": str(tmp_path / "x")}
    report = write_experiment_report(experiment, outputs, {}, tmp_path / "report").read_text()
    lines, numbers = compare_builds({"mcts": tmp_path / "mcts", "chains": tmp_path / "chains"}, tmp_path / "c.png")
    chart = (tmp_path / "report" / "builds-evolve.png").read_bytes()
    assert chart.startswith(b"\x89PNG") and (tmp_path / "c.png").read_bytes()[:8] == chart[:8]
    lines = [line.replace("c.png", "builds-evolve.png") for line in lines]
    assert "## evolve builds compared (mcts, chains)\n" in report and "\n".join(lines) in report
    assert "![per seed](builds-evolve.png)" in report
    assert "mcts vs chains: calls matched exactly (evolver and scorer) on 4 of 4 seeds" in report
    saved = json.loads((tmp_path / "report" / "results.json").read_text())["builds:evolve"]
    assert saved["pairs"]["mcts - chains"]["calls_matched"] == 4 and set(saved["over_seeds"]) == {"mcts", "chains"}
    # the scripted scorer rates every evolution above its seed: each seed's pool beats the seed
    assert numbers["over_seeds"]["mcts"]["mean"]["higher"] == 4
