"""A build's cost beyond its calls: replaying a finished build from the call cache, and the memory a
build holds as it grows. Against the stand-in server (bench/standin.py, started here).

    python bench/build_scale.py replay --problems 2500 --samples 4     # 10,000 samples: target < 2 s
    python bench/build_scale.py memory --sizes 10000 100000             # peak RSS: target flat (< +20%)

replay: the build runs once against the server (latency 0.01 s), then the same command again, every
sample from the cache; the second run is timed in-process (imports warm, as a long session's next
build would be). memory: each size is a fresh process building N problems x 1 sample; it reports its
own peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_throughput import problems_file, start_standin  # noqa: E402


def build(url: str, source: Path, out: Path, cache: Path, samples: int, concurrency: int):
    from toolkit.builders.engine import build_dataset
    from toolkit.methods.cot import METHOD, CoTConfig

    config = CoTConfig(source=f"file:{source}", teacher=f"openai:standin@{url}", samples=samples, keep="all",
                       concurrency=concurrency, max_new_tokens=64, out=str(out), cache=str(cache))  # fmt: skip
    return build_dataset(config, method=METHOD)


def replay(args) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="hubtool-bench-"))
    os.environ["HUBTOOL_HOME"] = str(scratch / "home")
    source = problems_file(scratch, args.problems)
    proc, url = start_standin(0.01)
    try:
        t0 = time.perf_counter()
        first = build(url, source, scratch / "run", scratch / "calls.sqlite", args.samples, 64)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build(url, source, scratch / "run", scratch / "calls.sqlite", args.samples, 64)
        warm = time.perf_counter() - t0
    finally:
        proc.terminate()
    samples = again.counts["samples"]
    assert again.usage["teacher"]["samples_cached"] == samples and again.data_file == first.data_file
    print(f"replay: {samples} samples ({args.problems} problems x {args.samples}) from the cache in {warm:.2f} s "
          f"(the cold build took {cold:.2f} s)")  # fmt: skip


def memory(args) -> None:
    if args.child:
        scratch = Path(args.child)
        build(args.url, scratch / "problems.jsonl", scratch / "run", scratch / "calls.sqlite", 1, 64)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
        return
    proc, url = start_standin(0.0)
    try:
        peaks = {}
        for size in args.sizes:
            scratch = Path(tempfile.mkdtemp(prefix="hubtool-bench-"))
            problems_file(scratch, size)
            env = {**os.environ, "HUBTOOL_HOME": str(scratch / "home")}
            t0 = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "memory", "--child", str(scratch), "--url", url],
                                 env=env, capture_output=True, text=True, check=True)  # fmt: skip
            peaks[size] = int(out.stdout.strip().splitlines()[-1]) / 1024
            print(f"memory: {size} problems: peak RSS {peaks[size]:.0f} MiB ({time.perf_counter() - t0:.0f} s)", flush=True)
        smallest, largest = peaks[min(peaks)], peaks[max(peaks)]
        print(f"memory: {max(peaks)} vs {min(peaks)} problems: {largest / smallest:.2f}x the peak RSS")
    finally:
        proc.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("replay")
    r.add_argument("--problems", type=int, default=2500)
    r.add_argument("--samples", type=int, default=4)
    m = sub.add_parser("memory")
    m.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    m.add_argument("--child", help=argparse.SUPPRESS)
    m.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    replay(args) if args.what == "replay" else memory(args)


if __name__ == "__main__":
    main()
