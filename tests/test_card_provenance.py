"""What a card says about how its data was made, and what it must not say (issue 21 items 25 and
31, issue 25 items 15-17): library versions, the preset and the user's overrides, the server's
own account of its weights, a data-quality section, and no path of the machine it was built on."""

from __future__ import annotations

import json

from click.testing import CliRunner

from toolkit import cards
from toolkit.cli import main
from toolkit.rundir import read_manifest


def _mc_source(tmp_path) -> str:
    path = tmp_path / "mc.jsonl"
    lines = [{"question": f"Which planet is number {i}?", "choices": ["Mars", "Venus", "Earth"],
              "answer": "ABC"[i % 3]} for i in range(6)]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"file:{path}"


def _cli(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output


# -- issue 25 item 15: library versions ----------------------------------------------------------


def test_every_build_records_its_library_versions(tmp_path):
    import importlib.metadata as md
    import platform

    _cli("build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "2", "--teacher", "fake:right",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    versions = read_manifest(tmp_path / "run").versions
    assert versions["python"] == platform.python_version()
    for package in ("pyarrow", "jinja2", "datasets", "reasoning-gym", "aiohttp"):
        assert versions[package] == md.version(package), package
    card = (tmp_path / "run" / "README.md").read_text()
    table = card.split("### Library versions")[1].split("\n## ")[0]
    assert f"| pyarrow | {md.version('pyarrow')} |" in table
    assert f"| reasoning-gym | {md.version('reasoning-gym')} |" in table


# -- issue 21 item 25: the preset and what the user overrode ---------------------------------------


def test_the_card_says_which_preset_values_the_user_overrode(tmp_path):
    _cli("build-dataset", "cot", "--preset", "ranaldi-eacl24", "--keep", "correct", "--samples", "3",
         "--source", _mc_source(tmp_path), "--choices-field", "choices", "--limit", "3", "--teacher", "fake:right",
         "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c.sqlite"))  # fmt: skip
    manifest = read_manifest(tmp_path / "run")
    assert (manifest.config["keep"], manifest.config["samples"]) == ("correct", 3)
    assert manifest.preset_overrides == {"keep": "correct", "samples": 3}
    card = (tmp_path / "run" / "README.md").read_text()
    assert "Built with the preset `ranaldi-eacl24`, with 2 of its values replaced by the user." in card
    assert "| `keep` | `all` | `correct` (the user's value) |" in card
    assert "| `samples` | `1` | `3` (the user's value) |" in card
    assert "| `template` | `ranaldi-cot` | `ranaldi-cot` |" in card
    assert "| `temperature` | `0.0` | `0.0` |" in card
    assert "| `keep` | `all` |\n" not in card  # the old table said only what the preset set
