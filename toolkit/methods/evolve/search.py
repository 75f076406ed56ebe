"""The search over one seed's evolutions: IDEA-MCTS, or the random chains it is measured against.

`Search` grows a `tree.Node` tree by asking an `Oracle` (the evolver and the scorer behind the
call cache) and records every evolver call. Every choice comes from one `random.Random` seeded by
the seed instruction's id and the build's `--seed`, and node ids are given out before any call is
awaited, so the tree depends on the models' (cached) replies only, never on completion timing: a
killed build re-run from the cache grows the same trees.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from toolkit.methods.evolve import tree as T
from toolkit.methods.evolve.actions import Action


class Oracle(Protocol):
    """What the search asks of the models; a failed call raises `CallFailed`."""

    async def evolve(self, instruction: str, action: Action, node_id: int) -> tuple[str, str | None]:
        """The evolved instruction and why it is unusable (None when usable)."""

    async def score(self, instruction: str) -> tuple[T.Scores, tuple[str, ...]]:
        """Its scores and the intent tags behind the diversity score."""


class CallFailed(Exception):
    """A model call failed after every retry: the seed is abandoned (and retried by a re-run)."""

    def __init__(self, role: str, error: str) -> None:
        super().__init__(f"{role}: {error}")
        self.role, self.error = role, error


@dataclass(frozen=True, slots=True)
class Knobs:
    children: int = 5
    iterations: int = 3
    max_depth: int = 4
    uct_c: float = 1.0
    reward_threshold: float = 10.0


def rng_for(seed_id: str, seed: int) -> random.Random:
    """The seed instruction's own generator: str seeds hash with SHA-512, so it is the same in every process."""
    return random.Random(f"hubtool-evolve:{seed}:{seed_id}")


def max_budget(knobs: Knobs) -> int:
    """Evolver calls a search can spend at most: each iteration expands `children` nodes and rolls
    one of them out through at most max_depth more evolutions (paths end past max_depth)."""
    return knobs.iterations * (knobs.children + knobs.max_depth)


class Search:
    def __init__(self, oracle: Oracle, actions: Sequence[Action], knobs: Knobs, rng: random.Random) -> None:
        self.oracle, self.actions, self.knobs, self.rng = oracle, tuple(actions), knobs, rng
        self.next_id = 0
        self.calls = 0  # evolver calls
        self.scored = 0  # scorer calls (one per scored instruction, the seed included)
        self.iterations_run = 0

    async def root(self, instruction: str) -> T.Node:
        root = T.Node(id=self._new_id(), instruction=instruction, depth=0, kind="root")
        root.scores, root.tags = await self.oracle.score(instruction)
        self.scored += 1
        return root  # the seed is always evolved: the reward threshold ends paths below it

    # -- IDEA-MCTS ------------------------------------------------------------------------------
    async def mcts(self, root: T.Node) -> T.Node:
        k = self.knobs
        for _ in range(k.iterations):
            leaf = T.select(root, k.uct_c)
            if leaf is None:  # every path has ended: nothing left to expand
                break
            self.iterations_run += 1
            kids = await self._expand(leaf)
            start = T.best_new(kids)
            if start is None:  # every evolution failed: the leaf is a dead end now
                T.backpropagate(leaf, 0.0)
                continue
            end = await self._rollout(start)
            T.mark_path(end)
            # One return per scored child: the simulated one returns the rollout's end, the others
            # their own reward, so the next selection weighs means against visits (UCT's C matters).
            for kid in kids:
                if kid is start:
                    T.backpropagate(kid, end.reward)
                elif kid.scores is not None:
                    T.backpropagate(kid, kid.reward)
        return root

    async def _expand(self, leaf: T.Node) -> list[T.Node]:
        actions = self._distinct_actions(self.knobs.children)
        ids = [self._new_id() for _ in actions]  # before any await: ids follow the search, not timing
        kids = await asyncio.gather(*(self._grow(leaf, a, i, "tree") for a, i in zip(actions, ids)))
        leaf.children.extend(kids)
        return list(kids)

    async def _rollout(self, start: T.Node) -> T.Node:
        """Evolve at random from `start` until a terminal state; a failed evolution ends it early
        (the last valid node is then the end). Rollout nodes hang below `start`, outside the tree."""
        node = start
        while not node.terminal:
            child = await self._grow(node, self.rng.choice(self.actions), self._new_id(), "rollout")
            node.children.append(child)
            if child.invalid is not None:
                break
            node = child
        return node

    # -- the baseline: Evol-Instruct-style random chains -----------------------------------------
    async def chains(self, root: T.Node, budget: int, scorer_budget: int | None = None) -> T.Node:
        """Chains of random actions from the seed, each ending where a search path ends (past
        max_depth, or at a reward past the threshold: the same rule), until `budget` evolver calls
        (or `scorer_budget` scorer calls, the seed's included) are spent."""

        def spent() -> bool:
            return self.calls >= budget or (scorer_budget is not None and self.scored >= scorer_budget)

        while not spent():
            node = root
            while not node.terminal and not spent():
                child = await self._grow(node, self.rng.choice(self.actions), self._new_id(), "chain")
                node.children.append(child)
                if child.invalid is not None:
                    break
                node = child
            if node is not root:
                T.mark_path(node)
        return root

    # -- shared -----------------------------------------------------------------------------------
    async def _grow(self, parent: T.Node, action: Action, node_id: int, kind: T.Kind) -> T.Node:
        self.calls += 1
        text, invalid = await self.oracle.evolve(parent.instruction, action, node_id)
        node = T.Node(id=node_id, instruction=text, depth=parent.depth + 1, kind=kind, action=action.name,
                      parent=parent, invalid=invalid)  # fmt: skip
        if invalid is not None:
            node.terminal = True
            return node
        node.scores, node.tags = await self.oracle.score(text)
        self.scored += 1
        k = self.knobs
        node.terminal = T.is_terminal(node.depth, node.reward, k.max_depth, k.reward_threshold)
        return node

    def _distinct_actions(self, n: int) -> list[Action]:
        """n actions, all different while there are enough (then the list is reshuffled and reused)."""
        out: list[Action] = []
        while len(out) < n:
            out += self.rng.sample(self.actions, min(len(self.actions), n - len(out)))
        return out

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def row_nodes(root: T.Node, which: str, include_seed: bool) -> list[T.Node]:
    """The nodes answered as rows: on a path the search followed ("paths", ours), on any
    root-to-terminal path ("sample": the pool the paper draws its rows from, `tree.path_pool`), or
    every valid evolved node ("all"); the seed itself only with `include_seed`."""
    if which == "sample":
        nodes = T.path_pool(root)
    else:
        nodes = [n for n in T.walk(root) if n.invalid is None and n.depth > 0 and (n.on_path or which == "all")]
        nodes.sort(key=lambda n: n.id)
    return [root, *nodes] if include_seed else nodes
