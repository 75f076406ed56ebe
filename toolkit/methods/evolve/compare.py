"""Evolve builds on the same seeds, compared seed by seed: IDEA-MCTS against random chains, and each
against the seeds themselves (the paper's claim: search raises the instructions' quality).

Per seed, the measure is taken over that seed's whole path pool (every valid node on a root-to-terminal
path, read from RUN/trees/<seed>.json), so it does not depend on which rows were drawn: the pool's mean
reward, its best reward, its distinct intent tags. Pools differ in size (a search that follows its best
branch keeps fewer nodes than chains of the same budget), and distinct tags grow with a pool's size, so
two builds' tags are also compared at the smaller pool's size per seed: the expected distinct tags of
that many nodes drawn without replacement (rarefaction, exact). Paired differences between two builds (the first
minus another) and between a build and its seeds get 95 % percentile bootstrap intervals over seeds
(10,000 resamples, seeded). `bench/evolve_search.py` and an experiment's report (`Method.compare`) use
these.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.rundir import read_manifest

RESAMPLES = 10_000
MEASURES = (("mean", "path pool: mean reward"), ("best", "path pool: best reward"), ("tags", "path pool: distinct tags"))
RAREFIED = "path pool: distinct tags in as many nodes as the smaller pool (rarefied)"


def _nodes(node: dict):
    yield node
    for child in node["children"]:
        yield from _nodes(child)


def path_pool(root: dict) -> list[dict]:
    """Valid evolved nodes on a root-to-terminal path (terminal nodes, and the ends of followed paths)."""
    pool: dict[int, dict] = {}

    def down(node: dict, above: list[dict]) -> None:
        here = [*above, node]
        ends_path = node["on_path"] and not any(k["on_path"] for k in node["children"])
        if not node["invalid"] and (node["terminal"] or ends_path):
            pool.update({n["id"]: n for n in here if n["depth"] > 0})
        for kid in node["children"]:
            if not kid["invalid"]:
                down(kid, here)

    down(root, [])
    return list(pool.values())


def per_seed(out: Path) -> dict[str, dict]:
    """Each seed's measures, read from its tree file."""
    result = {}
    for path in sorted((Path(out) / "trees").glob("*.json")):
        tree = json.loads(path.read_text())
        pool = path_pool(tree["root"])
        rewards = [n["scores"]["reward"] for n in pool]
        result[tree["seed_id"]] = {
            "seed_reward": tree["root"]["scores"]["reward"], "pool": len(pool),
            "mean": statistics.fmean(rewards) if rewards else None, "best": max(rewards, default=None),
            "tags": len({t for n in pool for t in n["tags"]}), "node_tags": [n["tags"] for n in pool],
            "evolver_calls": tree["evolver_calls"], "scorer_calls": tree["scorer_calls"],
        }  # fmt: skip
    return result


def rarefied_tags(node_tags: Sequence[Sequence[str]], k: int) -> float:
    """The expected distinct tags among `k` nodes drawn without replacement from a pool whose nodes
    carry `node_tags`: the sum over tags of 1 - C(N - m, k) / C(N, k), m the nodes that carry it."""
    n = len(node_tags)
    carriers = Counter(t for tags in node_tags for t in set(tags))
    if k >= n:
        return float(len(carriers))
    return math.fsum(1 - math.comb(n - m, k) / math.comb(n, k) for m in carriers.values())  # any order: one sum


def bootstrap(diffs: list[float], seed: int = 0) -> tuple[float, float, float]:
    """The mean of paired differences and its 95 % percentile bootstrap interval."""
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(diffs, k=len(diffs))) for _ in range(RESAMPLES))
    return statistics.fmean(diffs), means[int(0.025 * RESAMPLES)], means[int(0.975 * RESAMPLES) - 1]


def _row(label: str, diffs: list[float], seed: int) -> tuple[str, dict[str, Any]]:
    if not diffs:
        return f"| {label} | 0 | - | - | - |", {"n": 0}
    mean, low, high = bootstrap(diffs, seed)
    hi, eq = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
    line = f"| {label} | {len(diffs)} | {mean:+.3f} | [{low:+.3f}, {high:+.3f}] | {hi} / {eq} / {len(diffs) - hi - eq} |"
    return line, {"n": len(diffs), "mean": mean, "low": low, "high": high, "higher": hi, "equal": eq}


def paired(a: dict, b: dict, name: str, other: str, seed: int = 0) -> tuple[list[str], dict[str, Any]]:
    """Per-seed paired differences, `name` minus `other`, with bootstrap intervals."""
    matched = sum(a[k]["evolver_calls"] == b[k]["evolver_calls"] and a[k]["scorer_calls"] == b[k]["scorer_calls"]
                  for k in a if k in b)  # fmt: skip
    lines = [f"{name} vs {other}: calls matched exactly (evolver and scorer) on {matched} of {len(a)} seeds", "",
             f"| per seed, {name} minus {other} | seeds | mean | 95 % bootstrap interval | {name} higher / equal / lower |",
             "|---|---:|---:|---|---|"]  # fmt: skip
    result: dict[str, Any] = {"calls_matched": matched, "seeds": len(a)}
    for key, label in MEASURES:
        diffs = [a[k][key] - b[k][key] for k in a if k in b and a[k][key] is not None and b[k][key] is not None]
        line, result[key] = _row(label, diffs, seed)
        lines.append(line)
    sizes = {k: min(a[k]["pool"], b[k]["pool"]) for k in a if k in b and min(a[k]["pool"], b[k]["pool"]) > 0}
    diffs = [rarefied_tags(a[k]["node_tags"], n) - rarefied_tags(b[k]["node_tags"], n) for k, n in sizes.items()]
    line, result["tags_rarefied"] = _row(RAREFIED, diffs, seed)
    lines.append(line)
    return lines, result


