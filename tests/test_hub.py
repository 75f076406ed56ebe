"""Publishing: the local registry (atomic, also when killed), the Hub through the real
huggingface_hub / datasets clients against tests/fake_hub.py, one name resolver, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from huggingface_hub import DatasetCard

from tests.assertions import assert_one_line, raises_one_line
from tests.fake_hub import FakeHub
from tests.fixtures.runs.builds import built_rows, make_run
from toolkit import api, hub
from toolkit.cli import main
from toolkit.errors import UserError
from toolkit.hub import registry
from toolkit.rundir import MANIFEST, data_file

ROOT = Path(__file__).parents[1]
TOKEN = "hf_meSecretToken0123456789"
NAME = "me/smol-arith-cot"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def run1(tmp_path):
    return make_run(tmp_path / "run1", version=1)


@pytest.fixture
def run2(tmp_path):
    return make_run(tmp_path / "run2", version=2)


def _rows(folder: Path) -> list[dict]:
    return pq.read_table(data_file(folder)).to_pylist()


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode() + p.read_bytes())
    return h.hexdigest()


# -- the local registry ------------------------------------------------------------------------
def test_push_then_load_by_name_gives_the_same_rows(run1, home):
    import datasets

    result = api.push(run1, NAME)
    assert result.changed and result.target == "local" and result.rows == 5
    assert hub.load_dataset(NAME).to_list() == built_rows(run1)
    # laid out like a Hub repo: plain datasets.load_dataset on the registry folder works
    folder = home / "datasets" / NAME
    assert datasets.load_dataset(str(folder), split="train").to_list() == built_rows(run1)
    assert {p.name for p in folder.iterdir()} == {"README.md", "manifest.json", "data"}
    card = DatasetCard((folder / "README.md").read_text())
    assert card.data.pretty_name.startswith("Smol Arith Cot: ") and f"dataset_name={NAME}" in card.text
    found = hub.resolve_dataset(NAME)
    assert found.local and found.revision is None
    assert found.fingerprint == hub.resolve_dataset(str(run1)).fingerprint  # same data files, same hash
    assert [e.name for e in hub.list_local()] == [NAME]


def test_a_real_cot_build_pushes_and_loads_by_name(tmp_path):
    """build-dataset (fake teacher, file source) -> card written by the build -> push -> load."""
    from tests.fakes import FakeTeacher, build

    data = tmp_path / "sums.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"What is {i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(4))
    )
    teacher = FakeTeacher(
        lambda req, j: f"Adding one gives the next whole number.\nThe answer is {int(req.messages[-1]['content'].split()[3]) + 1 + j}."
    )
    build("cot", tmp_path / "run", teachers={"teacher": teacher}, source=f"file:{data}", samples=2)
    card = DatasetCard((tmp_path / "run" / "README.md").read_text())
    assert card.data.source_datasets == ["original"] and "local file sums.jsonl" in card.data.pretty_name
    assert "| 4 | 8 | 4 | 50.0% | 4 | 4 | 0 | 0 | 0 | 4 |" in card.text
    api.push(tmp_path / "run", "me/sums")
    rows = hub.load_dataset("me/sums").to_list()
    assert rows == _rows(tmp_path / "run") and len(rows) == 4
    assert all(r["completion"][0]["content"].endswith(f"The answer is {r['gold']}.") for r in rows)


def test_repush_is_a_noop_and_a_new_build_replaces_the_old(run1, run2):
    first = api.push(run1, NAME)
    again = api.push(run1, NAME)
    assert not again.changed and again.version == first.version
    reader = hub.resolve_dataset(NAME)  # a reader that resolved v1 just before the next push
    second = api.push(run2, NAME)
    assert second.changed and hub.load_dataset(NAME).to_list() == built_rows(run2)
    assert hub.resolve_dataset(NAME).fingerprint != reader.fingerprint
    assert _rows(Path(reader.path)) == built_rows(run1)  # the replaced version outlives one more push
    api.push(run1, NAME)
    assert not Path(reader.path).exists()


def test_killed_push_leaves_the_previous_version_readable(run1, run2, home):
    api.push(run1, NAME)
    env = {**os.environ, "HUBTOOL_HOME": str(home), registry.PAUSE_ENV: "30"}
    proc = subprocess.Popen([sys.executable, "-m", "toolkit", "push", str(run2), NAME], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    versions = home / "datasets" / ".versions" / NAME
    deadline = time.monotonic() + 30
    while not any(versions.glob(".tmp-*/README.md")):  # the push has written its first file
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert hub.load_dataset(NAME).to_list() == built_rows(run1)
    assert any(versions.glob(".tmp-*"))  # the half-written version, never visible to readers
    api.push(run2, NAME)  # the next push cleans up and goes through
    assert hub.load_dataset(NAME).to_list() == built_rows(run2)
    assert not any(versions.glob(".tmp-*"))


def test_push_refuses_what_is_not_a_finished_build(tmp_path, run1):
    with raises_one_line(match="not a hubtool build"):
        api.push(tmp_path, NAME)
    manifest = json.loads((run1 / MANIFEST).read_text())
    (run1 / MANIFEST).write_text(json.dumps({**manifest, "status": "running"}))
    with raises_one_line(match="unfinished build .* re-running: hubtool build-dataset cot"):
        api.push(run1, NAME)
    with raises_one_line(match="not a directory"):
        api.push(tmp_path / "nope", NAME)
    assert hub.list_local() == []


@pytest.mark.parametrize("name", ["noslash", "a/b/c", "me/-x", "me/x-", "me/a--b", "me/a..b", "me/x.git", "me/x y",
                                  "/abs", "me/" + "x" * 97, "me/é"])  # fmt: skip
def test_bad_repo_ids_are_refused(name, run1):
    with raises_one_line(match="not a valid dataset name"):
        api.push(run1, name)


@pytest.mark.parametrize("name", ["me/x", "Org-1/data.set_v2", "a/" + "b" * 96])
def test_good_repo_ids_pass(name):
    assert hub.validate_repo_id(name) == name


def test_resolve_order_directory_then_registry_then_hub(run1, run2, home, tmp_path, monkeypatch):
    api.push(run2, NAME)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "me").mkdir()
    (tmp_path / "me" / "smol-arith-cot").symlink_to(run1)  # a folder that happens to spell the name
    assert hub.load_dataset(NAME).to_list() == built_rows(run1)
    monkeypatch.chdir(home)
    assert hub.load_dataset(NAME).to_list() == built_rows(run2)
    with raises_one_line(match="local directory, which has no revisions"):
        hub.resolve_dataset(str(run1), revision="main")
    with pytest.raises(UserError) as e:
        hub.resolve_dataset("me/unknown")
    message = str(e.value)
    assert str(home / "datasets") in message and "the Hub is off" in message and "hubtool ls" in message
    with raises_one_line(match="has no revisions|the Hub is off"):
        hub.resolve_dataset(NAME, revision="v1")  # a revision means the Hub, which is off here
    with raises_one_line(match="not a directory, and not an ORG/NAME"):
        hub.resolve_dataset("no such thing")
    with raises_one_line(match="no split 'test'"):
        hub.load_dataset(NAME, split="test")
    (tmp_path / "empty").mkdir()
    with raises_one_line(match="holds no dataset"):
        hub.load_dataset(str(tmp_path / "empty"))


def test_a_folder_copied_into_the_registry_is_read_but_not_replaced(run1, home):
    import shutil

    shutil.copytree(run1, home / "datasets" / "me" / "manual")
    assert hub.load_dataset("me/manual").to_list() == built_rows(run1)
    with raises_one_line(match="folder hubtool did not create"):
        api.push(run1, "me/manual")
    assert not (home / "datasets" / ".versions" / "me" / "manual").exists()


def test_local_push_refuses_hub_only_options(run1):
    with raises_one_line(match="apply to --hub"):
        api.push(run1, NAME, revision="dev")
    with raises_one_line(match="not a license id"):
        api.push(run1, NAME, license="Apache 2")


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_push_ls_show(run1, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["ls"])
    assert result.exit_code == 0 and "empty" in result.output
    result = runner.invoke(main, ["push", str(run1), NAME, "--license", "mit"])
    assert result.exit_code == 0 and "pushed me/smol-arith-cot to the local registry: 5 rows" in result.output
    result = runner.invoke(main, ["push", str(run1), NAME, "--license", "mit"])
    assert "unchanged" in result.output
    result = runner.invoke(main, ["ls"])
    assert NAME in result.output and " 5 " in result.output and "cot" in result.output
    result = runner.invoke(main, ["show", NAME, "-n", "2"])
    assert result.exit_code == 0, result.output
    assert "license  mit" in result.output and "gym:chain_sum" in result.output
    assert "the first 2:" in result.output and "Let's work out 4 - 1 - 7 step by step" in result.output
    for args, message in [
        (["push", str(tmp_path), NAME], "not a hubtool build"),
        (["push", str(run1), "bad--name/x"], "not a valid dataset name"),
        (["show", "me/nothing"], "hubtool ls"),
        (["push", str(run1), NAME, "--hub"], "HF_HUB_OFFLINE"),
    ]:
        result = runner.invoke(main, args)
        assert_one_line(result, message)


# -- the Hub, through the real clients against the stand-in --------------------------------------
# huggingface_hub and datasets read HF_ENDPOINT / HF_HUB_OFFLINE at import, and this process is
# offline: a worker subprocess runs the commands (CLI through CliRunner, loads) with the Hub on.
WORKER = """
import json, os, sys
from click.testing import CliRunner
from toolkit.cli import main
for line in sys.stdin:
    cmd = json.loads(line)
    os.environ.update(cmd["env"])
    for key in cmd["unset"]:
        os.environ.pop(key, None)
    if cmd["op"] == "cli":
        r = CliRunner().invoke(main, cmd["args"])
        bug = None if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
        out = {"code": r.exit_code, "output": r.output, "bug": bug}
    else:
        import datasets
        from toolkit.hub import load_dataset, resolve_dataset
        name, revision = cmd["args"]
        out = {"plain": datasets.load_dataset(name, split="train", revision=revision).to_list(),
               "ours": load_dataset(name, revision=revision).to_list(),
               "fingerprint": resolve_dataset(name, revision).fingerprint}
    print("@@" + json.dumps(out), flush=True)
