"""The call cache: every finished sample stored once, keyed by everything that shapes it."""

from __future__ import annotations

from toolkit.teachers.base import CallFailure, Request, SamplingParams
from toolkit.teachers.cache import CachedTeacher, CallCache, call_key

from .fakes import FakeTeacher


def _req(q: str, n: int = 2, **params) -> Request:
    return Request(({"role": "user", "content": q},), n=n, params=SamplingParams(**params))


def _teacher() -> FakeTeacher:
    return FakeTeacher(lambda r, j: f"{r.messages[0]['content']} #{len(r.messages)}-{j}")


def test_second_run_is_served_from_disk(tmp_path):
    fake = _teacher()
    first = CachedTeacher(fake, CallCache(tmp_path / "c.sqlite")).generate([_req("a"), _req("b")])
    assert fake.samples_drawn == 4
    again = CachedTeacher(fake, CallCache(tmp_path / "c.sqlite"))  # a new process would reopen it
    assert again.generate([_req("a"), _req("b")]) == first
    assert fake.samples_drawn == 4 and again.usage.samples_cached == 4 and again.usage.calls == 0


def test_more_samples_only_draws_the_new_ones(tmp_path):
    fake = _teacher()
    cache = CallCache(tmp_path / "c.sqlite")
    CachedTeacher(fake, cache).generate([_req("a", n=2)])
    teacher = CachedTeacher(fake, cache)
    out = teacher.generate([_req("a", n=5)])
    assert len(out[0]) == 5
    assert [r.n for r in fake.calls] == [2, 3]
    assert [r.first_sample for r in fake.calls] == [0, 2]  # new samples are seeded past the cached ones
    assert teacher.usage.samples_cached == 2 and teacher.usage.samples_generated == 3


def test_key_changes_with_params_model_and_revision():
    fake = _teacher()
    base = call_key(fake, _req("a"), 0)
    assert call_key(fake, _req("a"), 1) != base
    assert call_key(fake, _req("a", temperature=0.1), 0) != base
    assert call_key(fake, _req("b"), 0) != base
    other = _teacher()
    other.revision = "r2"
    assert call_key(other, _req("a"), 0) != base
    assert call_key(_teacher(), _req("a"), 0) == base


def test_failures_are_recorded_not_cached_and_retried(tmp_path):
    flaky = FakeTeacher(lambda r, j: CallFailure("HTTP 503") if r.messages[0]["content"] == "b" else "ok")
    cache = CallCache(tmp_path / "c.sqlite")
    teacher = CachedTeacher(flaky, cache)
    out = teacher.generate([_req("a"), _req("b")])
    assert isinstance(out[1], CallFailure) and teacher.usage.failed_calls == 1
    assert teacher.usage.errors == ["HTTP 503"]
    healed = FakeTeacher(lambda r, j: "fixed")
    retry = CachedTeacher(healed, cache).generate([_req("a"), _req("b")])
    # same backend identity, so "a" comes from the cache and only "b" is asked again
    assert [c.text for c in retry[1]] == ["fixed", "fixed"] and len(healed.calls) == 1


def test_on_result_fires_for_cached_and_new(tmp_path):
    fake = _teacher()
    cache = CallCache(tmp_path / "c.sqlite")
    CachedTeacher(fake, cache).generate([_req("a")])
    seen = []
    CachedTeacher(fake, cache).generate([_req("a"), _req("b")], on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == [0, 1]
