"""Teacher throughput, each backend beside the plain way of doing the same job, on the same prompts.

    (a) TransformersTeacher (batched)  vs  plain batched `model.generate` (same batch size and lengths),
                                       and vs a one-prompt-at-a-time `model.generate` loop (same weights)
    (b) OpenAITeacher                  vs  a raw asyncio `openai.AsyncOpenAI` client, same concurrency,
                                           both against one `transformers serve` started here

Decoding is greedy so both sides of a pair produce comparable token counts; tokens/s is computed
from the completion tokens each side actually got back.

    python bench/teacher_throughput.py --prompts 32 --max-new-tokens 64 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for toolkit

from servers import transformers_server  # noqa: E402  (bench/servers.py, beside this script)

from toolkit.teachers.base import Request, SamplingParams  # noqa: E402

TOPICS = ["apples", "trains", "marbles", "books", "coins", "birds", "chairs", "pencils"]
Messages = tuple[dict[str, str], ...]


@dataclass
class Run:
    name: str
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def make_prompts(n: int) -> list[Messages]:
    """n distinct word problems of varying length (deterministic)."""
    out = []
    for i in range(n):
        a, b, topic = 3 + 7 * i % 41, 2 + 5 * i % 23, TOPICS[i % len(TOPICS)]
        text = f"Sam has {a} {topic} and buys {b} more, then gives away {i % 5}. How many {topic} are left?"
        out.append(({"role": "user", "content": text + " Think step by step." * (1 + i % 3)},))
    return out


def timed_pair(
    ours: tuple[str, Callable[[], int]], base: tuple[str, Callable[[], int]], repeats: int
) -> tuple[Run, Run]:
    """Median wall time of each side over `repeats` runs, interleaved (A B B A ...) so that load
    changes on a shared machine hit both sides alike. Each fn returns its completion-token count."""
    times: dict[str, list[float]] = {ours[0]: [], base[0]: []}
    tokens: dict[str, int] = {}
    for r in range(repeats):
        for name, fn in (ours, base) if r % 2 == 0 else (base, ours):
            start = time.perf_counter()
            tokens[name] = fn()
            times[name].append(time.perf_counter() - start)
    return tuple(Run(name, tokens[name], statistics.median(times[name])) for name in (ours[0], base[0]))


def greedy_requests(prompts: list[Messages], max_new_tokens: int) -> list[Request]:
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    return [Request(p, 1, params) for p in prompts]


def completion_tokens(results) -> int:
    return sum(c.completion_tokens for r in results for c in r)


# --- (a) local: batched teacher vs a plain loop ---


def plain_loop(teacher, prompts: list[Messages], max_new_tokens: int) -> int:
    """What a script without the toolkit does: one prompt at a time through `model.generate`."""
    import torch

    tok, lm, tokens = teacher.tokenizer, teacher.lm, 0
    for messages in prompts:
        ids = tok.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        with torch.inference_mode():
            out = lm.generate(
                **ids.to(lm.device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        tokens += next((k + 1 for k, t in enumerate(new) if t == tok.eos_token_id), len(new))
    return tokens


def plain_batched(teacher, prompts: list[Messages], max_new_tokens: int, batch_size: int) -> int:
    """What a careful script without the toolkit does: `batch_size` prompts at a time, left-padded,
    through one `model.generate` each (same weights, same lengths, same greedy decoding)."""
    import torch

    tok, lm, tokens = teacher.tokenizer, teacher.lm, 0
    texts = [tok.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True) for m in prompts]
    for start in range(0, len(texts), batch_size):
        enc = tok(texts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = lm.generate(**enc.to(lm.device), max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                              top_p=None, top_k=None, pad_token_id=tok.pad_token_id)  # fmt: skip
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            tokens += next((k + 1 for k, t in enumerate(row) if t == tok.eos_token_id), len(row))
    return tokens


def bench_local(prompts: list[Messages], args: argparse.Namespace) -> list[tuple[Run, Run]]:
    from toolkit.teachers.transformers_backend import TransformersTeacher

    teacher = TransformersTeacher("smollm2-135m", batch_size=args.batch_size)
    requests = greedy_requests(prompts, args.max_new_tokens)
    teacher.generate_many(requests[:2])  # warm up
    ours = ("TransformersTeacher (batched)", lambda: completion_tokens(teacher.generate_many(requests)))
    return [
        timed_pair(ours, (f"plain batched generate ({args.batch_size})",
                          lambda: plain_batched(teacher, prompts, args.max_new_tokens, args.batch_size)), args.repeats),
        timed_pair(ours, ("model.generate loop", lambda: plain_loop(teacher, prompts, args.max_new_tokens)), args.repeats),
    ]  # fmt: skip


# --- (b) server: OpenAITeacher vs a raw AsyncOpenAI client ---


async def raw_client(
    url: str, model: str, prompts: list[Messages], max_new_tokens: int, concurrency: int
) -> int:
    """What a script without the toolkit does: asyncio.gather under a semaphore, no retries."""
    import openai

    client = openai.AsyncOpenAI(base_url=url, api_key="no-key", max_retries=0)
    sem = asyncio.Semaphore(concurrency)

    async def one(messages: Messages) -> int:
        async with sem:
            r = await client.chat.completions.create(
                model=model,
                messages=list(messages),
                max_tokens=max_new_tokens,
                temperature=0.0,
                top_p=0.95,
                seed=0,
            )
        return r.usage.completion_tokens

    try:
        return sum(await asyncio.gather(*(one(m) for m in prompts)))
    finally:
        await client.close()


def bench_server(prompts: list[Messages], args: argparse.Namespace) -> tuple[Run, Run]:
    from toolkit.teachers.models import resolve_model_path
    from toolkit.teachers.openai_backend import OpenAITeacher

    path = resolve_model_path("smollm2-135m")
    with transformers_server(path, continuous_batching=args.continuous_batching, threads=args.threads) as url:
        teacher = OpenAITeacher(path, url, concurrency=args.concurrency)
        requests = greedy_requests(prompts, args.max_new_tokens)
        teacher.generate_many(requests[:2])  # warm up (and, with continuous batching, fix greedy decoding)
        return timed_pair(
            ("OpenAITeacher", lambda: completion_tokens(teacher.generate_many(requests))),
            (
                "raw AsyncOpenAI",
                lambda: asyncio.run(raw_client(url, path, prompts, args.max_new_tokens, args.concurrency)),
            ),
            args.repeats,
        )


def report(title: str, ours: Run, base: Run) -> None:
    print(f"\n{title}")
    for run in (ours, base):
        print(f"  {run.name:<32} {run.tokens:>6} tokens  {run.seconds:>7.1f} s  {run.rate:>7.1f} tok/s")
    print(f"  ratio {ours.name} / {base.name}: {ours.rate / base.rate:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8, help="in-flight requests, both clients in (b)")
    ap.add_argument("--batch-size", type=int, default=16, help="TransformersTeacher batch size in (a)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per side; the median time is reported")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (here and in the server)")
    ap.add_argument(
        "--continuous-batching",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start transformers serve with continuous batching (else it serves one at a time)",
    )
    ap.add_argument("--only", choices=["local", "server"], help="run just one part")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    prompts = make_prompts(args.prompts)
    print(
        f"{args.prompts} prompts, {args.max_new_tokens} new tokens max, greedy; cpu threads: {args.threads or 'all'}"
    )
    if args.only != "server":
        for pair in bench_local(prompts, args):
            report("(a) local transformers", *pair)
    if args.only != "local":
        mode = "continuous batching" if args.continuous_batching else "sequential"
        report(
            f"(b) transformers serve ({mode}), concurrency {args.concurrency}", *bench_server(prompts, args)
        )


if __name__ == "__main__":
    main()
