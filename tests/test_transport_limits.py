"""What a hostile or odd server, or the user's own machine, can make the openai transport do
(issue 21, items 20-24): a whole-call deadline, a cap on the decoded answer, usage numbers that
cannot break the cache, no credentials from ~/.netrc, and a broken URL as a one-line error."""

from __future__ import annotations

import gc
import json
import sqlite3
import time
import tracemalloc

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.rundir import FAILED, data_file, read_manifest
from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams
from toolkit.teachers.openai_backend import OpenAITeacher

from .fault_server import FaultServer, cot_args, write_sums

SUM = ({"role": "user", "content": "What is 2 + 3?"},)


def req(max_new_tokens: int = 64) -> Request:
    return Request(SUM, 1, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, seed=0))


def teacher(url: str, **options) -> OpenAITeacher:
    return OpenAITeacher.from_spec(f"fault-model@{url}", backoff=0.01, **options)


# -- item 20: --timeout bounds the whole call ---------------------------------------------------


def test_a_server_that_trickles_bytes_is_cut_off_at_the_timeout():
    # One byte every 0.3 s: each read waits less than the 1.5 s timeout, the body would take minutes.
    with FaultServer("trickle", trickle_every=0.3) as server:
        start = time.monotonic()
        [result] = teacher(server.url, timeout=1.5, max_retries=1).generate_many([req()])
        elapsed = time.monotonic() - start
    assert isinstance(result, CallFailure)
    assert result.error == "no answer within 1.5 s (--timeout) (after 1 retries)"
    assert elapsed < 6  # two tries of 1.5 s, a probe, slack; the old transport waited ~80 s per try


def test_a_build_against_a_trickling_server_ends(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 1)
    with FaultServer("trickle", trickle_every=0.2) as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite", samples=1,
                        more=["--timeout", "1", "--max-retries", "0"])  # fmt: skip
        start = time.monotonic()
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        assert time.monotonic() - start < 10
    failed = [json.loads(line) for line in (tmp_path / "run" / FAILED).read_text().splitlines()]
    assert [f["error"] for f in failed] == ["no answer within 1 s (--timeout) (after 0 retries)"]


# -- item 24: the decoded answer is capped -------------------------------------------------------


def test_a_gzip_bomb_fails_the_call_without_filling_memory():
    with FaultServer("bomb") as server:
        gc.collect()
        tracemalloc.start()
        try:
            [result] = teacher(server.url, timeout=30, max_retries=2).generate_many([req(max_new_tokens=64)])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        calls = server.answered()
    # 64 tokens: 1 MiB + 64 KiB may come back. The old transport read all 200 MB (and succeeded).
    assert isinstance(result, CallFailure)
    assert result.error == "the answer is over 1.1 MiB decoded (the limit: 1 MiB + 1 KiB per token asked for, max_tokens x n)"
    assert calls == 1  # not retried: the same call would send the same bomb
    assert peak < 40 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_an_answer_within_the_cap_is_read_whole():
    from toolkit.teachers.openai_wire import answer_limit

    assert answer_limit(512, 4) == (1 << 20) + 512 * 4 * 1024
    assert answer_limit(None, None) == (1 << 20) + 4096 * 1024  # a body without max_tokens: 4096 assumed
    with FaultServer("ok") as server:
        [result] = teacher(server.url).generate_many([req(max_new_tokens=1)])
    assert isinstance(result, list) and result[0].text.endswith("The answer is 5.")


def test_an_oversized_models_list_is_skipped_not_fatal():
    # /v1/models past its 8 MiB cap (a proxy's endless listing): the probe learns nothing, calls go on
    with FaultServer("ok", models=[{"id": f"model-{i:06d}-" + "x" * 80, "object": "model"} for i in range(100_000)]) as server:
        t = teacher(server.url)
        [result] = t.generate_many([req()])
    assert isinstance(result, list) and result[0].text.endswith("The answer is 5.") and t.weights == {}


# -- item 21: a malformed usage is unknown, never fatal -------------------------------------------


