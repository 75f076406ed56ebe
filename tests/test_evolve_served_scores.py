"""`--scorer-mode expected` with a served scorer: the score read from the top log-probabilities of
llama.cpp's server (tests/fixtures/llamacpp_logprobs: its real answers, replayed), as the
paper's trained scorers are read (the probability-weighted mean over the score tokens)."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from tests.servers import JsonServer, models_page
from toolkit.methods.evolve.expected import ServedExpectedScorer
from toolkit.teachers.openai_backend import OpenAITeacher

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "llamacpp_logprobs" / "qwen-coder-1.5b-scores.json").read_text())


def key(messages) -> str:
    return json.dumps(messages, sort_keys=True)


ANSWERS = {key(c["body"]["messages"]): c["response"] for c in FIXTURE["calls"]}


def recorded(instruction_start: str, rubric: str, prefix: str = "Score: ") -> tuple[str, list]:
    """The rubric prompt sent for an instruction, and the server's top log-probabilities after `prefix`."""
    for c in FIXTURE["calls"]:
        user, begun = c["body"]["messages"]
        if rubric in user["content"] and f"Instruction:\n{instruction_start}" in user["content"] and begun["content"] == prefix:
            return user["content"], c["response"]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    raise KeyError(instruction_start)


class Replay(JsonServer):
    """llama.cpp's server as recorded: the answer for the call's messages."""

    def __init__(self) -> None:
        self.asked: list[str] = []  # the begun reply of each call
        super().__init__(self.answer, models_page("qwen-coder-1.5b", "llamacpp"))

    def answer(self, path: str, body: dict) -> tuple[int, dict]:
        assert body["logprobs"] is True and body["max_tokens"] == 1 and body["temperature"] == 0
        self.asked.append(body["messages"][-1]["content"])
        return 200, ANSWERS[key(body["messages"])]


@pytest.fixture
def replay():
    server = Replay()
    yield server
    server.close()


def test_scores_are_the_weighted_mean_over_the_score_tokens(replay):
    backend = OpenAITeacher.from_spec(f"qwen-coder-1.5b@{replay.url}")
    scorer = ServedExpectedScorer(backend, 1, 5)
    say_hi, say_hi_top = recorded("Say hi.", "quality")

    async def scores():
        first = await scorer.score(say_hi)  # picks the begun reply on its first prompt
        rest = [await scorer.score(recorded(start, "complex")[0]) for start in ("Say hi.", "Explain what a leap", "Write a 500")]
        await backend.aclose()
        return first, rest

    first, (hi, leap, essay) = asyncio.run(scores())
    # "Score:" is followed by a space token on this tokenizer: "Score: " is chosen, and kept
    assert scorer.prefix == "Score: " and replay.asked[:2] == ["Score: ", "Score:"]
    assert set(replay.asked[2:]) == {"Score: "}
    weights = {int(t["token"]): math.exp(t["logprob"]) for t in say_hi_top if t["token"] in "12345" and t["token"]}
    assert first == pytest.approx(sum(v * w for v, w in weights.items()) / sum(weights.values()))
    assert first == pytest.approx(3.315, abs=1e-3)
    # the rubric's written score (the argmax) is 1, 5 and 5; the expected scores keep the order apart
    assert [round(s, 2) for s in (hi, leap, essay)] == [2.29, 3.71, 4.09]


def test_a_scorer_that_cannot_be_read_is_refused_in_one_line():
    with raises_one_line("logits or log-probabilities"):
        ServedExpectedScorer(object(), 1, 5)


def test_a_reading_is_cached_and_not_asked_again(replay, tmp_path):
    """Through a build's session (`Session.reading`): the second scorer, on the same call cache, asks
    the server nothing and gives the same score; another begun reply or model is another reading."""
    from toolkit.teachers.cache import CallCache
    from toolkit.teachers.session import Session

    say_hi = recorded("Say hi.", "quality")[0]

    async def score_twice():
        cache = CallCache(tmp_path / "calls.sqlite")
        scores = []
        for _ in range(2):
            session = Session(OpenAITeacher.from_spec(f"qwen-coder-1.5b@{replay.url}"), cache, role="scorer")
            scores.append(await ServedExpectedScorer(session.backend, 1, 5, reader=session.reading).score(say_hi))
            await session.aclose()
        cache.close()
        return scores

    first, second = asyncio.run(score_twice())
    assert first == second == pytest.approx(3.315, abs=1e-3)
    # two calls in all: the prefix choice's two readings; the score is the first of them, read back
    assert replay.asked == ["Score: ", "Score:"]


def test_the_begun_reply_is_chosen_on_the_probe_whichever_prompt_comes_first(replay):
    """A sharded build's processes score their own instructions first; each chooses on the same probe."""
    backend = OpenAITeacher.from_spec(f"qwen-coder-1.5b@{replay.url}")
    say_hi = recorded("Say hi.", "quality")[0]
    scorer = ServedExpectedScorer(backend, 1, 5, probe=say_hi)
    leap = recorded("Explain what a leap", "complex")[0]

    async def score():
        value = await scorer.score(leap)
        await backend.aclose()
        return value

    assert round(asyncio.run(score()), 2) == 3.71
    assert replay.asked == ["Score: ", "Score:", "Score: "] and scorer.prefix == "Score: "