"""


class Worker:
    def __init__(self, env: dict) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], cwd=ROOT, env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip

    def _ask(self, op: str, args: list, env: dict, unset: tuple) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, "args": args, "env": env, "unset": list(unset)}) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        raise AssertionError("the worker died; see its stderr above")

    def hubtool(self, *args: str, token: str | None = TOKEN, home: Path | None = None) -> dict:
        env = {"HF_TOKEN": token} if token else {}
        env.update({"HUBTOOL_HOME": str(home)} if home else {})
        out = self._ask("cli", list(args), env, () if token else ("HF_TOKEN",))
        assert out["bug"] is None, out
        return out

    def load(self, name: str, revision: str | None = None) -> dict:
        return self._ask("load", [name, revision], {"HF_TOKEN": TOKEN}, ())


def _hub_env(endpoint: str, tmp: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_TOKEN_PATH", "TRANSFORMERS_OFFLINE")
    }
    env.update(HF_ENDPOINT=endpoint, HF_HUB_OFFLINE="0", HF_DATASETS_OFFLINE="0",
               HF_HOME=str(tmp / "hf"), HF_DATASETS_CACHE=str(tmp / "hf-datasets"),
               HUBTOOL_HOME=str(tmp / "hub-home"), HF_HUB_DISABLE_PROGRESS_BARS="1")  # fmt: skip
    return env


def _rel(run: Path) -> str:
    return data_file(run).relative_to(run).as_posix()


@pytest.fixture(scope="module")
def fake_hub():
    with FakeHub({TOKEN: "me"}) as fake:
        yield fake


@pytest.fixture(scope="module")
def worker(fake_hub, tmp_path_factory):
    w = Worker(_hub_env(fake_hub.endpoint, tmp_path_factory.mktemp("hub-client")))
    yield w
    w.proc.stdin.close()
    w.proc.wait(timeout=30)


def test_hub_round_trip_one_commit_noop_repush_and_foreign_metadata(fake_hub, worker, run1, run2):
    out = worker.hubtool("push", str(run1), NAME, "--hub")
    assert out["code"] == 0, out
    assert "pushed me/smol-arith-cot to the Hub: 5 rows" in out["output"]
    repo = fake_hub.repos[NAME]
    head = repo.at("main")
    assert len(repo.commits) == 2  # the repo's initial commit + ours: data, card, manifest at once
    assert set(head.files) == {".gitattributes", "README.md", "manifest.json", _rel(run1)}
    assert head.message == "hubtool: cot build, teacher fake:right@hubtool-0.1.0, 5 rows"
    assert head.files["manifest.json"] == (run1 / MANIFEST).read_bytes()
    card = DatasetCard(head.files["README.md"].decode())
    assert card.data.license == "apache-2.0" and "distillation" in card.data.tags
    assert f'load_dataset("{NAME}"' in card.text and f"dataset_name={NAME}" in card.text
    loaded = worker.load(NAME)
    assert loaded["plain"] == loaded["ours"] == built_rows(run1)
    assert loaded["fingerprint"] == head.sha

    out = worker.hubtool("push", str(run1), NAME, "--hub")  # the same build again: no new commit
    assert out["code"] == 0 and "unchanged" in out["output"] and len(repo.commits) == 2

    foreign = (
        head.files["README.md"]
        .decode()
        .replace("---\n", "---\nannotations_creators:\n- machine-generated\n", 1)
    )
    foreign = foreign.replace("tags:\n", "tags:\n- my-own-tag\n").replace(
        "license: apache-2.0", "license: mit"
    )
    repo.commit("main", {**head.files, "README.md": foreign.encode()}, "edited on the Hub")
    out = worker.hubtool("push", str(run2), NAME, "--hub")
    assert out["code"] == 0, out
    meta = DatasetCard(fake_hub.file(NAME, "README.md").decode()).data.to_dict()
    assert meta["annotations_creators"] == ["machine-generated"] and "my-own-tag" in meta["tags"]
    assert meta["license"] == "apache-2.0"  # a key hubtool owns is hubtool's again
    assert worker.load(NAME)["ours"] == built_rows(run2)
    data = {f for f in fake_hub.repos[NAME].at("main").files if f.startswith("data/")}
    assert data == {_rel(run2)}  # the first build's data file went with the first build
    assert TOKEN not in out["output"]
    assert all(TOKEN.encode() not in data for data in repo.at("main").files.values())


def test_hub_branch_and_private_repo(fake_hub, worker, run1):
    out = worker.hubtool("push", str(run1), "me/priv", "--hub", "--private", "--revision", "dev")
    assert out["code"] == 0 and "(branch dev)" in out["output"], out
    repo = fake_hub.repos["me/priv"]
    assert repo.private and set(repo.refs) == {"main", "dev"}
    assert "README.md" not in repo.at("main").files and _rel(run1) in repo.at("dev").files
    assert worker.load("me/priv", "dev")["ours"] == built_rows(run1)
    out = worker.hubtool("show", "me/priv", token=None)  # anonymous: a private repo is invisible
    assert out["code"] == 1 and "not on the Hub (or your token cannot see it)" in out["output"], out


@pytest.mark.parametrize(
    ("token", "repo", "fault", "message"),
    [
        (None, "me/a", None, "no Hugging Face token; set HF_TOKEN or run `hf auth login`"),
        ("hf_wrong", "me/b", None, "the Hub rejected the token (401 Unauthorized)"),
        (TOKEN, "other/data", None, "may not write to other/data (403 Forbidden)"),
        (TOKEN, "me/c", "POST /api/repos/create", "rate-limiting requests (429 Too Many Requests)"),
    ],
)
def test_hub_errors_are_one_line_and_lose_nothing(fake_hub, worker, run1, token, repo, fault, message):
    before = _digest(run1)
    if fault:
        fake_hub.fail_next(fault, 429)
    out = worker.hubtool("push", str(run1), repo, "--hub", token=token)
    assert out["code"] == 1 and message in out["output"], out
    assert len(out["output"].strip().splitlines()) == 1 and TOKEN not in out["output"]
    assert repo not in fake_hub.repos
    assert _digest(run1) == before


def test_unreachable_hub_is_one_line(run1, tmp_path):
    env = _hub_env("http://127.0.0.1:9", tmp_path) | {"HF_TOKEN": TOKEN}  # nothing listens on port 9
    out = subprocess.run([sys.executable, "-m", "toolkit", "push", str(run1), NAME, "--hub"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1 and out.stderr.startswith(
        "Error: pushing to me/smol-arith-cot: cannot reach the Hub"
    )
    assert len(out.stderr.strip().splitlines()) == 1 and TOKEN not in out.stdout + out.stderr


def test_a_rebuilt_folder_of_the_same_name_loads_its_new_rows(tmp_path):
    """datasets caches local folders by name; the resolver must not hand back stale rows."""
    a, b = tmp_path / "a" / "cot", tmp_path / "b" / "cot"
    make_run(a, version=1)
    make_run(b, version=2)
    first = hub.load_dataset(str(a)).to_list()
    assert hub.load_dataset(str(b)).to_list() == built_rows(b) != first
    shutil.rmtree(a)  # rebuild in place
    make_run(a, version=2)
    assert hub.load_dataset(str(a)).to_list() == built_rows(b)


# -- reliability (issue 11) --------------------------------------------------------------------------
def test_a_push_is_refused_while_a_build_writes_the_run_directory(run1):
    from toolkit.rundir import RunDir

    holder = RunDir(run1)
    holder.claim()  # a build of run1 in progress
    try:
        with raises_one_line(match="being written by a build right now"):
            api.push(run1, NAME)
    finally:
        holder.release()
    assert api.push(run1, NAME).changed and run1.is_dir()


def test_a_credential_kept_by_an_older_manifest_is_never_published(fake_hub, worker, run1, home):
    manifest = json.loads((run1 / MANIFEST).read_text())
    manifest["command"] += " --teacher openai:m@http://u:OldSecret-123456@10.0.0.1/v1"
    (run1 / MANIFEST).write_text(json.dumps(manifest))
    assert worker.hubtool("push", str(run1), "me/old", "--hub")["code"] == 0
    api.push(run1, "me/old")
    published = [*fake_hub.repos["me/old"].at("main").files.values()]
    published += [p.read_bytes() for p in (home / "datasets" / "me" / "old").resolve().rglob("*") if p.is_file()]
    assert not [data for data in published if b"OldSecret" in data]
    assert any(b"http://10.0.0.1/v1" in data for data in published)  # the rest of the command is kept
