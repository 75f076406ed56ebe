"""The call cache and the build's session: every finished sample stored once, keyed by everything
that shapes it; a batching backend gets the waiting requests together."""

from __future__ import annotations

import asyncio
import threading
import time

from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams
from toolkit.teachers.cache import CallCache, call_key, call_keys
from toolkit.teachers.session import Session

from .fakes import FakeTeacher


def _req(q: str, n: int = 2, **params) -> Request:
    return Request(({"role": "user", "content": q},), n=n, params=SamplingParams(**params))


def _teacher() -> FakeTeacher:
    return FakeTeacher(lambda r, j: f"{r.messages[0]['content']} #{len(r.messages)}-{j}")


def _ask(session: Session, *requests: Request) -> list:
    async def go():
        try:
            return await session.gather(*requests)
        finally:
            await session.aclose()

    try:
        return asyncio.run(go())
    finally:
        session.cache.flush()  # as a build's end does: everything handed to the writer is committed


def test_second_run_is_served_from_disk(tmp_path):
    fake = _teacher()
    first = _ask(Session(fake, CallCache(tmp_path / "c.sqlite")), _req("a"), _req("b"))
    assert fake.samples_drawn == 4 and [c.text for c in first[1]] == ["b #1-0", "b #1-1"]
    again = Session(fake, CallCache(tmp_path / "c.sqlite"))  # a new process would reopen it
    assert _ask(again, _req("a"), _req("b")) == first
    assert fake.samples_drawn == 4 and again.usage.samples_cached == 4 and again.usage.calls == 0


def test_waiting_requests_reach_a_batching_backend_as_one_batch(tmp_path):
    batches = []

    class Recording(FakeTeacher):
        def generate_batch(self, requests, on_result=None):
            batches.append(len(requests))
            return super().generate_batch(requests, on_result)

    _ask(Session(Recording(lambda r, j: "x"), CallCache(tmp_path / "c.sqlite")), *[_req(str(i)) for i in range(5)])
    assert batches == [5]


def test_more_samples_only_draws_the_new_ones(tmp_path):
    fake = _teacher()
    cache = CallCache(tmp_path / "c.sqlite")
    _ask(Session(fake, cache), _req("a", n=2))
    session = Session(fake, cache)
    out = _ask(session, _req("a", n=5))
    assert [c.text for c in out[0]] == [f"a #1-{j}" for j in range(5)]  # sample j is draw j, cached or not
    assert [r.n for r in fake.calls] == [2, 3]
    assert [r.first_sample for r in fake.calls] == [0, 2]  # new samples are seeded past the cached ones
    assert session.usage.samples_cached == 2 and session.usage.samples_generated == 3


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


def test_failures_are_not_cached_and_retried(tmp_path):
    flaky = FakeTeacher(lambda r, j: CallFailure("HTTP 503") if r.messages[0]["content"] == "b" else "ok")
    cache = CallCache(tmp_path / "c.sqlite")
    session = Session(flaky, cache)
    out = _ask(session, _req("a"), _req("b"))
    assert out[1] == CallFailure("HTTP 503") and session.usage.failed_calls == 1
    healed = FakeTeacher(lambda r, j: "fixed")
    retry = _ask(Session(healed, cache), _req("a"), _req("b"))
    # same backend identity, so "a" comes from the cache and only "b" is asked again
    assert [c.text for c in retry[0]] == ["ok", "ok"] and [c.text for c in retry[1]] == ["fixed", "fixed"]
    assert len(healed.calls) == 1


def test_a_backend_error_reaches_every_waiting_request(tmp_path):
    from toolkit.errors import UserError

    class Broken(FakeTeacher):
        def generate_batch(self, requests, on_result=None):
            raise UserError("cannot load the model")

    session = Session(Broken(lambda r, j: "x"), CallCache(tmp_path / "c.sqlite"))

    async def go():
        return await asyncio.gather(session.generate(_req("a")), session.generate(_req("b")), return_exceptions=True)

    assert [str(e) for e in asyncio.run(go())] == ["cannot load the model"] * 2


