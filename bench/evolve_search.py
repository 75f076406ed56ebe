"""IDEA-MCTS against random evolution chains on the same evolver budget, seed by seed.

Two builds of `hubtool build-dataset evolve` on the same seeds, models and call cache:

    (a) --search mcts                          UCT-guided expansion, rollouts, backpropagation
    (b) --search none --budget-from (a)        Evol-Instruct-style random chains; each seed gets
                                               exactly the evolver calls the search spent on it

and a table of what they produced: the rows' mean reward, quality, complexity, diversity (the
scorer's 1-5 rubric scores), distinct intent tags, failed evolutions and unreadable judgments,
plus a per-seed paired count (on how many seeds the search's rows scored higher on average).
Answering is not what is compared, so the answerer is `fake:unparsable` (a fixed reply) unless
`--answer` is given.

    python bench/evolve_search.py --evolver transformers:smollm2-135m --seeds 8 --out runs/bench-evolve
    python bench/evolve_search.py --evolver openai:qwen@http://127.0.0.1:8089/v1 --concurrency 8 --seeds 24

Measured (2026-11-25, a shared 2-core CPU VM; the 6-8 seeds of tests/fixtures/evolve/seeds.jsonl; rewards
are the scorer's 1-5 rubric scores summed, 3-15):

Qwen2.5-Coder-0.5B-Instruct (GGUF from /work/shared/models/fetch-qwen-coder.sh 0.5b) served by
llama-cpp-python 0.3.36 (built with -DGGML_AVX512=OFF: the default build segfaulted in batched decode
here) as evolver and scorer, the paper's search values, 6 seeds, ~12 minutes:

    python bench/evolve_search.py --evolver openai:qwen@http://127.0.0.1:8089/v1 --concurrency 2 --seeds 6 \
        --children 5 --iterations 3 --max-depth 4 --max-new-tokens 128 --judge-max-new-tokens 32

| search | seeds | evolver calls | failed evolutions | unreadable judgments | rows | reward | quality | complexity | diversity | distinct tags | all evolved: reward |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
| mcts | 6 | 62 | 31 | 0/111 | 16 | 11.625 | 4.812 | 4.25 | 2.562 | 13 | 11.71 |
| none | 6 | 62 | 36 | 0/96 | 26 | 12.0 | 4.923 | 4.423 | 2.654 | 17 | 12.0 |

Per seed, the search's path rows scored higher on 3 of the 5 seeds both sides kept rows for. No gain:
the 0.5B scorer already rates the seeds 11.2 of 15 (most rewards pass the threshold of 10 at depth
1, so the search stops after ~10 of its 24 possible evolver calls a seed), and half the evolutions
echo the action's directive or the parent ("unchanged"). The paper's 2.19 -> 3.81 comes from
trained 7B scorers and gpt-3.5 as the evolver; this bench measures the mechanism, at this scale.

The embedded default (transformers:smollm2-135m) as evolver and scorer, 4 seeds, 2 children,
2 iterations, depth 2 (~20 minutes under load): every one of its rubric replies is unreadable
(scored 1), so all rewards are 3 and the search has no signal (mcts: 14 calls, 10 failed
evolutions, 3 rows, reward 3.0; none: 14 calls, 9 failed, 5 rows, reward 3.0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from toolkit.builders import build_dataset  # noqa: E402
from toolkit.builders.evolve import EvolveConfig  # noqa: E402

SEEDS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "evolve" / "seeds.jsonl"
COLUMNS = ("seeds", "evolver calls", "failed evolutions", "unreadable judgments", "rows", "reward", "quality",
           "complexity", "diversity", "distinct tags", "all evolved: reward")  # fmt: skip


def run(args: argparse.Namespace, search: str) -> dict:
    out = Path(args.out) / search
    common = dict(source=args.source, limit=args.seeds, evolver=args.evolver, scorer=args.scorer or args.evolver,
                  answerer=args.evolver if args.answer else "fake:unparsable", children=args.children,
                  iterations=args.iterations, max_depth=args.max_depth, max_new_tokens=args.max_new_tokens,
                  judge_max_new_tokens=args.judge_max_new_tokens, keep="all", seed=args.seed,
                  input_field=args.input_field, cache=str(Path(args.out) / "calls.sqlite"), out=str(out),
                  overwrite=True)  # fmt: skip
    if args.concurrency:
        common["concurrency"] = args.concurrency
    if search == "none":
        common["budget_from"] = str(Path(args.out) / "mcts")
    manifest = build_dataset(EvolveConfig(search=search, **common))
    trees = {p.stem: json.loads(p.read_text()) for p in (out / "trees").glob("*.json")}
    per_seed = {}
    for seed_id, tree in trees.items():
        rewards = [n["scores"]["reward"] for n in _nodes(tree["root"]) if n["on_path"] and n["depth"] > 0 and not n["invalid"]]
        per_seed[seed_id] = sum(rewards) / len(rewards) if rewards else None
    return {"manifest": manifest, "per_seed": per_seed}


def _nodes(node: dict):
    yield node
    for child in node["children"]:
        yield from _nodes(child)


def row(result: dict) -> list:
    m = result["manifest"]
    c, s = m.counts, m.stats
    rows, evolved = s["scores"]["rows"], s["scores"]["evolved"]
    return [c["seeds_done"], c["evolver_calls"], c["invalid_evolutions"], f"{c['unparsed_scores']}/{3 * c['scored']}",
            rows["n"], rows["reward"], rows["quality"], rows["complexity"], rows["diversity"],
            s["distinct_tags"]["rows"], evolved["reward"]]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--evolver", default="transformers:smollm2-135m")
    p.add_argument("--scorer", help="default: the evolver")
    p.add_argument("--source", default=f"file:{SEEDS}")
    p.add_argument("--input-field", default=None)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--children", type=int, default=3)
    p.add_argument("--iterations", type=int, default=2)
    p.add_argument("--max-depth", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--judge-max-new-tokens", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--answer", action="store_true", help="answer the rows with the evolver too")
    p.add_argument("--out", default="runs/bench-evolve")
    args = p.parse_args()

    results = {search: run(args, search) for search in ("mcts", "none")}
    seeds = results["mcts"]["manifest"].stats["scores"]["seeds"]
    print(f"\nevolver {args.evolver}, scorer {args.scorer or args.evolver}; {args.children} children, "
          f"{args.iterations} iterations, max depth {args.max_depth}; seeds' own mean reward {seeds['reward']}\n")  # fmt: skip
    print("| search | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for search, result in results.items():
        print(f"| {search} | " + " | ".join(str(v) for v in row(result)) + " |")
    a, b = results["mcts"]["per_seed"], results["none"]["per_seed"]
    paired = [(a[k], b[k]) for k in a if a.get(k) is not None and b.get(k) is not None]
    wins = sum(x > y for x, y in paired)
    ties = sum(x == y for x, y in paired)
    print(f"\nper seed (mean reward of the path rows): search higher on {wins}, equal on {ties}, lower on "
          f"{len(paired) - wins - ties} of {len(paired)} seeds")  # fmt: skip
    summary = {k: {"counts": r["manifest"].counts, "stats": r["manifest"].stats, "per_seed": r["per_seed"]}
               for k, r in results.items()}  # fmt: skip
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
