"""No credential in anything hubtool writes, logs or uploads (issue 11, item 1).

Credentials are planted in the teacher URL (`user:PASSWORD@host`), in the key's environment
variable, in the Hub token, and in a server that echoes the Authorization header back, both in an
error body and inside a completion. Every write path then runs as a user would run it, at `-vv`,
in a process of its own with the Hub stand-in switched on: two builds, inspect, a local push,
show, ls, two Hub pushes, and a build that cannot reach its server. Every file written and every byte printed or uploaded is
searched for each secret, and for the Basic auth header an HTTP client makes of the URL's.
"""

from __future__ import annotations

import base64

from bench.servers import free_port
from tests.fake_hub import FakeHub
from tests.test_hub import Worker, _hub_env

from .fault_server import FaultServer, write_sums

URL_PASSWORD = "UrlPassw0rd-abcdef"
ENV_KEY = "sk-EnvKey-0123456789abcdef"
HF_TOKEN = "hf_HubToken0123456789abcd"
SECRETS = [URL_PASSWORD, ENV_KEY, HF_TOKEN, base64.b64encode(f"teacher:{URL_PASSWORD}".encode()).decode()]


def _echoing(question: str) -> bool | str:
    """Problem 1's calls fail with the key in the error body; problem 2's answer repeats it."""
    return "echo" if "1 + 1" in question else "echo_ok" if "2 + 2" in question else False


def test_no_credential_in_any_file_stream_or_upload(tmp_path):
    write_sums(tmp_path / "sums.jsonl", 4)
    streams: list[str] = []
    with FaultServer("ok", faulty=_echoing) as server, FakeHub({HF_TOKEN: "me"}) as hub:
        env = _hub_env(hub.endpoint, tmp_path) | {"HUBTOOL_HOME": str(tmp_path / "home"), "MY_TEACHER_KEY": ENV_KEY}
        worker = Worker(env)  # one process for every command (as `hubtool -vv ...` each), the Hub switched on

        def hubtool(*args: str, ok: bool = True, token: str | None = None) -> None:
            out = worker._ask("cli", ["-vv", *args], {"HF_TOKEN": token} if token else {}, () if token else ("HF_TOKEN",))
            assert out["bug"] is None and (out["code"] == 0) == ok, out
            streams.append(out["output"])

        try:
            with_password = server.url.replace("http://", f"http://teacher:{URL_PASSWORD}@")
            for name, url in [("a", with_password), ("b", server.url)]:  # Basic auth from the URL; the env key as Bearer
                hubtool("build-dataset", "cot", "--source", f"file:{tmp_path / 'sums.jsonl'}",
                        "--teacher", f"openai:fault-model@{url}", "--api-key-env", "MY_TEACHER_KEY", "--samples", "1",
                        "--keep", "all", "--max-retries", "0", "--out", str(tmp_path / name),
                        "--cache", str(tmp_path / f"{name}.sqlite"))  # fmt: skip
            assert server.answered(faulted=True) == 4  # both echoes reached both builds
            hubtool("inspect", str(tmp_path / "a"))
            hubtool("push", str(tmp_path / "a"), "me/secret-a")
            hubtool("show", "me/secret-a")
            hubtool("ls")
            hubtool("push", str(tmp_path / "b"), "me/secret-b", "--hub", token=HF_TOKEN)
            hubtool("push", str(tmp_path / "a"), "me/secret-a", "--hub", token=HF_TOKEN)
            gone = f"http://teacher:{URL_PASSWORD}@127.0.0.1:{free_port()}/v1"
            hubtool("build-dataset", "cot", "--source", f"file:{tmp_path / 'sums.jsonl'}", "--teacher",
                    f"openai:fault-model@{gone}", "--out", str(tmp_path / "c"), ok=False)  # fmt: skip
        finally:
            worker.proc.stdin.close()
            worker.proc.wait(timeout=60)
        uploaded = [_readable(data) for repo in hub.repos.values() for c in repo.commits.values()
                    for data in c.files.values()]  # fmt: skip
        uploaded += [repr(header).encode() for header in hub.commit_headers]

    written = {p: _readable(p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file() and p.name != "sums.jsonl"}
    assert any(p.name == "failed.jsonl" and b"you sent Authorization" in data for p, data in written.items())
    assert any(b"(you sent" in data for data in uploaded)  # the echoing completion was published, masked
    assert "Authorization: Basic ***" in "".join(streams)  # the -vv log showed the failure, masked
    for secret in SECRETS:
        leaks = [str(p) for p, data in written.items() if secret.encode() in data]
        leaks += [f"stream {i}" for i, text in enumerate(streams) if secret in text]
        leaks += [f"upload {i}" for i, data in enumerate(uploaded) if secret.encode() in data]
        assert not leaks, f"{secret} leaked into {leaks}"


def _readable(data: bytes) -> bytes:
    """A file's bytes, and for a parquet file its rows as JSON too (its pages are compressed)."""
    if not data.startswith(b"PAR1"):
        return data
    import io
    import json

    import pyarrow.parquet as pq

    return data + json.dumps(pq.read_table(io.BytesIO(data)).to_pylist()).encode()


def test_redact_by_shape_and_by_value(monkeypatch):
    from toolkit import redact

    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890")
    monkeypatch.setattr(redact, "_known", {})  # this process's remembered secrets, restored after
    redact.remember("a-remembered-secret", "the test")
    redact.remember("short", "the test")  # too short to mask wherever it occurs
    text = ("openai:m@http://u:pw@host:8000/v1 https://host/v1?api_key=abc123&x=1 tok-1234567890 a-remembered-secret "
            "role=user temperature=0.7 short")  # fmt: skip
    assert redact.redact(text) == ("openai:m@http://host:8000/v1 https://host/v1?api_key=***&x=1 *** *** role=user "
                                   "temperature=0.7 short")  # fmt: skip
    assert redact.redact("see https://user@example.org", shapes=False) == "see https://user@example.org"  # model output
    assert redact.found_in("plain text") is None and redact.found_in("x tok-1234567890") == "$SOME_SERVICE_TOKEN"
    assert redact.redact_url("http://u:p@h:1/v1") == "http://h:1/v1"