def test_an_empty_completion_is_a_failure_and_never_cached(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    blank = FakeTeacher(lambda r, j: "   " if j == 1 else f"ok {j}")
    session = Session(blank, cache)
    [out] = _ask(session, _req("a", n=3))
    assert isinstance(out, CallFailure) and "sample 1: empty completion" in out.error
    assert len(cache) == 2 and session.usage.failed_calls == 1  # samples 0 and 2 kept, the blank one not
    healed = FakeTeacher(lambda r, j: f"ok {j}")
    [again] = _ask(Session(healed, cache), _req("a", n=3))
    assert [c.text for c in again] == ["ok 0", "ok 1", "ok 2"]
    assert [(r.n, r.first_sample) for r in healed.calls] == [(1, 1)]  # only the missing sample, seeded as sample 1


def test_missing_samples_are_drawn_as_runs_seeded_at_their_index(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    fake = _teacher()
    _ask(Session(fake, cache), _req("a", n=5))
    with cache._db:
        for j in (1, 3, 4):  # as if a killed build had kept samples 0 and 2 only
            cache._db.execute("DELETE FROM samples WHERE key=?", (call_key(fake, _req("a", n=5), j),))
    again = _teacher()
    [out] = _ask(Session(again, cache), _req("a", n=5))
    assert [c.text for c in out] == [f"a #1-{j}" for j in range(5)]  # the same draws as an uninterrupted run
    assert sorted((r.first_sample, r.n) for r in again.calls) == [(1, 1), (3, 2)]


class _Streaming(FakeTeacher):
    """A native async backend that reports sample 0 and then fails the rest, like a server whose
    single-sample calls finish one by one and the last of which fails."""

    async def generate(self, request, on_sample=None):
        self.calls.append(request)
        on_sample(0, Completion(f"first of {request.first_sample}", "stop", 1, 1))
        return CallFailure("HTTP 500 for the others")


def test_a_sample_reported_early_is_cached_though_its_request_fails(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    [out] = _ask(Session(_Streaming(lambda r, j: "x"), cache), _req("a", n=3))
    assert isinstance(out, CallFailure) and len(cache) == 1
    healed = _teacher()
    [again] = _ask(Session(healed, cache), _req("a", n=3))
    assert again[0].text == "first of 0" and [(r.first_sample, r.n) for r in healed.calls] == [(1, 2)]


# The keys of the calls already in users' caches, pinned as digests: each is the sha256 of the sorted JSON
# of the call, e.g. for sample 0 (check with `printf '%s' TEXT | sha256sum`):
# {"backend": "fake", "messages": [{"content": "a", "role": "user"}], "model": "fake-model", "params":
# {"max_new_tokens": 512, "seed": 0, "temperature": 0.7, "top_p": 0.95}, "revision": "r1", "sample_idx": 0}
KEY_A0 = "63e948e7661f890efa725a5d85b07be824eed7f2e122eb21745b597cb1626d35"
KEY_A12 = "6a7426393f4ea156cda29a0f5736781d536823382f148f7074bacaad6685e8e3"  # "sample_idx": 12
# the same with "endpoint": "http://127.0.0.1:8000/v1" after "backend"
KEY_A0_SERVED = "14637039f8419081c9bd842ac57cd4151b5402d7c3d39b80ab562e12e909044d"


def test_the_endpoint_is_part_of_the_key_only_where_a_backend_has_one():
    fake = _teacher()
    assert call_key(fake, _req("a"), 0) == KEY_A0  # the caches of every backend without one stay valid
    assert call_keys(fake, _req("a"), [0, 12]) == [KEY_A0, KEY_A12]
    served = _teacher()
    served.endpoint = "http://127.0.0.1:8000/v1"
    assert call_key(served, _req("a"), 0) == KEY_A0_SERVED
    elsewhere = _teacher()
    elsewhere.endpoint = "http://127.0.0.1:8001/v1"
    assert len({call_key(t, _req("a"), 0) for t in (fake, served, elsewhere)}) == 3


class _Stoppable(FakeTeacher):
    """A batching backend whose batch runs until it is cancelled (a long local generation)."""

    def __init__(self, answer) -> None:
        super().__init__(answer)
        self.stop = threading.Event()

    def generate_batch(self, requests, on_result=None):
        self.stop.wait(60)
        return super().generate_batch(requests, on_result)

    def cancel_batch(self) -> None:
        self.stop.set()


def test_an_interrupted_build_stops_the_batch_in_its_worker_thread(tmp_path):
    """Ctrl-C cancels the build's tasks; the batch in the worker thread must stop too, or the
    process waits for it (minutes on a CPU) before it can exit."""
    slow = _Stoppable(lambda r, j: "x")
    session = Session(slow, CallCache(tmp_path / "c.sqlite"))

    async def interrupted():
        task = asyncio.ensure_future(session.generate(_req("a")))
        await asyncio.sleep(0.2)
        task.cancel()  # what asyncio.run does to the build on Ctrl-C, then to what is left

    start = time.monotonic()
    asyncio.run(interrupted())
    assert slow.stop.is_set() and time.monotonic() - start < 10


def test_a_sample_is_readable_at_once_and_committed_by_the_writer(tmp_path):
    from toolkit.teachers.base import Completion

    cache = CallCache(tmp_path / "c.sqlite")
    cache.put_many([("k1", Completion("one", "stop", 1, 1))])
    assert cache.get("k1") == Completion("one", "stop", 1, 1)  # from memory, before any commit
    cache.flush()
    other = CallCache(tmp_path / "c.sqlite")  # another process's view: only what is committed
    assert other.get_many(["k1", "k2"]) == [Completion("one", "stop", 1, 1), None]
    cache.close()
    other.close()


def test_a_sole_writer_cache_answers_misses_without_reading_and_still_finds_what_it_committed(tmp_path):
    # a shard's cache: empty when opened, so a key it did not commit is a miss without a read (no
    # wait on its writer's commit); what it committed, and what a resumed shard's file held, is found
    path = tmp_path / "shard.sqlite"
    cache = CallCache(path, shared_fs=True, sole_writer=True)
    cache.put_many([("k1", Completion("one", "stop", 1, 1))])
    cache.flush()
    assert cache._committed == {"k1"} and not cache._pending
    assert cache.get_many(["k1", "k2"]) == [Completion("one", "stop", 1, 1), None]
    cache.close()
    other = CallCache(path)  # another writer adds a row: a sole-writer cache opened on it now reads
    other.put_many([("k2", Completion("two", "stop", 1, 1))])
    other.close()
    resumed = CallCache(path, shared_fs=True, sole_writer=True)
    assert resumed._committed is None
    assert resumed.get_many(["k1", "k2", "k3"]) == [Completion("one", "stop", 1, 1), Completion("two", "stop", 1, 1), None]
    resumed.close()


def test_a_killed_process_keeps_what_the_writer_committed(tmp_path):
    import subprocess
    import sys

    code = (
        "import os, sys; from toolkit.teachers.cache import CallCache; from toolkit.teachers.base import Completion\n"
        f"c = CallCache({str(tmp_path / 'c.sqlite')!r})\n"
        "c.put_many([(f'k{i}', Completion(str(i), 'stop', 1, 1)) for i in range(100)]); c.flush()\n"
        "os._exit(9)  # no close, no cleanup: as SIGKILL leaves it\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    cache = CallCache(tmp_path / "c.sqlite")
    assert len(cache) == 100 and cache.get("k42").text == "42"
    cache.close()
