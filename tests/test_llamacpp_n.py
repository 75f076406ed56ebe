"""n-sample calls to llama.cpp's server (tests/fixtures/llamacpp_n: its real answers, replayed): it
refuses an n above its slots, reports the first choice's usage alone, and gives each sample a slot.

Where the same text is choice 0 of one answer and choice 1 of another, the server's own usage for
it in the first is what hubtool must count for it in the second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from tests.servers import JsonServer, models_page
from toolkit.teachers.base import Request, SamplingParams
from toolkit.teachers.openai_answers import first_choice_usage, to_completions
from toolkit.teachers.openai_backend import OpenAITeacher

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "llamacpp_n" / "smollm2-n2.json").read_text())
ANSWERS = {(c["body"].get("n", 1), c["body"]["seed"]): (c["status"], c["response"]) for c in FIXTURE["calls"]}
CALLS = {seed: answer for (n, seed), (status, answer) in ANSWERS.items() if n == 2}  # the n = 2 answers
QUESTION = tuple(FIXTURE["calls"][0]["body"]["messages"])


def server_count(text: str) -> int:
    """The server's usage for `text` where it was an answer's first choice."""
    counts = {r["choices"][0]["message"]["content"]: r["usage"]["completion_tokens"] for r in CALLS.values()}
    return counts[text]


def test_the_first_choice_and_those_cut_at_the_limit_are_counted_exactly():
    for seed, response in CALLS.items():
        assert first_choice_usage(response), seed
        out = to_completions(response, max_tokens=24)
        assert out[0].completion_tokens == response["usage"]["completion_tokens"]
        if out[1].finish_reason == "length":
            assert out[1].completion_tokens == 24
    # split over the choices by length, as before, these would read 24 as the pair's sum
    assert [c.completion_tokens for c in to_completions(CALLS[1], max_tokens=24)][0] == 24
    summed = {k: v for k, v in CALLS[1].items() if k != "timings"}  # no llama.cpp timings: OpenAI, vLLM
    assert not first_choice_usage(summed)
    assert sum(c.completion_tokens for c in to_completions(summed)) == 24


class Replay(JsonServer):
    """llama.cpp's server as recorded: the answer for the call's (n, seed), /tokenize from the record."""

    def __init__(self, tokenize: bool = True, owned_by: str = "llamacpp", delay: float = 0.0) -> None:
        self.tokenized: list[str] = []
        self.asked: list[tuple[int, int]] = []  # (n, seed) of each chat call
        self.in_flight, self.most_in_flight = 0, 0  # samples being answered now, and at most
        self.lock = threading.Lock()
        self.tokenize, self.delay = tokenize, delay
        super().__init__(self.answer, models_page("smollm2", owned_by))

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        if path.endswith("/chat/completions"):
            n = body.get("n", 1)
            with self.lock:
                self.asked.append((n, body["seed"]))
                self.in_flight += n
                self.most_in_flight = max(self.most_in_flight, self.in_flight)
            time.sleep(self.delay)
            with self.lock:
                self.in_flight -= n
            return ANSWERS[n, body["seed"]]
        if path == "/tokenize" and self.tokenize:
            self.tokenized.append(body["content"])
            return 200, {"tokens": FIXTURE["tokenize"][body["content"]]}
        return 404, {"error": {"message": "File Not Found"}}


@pytest.fixture
def replay():
    server = Replay()
    yield server
    server.close()


def requests() -> list[Request]:
    return [Request(QUESTION, 2, SamplingParams(temperature=1.0, max_new_tokens=24, seed=s)) for s in sorted(CALLS)]


def test_an_n_above_the_servers_slots_is_asked_in_parts(replay):
    from toolkit.teachers.openai_calls import _N_LIMIT

    three = Request(QUESTION, 3, SamplingParams(temperature=1.0, max_new_tokens=24, seed=1))
    [result] = OpenAITeacher.from_spec(f"smollm2@{replay.url}").generate_many([three])
    # refused (2 slots), then samples 0-1 in one call (seed 1) and sample 2 alone (seed 1 + 2)
    assert replay.asked == [(3, 1), (2, 1), (1, 3)] and _N_LIMIT[replay.url] == 2
    assert [c.text for c in result] == [c["message"]["content"] for c in CALLS[1]["choices"]] + ["2 + 3 = 5"]
    assert [c.completion_tokens for c in result] == [24, 8, 8]


def test_the_other_choices_are_counted_by_the_server(replay):
    results = OpenAITeacher.from_spec(f"smollm2@{replay.url}").generate_many(requests())
    for seed, result in zip(sorted(CALLS), results):
        for c in result:
            assert c.completion_tokens == server_count(c.text), (seed, c.text)
    # only the stopped non-first choices were asked about, not those cut at the limit (seed 3's)
    assert sorted(replay.tokenized) == sorted(r["choices"][1]["message"]["content"] for s, r in CALLS.items()
                                              if r["choices"][1]["finish_reason"] == "stop")  # fmt: skip
    assert [sum(c.completion_tokens for c in r) for r in results] == [24 + 8, 8 + 8, 8 + 24, 24 + 8, 8 + 22, 22 + 8]


def test_a_server_that_will_not_count_leaves_the_estimate_said_once(caplog):
    server = Replay(tokenize=False)
    try:
        with caplog.at_level(logging.WARNING):
            results = OpenAITeacher.from_spec(f"smollm2@{server.url}").generate_many(requests())
    finally:
        server.close()
    warned = [r for r in caplog.records if "did not count the others" in r.getMessage()]
    assert len(warned) == 1 and "estimates" in warned[0].getMessage()
    by_seed = dict(zip(sorted(CALLS), results))
    assert [c.completion_tokens for c in by_seed[3]] == [8, 24]  # exact: the usage and the limit
    first, other = by_seed[1]  # choice 0 ran to 24 tokens in 87 characters: "2 + 3 = 5" is estimated at 2
    assert first.completion_tokens == 24 and other.completion_tokens == round(9 * 24 / len(first.text))


@pytest.mark.parametrize("owned_by, most", [("llamacpp", 2), ("vllm", 4)])
def test_each_sample_takes_a_slot_on_llamacpp(owned_by, most):
    """--concurrency 2 against a server with 2 slots: llama.cpp's gets one 2-sample call at a time
    (two would wait in its queue for slots), another server two calls of 2."""
    server = Replay(owned_by=owned_by, delay=0.3)
    try:
        teacher = OpenAITeacher.from_spec(f"smollm2@{server.url}", concurrency=2)
        results = teacher.generate_many(requests())
    finally:
        server.close()
    assert [len(r) for r in results] == [2] * 6
    assert server.most_in_flight == most
    assert teacher.in_flight_unit == ("samples" if owned_by == "llamacpp" else "calls") and teacher.calls_in_flight == 0


def test_slots_are_taken_in_turn_with_bounded_backfilling():
    from toolkit.teachers.slots import Slots

    async def scenario():
        slots, started = Slots(3), []
        done = {name: asyncio.Event() for name in "abcdefgh"}

        async def call(name, k):
            async with slots.hold(k):
                started.append(name)
                await done[name].wait()

        async def settle():
            for _ in range(5):
                await asyncio.sleep(0)

        tasks = {"a": asyncio.ensure_future(call("a", 2))}  # 1 of 3 left
        await settle()
        tasks["b"] = asyncio.ensure_future(call("b", 3))  # waits for all 3
        await settle()
        for name in "cde":  # single calls go before b, one at a time as the last slot frees up
            tasks[name] = asyncio.ensure_future(call(name, 1))
            await settle()
            assert started[-1] == name
            done[name].set()
            await settle()
        tasks["f"] = asyncio.ensure_future(call("f", 1))  # b has been overtaken 3 times: f waits behind it
        await settle()
        assert started == ["a", "c", "d", "e"] and slots.free == 1
        done["a"].set()
        await settle()
        assert started[-1] == "b" and slots.free == 0
        done["b"].set()
        await settle()
        assert started[-1] == "f"
        big = asyncio.ensure_future(call("g", 9))  # more than there are: all of them
        await settle()
        assert "g" not in started
        done["f"].set()
        await settle()
        assert started[-1] == "g" and slots.free == 0

        # a waiter cancelled takes nothing, a hold cancelled gives its slots back
        blocked = asyncio.ensure_future(call("h", 2))
        await settle()
        blocked.cancel()
        big.cancel()
        await asyncio.gather(blocked, big, *(tasks[n] for n in "abcdef"), return_exceptions=True)
        assert slots.free == 3 and "h" not in started

    asyncio.run(scenario())
