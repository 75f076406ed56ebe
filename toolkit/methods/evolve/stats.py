"""What the card reports beyond counts: the scores before and after, action usage, depths, budget.

Gathered seed by seed as the searches finish (`Stats.record`), summed up once in `finish`; every
number in the card's tables comes from here, none is typed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.methods.evolve import tree as T
from toolkit.methods.evolve.actions import Action
from toolkit.methods.evolve.scoring import SCORES

# The paper's own before/after (seed -> evolved, average of the three scores, its trained scorers).
PAPER_ANCHOR = {"before": 2.19, "after": 3.81}


@dataclass
class Stats:
    search: str
    actions: tuple[Action, ...]
    budgets: dict[str, tuple[int, int | None]] | None  # --budget-from: evolver and scorer calls per seed
    default_budget: int
    seeds: list[T.Scores] = field(default_factory=list)  # each seed's own scores ("before")
    kept: dict[str, T.Node] = field(default_factory=dict)  # row id -> its node ("after")
    selected: set[str] | None = None  # --rows sample: the row ids drawn (None: every kept row)
    evolved: list[T.Scores] = field(default_factory=list)  # every valid evolved instruction
    applied: Counter[str] = field(default_factory=Counter)  # evolutions per action (failed ones included)
    failed: Counter[str] = field(default_factory=Counter)  # failed evolutions per action
    tags_before: set[str] = field(default_factory=set)
    calls: list[int] = field(default_factory=list)  # evolver calls per seed
    iterations: list[int] = field(default_factory=list)
    written: set[str] = field(default_factory=set)  # seeds whose tree this build wrote
    expected: Any = None  # --scorer-mode expected: the build's one ExpectedScorer

    def budget_for(self, seed_id: str, counts: Counter[str]) -> tuple[int, int | None]:
        """The baseline's evolver and scorer budgets for one seed (counted when --budget-from lacks
        the seed; then, as with --budget, only evolver calls are limited)."""
        if self.budgets is None:
            return self.default_budget, None
        if seed_id not in self.budgets:
            counts["budget_fallback"] += 1
            return self.default_budget, None
        return self.budgets[seed_id]

    def record(self, seed_id: str, root: T.Node, kept: list[T.Node], search: Any) -> None:
        if root.scores:
            self.seeds.append(root.scores)
        self.tags_before.update(root.tags)
        for node in T.walk(root):
            if node is root:
                continue
            self.applied[node.action or "?"] += 1
            if node.invalid is not None:
                self.failed[node.action or "?"] += 1
            elif node.scores:
                self.evolved.append(node.scores)
        for node in kept:
            self.kept[f"{seed_id}-{node.id}"] = node
        self.calls.append(search.calls)
        self.iterations.append(search.iterations_run)


def means(scores: list[T.Scores]) -> dict[str, Any]:
    """Mean quality, complexity, diversity, their average (the paper's figure) and reward."""
    n = len(scores)
    if not n:
        return {"n": 0, **dict.fromkeys((*SCORES, "average", "reward"))}
    out: dict[str, Any] = {"n": n}
    for key in SCORES:
        out[key] = round(sum(getattr(s, key) for s in scores) / n, 3)
    out["average"] = round(sum(s.average for s in scores) / n, 3)
    out["reward"] = round(sum(s.reward for s in scores) / n, 3)
    out["unparsed"] = sum(s.unparsed for s in scores)
    return out


def finish(config: Any, stats: Stats, counts: Counter[str]) -> dict[str, Any]:
    trees = Path(config.out) / "trees"
    if trees.is_dir():  # trees of seeds this build no longer has (an --overwrite of another build)
        for stale in trees.glob("*.json"):
            if stale.stem not in stats.written:
                stale.unlink()
    rows = [n for i, n in stats.kept.items() if stats.selected is None or i in stats.selected]
    kept_actions = Counter(n.action or "seed" for n in rows)
    depths = Counter(n.depth for n in rows)
    names = [a.name for a in stats.actions]
    extra = sorted(set(stats.applied) - set(names))
    n = len(stats.calls)
    return {
        "search": stats.search,
        "scores": {"seeds": means(stats.seeds), "rows": means([n.scores for n in rows if n.scores]), "evolved": means(stats.evolved)},
        "paper_anchor": PAPER_ANCHOR,
        "actions": [{"action": a, "applied": stats.applied[a], "failed": stats.failed[a], "kept": kept_actions[a]}
                    for a in [*names, *extra]],  # fmt: skip
        "depth_histogram": {str(d): depths[d] for d in sorted(depths)},
        "distinct_tags": {"seeds": len(stats.tags_before), "rows": len({t for n in rows for t in n.tags})},
        "evolver_calls": {"total": sum(stats.calls), "per_seed_mean": round(sum(stats.calls) / n, 2) if n else None,
                          "per_seed_min": min(stats.calls, default=None), "per_seed_max": max(stats.calls, default=None),
                          "budget": stats.default_budget if stats.search == "none" and stats.budgets is None else None,
                          "budget_from": config.budget_from},  # fmt: skip
        "iterations_run_mean": round(sum(stats.iterations) / n, 2) if n else None,
        "trees": "trees/<seed_id>.json",
    }


def outcome(counts: Counter[str]) -> str:
    """The build's result in the method's own words, for the summary line (a CoT build's "samples,
    correct" mean nothing here: there is no gold)."""
    c = counts
    done, empty = c["seeds_done"], c["seeds_without_rows"]
    dropped = [f"{c[k]} {label}" for k, label in (("refusals", "refusals"), ("empty_answers", "empty answers"),
                                                 ("truncated", "cut off"), ("not_sampled", "not sampled")) if c[k]]  # fmt: skip
    return (f"{c['problems']} seeds, {done - empty} with rows, {empty} without; {c['kept']} rows from "
            f"{c['answered']} answered instructions" + (f" ({', '.join(dropped)})" if dropped else "") +
            f"; {c['evolver_calls']} evolutions ({c['invalid_evolutions']} failed), {c['scored']} scored "
            f"({c['unparsed_scores']} unreadable judgments)")  # fmt: skip

