"""IDEA-MCTS against random evolution chains, on matched calls, seed by seed, with bootstrap intervals.

Three builds of `hubtool build-dataset evolve` on the same seeds, models and call cache:

    (0) calibration: --search none --budget 1   scores every seed once; the reward threshold is set
                                                at or above the best seed's reward (plus --margin),
                                                so no seed starts past it
    (a) --search mcts                           UCT-guided expansion, rollouts, backpropagation
    (b) --search none --budget-from (a)         random chains; each seed gets the evolver calls and
                                                the scorer calls the search spent on it (they stop
                                                at whichever runs out first, so they never get more)
    (c) the same, evolver calls matched only    (--evolver-only-arm) scorer calls follow from how
                                                many evolutions are valid

Both arms end a path by the same rule (past --max-depth or at a reward past the threshold), and
both draw their rows the same way (`--rows sample`: --sample-rows at random over every root-to-
terminal path, seeded). Per seed, the measure is taken over that seed's whole path pool (every node
on a root-to-terminal path), so it does not depend on the draw: the pool's mean reward, its best
reward, and its distinct intent tags. The paired differences (search minus chains) get 95 %
bootstrap intervals over seeds (10,000 resamples, seeded). Answering is not what is compared, so
the answerer is `fake:unparsable` (a fixed reply) unless `--answer` is given.

    nice python bench/evolve_search.py --scorer-mode expected --seeds 24 --out runs/bench-evolve
    python bench/evolve_search.py --evolver openai:qwen@http://127.0.0.1:8089/v1 --concurrency 8 --seeds 32

Measured: bench/README.md ("evolve_search.py") and the README's IDEA-MCTS section.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.builders.engine import build_dataset  # noqa: E402
from toolkit.methods.evolve import METHOD, EvolveConfig  # noqa: E402
from toolkit.methods.evolve.compare import arms_table, paired, per_seed  # noqa: E402

SEEDS = Path(__file__).resolve().parent / "evolve_seeds.jsonl"


def build(args: argparse.Namespace, name: str, **fields) -> dict:
    out = Path(args.out) / name
    if args.reuse and (out / "manifest.json").is_file():  # a finished arm of an earlier run
        from toolkit.rundir import read_manifest

        manifest = read_manifest(out)
        if manifest.status == "complete":
            return {"manifest": manifest, "seeds": per_seed(out)}
    common = dict(source=args.source, limit=args.seeds, evolver=args.evolver, scorer=args.scorer or args.evolver,
                  answerer=args.evolver if args.answer else "fake:unparsable", children=args.children,
                  iterations=args.iterations, max_depth=args.max_depth, uct_c=args.uct_c,
                  max_new_tokens=args.max_new_tokens, judge_max_new_tokens=args.judge_max_new_tokens,
                  scorer_mode=args.scorer_mode, score_range=args.score_range, keep="all", seed=args.seed,
                  input_field=args.input_field, cache=str(Path(args.out) / "calls.sqlite"), out=str(out),
                  overwrite=True)  # fmt: skip
    if args.concurrency:
        common["concurrency"] = args.concurrency
    if args.batch_size:
        common["batch_size"] = args.batch_size
    manifest = build_dataset(EvolveConfig(**{**common, **fields}), method=METHOD)
    return {"manifest": manifest, "seeds": per_seed(out)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--evolver", default="transformers:smollm2-135m")
    p.add_argument("--scorer", help="default: the evolver")
    p.add_argument("--scorer-mode", default="expected", choices=("rubric", "expected"))
    p.add_argument("--score-range", default="1-5")
    p.add_argument("--source", default=f"file:{SEEDS}")
    p.add_argument("--input-field", default=None)
    p.add_argument("--seeds", type=int, default=24)
    p.add_argument("--children", type=int, default=3)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--max-depth", type=int, default=2)
    p.add_argument("--uct-c", type=float, default=1.0)
    p.add_argument("--margin", type=float, default=0.0, help="threshold = the best seed's reward + margin")
    p.add_argument("--sample-rows", type=int, default=None, help="rows each arm draws (default: 2 per seed)")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--judge-max-new-tokens", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer", action="store_true", help="answer the rows with the evolver too")
    p.add_argument("--out", default="runs/bench-evolve")
    p.add_argument("--reuse", action="store_true", help="read arms an earlier run finished instead of rebuilding")
    p.add_argument("--evolver-only-arm", action="store_true", help="add arm (c): chains on the evolver calls only")
    args = p.parse_args()

    calibration = build(args, "calibrate", search="none", budget=1)
    seed_rewards = [s["seed_reward"] for s in calibration["seeds"].values()]
    threshold = round(max(seed_rewards) + args.margin, 4)
    rows = {"rows": "sample", "sample_rows": args.sample_rows or 2 * args.seeds, "reward_threshold": threshold}
    arms = {"mcts": build(args, "mcts", search="mcts", **rows)}
    arms["none"] = build(args, "none", search="none", budget_from=str(Path(args.out) / "mcts"), **rows)
    if args.evolver_only_arm:  # the search's trees without their scorer calls: only evolver calls are matched
        budgets = Path(args.out) / "mcts-evolver-calls"
        (budgets / "trees").mkdir(parents=True, exist_ok=True)
        for path in (Path(args.out) / "mcts" / "trees").glob("*.json"):
            tree = json.loads(path.read_text())
            (budgets / "trees" / path.name).write_text(json.dumps({k: v for k, v in tree.items() if k != "scorer_calls"}))
        arms["none-e"] = build(args, "none-e", search="none", budget_from=str(budgets), **rows)
    report = summarize(args, arms, seed_rewards, threshold)
    print(report)
    (Path(args.out) / "report.md").write_text(report + "\n")
    summary = {k: {"counts": a["manifest"].counts, "stats": a["manifest"].stats, "seeds": a["seeds"]}
               for k, a in arms.items()}  # fmt: skip
    summary["threshold"], summary["seed_rewards"] = threshold, seed_rewards
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))


def summarize(args: argparse.Namespace, arms: dict, seed_rewards: list[float], threshold: float) -> str:
    lines = [f"evolver {args.evolver}, scorer {args.scorer or args.evolver} ({args.scorer_mode}, {args.score_range}); "
             f"{args.children} children, {args.iterations} iterations, max depth {args.max_depth} (paths end past it), "
             f"C {args.uct_c}; {args.seeds} seeds, their rewards {min(seed_rewards):.3f}-{max(seed_rewards):.3f} "
             f"(mean {statistics.fmean(seed_rewards):.3f}); reward threshold {threshold}", "",
             *arms_table({name: Path(args.out) / name for name in arms})]  # fmt: skip
    for other in [k for k in arms if k != "mcts"]:
        lines += ["", *paired(arms["mcts"]["seeds"], arms[other]["seeds"], "search", other, args.seed)[0]]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
