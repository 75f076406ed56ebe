"""`--engine ray --workers 1` beside the single-process build, against one stand-in server.

    python bench/ray_overhead.py --problems 800 --samples 4 --latency 0.2 --concurrency 32 --repeats 2

A local Ray cluster is started here once (its start-up is timed and reported); every build is a
fresh `hubtool build-dataset cot` process with an empty run directory and cache, timed from start to
exit, the sides alternating. The Ray side runs 2 shards at once in its one actor, so it is given half
the `--concurrency` per shard: the server sees the same number of calls in flight from both sides
(its mean is printed). Figures:

- fixed cost: a one-problem build on Ray minus the same on one process (joining the cluster, starting
  the actor, the merge of an empty build): what a build pays once;
- throughput ratio beyond it: single / (ray - fixed), on the same problems;
- per-shard cost: the Ray build with 4x its default shards, minus the Ray build, over the extra shards
  (each shard loads the source, agrees on the plan, opens its cache and backend, drains its last calls);
- the merge: the merged manifest's replay time, per problem.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from build_throughput import problems_file, start_standin, stats  # noqa: E402

from toolkit.builders.ray_engine import default_shards  # noqa: E402


def build(url: str, source: Path, out: Path, samples: int, concurrency: int, ray: list[str] | None = None) -> float:
    """One `hubtool build-dataset cot` process; its wall time."""
    argv = [sys.executable, "-m", "toolkit", "build-dataset", "cot", "--source", f"file:{source}",
            "--teacher", f"openai:standin@{url}", "--samples", str(samples), "--keep", "all",
            "--max-new-tokens", "64", "--concurrency", str(concurrency), "--out", str(out),
            "--cache", str(out.parent / (out.name + ".sqlite")), *(ray or [])]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=800)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import ray

    scratch = Path(tempfile.mkdtemp(prefix="hubtool-ray-bench-"))
    os.environ["HUBTOOL_HOME"] = str(scratch / "home")
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    cluster_start = time.perf_counter() - t0
    gcs = ray.get_runtime_context().gcs_address
    (scratch / "tiny").mkdir()
    source, tiny = problems_file(scratch, args.problems), problems_file(scratch / "tiny", 1)
    half = max(1, args.concurrency // 2)
    shards = default_shards(1)
    on_ray = ["--engine", "ray", "--workers", "1", "--ray-address", gcs]
    proc, url = start_standin(args.latency)
    runs: dict[str, list[float]] = {}
    in_flight: dict[str, list[float]] = {}
    merges: list[float] = []
    n = 0

    def timed(side: str, src: Path, concurrency: int, extra: list[str] | None) -> None:
        nonlocal n
        n += 1
        out = scratch / f"{side}-{n}"
        runs.setdefault(side, []).append(build(url, src, out, args.samples, concurrency, extra))
        in_flight.setdefault(side, []).append(stats(url)["mean_in_flight"])
        if extra and src == source and "--shards" not in extra:
            merges.append(json.loads((out / "manifest.json").read_text())["elapsed_s"])

    try:
        stats(url)  # reset
        for r in range(args.repeats):
            order = [("single", args.concurrency, None), ("ray", half, on_ray)]
            for side, conc, extra in order if r % 2 == 0 else order[::-1]:
                timed(side, source, conc, extra)
                timed(f"{side}-tiny", tiny, conc, [*(extra or []), *(["--shards", "1"] if extra else [])])
            timed("ray-4x-shards", source, half, [*on_ray, "--shards", str(4 * shards)])
    finally:
        proc.terminate()
        ray.shutdown()
    med = {side: statistics.median(times) for side, times in runs.items()}
    fixed = med["ray-tiny"] - med["single-tiny"]
    ratio = med["single"] / (med["ray"] - fixed)
    per_shard = (med["ray-4x-shards"] - med["ray"]) / (3 * shards)
    merge = statistics.median(merges)
    print(f"problems {args.problems} x {args.samples} samples, latency {args.latency} s, concurrency "
          f"{args.concurrency} (ray: {half} per shard, 2 shards in flight), median of {args.repeats}")  # fmt: skip
    for side in ("single", "ray", "single-tiny", "ray-tiny", "ray-4x-shards"):
        print(f"  {side:14s} {med[side]:6.2f} s   server in flight (mean) {statistics.median(in_flight[side]):5.1f}")
    print(f"local cluster start-up (ray.init, once): {cluster_start:.2f} s")
    print(f"fixed cost of --engine ray (join, actor, empty merge): {fixed:.2f} s")
    print(f"throughput beyond it, ray / single: {ratio:.2f}x "
          f"({args.problems / (med['ray'] - fixed):.0f} vs {args.problems / med['single']:.0f} problems/s)")  # fmt: skip
    print(f"per-shard cost ({4 * shards} vs {shards} shards): {per_shard:.3f} s; merge replay: {merge:.2f} s "
          f"({1000 * merge / args.problems:.2f} ms per problem)")  # fmt: skip


if __name__ == "__main__":
    main()
