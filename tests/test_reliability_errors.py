"""Bad files, bad flags and broken state give one line, never a traceback (issue 11, items 7-10, 12).

Each case runs the command as a user types it (through the CLI) and checks: a non-zero exit, one
line that names the problem, no traceback, and nothing lost (a corrupt cache is left as it was).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolkit.cli import main

from .assertions import assert_one_line
from .fakes import rows

ROOT = Path(__file__).parents[1]
SMOKE_RECIPE = str(ROOT / "recipes" / "cot" / "smollm2-135m-lora-smoke.yaml")


def _hubtool(*args: str):
    return CliRunner().invoke(main, list(args))


def _unwritable(tmp_path: Path) -> Path:
    """A folder path this process cannot create files in (root ignores mode bits: use sysfs)."""
    if os.geteuid() == 0:
        return Path("/sys/hubtool-test-unwritable")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    return locked / "inside"


def _build(tmp_path: Path, out: str = "run", teacher: str = "fake:right", *more: str):
    return _hubtool("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "3", "--samples", "1",
                    "--teacher", teacher, "--out", str(tmp_path / out), "--cache", str(tmp_path / "c.sqlite"), *more)  # fmt: skip


# -- item 10 and 12: flags and files ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature", "nan"], "--temperature must be a finite number"),
        (["--temperature", "-1"], "--temperature must be a finite number >= 0"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--max-new-tokens", "0", "--teacher", "transformers:smollm2-135m"], "--max-new-tokens must be at least 1"),
        (["--teacher", "transformers:{tmp}/fake.gguf"], "is not a GGUF file"),
        (["--teacher", "transformers:{tmp}/not-a-model"], "holds neither config.json nor adapter_config.json"),
        (["--fewshot", "{tmp}/latin1.jsonl"], "cannot be read as UTF-8 text"),
        (["--source", "file:{tmp}"], "is a folder; name one .jsonl/.json/.csv/.parquet file"),
    ],
)
def test_bad_flags_and_files_are_one_line(tmp_path, flags, message):
    (tmp_path / "fake.gguf").write_bytes(b"not a gguf at all")
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("hello")
    (tmp_path / "latin1.jsonl").write_bytes('{"question": "caf\xe9", "rationale": "x"}\n'.encode("latin-1"))
    args = [a.replace("{tmp}", str(tmp_path)) for a in flags]
    result = _hubtool("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "2", *args,
                      "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    assert_one_line(result, message)
    assert not (tmp_path / "run").exists()


def test_an_unwritable_out_or_home_is_one_line(tmp_path, monkeypatch):
    place = _unwritable(tmp_path)
    assert_one_line(_build(tmp_path, str(place)), f"cannot write to --out {place}")
    monkeypatch.setenv("HUBTOOL_HOME", str(place))
    result = _hubtool("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "2", "--teacher", "fake:right",
                      "--out", str(tmp_path / "run"))  # fmt: skip
    assert_one_line(result, "cannot create the call cache folder")
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    assert _build(tmp_path).exit_code == 0
    monkeypatch.setenv("HUBTOOL_HOME", str(place))
    assert_one_line(_hubtool("push", str(tmp_path / "run"), "me/x"), "cannot write the local registry")


def test_a_registry_path_that_is_a_file_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "datasets").write_text("not a folder")
    assert _build(tmp_path).exit_code == 0
    assert_one_line(_hubtool("push", str(tmp_path / "run"), "me/x"), "is a file, not a folder")
    assert_one_line(_hubtool("ls"), "is a file, not a folder")


def test_a_corrupt_parquet_is_refused_on_push(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    assert _build(tmp_path).exit_code == 0
    data = next((tmp_path / "run" / "data").glob("*.parquet"))
    data.write_bytes(b"PAR1 this is not parquet")
    assert_one_line(_hubtool("push", str(tmp_path / "run"), "me/x"), "is not a readable parquet file")


def test_eval_and_train_bad_options_are_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_one_line(_hubtool("eval", "-m", "smollm2-135m", "--suite", "gym", "-o", str(tmp_path / "file")),
              "--output-dir")  # fmt: skip
    assert_one_line(_hubtool("eval", "-m", "smollm2-135m", "--suite", "gym", "--batch-size", "zero", "-o", str(tmp_path / "e")),
              "--batch-size must be a positive integer or 'auto', not 'zero'")  # fmt: skip
    assert_one_line(_hubtool("train", SMOKE_RECIPE, "--set", "dataset_name=me/x", "--set", "lora_target_modules=[1,2"),
              "--set lora_target_modules=[1,2: not a list")  # fmt: skip


# -- item 7: one corrupt registry entry ------------------------------------------------------------
def test_one_corrupt_registry_entry_does_not_break_the_others(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HUBTOOL_HOME", str(home))
    assert _build(tmp_path).exit_code == 0
    for name in ("good", "badparquet", "badmanifest", "gone"):
        assert _hubtool("push", str(tmp_path / "run"), f"me/{name}").exit_code == 0
    folder = (home / "datasets" / "me" / "badparquet").resolve()
    next((folder / "data").glob("*.parquet")).write_bytes(b"garbage")
    (home / "datasets" / "me" / "badmanifest").resolve().joinpath("manifest.json").write_text("{not json")
    import shutil

    shutil.rmtree((home / "datasets" / "me" / "gone").resolve())

    listing = _hubtool("ls")
    assert listing.exit_code == 0, listing.output
    lines = {line.split()[0]: line for line in listing.output.splitlines()[1:]}
    assert set(lines) == {"me/good", "me/badparquet", "me/badmanifest", "me/gone"}
    assert "BROKEN" not in lines["me/good"] and " 3 " in lines["me/good"]
    assert "BROKEN" in lines["me/badparquet"] and "not a readable parquet file" in lines["me/badparquet"]
    assert "BROKEN" in lines["me/badmanifest"] and "is corrupt" in lines["me/badmanifest"]
    assert "BROKEN" in lines["me/gone"] and "version folder is gone" in lines["me/gone"]
    assert_one_line(_hubtool("show", "me/badparquet"), "not a readable parquet file")
    assert_one_line(_hubtool("show", "me/badmanifest"), "is corrupt")
    assert _hubtool("show", "me/good").exit_code == 0


# -- item 8: a corrupt call cache ------------------------------------------------------------------
def test_a_corrupt_call_cache_names_the_file_and_is_left_as_it_was(tmp_path):
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"this is not a database " * 200)
    before = cache.read_bytes()
    result = _build(tmp_path)
    assert_one_line(result, f"the call cache {cache} is corrupt")
    assert f"mv {cache} {cache}.broken" in result.output and cache.read_bytes() == before


def test_a_cache_damaged_inside_is_one_line_too(tmp_path):
    cache = tmp_path / "c.sqlite"
    assert _hubtool("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "40", "--samples", "2",
                    "--teacher", "fake:right", "--out", str(tmp_path / "a"), "--cache", str(cache)).exit_code == 0  # fmt: skip
    with sqlite3.connect(cache) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(cache.read_bytes())
    page = 4096
    assert len(data) >= 3 * page
    data[2 * page : 3 * page] = b"\xff" * page  # a B-tree page of the samples table, overwritten
    cache.write_bytes(bytes(data))
    result = _hubtool("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "40", "--samples", "2",
                      "--teacher", "fake:right", "--out", str(tmp_path / "b"), "--cache", str(cache))  # fmt: skip
    assert_one_line(result, "is corrupt")


# -- item 9: a build that kept no rows -------------------------------------------------------------
def test_an_empty_build_is_not_pushed_and_every_reader_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBTOOL_HOME", str(tmp_path / "home"))
    assert _build(tmp_path, "empty", "fake:wrong").exit_code == 0  # --keep correct keeps none of them
    assert rows(tmp_path / "empty") == []
    empty = str(tmp_path / "empty")
    assert_one_line(_hubtool("push", empty, "me/empty"), "holds 0 rows, so there is nothing to publish")
    shown = _hubtool("show", empty)
    assert shown.exit_code == 0 and "0 rows: nothing to train on" in shown.output
    result = _hubtool("build-dataset", "preference", "--from-dataset", empty, "--student", "fake:right",
                      "--out", str(tmp_path / "pref"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    assert_one_line(result, "has no rows in split 'train'")
    assert_one_line(_hubtool("train", SMOKE_RECIPE, "--set", f"dataset_name={empty}", "--output-dir", str(tmp_path / "o")),
              "has no rows in split 'train'")  # fmt: skip
