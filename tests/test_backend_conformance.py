"""Every registered teacher backend meets the contract of `toolkit.teachers.base`: the samples asked
for, repeatable seeds, a failed call recorded (never raised), `cancel`, the cache identity, and no
credential in anything it shows. A new backend adds its case to CASES and must pass the same tests.

fake runs on scripts, openai against the fault server on 127.0.0.1 (a real HTTP server, canned
answers naming their seed), transformers on the embedded SmolLM2-135M (4 new tokens), vllm only
where vLLM is installed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest

from tests.assertions import raises_one_line
from toolkit.builders.engine import _model_info
from toolkit.teachers import BACKENDS, CLASSES, backend_class, load_teacher, redact_spec
from toolkit.teachers.base import CallFailure, Request, SamplingParams, Teacher
from toolkit.teachers.cache import call_key

from .fault_server import FaultServer

SECRET = "sk-conformance-0123456789abcdef"  # the API key, in the environment
URL_SECRET = "Pw-conformance-987654"  # a password inside a base URL


@dataclass
class Case:
    spec: str  # BACKEND:MODEL (openai: the server's URL is appended)
    failing: str  # a question whose call fails
    same: dict[str, Any]  # an option that leaves the output as it is: the same cache key
    changed: dict[str, Any]  # an option that changes the output: another key
    seed_shows: bool = False  # different seeds give different samples (the fault server names its seed)
    options: dict[str, Any] = field(default_factory=dict)


CASES = {
    "fake": Case("fake:{script}", "please fail", same={}, changed={"spec": "fake:right"}),
    "openai": Case("openai:fault-model@{url}", "please fail", same={"concurrency": 2},
                   changed={"extra_body": {"top_k": 1}}, seed_shows=True, options={"max_retries": 0}),
    "transformers": Case("transformers:smollm2-135m", "word " * 9000, same={"batch_size": 2},
                         changed={"dtype": "bfloat16"}),
    "vllm": Case("vllm:smollm2-135m", "word " * 9000, same={"chunk_size": 8}, changed={"dtype": "float16"},
                 options={"gpu_memory_utilization": 0.2, "max_model_len": 2048}),  # up to 4 engines at once
}  # fmt: skip


def test_every_registered_backend_has_a_case():
    assert sorted(CASES) == sorted(BACKENDS) == sorted(CLASSES)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The fake's script and a fault server: a question with "fail" gets HTTP 500, with "hang" no answer."""
    script = tmp_path_factory.mktemp("fake") / "script.jsonl"
    script.write_text(json.dumps({"match": "fail", "error": "scripted failure"}) + "\n"
                      + json.dumps({"match": ".", "replies": ["one", "two", "three"]}) + "\n")  # fmt: skip

    def fault(question: str) -> bool | str:
        return "error" if "fail" in question else "hang" if "hang" in question else False

    with FaultServer("ok", faulty=fault) as server:
        yield {"script": str(script), "url": server.url.replace("http://", f"http://u:{URL_SECRET}@")}


@pytest.fixture(scope="module")
def loaded(env):
    cache: dict[tuple, Teacher] = {}

    def load(name: str, **extra: Any) -> Teacher:
        case = CASES[name]
        spec = extra.pop("spec", case.spec).format(**env)
        key = (name, spec, json.dumps(extra, sort_keys=True))
        if key not in cache:
            if name == "vllm":
                pytest.importorskip("vllm")
            cache[key] = load_teacher(spec, **{**case.options, **extra})
        return cache[key]

    yield load
    for teacher in cache.values():
        teacher.close()


def req(question: str = "What is 2 + 3?", n: int = 1, seed: int = 0, temperature: float = 1.0) -> Request:
    return Request(({"role": "user", "content": question},), n, SamplingParams(temperature, 0.95, 4, seed))


def run(teacher: Teacher, body) -> Any:
    """`body(teacher)` inside an event loop, with the backend opened and closed as a build does."""

    async def go():
        await teacher.aopen()
        try:
            return await body(teacher)
        finally:
            await teacher.aclose()

    return asyncio.run(go())


def texts(result) -> list[str]:
    assert isinstance(result, list), result
    return [c.text for c in result]


@pytest.fixture(params=list(CASES))
def name(request) -> str:
    return request.param


def test_returns_the_samples_asked_for(loaded, name):
    teacher = loaded(name)
    one, three = run(teacher, lambda t: asyncio.gather(t.generate(req()), t.generate(req("What is 4 + 4?", n=3))))
    assert len(texts(one)) == 1 and len(texts(three)) == 3
    assert all(c.finish_reason in ("stop", "length") for c in three)


def test_a_seed_gives_the_same_samples_again(loaded, name):
    teacher = loaded(name)
    first = run(teacher, lambda t: t.generate(req(n=2, seed=5)))
    again = run(teacher, lambda t: t.generate(req(n=2, seed=5)))
    assert texts(first) == texts(again)
    if CASES[name].seed_shows:
        assert texts(run(teacher, lambda t: t.generate(req(n=2, seed=6)))) != texts(first)


