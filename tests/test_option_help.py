"""Option help says what the option does now (the words a user reads in `--help`)."""

from __future__ import annotations

from click.testing import CliRunner

from toolkit.cli import main


def _help(*args: str) -> str:
    result = CliRunner().invoke(main, [*args, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_timeout_help_says_it_bounds_the_whole_call():
    assert ("openai: seconds a call may take in all (connecting, waiting, reading the answer) before it is "
            "retried (default 180; raise it for very long completions).") in _help("build-dataset", "cot")  # fmt: skip


def test_exec_memory_help_counts_the_private_tmp_with_its_real_size():
    from toolkit.sandbox import Limits

    assert Limits().disk_mb == 16  # the /tmp size the help names
    assert ("Memory (MB) a program may hold in the sandbox: its address space plus its private /tmp (16 MB)."
            in _help("build-dataset", "mixed"))  # fmt: skip
