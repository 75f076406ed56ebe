"""Serving a GGUF teacher on a CPU, up to three ways side by side on the same prompts, in one run:

    (a) llamacpp: `python -m llama_cpp.server` started by hubtool (toolkit/teachers/serve.py), driven
        by hubtool's openai backend; it answers one request at a time
    (b) llama-server: llama.cpp's own server binary started by hubtool with --parallel slots, driven
        by the openai backend with as many requests in flight as slots (continuous batching)
    (c) transformers: hubtool's batched transformers backend over the same file de-quantised once
        into a checkpoint (`transformers:FILE.gguf`), no server

Prompts are the CoT prompts of reasoning-gym basic_arithmetic, decoding is greedy, tokens/s counts
the completion tokens each side got back. With --repeats the sides take turns (A B C C B A ...) and
the median time is kept, so a load change on a shared machine hits them alike.

    python bench/teacher_serving.py \\
        --gguf hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        --prompts 8 --max-new-tokens 128 --threads 2 --parallel 4 --repeats 2

The llamacpp server runs in the Python that has `hubtool[llamacpp]`: this one by default, else
--server-python or $HUBTOOL_LLAMA_PYTHON; llama-server is --llama-server, $HUBTOOL_LLAMA_SERVER or
on the PATH. --sides picks which run (default: all three). --path names a local copy of the file
(offline machines).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def generated_tokens(teacher: Any, requests: list[Request]) -> int:
    return tokens_of(teacher.generate_many(requests))


def alternate(sides: list[tuple[Run, Callable[[], int]]], repeats: int) -> None:
    for r in range(repeats):
        for run, fn in sides if r % 2 == 0 else sides[::-1]:
            start = time.perf_counter()
            run.tokens = fn()
            run.seconds = [*(run.seconds or []), time.perf_counter() - start]
            print(f"  {run.name}: {run.tokens} tokens in {run.seconds[-1]:.1f} s", flush=True)


SIDES = ("llamacpp", "llama-server", "transformers")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default=DEFAULT_GGUF, help="hf:ORG/NAME/FILE.gguf or a local path")
    ap.add_argument("--path", help="a local copy of the --gguf file")
    ap.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="llama.cpp n_threads and torch threads")
    ap.add_argument("--batch-size", type=int, default=8, help="the transformers backend's batch")
    ap.add_argument("--concurrency", type=int, default=1, help="requests in flight against the llamacpp server")
    ap.add_argument("--parallel", type=int, default=4, help="llama-server's slots (and requests in flight)")
    ap.add_argument("--server-python", help="the Python with llama-cpp-python[server] (default: "
                                            "$HUBTOOL_LLAMA_PYTHON, else this one)")  # fmt: skip
    ap.add_argument("--llama-server", help="llama.cpp's llama-server binary (default: $HUBTOOL_LLAMA_SERVER, "
                                           "else on the PATH)")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()

    import torch

    from toolkit.teachers import load_teacher
    from toolkit.teachers.serve import served_teacher

    torch.set_num_threads(args.threads)
    requests = gym_requests(args.prompts, args.max_new_tokens)
    print(f"{len(requests)} gym basic_arithmetic CoT prompts, {args.max_new_tokens} new tokens max, greedy, "
          f"{args.threads} threads; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    common = {"gguf": args.gguf, "path": args.path, "threads": args.threads}
    servers = {
        "llamacpp": ({**common, "python": args.server_python}, args.concurrency,
                     f"llamacpp (llama-cpp-python), concurrency {args.concurrency}"),
        "llama-server": ({**common, "backend": "llama-server", "parallel": args.parallel, "binary": args.llama_server},
                         args.parallel, f"llama-server, {args.parallel} slots"),
    }  # fmt: skip
    sides: list[tuple[Run, Any]] = []  # (its figures, its teacher)
    with contextlib.ExitStack() as stack:
        file = None
        for side in args.sides:
            if side == "transformers":
                continue
            spec, in_flight, name = servers[side]
            start = time.perf_counter()
            served = stack.enter_context(served_teacher(spec))
            file = served.file
            print(f"{name}: up in {time.perf_counter() - start:.1f} s ({served.file.name}, sha256 {served.sha256[:12]})")
            teacher = load_teacher(served.spec, concurrency=in_flight, timeout=1800)
            sides.append((Run(name), teacher))
        if "transformers" in args.sides:
            from toolkit.teachers.serve import TeacherServer, resolve_gguf

            file = file or resolve_gguf(TeacherServer(args.gguf, path=args.path))
            start = time.perf_counter()
            local = load_teacher(f"transformers:{file}", batch_size=args.batch_size)
            print(f"transformers checkpoint loaded in {time.perf_counter() - start:.1f} s (converted once, then cached)")
            sides.append((Run(f"transformers, batch {args.batch_size}"), local))
        for _, teacher in sides:
            teacher.generate_many(requests[:1])  # warm up
        alternate([(run, functools.partial(generated_tokens, teacher, requests)) for run, teacher in sides], args.repeats)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    for run, _ in sides:
        print(f"  {run.name:<40} {run.tokens:>6} tokens  {run.median:>7.1f} s  {run.rate:>7.1f} tok/s")
    first = sides[0][0]
    for run, _ in sides[1:]:
        print(f"  ratio {run.name} / {first.name}: {run.rate / first.rate:.2f}x")


if __name__ == "__main__":
    main()
