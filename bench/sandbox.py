"""Sandbox throughput, beside the naive way of running the same programs, in the same run.

    ours:  toolkit.sandbox.Sandbox.run_many (pre-started fork servers, one per worker)
    naive: subprocess.run([sys.executable, "-c", program + "print(ans)"]) per program, no isolation

Both sides run the same N programs with the same number of worker threads and must agree on every
answer. The programs are one-liners (`ans = sum(range(i))`) and program-of-thought style word-problem
solutions of 5-15 lines, some importing math, fractions or numpy.

    python bench/sandbox.py --programs 2000 --naive-programs 500 --workers 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for toolkit

from toolkit.sandbox import DEFAULT_PRELOAD, Limits, Sandbox  # noqa: E402

POT = [
    """\
apples_start = {a}
apples_bought = {b}
apples_eaten = {c}
ans = apples_start + apples_bought - apples_eaten
""",
    """\
import math
price_per_box = {a}
boxes = {b}
discount = {c} / 100
total = price_per_box * boxes
ans = round(total * (1 - discount), 2)
""",
    """\
from fractions import Fraction
def solution():
    pizza = Fraction(1)
    eaten_by_tom = Fraction({c}, {a} + {c})
    eaten_by_ann = Fraction(1, {b} + 1)
    left = pizza - eaten_by_tom - eaten_by_ann
    return left
ans = solution()
""",
    """\
speeds = [{a}, {b}, {c} + 1]
hours = [2, 3, 1]
distance = 0
for speed, hour in zip(speeds, hours):
    distance += speed * hour
average = distance / sum(hours)
ans = average
""",
    """\
import numpy as np
weights = np.array([{a}, {b}, {c}], dtype=float)
shares = weights / weights.sum()
savings = 1200
ans = float(np.round(shares[0] * savings, 2))
""",
    """\
def count_legs(chickens, cows, spiders):
    return chickens * 2 + cows * 4 + spiders * 8

total = 0
for day in range(1, 4):
    total += count_legs({a} + day, {b}, {c} % 5)
ans = total
""",
    """\
import math
radius = {a}
area = math.pi * radius ** 2
cans_needed = math.ceil(area / ({b} + 10))
ans = cans_needed
""",
]


def make_programs(n: int) -> list[str]:
    """n distinct programs: every third a one-liner, the rest word-problem solutions."""
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(f"ans = sum(range({i}))\n")
        else:
            template = POT[i % len(POT)]
            out.append(template.format(a=3 + i % 17, b=2 + i % 11, c=1 + i % 7))
    return out


def naive_one(code: str) -> str | None:
    done = subprocess.run([sys.executable, "-c", code + "\nprint(ans)"], capture_output=True, text=True, timeout=30)
    return done.stdout.strip() if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=2000, help="programs through the sandbox")
    parser.add_argument("--naive-programs", type=int, default=None, help="programs through the naive side "
                        "(default: the same; it is ~10x slower)")  # fmt: skip
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs per side, taken in turns (A B B A ...); "
                        "the median rate is reported")  # fmt: skip
    parser.add_argument("--preload", nargs="*", default=[], help="modules to preload beyond the default "
                        "(e.g. sympy)")  # fmt: skip
    args = parser.parse_args()
    programs = make_programs(args.programs)
    naive_programs = programs[: args.naive_programs or args.programs]
    rates: dict[str, list[float]] = {"sandbox": [], "naive": []}

    started = time.perf_counter()
    with Sandbox(Limits(wall_s=5), workers=args.workers, preload=(*DEFAULT_PRELOAD, *args.preload)) as box:
        box.start()
        startup = time.perf_counter() - started

        def ours() -> list:
            return box.run_many(programs)

        def theirs() -> list:
            with ThreadPoolExecutor(args.workers) as pool:
                return list(pool.map(naive_one, naive_programs))

        sides = [("sandbox", ours, len(programs)), ("naive", theirs, len(naive_programs))]
        for r in range(args.repeats):  # in turns, so a load change on a shared machine hits both
            for name, fn, n in sides if r % 2 == 0 else sides[::-1]:
                started = time.perf_counter()
                out = fn()
                rates[name].append(n / (time.perf_counter() - started))
                if name == "sandbox":
                    results = out
                else:
                    naive = out
        isolation = box.isolation

    bad = [r for r in results if not r.ok]
    # Both sides print numbers their own way ("2.0" vs "2"); compare as numbers where they are.
    disagree = sum(1 for r, n in zip(results, naive) if not _same(r.value, n))
    ours_rate, naive_rate = statistics.median(rates["sandbox"]), statistics.median(rates["naive"])
    print(f"machine: {_cpus()} CPUs, load average {os.getloadavg()[0]:.1f}; isolation: {isolation}; "
          f"workers: {args.workers}; extra preload: {args.preload}; server start-up: {startup:.2f} s (not timed below); repeats: {args.repeats}")  # fmt: skip
    print(f"sandbox : {len(programs):5d} programs, {ours_rate:7.1f} programs/s ({len(bad)} not ok)")
    print(f"naive   : {len(naive_programs):5d} programs, {naive_rate:7.1f} programs/s "
          f"(subprocess.run per program, no isolation)")  # fmt: skip
    print(f"ratio   : {ours_rate / naive_rate:.1f}x; answers that differ: {disagree} of {len(naive_programs)}")
    if bad:
        print("first failure:", bad[0])


def _same(ours: str | None, naive: str | None) -> bool:
    if ours is None or naive is None:
        return ours == naive
    try:
        from fractions import Fraction

        return Fraction(ours) == Fraction(naive)
    except (ValueError, ZeroDivisionError):
        return ours == naive


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