def over_seeds(a: dict, name: str, seed: int = 0) -> tuple[list[str], dict[str, Any]]:
    """Per seed, the build's path pool against the seed instruction itself (mean and best reward)."""
    lines = [f"| per seed, {name} minus the seed | seeds | mean | 95 % bootstrap interval | {name} higher / equal / lower |",
             "|---|---:|---:|---|---|"]  # fmt: skip
    result = {}
    for key, label in MEASURES[:2]:
        diffs = [s[key] - s["seed_reward"] for s in a.values() if s[key] is not None]
        line, result[key] = _row(label, diffs, seed)
        lines.append(line)
    return lines, result


def arms_table(arms: Mapping[str, Path]) -> list[str]:
    """One line per build: calls, failures, pool sizes and the drawn rows' mean scores."""
    lines = ["| build | seeds | evolver calls | scorer calls | failed evolutions | path-pool nodes | rows | rows: reward | "
             "rows: quality | rows: complexity | rows: diversity | distinct tags (rows) |", "|---|" + "---:|" * 11]  # fmt: skip
    for name, out in arms.items():
        manifest = read_manifest(Path(out))
        c, s, seeds = manifest.counts, manifest.stats, per_seed(Path(out))
        r = s["scores"]["rows"]
        lines.append(f"| {name} | {c['seeds_done']} | {c['evolver_calls']} | {c['scored']} | {c['invalid_evolutions']} | "
                     f"{sum(x['pool'] for x in seeds.values())} | {r['n']} | {r['reward']} | {r['quality']} | "
                     f"{r['complexity']} | {r['diversity']} | {s['distinct_tags']['rows']} |")  # fmt: skip
    return lines


def compare_builds(builds: Mapping[str, Path], chart: Path | None = None,
                   seed: int = 0) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    """An experiment's evolve builds (step id -> run directory, in the file's order): the first against
    each other one on the seeds both ran, and every build against its seeds; `chart`: a PNG of the
    per-seed numbers, written there and named in the lines."""
    names = list(builds)
    seeds = {name: per_seed(Path(out)) for name, out in builds.items()}
    lines = ["Per-seed measures over each seed's path pool (toolkit/methods/evolve/compare.py); intervals are 95 % "
             "bootstrap over seeds.", "", *arms_table(builds)]  # fmt: skip
    if chart is not None:
        seed_chart(seeds, chart)
        lines += ["", f"![per seed]({chart.name})"]
    result: dict[str, Any] = {"pairs": {}, "over_seeds": {}}
    for other in names[1:]:
        table, result["pairs"][f"{names[0]} - {other}"] = paired(seeds[names[0]], seeds[other], names[0], other, seed)
        lines += ["", *table]
    for name in names:
        table, result["over_seeds"][name] = over_seeds(seeds[name], name, seed)
        lines += ["", *table]
    return lines, result


def seed_chart(seeds: Mapping[str, dict], path: Path) -> None:
    """Per seed (sorted by the seed's own reward): the seed's reward and each build's path-pool mean and
    best reward; beside it, each build's distinct tags at the smallest pool's size (rarefied)."""
    import matplotlib  # slow to import: only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(seeds)
    order = sorted(set.intersection(*(set(s) for s in seeds.values())), key=lambda k: seeds[names[0]][k]["seed_reward"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    xs = range(len(order))
    left.plot(xs, [seeds[names[0]][k]["seed_reward"] for k in order], "k_", markersize=12, label="the seed")
    for i, name in enumerate(names):
        shift = [x + (i - (len(names) - 1) / 2) * 0.2 for x in xs]
        color = f"C{i}"
        left.plot(shift, [seeds[name][k]["mean"] for k in order], "o", color=color, label=f"{name}: pool mean")
        left.plot(shift, [seeds[name][k]["best"] for k in order], "^", color=color, mfc="none", label=f"{name}: pool best")
        size = [min(seeds[n][k]["pool"] for n in names) for k in order]
        right.plot(xs, [rarefied_tags(seeds[name][k]["node_tags"], n) for k, n in zip(order, size)], "o-",
                   color=color, label=name)  # fmt: skip
    left.set(xlabel="seed (by its own reward)", ylabel="reward (quality + complexity + diversity)", xticks=[])
    right.set(xlabel="seed (same order)", ylabel="distinct tags at the smaller pool's size", xticks=[])
    left.legend(fontsize="small", ncol=2)
    right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
