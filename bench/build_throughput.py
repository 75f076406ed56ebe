"""A whole build against a stand-in server, beside a raw client doing the same calls.

    python bench/build_throughput.py --problems 400 --samples 4 --concurrency 32 64 --latency 0.3 0.01

The stand-in (bench/standin.py, started here) answers every call after a fixed latency, so only the
clients' own cost shows. Both sides make the same calls with the same requests in flight:
- raw: `openai.AsyncOpenAI` + a semaphore, one call per problem asking for --samples choices (the
  baseline the issue set);
- aiohttp: the same calls on a bare `aiohttp` session + a semaphore, nothing parsed or kept: the
  transport hubtool uses, so hubtool / aiohttp is the toolkit's own share of the time;
- hubtool: `hubtool build-dataset cot` on the same problems (openai backend), the whole build timed:
  source, prompts, calls, parsing, checking, the call cache, rows, manifest and card.
Sides alternate (A B B A ...), every hubtool run starts with an empty call cache and run directory,
and the median of --repeats runs is reported with the ratio and the requests the server saw in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from servers import free_port  # noqa: E402  (bench/servers.py, beside this script)


def start_standin(latency: float, ignore_n: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "standin.py"), "--port", str(port), "--latency", str(latency)]
    proc = subprocess.Popen(args + (["--ignore-n"] if ignore_n else []))
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{url}/v1/models", timeout=1)
            return proc, f"{url}/v1"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the stand-in server did not start")


def stats(base_url: str) -> dict:
    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats?reset=1", timeout=5) as r:
        return json.loads(r.read())


def problems_file(folder: Path, n: int) -> Path:
    path = folder / "problems.jsonl"
    path.write_text("".join(json.dumps({"question": f"What is {i} + {2 * i}?", "answer": str(3 * i)}) + "\n"
                            for i in range(n)))  # fmt: skip
    return path


def prompts(path: Path) -> list[tuple[dict, ...]]:
    """The exact user turns the CoT builder sends, so both sides ask the same."""
    from toolkit.builders.reasoning import prompt_messages
    from toolkit.sources import load_source

    return [prompt_messages(p) for p in load_source(f"file:{path}").problems]


def run_raw(base_url: str, messages: list, samples: int, concurrency: int, max_tokens: int) -> float:
    import openai

    async def go() -> int:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="no-key", max_retries=0)
        sem = asyncio.Semaphore(concurrency)

        async def one(m) -> int:
            async with sem:
                r = await client.chat.completions.create(model="standin", messages=list(m), n=samples,
                                                         temperature=0.7, top_p=0.95, max_tokens=max_tokens)
            return len(r.choices)

        try:
            return sum(await asyncio.gather(*(one(m) for m in messages)))
        finally:
            await client.close()

    t0 = time.perf_counter()
    got = asyncio.run(go())
    assert got == samples * len(messages), got
    return time.perf_counter() - t0


def run_aiohttp(base_url: str, messages: list, samples: int, concurrency: int, max_tokens: int) -> float:
    import aiohttp

    async def go() -> int:
        sem = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

            async def one(m) -> int:
                body = {"model": "standin", "messages": list(m), "n": samples, "temperature": 0.7, "top_p": 0.95,
                        "max_tokens": max_tokens}  # fmt: skip
                async with sem, http.post(f"{base_url}/chat/completions", json=body) as r:
                    return len((await r.json())["choices"])

            return sum(await asyncio.gather(*(one(m) for m in messages)))

    t0 = time.perf_counter()
    got = asyncio.run(go())
    assert got == samples * len(messages), got
    return time.perf_counter() - t0


def run_hubtool(base_url: str, source: Path, samples: int, concurrency: int, max_tokens: int, scratch: Path) -> float:
    from toolkit.builders.engine import build_dataset
    from toolkit.methods.cot import METHOD, CoTConfig

    run = Path(tempfile.mkdtemp(dir=scratch))
    config = CoTConfig(source=f"file:{source}", teacher=f"openai:standin@{base_url}", samples=samples,
                       concurrency=concurrency, keep="all", max_new_tokens=max_tokens, out=str(run / "out"),
                       cache=str(run / "calls.sqlite"))  # fmt: skip
    t0 = time.perf_counter()
    manifest = build_dataset(config, method=METHOD)
    seconds = time.perf_counter() - t0
    assert manifest.counts["samples"] == samples * manifest.counts["problems"], manifest.counts
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--latency", type=float, nargs="+", default=[0.3, 0.01])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="hubtool-bench-"))
    os.environ["HUBTOOL_HOME"] = str(scratch / "home")
    source = problems_file(scratch, args.problems)
    messages = prompts(source)
    print(f"{args.problems} problems x {args.samples} samples, medians of {args.repeats} alternating runs")
    print(f"{'latency':>8} {'conc':>5} {'raw s':>7} {'aiohttp s':>9} {'hubtool s':>9} {'vs raw':>7} {'vs aiohttp':>10}"
          f" {'in flight raw / aiohttp / hubtool':>34}")  # fmt: skip
    sides = ("raw", "aiohttp", "hubtool")
    for latency in args.latency:
        proc, url = start_standin(latency)
        try:
            for conc in args.concurrency:
                times: dict[str, list[float]] = {side: [] for side in sides}
                flight: dict[str, list[float]] = {side: [] for side in sides}
                for i in range(args.repeats):
                    for side in sides if i % 2 == 0 else sides[::-1]:
                        stats(url)
                        if side == "hubtool":
                            seconds = run_hubtool(url, source, args.samples, conc, args.max_tokens, scratch)
                        else:
                            run = run_raw if side == "raw" else run_aiohttp
                            seconds = run(url, messages, args.samples, conc, args.max_tokens)
                        times[side].append(seconds)
                        flight[side].append(stats(url)["mean_in_flight"])
                r, a, o = (statistics.median(times[side]) for side in sides)
                inflight = " / ".join(f"{statistics.median(flight[side]):.1f}" for side in sides)
                print(f"{latency:>8} {conc:>5} {r:>7.2f} {a:>9.2f} {o:>9.2f} {r / o:>6.2f}x {a / o:>9.2f}x {inflight:>34}",
                      flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
