"""The search tree of one seed instruction: nodes, UCT selection, terminal rules, backpropagation.

Pure bookkeeping, no model: `toolkit.methods.evolve.search` drives it with the evolver and the
scorer. Each node is an instruction; an edge is one evolution action. IDEA-MCTS (Li et al., 2024)
runs, per iteration:

    selection        descend from the root by UCT to an open leaf
    expansion        evolve the leaf into `children` new nodes, one action each
    evaluation       score every new node: reward = quality + complexity + diversity
    simulation       from the best new node, evolve at random until a terminal state (a rollout)
    backpropagation  the simulated node returns the terminal state's reward, every other scored new
                     node its own reward: one return each, added to the node and all its ancestors

A node is terminal once it is deeper than `max_depth` evolutions from the seed (the paper: depth > 4)
or its reward passes the threshold; an evolution that failed (empty, unchanged, cut off, a refusal)
is a dead end. Visits count the returns backed up through a node, so after an expansion every scored
child has one visit and UCT's C weighs the means against the visits from the next selection on. A
child without a visit (UCT = +inf; only in hand-made trees) comes first; ties go to the higher
reward, then the older node.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["root", "tree", "rollout", "chain"]


@dataclass(frozen=True, slots=True)
class Scores:
    """A node's evaluation; `unparsed` counts judgments that could not be read (scored as the lowest)."""

    quality: float
    complexity: float
    diversity: float
    reward: float
    unparsed: int = 0

    @property
    def average(self) -> float:
        """The mean of the three scores: the paper's "average score" (2.19 for seeds, 3.81 evolved)."""
        return (self.quality + self.complexity + self.diversity) / 3


@dataclass(eq=False)
class Node:
    id: int  # creation order in the tree; the root is 0
    instruction: str
    depth: int
    kind: Kind
    action: str | None = None  # the action that made it from its parent
    parent: Node | None = field(default=None, repr=False)
    scores: Scores | None = None
    tags: tuple[str, ...] = ()  # the intent tags behind the diversity score
    invalid: str | None = None  # why the evolution that made it failed; such a node is a dead end
    terminal: bool = False
    on_path: bool = False  # on a root-to-terminal path the search followed (the rows come from these)
    visits: int = 0
    value: float = 0.0  # sum of the returns backed up through it
    children: list[Node] = field(default_factory=list)  # tree children, then rollout / chain nodes

    @property
    def reward(self) -> float:
        return self.scores.reward if self.scores else 0.0

    @property
    def mean_value(self) -> float:
        return self.value / self.visits if self.visits else 0.0

    @property
    def tree_children(self) -> list[Node]:
        """Children the search may select (rollout nodes are not part of the tree)."""
        return [c for c in self.children if c.kind in ("tree", "chain")]

    def actions(self) -> list[str]:
        """The actions from the root to this node."""
        out: list[str] = []
        node: Node | None = self
        while node is not None and node.action is not None:
            out.append(node.action)
            node = node.parent
        return out[::-1]

    def path(self) -> list[Node]:
        """Root ... this node."""
        out: list[Node] = []
        node: Node | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out[::-1]


def is_terminal(depth: int, reward: float | None, max_depth: int, threshold: float) -> bool:
    """The paper's rule: a path ends past the depth limit (depth > max_depth) or once the reward
    passes the threshold."""
    return depth > max_depth or (reward is not None and reward > threshold)


def uct(child: Node, parent_visits: int, c: float) -> float:
    """Q + c * sqrt(ln N(parent) / N(child)); +inf for an unvisited child."""
    if child.visits == 0:
        return math.inf
    return child.mean_value + c * math.sqrt(math.log(max(parent_visits, 1)) / child.visits)


def is_open(node: Node) -> bool:
    """Whether selection may still end below (or at) this node."""
    if node.terminal or node.invalid is not None:
        return False
    kids = node.tree_children
    return not kids or any(is_open(k) for k in kids)


def select(root: Node, c: float) -> Node | None:
    """The leaf to expand: descend by UCT among open children; None once the whole tree is closed."""
    if not is_open(root):
        return None
    node = root
    while node.tree_children:
        candidates = [k for k in node.tree_children if is_open(k)]
        node = max(candidates, key=lambda k: (uct(k, node.visits, c), k.reward, -k.id))
    return node


def best_new(children: list[Node]) -> Node | None:
    """Where the simulation starts: the highest-reward valid new node (the older one on a tie)."""
    valid = [k for k in children if k.invalid is None]
    return max(valid, key=lambda k: (k.reward, -k.id)) if valid else None


def backpropagate(node: Node, value: float) -> None:
    """Add one return to `node` and every ancestor."""
    current: Node | None = node
    while current is not None:
        current.visits += 1
        current.value += value
        current = current.parent


def path_pool(root: Node) -> list[Node]:
    """Every valid evolved node on a root-to-terminal path: the paths the search followed and the
    paths to every other terminal node it scored (the pool the paper samples its rows from)."""
    ends = [n for n in walk(root) if n.invalid is None and (n.terminal or n.on_path)]
    pool = {id(n): n for e in ends for n in e.path() if n.depth > 0 and n.invalid is None}
    return sorted(pool.values(), key=lambda n: n.id)


def mark_path(node: Node) -> None:
    """`node` ends a root-to-terminal path: it and its ancestors are path nodes."""
    for n in node.path():
        n.on_path = True


def walk(root: Node) -> Iterator[Node]:
    """Every node, depth first, in creation order within each parent."""
    yield root
    for child in root.children:
        yield from walk(child)


# -- JSON ---------------------------------------------------------------------------------------
def label(node: Node) -> str:
    """One line for `hubtool inspect --tree`: id, depth, action, scores, visits, flags, text."""
    s = node.scores
    scored = f"q{s.quality:g} c{s.complexity:g} d{s.diversity:g} r{s.reward:g}" if s else "unscored"
    flags = [f for f, on in (("terminal", node.terminal), ("path", node.on_path)) if on]
    if node.invalid:
        flags.append(f"invalid: {node.invalid}")
    text = " ".join(node.instruction.split())
    text = text if len(text) <= 100 else text[:97] + "..."
    kind = "" if node.kind in ("root", "tree") else f"{node.kind} "
    head = f"#{node.id} {kind}d{node.depth} {node.action or 'seed'}"
    return f"{head} | {scored} | N={node.visits} Q={node.mean_value:.2f}{' | ' + ', '.join(flags) if flags else ''} | {text}"


def to_json(node: Node) -> dict[str, Any]:
    s = node.scores
    return {
        "id": node.id, "kind": node.kind, "depth": node.depth, "action": node.action,
        "instruction": node.instruction, "label": label(node),
        "scores": None if s is None else {"quality": s.quality, "complexity": s.complexity,
                                          "diversity": s.diversity, "reward": s.reward, "unparsed": s.unparsed},
        "tags": list(node.tags), "invalid": node.invalid, "terminal": node.terminal, "on_path": node.on_path,
        "visits": node.visits, "value": round(node.value, 6),
        "children": [to_json(c) for c in node.children],
    }  # fmt: skip
