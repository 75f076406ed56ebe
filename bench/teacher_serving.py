"""Serving a GGUF teacher on a CPU, two ways side by side on the same prompts, in one run:

    (a) llama.cpp: `python -m llama_cpp.server` started by hubtool (toolkit/teachers/serve.py),
        driven by hubtool's openai backend
    (b) transformers: hubtool's batched transformers backend over the same file de-quantised once
        into a checkpoint (`transformers:FILE.gguf`), no server

Prompts are the CoT prompts of reasoning-gym basic_arithmetic, decoding is greedy, tokens/s counts
the completion tokens each side got back. With --repeats the sides take turns (A B B A ...) and the
median time is kept, so a load change on a shared machine hits both alike.

    python bench/teacher_serving.py \\
        --gguf hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        --prompts 8 --max-new-tokens 128 --threads 2 --repeats 2

The llama.cpp server runs in the Python that has `hubtool[llamacpp]`: this one by default, else
--server-python or $HUBTOOL_LLAMA_PYTHON. --path names a local copy of the file (offline machines).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root

from toolkit.teachers.base import Request, SamplingParams  # noqa: E402

DEFAULT_GGUF = "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


@dataclass
class Run:
    name: str
    tokens: int = 0
    seconds: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds or [0.0])

    @property
    def rate(self) -> float:
        return self.tokens / self.median if self.median else 0.0


def gym_requests(n: int, max_new_tokens: int) -> list[Request]:
    """The CoT prompts a build would send for the first n basic_arithmetic problems, greedy."""
    from toolkit.builders.reasoning import prompt_messages
    from toolkit.sources import load_source

    problems = load_source("gym:basic_arithmetic", limit=n).problems
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return [Request(prompt_messages(p), 1, params) for p in problems]


def tokens_of(results) -> int:
    return sum(c.completion_tokens for r in results for c in r)


def alternate(sides: list[tuple[Run, Callable[[], int]]], repeats: int) -> None:
    for r in range(repeats):
        for run, fn in sides if r % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            run.tokens = fn()
            run.seconds = [*(run.seconds or []), time.perf_counter() - start]
            print(f"  {run.name}: {run.tokens} tokens in {run.seconds[-1]:.1f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="hf:ORG/NAME/FILE.gguf or a local path")
    ap.add_argument("--path", help="a local copy of the --gguf file")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="llama.cpp n_threads and torch threads")
    ap.add_argument("--batch-size", type=int, default=8, help="the transformers backend's batch")
    ap.add_argument("--concurrency", type=int, default=1, help="requests in flight against the server")
    ap.add_argument("--server-python", help="the Python with llama-cpp-python[server] (default: "
                                            "$HUBTOOL_LLAMA_PYTHON, else this one)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import torch

    from toolkit.teachers import load_teacher
    from toolkit.teachers.serve import served_teacher

    torch.set_num_threads(args.threads)
    requests = gym_requests(args.prompts, args.max_new_tokens)
    print(f"{len(requests)} gym basic_arithmetic CoT prompts, {args.max_new_tokens} new tokens max, greedy, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    spec = {"gguf": args.gguf, "path": args.path, "threads": args.threads, "python": args.server_python}
    start = time.perf_counter()
    with served_teacher(spec) as served:
        print(f"llama.cpp server up in {time.perf_counter() - start:.1f} s ({served.file.name}, "
              f"sha256 {served.sha256[:12]})")  # fmt: skip
        server = load_teacher(served.spec, concurrency=args.concurrency, timeout=1800)
        start = time.perf_counter()
        local = load_teacher(f"transformers:{served.file}", batch_size=args.batch_size)
        print(f"transformers checkpoint loaded in {time.perf_counter() - start:.1f} s (converted once, then cached)")
        for teacher in (server, local):
            teacher.generate_many(requests[:1])  # warm up
        a = Run(f"llama.cpp server, concurrency {args.concurrency}")
        b = Run(f"transformers, batch {args.batch_size}")
        alternate([(a, lambda: tokens_of(server.generate_many(requests))),
                   (b, lambda: tokens_of(local.generate_many(requests)))], args.repeats)  # fmt: skip
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    for run in (a, b):
        print(f"  {run.name:<34} {run.tokens:>6} tokens  {run.median:>7.1f} s  {run.rate:>7.1f} tok/s")
    print(f"  ratio llama.cpp / transformers: {a.rate / b.rate:.2f}x")


if __name__ == "__main__":
    main()
