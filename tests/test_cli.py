"""The CLI: fast start, one-line errors with non-zero exit, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from toolkit.cli import main

HEAVY = ("torch", "transformers", "datasets", "trl", "lm_eval", "pyarrow", "huggingface_hub", "reasoning_gym")


def test_help_imports_no_heavy_library():
    code = (
        "import sys; from click.testing import CliRunner; from toolkit.cli import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
        "[CliRunner().invoke(main, [c, '--help']) for c in main.commands];"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope:x"], "source"),
        (["--source", "gym:basic_arithmetic", "--samples", "0"], "--samples"),
        (["--source", "file:/does/not/exist.jsonl"], "does not exist"),
        (["--source", "hf:gsm9k"], "gsm8k"),
        (["--source", "gym:basic_arithmetic", "--teacher", "tranformers:x"], "transformers"),
        (["--source", "gym:basic_arithmetic", "--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    result = CliRunner().invoke(main, ["build-dataset", "cot", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_inspect_of_a_non_build_is_a_user_error(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert result.exit_code != 0 and "not a hubtool build" in result.output