def test_an_absurd_usage_count_is_recorded_as_unknown(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 2)
    with FaultServer("huge_usage") as server:
        args = cot_args(server.url, tmp_path / "sums.jsonl", tmp_path / "run", tmp_path / "c.sqlite", samples=1)
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output  # was: OverflowError in the cache writer
    manifest = read_manifest(tmp_path / "run")
    assert manifest.counts["kept"] == 2 and manifest.usage["teacher"]["completion_tokens"] == 0
    assert manifest.usage["teacher"]["prompt_tokens"] == 20  # the sane count is kept
    assert pq.read_table(data_file(tmp_path / "run")).column("num_tokens").to_pylist() == [0, 0]
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        assert [r[0] for r in db.execute("SELECT completion_tokens FROM samples")] == [0, 0]


@pytest.mark.parametrize("value", [10**30, 1e30, -5, 2.5, "7", True, None, 2**31])
def test_implausible_token_counts_read_as_unknown(value):
    from toolkit.teachers.openai_answers import to_completions

    reply = {"choices": [{"index": 0, "message": {"content": "The answer is 5."}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": value, "completion_tokens": value}}  # fmt: skip
    assert to_completions(reply) == [Completion("The answer is 5.", "stop", 0, 0)]
    reply["usage"] = {"prompt_tokens": 12, "completion_tokens": 2**31 - 1}
    assert to_completions(reply) == [Completion("The answer is 5.", "stop", 12, 2**31 - 1)]


# -- item 22: credentials are only what the user passed -------------------------------------------


def _authorization(server: FaultServer) -> str:
    [text] = [c.text for c in server_results(server)]
    return text.split("\n")[0]


def server_results(server: FaultServer) -> list[Completion]:
    [result] = teacher(server.url).generate_many([req()])
    assert isinstance(result, list), result
    return result


@pytest.mark.parametrize("where", ["NETRC", "HOME"])
def test_a_netrc_entry_for_the_server_is_not_used(tmp_path, monkeypatch, where):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login alice password netrc-secret-pw\n")
    netrc.chmod(0o600)
    monkeypatch.setenv(where, str(netrc if where == "NETRC" else tmp_path))
    if where == "HOME":
        monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FaultServer("echo_ok") as server:
        # was: ValueError "Cannot combine AUTHORIZATION header with AUTH argument" on every call
        assert _authorization(server) == "(you sent Bearer no-key)"


def test_without_netrc_the_key_is_what_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-user-given-key-123")
    with FaultServer("echo_ok") as server:
        [result] = teacher(server.url).generate_many([req()])
    assert isinstance(result, list) and result[0].text.startswith("(you sent Bearer sk-user-given-key-123)\n")


def test_proxies_from_the_environment_still_apply(monkeypatch):
    with FaultServer("ok") as proxy:
        # An absolute-URI request for a host that does not exist reaches the "proxy", which answers it.
        monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/v1"))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        [result] = teacher("http://upstream.invalid/v1", max_retries=0).generate_many([req()])
        assert isinstance(result, list) and result[0].text.endswith("The answer is 5.")
        assert proxy.answered() == 1
    from toolkit.teachers.openai_wire import env_proxy

    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    assert env_proxy("http://upstream.invalid/v1") is None


# -- item 23: a URL Python cannot parse is a one-line error ---------------------------------------


@pytest.mark.parametrize("url", ["http://[::1/v1", "http://127.0.0.1:99999/v1"])
def test_an_unparsable_base_url_is_a_user_error(url):
    with raises_one_line(match="teacher base URL is not a valid URL") as e:
        OpenAITeacher.from_spec(f"m@{url}")
    assert "\n" not in str(e.value)


def test_an_unparsable_base_url_on_the_command_line_is_one_line(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 1)
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", f"file:{tmp_path / 'sums.jsonl'}",
                                       "--teacher", "openai:m@http://[::1/v1", "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code != 0 and not isinstance(result.exception, ValueError)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "teacher base URL is not a valid URL" in lines[0], result.output