def test_a_failed_call_is_recorded_and_the_others_still_answer(loaded, name):
    teacher = loaded(name)
    bad, good = run(teacher, lambda t: asyncio.gather(t.generate(req(CASES[name].failing)), t.generate(req())))
    assert isinstance(bad, CallFailure) and bad.error
    assert len(texts(good)) == 1


def test_cancel_ends_the_pending_calls_and_later_calls_run(loaded, name):
    teacher = loaded(name)

    async def body(t: Teacher):
        pending = [asyncio.ensure_future(t.generate(req(f"hang {i} + 1"))) for i in range(3)]
        await asyncio.sleep(0.3 if name == "openai" else 0)  # openai: on the wire, hanging; others: queued
        t.cancel()
        done = await asyncio.wait_for(asyncio.gather(*pending), 10)
        return done, await t.generate(req())

    done, later = run(teacher, body)
    assert done == [CallFailure("cancelled")] * 3
    assert len(texts(later)) == 1
    if name == "fake":
        assert all("hang" not in r.messages[0]["content"] for r in teacher.calls)  # never generated


def test_the_cache_key_follows_what_changes_the_output(loaded, name):
    case = CASES[name]
    teacher, same, changed = loaded(name), loaded(name, **case.same), loaded(name, **case.changed)
    for t in (teacher, same, changed):  # opened, as a build opens them before the first lookup
        run(t, lambda t: asyncio.sleep(0))
    key = call_key(teacher, req(), 0)
    assert call_key(same, req(), 0) == key
    assert call_key(changed, req(), 0) != key
    assert call_key(teacher, req(temperature=0.5), 0) != key and call_key(teacher, req(seed=1), 0) != key
    assert call_key(teacher, req(), 1) != key


def test_cache_keys_are_pinned(env):
    """Literal digests (the keys main had before the backend contract): a change to what the key hashes,
    which would orphan the cache of every earlier build, shows here."""
    fake = load_teacher("fake:right")
    fake.revision = "r1"  # the rule's revision names the hubtool version
    assert call_key(fake, req(), 0) == "6d25dc3241a7ef4acffb10942d4dfd61082e9c1169280b53f4bbe1d18db97d9e"
    served = load_teacher("openai:m@http://127.0.0.1:9/v1")  # not opened: no server asked
    for spec in ("openai:m@http://127.0.0.1:9/v1", "m@http://127.0.0.1:9/v1"):  # from_spec reads either
        assert backend_class("openai").from_spec(spec).cache_identity == served.cache_identity
    assert served.cache_identity == {"backend": "openai", "model": "m", "revision": "", "endpoint": "http://127.0.0.1:9/v1"}
    assert call_key(served, req(), 0) == "4f8715e47ba8d8be89f2dcf64859a4b31227864188ef81134e47456c6d7b7098"


def test_no_credential_in_what_a_backend_shows(loaded, env, name, monkeypatch):
    monkeypatch.setenv("HUBTOOL_CONFORMANCE_KEY", SECRET)
    extra = {"api_key_env": "HUBTOOL_CONFORMANCE_KEY"}  # a build hands every backend every flag
    teacher = loaded(name, **extra)
    spec = CASES[name].spec.format(**env)
    shown = [repr(teacher), teacher.identity, json.dumps(teacher.cache_identity), repr(teacher.options),
             teacher.endpoint, redact_spec(spec), json.dumps(asdict(_model_info("teacher", redact_spec(spec), teacher)))]  # fmt: skip
    if name == "openai":
        run(teacher, lambda t: t.generate(req()))  # opened: the endpoint and weights are learned
        shown += [teacher.endpoint, json.dumps(teacher.weights)]
        assert URL_SECRET in spec
    for text in shown:
        assert SECRET not in text and URL_SECRET not in text, text


def test_evaluation_names_its_backends_as_the_teachers_do(caplog, smol_path):
    from click.testing import CliRunner

    from toolkit.cli import main
    from toolkit.evaluate.models import BACKENDS as EVAL_BACKENDS
    from toolkit.evaluate.models import model_spec

    assert set(EVAL_BACKENDS) <= set(BACKENDS) and "hf" not in EVAL_BACKENDS
    caplog.set_level("DEBUG")
    assert model_spec("smollm2-135m", "hf") == model_spec("smollm2-135m", "transformers")  # lm-eval's name
    assert model_spec("smollm2-135m").args == {"pretrained": smol_path} and not caplog.records  # no warning for hf
    with raises_one_line(match=r"^unknown backend 'llamacpp'; backends: transformers, vllm, openai \(hf is transformers\)$"):
        model_spec("smollm2-135m", "llamacpp")  # type: ignore[arg-type]
    shown = " ".join(CliRunner().invoke(main, ["eval", "--help"], terminal_width=400).output.split())
    assert "[transformers|vllm|openai|hf]" in shown and "(hf, lm-eval's name for it, is taken too)" in shown
