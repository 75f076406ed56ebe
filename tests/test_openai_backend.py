"""The openai backend against a real `transformers serve` running the default model on 127.0.0.1.

Failures are injected by a small HTTP proxy in front of the server that answers the first calls
with an error status and forwards the rest, counting what it received and what it passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest

from bench.servers import free_port, transformers_server
from tests.assertions import raises_one_line
from toolkit.errors import UnreachableServerError, UserError
from toolkit.teachers import load_teacher
from toolkit.teachers.base import CallFailure, Request, SamplingParams
from toolkit.teachers.openai_backend import (
    OpenAITeacher,
    apportion,
    backoff_delay,
    parse_retry_after,
    split_model_url,
)
from toolkit.teachers.openai_calls import _N_SUPPORT

STORY = ({"role": "user", "content": "Write a story about a cat."},)
SUM = ({"role": "user", "content": "What is 2+3?"},)
# transformers serve samples only when the model's generation config says so; SmolLM2's is greedy.
SAMPLE = {"generation_config": json.dumps({"do_sample": True})}


def req(messages=STORY, n=1, max_new_tokens=4, temperature=0.0, seed=0) -> Request:
    return Request(
        messages, n, SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    )


@pytest.fixture(scope="module")
def server():
    """(base_url, model) of a `transformers serve` pinned to the default model."""
    from toolkit.teachers.models import resolve_model_path

    path = resolve_model_path("smollm2-135m")
    with transformers_server(path, threads=1) as url:  # one thread: robust on a busy 2-core box
        yield url, path


def teacher(model: str, url: str, **options) -> OpenAITeacher:
    return OpenAITeacher.from_spec(f"{model}@{url}", backoff=0.01, **options)


# --- against the real server (slow: the first one starts it) ---


@pytest.mark.slow
def test_samples_usage_and_finish_reason(server):
    url, model = server
    t = load_teacher(f"openai:{model}@{url}", extra_body=json.dumps(SAMPLE))
    story, total = req(STORY, n=3, max_new_tokens=4, temperature=1.0), req(SUM, max_new_tokens=16)
    results = t.generate_many([story, total])
    assert [len(r) for r in results] == [3, 1]
    assert _N_SUPPORT[url] is False  # transformers serve ignores n: the rest came as single calls
    assert len({c.text for c in results[0]}) > 1, "samples 1..n must get their own seeds"
    for c in results[0] + results[1]:
        assert c.prompt_tokens > 20 and 0 < c.completion_tokens
    assert {c.finish_reason for c in results[0]} == {"length"} and all(
        c.completion_tokens == 4 for c in results[0]
    )
    assert results[1][0].finish_reason == "stop" and "5" in results[1][0].text  # temperature 0: greedy
    assert results[1][0].completion_tokens < 16
    assert t.identity == f"openai:{model}" and t.revision == ""


@pytest.mark.slow
def test_a_server_without_logprobs_stops_an_expected_score_in_one_line(server):
    """transformers serve ignores `logprobs`: a score read from them cannot be had there."""
    url, model = server
    messages = [{"role": "user", "content": "Rate this: hi. Score 1-5."}, {"role": "assistant", "content": "Score: "}]
    t = teacher(model, url)

    async def ask():
        try:
            return await t.next_token_logprobs(messages)
        finally:
            await t.aclose()

    with raises_one_line("gave no log-probabilities"):
        asyncio.run(ask())


@pytest.mark.slow
def test_seeded_samples_repeat(server, proxy_for):
    url, model = server
    p = proxy_for(url)
    t = teacher(model, p.url, concurrency=1, extra_body=SAMPLE)  # the server seeds one global RNG
    r = req(STORY, n=2, max_new_tokens=3, temperature=1.0, seed=7)
    first, again = t.generate_many([r])[0], t.generate_many([r])[0]
    assert [c.text for c in first] == [c.text for c in again] and first[0].text != first[1].text
    assert [body["seed"] for _, body, _ in p.calls] == [7, 8, 7, 8]  # the 2nd run knows n is ignored


@pytest.mark.slow
def test_server_that_honours_n_gets_one_call(server, proxy_for):
    url, model = server
    p = proxy_for(url, emulate_n=True)
    t = teacher(model, p.url)
    results = t.generate_many([req(n=2, max_new_tokens=2)])
    assert len(results[0]) == 2 and len(p.calls) == 1 and p.calls[0][1]["n"] == 2
    assert _N_SUPPORT[p.url] is True
    assert sum(c.completion_tokens for c in results[0]) == 4


@pytest.mark.slow
def test_retries_5xx_and_429_with_retry_after(server, proxy_for):
    url, model = server
    p = proxy_for(url, fail=[500, 429], headers={"Retry-After": "1"})
    results = teacher(model, p.url).generate_many([req(max_new_tokens=2)])
    assert len(results[0]) == 1 and results[0][0].completion_tokens == 2
    assert len(p.calls) == 3 and p.forwarded == 1
    times = [t for t, _, _ in p.calls]
    assert times[2] - times[1] >= 0.95, "Retry-After: 1 must be waited out"


@pytest.mark.slow
def test_results_arrive_as_each_request_finishes(server, proxy_for):
    url, model = server
    p = proxy_for(url)
    t = teacher(model, p.url, concurrency=1)
    seen: list[tuple[int, int]] = []
    results = t.generate_many([req(max_new_tokens=1)] * 3, on_result=lambda i, r: seen.append((i, len(p.calls))))
    assert sorted(i for i, _ in seen) == [0, 1, 2] and all(len(r) == 1 for r in results)
    assert [calls for _, calls in seen] == [1, 2, 3]  # each result delivered before the next call


@pytest.mark.slow
def test_generate_from_a_thread_and_inside_a_running_loop(server):
    url, model = server
    t = teacher(model, url)
    out: list = []
    worker = threading.Thread(target=lambda: out.append(t.generate_many([req(max_new_tokens=1)])))
    worker.start()
    worker.join()

    async def inside_loop():
        return t.generate_many([req(max_new_tokens=1)])

    out.append(asyncio.run(inside_loop()))
    assert [len(r[0]) for r in out] == [1, 1]


@pytest.mark.slow
def test_api_key_is_sent_but_never_logged(server, proxy_for, caplog, monkeypatch):
    url, model = server
    secret = "sk-test-0123456789abcdef"
    monkeypatch.setenv("HUBTOOL_TEST_KEY", secret)
    p = proxy_for(url, fail=[429])
    caplog.set_level(logging.DEBUG)
    t = teacher(model, p.url, api_key_env="HUBTOOL_TEST_KEY")
    t.generate_many([req(max_new_tokens=1)])
    assert p.calls[0][2].get("authorization") == f"Bearer {secret}"
    assert "retrying a call (1/3)" in caplog.text  # the retry was logged, visibly (a WARNING)...
    assert secret not in caplog.text  # ...without the key
    assert secret not in repr(t) and secret not in t.identity


# --- failures that need no server ---


def test_gives_up_after_max_retries(proxy_for):
    p = proxy_for(None, fail=[503] * 10)
    results = teacher("m", p.url, max_retries=2).generate_many([req(), req()])
    assert all(isinstance(r, CallFailure) and "HTTP 503" in r.error for r in results)
    assert len(p.calls) == 6


def test_client_errors_are_not_retried(proxy_for):
    p = proxy_for(None, fail=[400])
    [result] = teacher("m", p.url).generate_many([req()])
    assert isinstance(result, CallFailure) and "HTTP 400" in result.error and len(p.calls) == 1


def test_timeouts_are_retried_then_recorded(proxy_for):
    p = proxy_for(None, delay=1.0)
    [result] = teacher("m", p.url, timeout=0.2, max_retries=1).generate_many([req()])
    assert isinstance(result, CallFailure) and "no answer within 0.2 s" in result.error
    assert len(p.calls) == 2


def test_server_lost_mid_run_stops_the_run(proxy_for):
    p = proxy_for(None, fail=[400])
    t = teacher("m", p.url, max_retries=2)
    assert isinstance(t.generate_many([req()])[0], CallFailure)  # reachable, answered
    p.close()
    with pytest.raises(UnreachableServerError, match="lost http://127.0.0.1.*still running"):
        t.generate_many([req()] * 20)


def test_bad_key_stops_the_run(proxy_for):
    p = proxy_for(None, fail=[401] * 10)
    with raises_one_line(match="refused the API key"):
        teacher("m", p.url).generate_many([req()] * 5)
    assert len(p.calls) <= 5


def test_unreachable_server_fails_fast():
    url = f"http://127.0.0.1:{free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(
        UnreachableServerError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1 .*server running"
    ):
        teacher("m", url).generate_many([req()] * 100)
    assert time.monotonic() - start < 5


# --- spec parsing and the pure helpers ---


def test_spec_parsing(monkeypatch):
    assert split_model_url("gpt-4o-mini@https://api.openai.com/v1") == (
        "gpt-4o-mini",
        "https://api.openai.com/v1",
    )
    assert split_model_url("m@http://u:pw@host:8000/v1") == ("m", "http://u:pw@host:8000/v1")
    assert split_model_url("org/model") == ("org/model", None)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    t = load_teacher("openai:m", batch_size=4, timeout=None)  # a build's flags of other backends are left to them
    assert (t.model, t.base_url, t.concurrency, t.extra_body) == ("m", "http://127.0.0.1:9/v1", 16, {})
    with raises_one_line(match="the openai backend has no option 'batch_size'; its options: concurrency"):
        OpenAITeacher.from_spec("m", batch_size=4)
    with raises_one_line(match="no teacher backend has an option 'batch_sise'"):
        load_teacher("openai:m", batch_sise=4)
    with raises_one_line(match="extra_body is not valid JSON"):
        OpenAITeacher.from_spec("m", extra_body="{top_k: 1}")
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with raises_one_line(match="OPENAI_API_KEY is not set"):
        OpenAITeacher.from_spec("gpt-4o-mini")
    with raises_one_line(match="must start with http"):
        OpenAITeacher("m", "127.0.0.1:8000/v1")
    assert "pw" not in repr(OpenAITeacher.from_spec("m@http://u:pw@host:8000/v1"))


def test_retry_after_and_backoff():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert 8 < parse_retry_after({"retry-after": _http_date(10)}) <= 10
    assert parse_retry_after({}) is None and parse_retry_after({"retry-after": "soon"}) is None
    assert backoff_delay(0, 1.0, retry_after=2.5) == 2.5
    delays = [backoff_delay(3, 1.0) for _ in range(200)]
    assert 4 <= min(delays) and max(delays) <= 8 and len(set(delays)) > 100  # 2^3, half jittered
    assert backoff_delay(30, 1.0) <= 60 and backoff_delay(0, 1.0, retry_after=1e9) == 60


def test_apportion_keeps_the_total():
    assert apportion(10, [1]) == [10]
    assert apportion(10, [1, 1, 2]) == [3, 2, 5]
    assert sum(apportion(7, [3, 0, 5])) == 7 and apportion(3, [0, 0, 0]) == [1, 1, 1]
    assert apportion(0, []) == []


def test_a_200_answer_is_read_strictly():
    from toolkit.teachers.openai_answers import to_completions
    from toolkit.teachers.openai_wire import MalformedResponse

    def choice(content, index=0, message=True):
        return {"index": index, "finish_reason": "stop", **({"message": {"content": content}} if message else {})}

    usage = {"prompt_tokens": 5, "completion_tokens": 6}
    for bad, why in [("<html>502</html>", "not a chat completion"), ({"choices": None}, "choices: None"),
                     ({"choices": []}, r"choices: \[\]"), ({"choices": [choice("x", message=False)]}, "without a message"),
                     ({"object": "error"}, r"keys \['object'\]"), ({"choices": ["x"]}, "without a message"),
                     (None, "not a chat completion")]:  # fmt: skip
        with pytest.raises(MalformedResponse, match=why):
            to_completions(bad)
    out = to_completions({"choices": [choice("abc", 1), choice(None, 0)], "usage": usage})
    assert [(c.text, c.completion_tokens, c.prompt_tokens) for c in out] == [("", 0, 5), ("abc", 6, 5)]
    assert to_completions({"choices": [choice("x")], "usage": {"prompt_tokens": None}})[0].prompt_tokens == 0


def test_error_answers_are_read_for_their_message():
    from toolkit.teachers.openai_wire import error_message

    assert error_message(b'{"error": {"message": "model not found", "type": "x"}}') == "model not found"
    assert error_message(b'{"object": "error", "message": "max_tokens too large"}') == "max_tokens too large"
    assert error_message(b'{"detail": "Not Found"}') == "Not Found"
    assert error_message(b"<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
    assert error_message(b"") == "no body"


def test_retry_lines_are_visible_but_not_a_flood(caplog):
    from toolkit.teachers.openai_wire import RetryNotice

    caplog.set_level(logging.INFO)
    notice = RetryNotice(logging.getLogger("t"), every=60)
    for attempt in (1, 2, 3):
        notice.retrying(attempt, 3, 0.5, "HTTP 503")
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.WARNING, logging.INFO, logging.INFO]
    assert "retrying a call (1/3) in 0.5 s after HTTP 503" in caplog.records[0].getMessage()


def test_sampling_values_a_server_refuses_stop_before_any_call():
    t = OpenAITeacher("m", "http://127.0.0.1:9/v1")
    with raises_one_line(match=r"^--temperature 2.5 is outside what the openai backend takes \(0 to 2\)$"):
        t.check_params(SamplingParams(temperature=2.5))
    t.check_params(SamplingParams(temperature=2.0))
    load_teacher("fake:right").check_params(SamplingParams(temperature=2.5))  # a local model takes any
    for values, message in (({"top_p": 1.5}, "--top-p must be in (0, 1], not 1.5"),
                            ({"max_new_tokens": 0}, "--max-new-tokens must be at least 1, not 0"),
                            ({"temperature": -1.0}, "--temperature must be a finite number >= 0 (0 is greedy), not -1.0")):
        with pytest.raises(UserError) as e:  # shared bounds: checked once, when the values are made
            SamplingParams(**values)
        assert str(e.value) == message


def test_the_cache_identity_names_the_server_and_its_weights_never_a_credential():
    from .fault_server import FaultServer

    with FaultServer("ok", root="/models/qwen-7b") as server:
        t = OpenAITeacher.from_spec("fault-model@" + server.url.replace("http://", "http://u:Secret-987654@"))
        assert t.endpoint == server.url
        asyncio.run(_open_and_close(t))
    assert t.endpoint == f"{server.url} root=/models/qwen-7b" and "Secret" not in repr(t)


async def _open_and_close(t: OpenAITeacher) -> None:
    await t.aopen()
    await t.aclose()


def _http_date(seconds_from_now: float) -> str:
    import email.utils

    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)
