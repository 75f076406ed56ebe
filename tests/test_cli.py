"""The CLI: fast start, options generated from the method configs, --config files, one-line errors
with a non-zero exit and no traceback, and a new method that needs nothing but its module."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
import typing

import pytest
from click.testing import CliRunner

from toolkit.builders.config import BuildConfig
from toolkit.cli import main
from toolkit.methods import methods
from toolkit.rundir import read_manifest

from .fakes import rows

HEAVY = ("torch", "transformers", "datasets", "trl", "lm_eval", "pyarrow", "huggingface_hub", "reasoning_gym")


def test_help_imports_no_heavy_library():
    code = textwrap.dedent(f"""
        import sys
        from click.testing import CliRunner
        from toolkit.cli import main
        groups = [[], *[[c] for c in main.commands], *[["build-dataset", m] for m in main.commands["build-dataset"].list_commands(None)]]
        for args in groups:
            r = CliRunner().invoke(main, [*args, "--help"])
            assert r.exit_code == 0 and "Usage:" in r.output, (args, r.output)
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("method", [m.name for m in methods()])
def test_options_are_the_config_fields_one_to_one(method):
    """Every config field is an option with its help and default, and no option is anything else."""
    from toolkit.cli.build import method_command
    from toolkit.methods import get_method

    m = get_method(method)
    command = method_command(m)
    run_only = ("config_file", "preset", "shard", "engine", "workers", "shards", "ray_address")  # not config fields
    options = {p.name: p for p in command.params if p.name not in run_only}
    fields = {f.name: f for f in dataclasses.fields(m.config)}
    assert options.keys() == fields.keys()
    hints = typing.get_type_hints(m.config)
    for name, f in fields.items():
        option = options[name]
        assert option.opts[0] == "--" + name.replace("_", "-")
        assert f.metadata["help"] and option.help.startswith(f.metadata["help"])
        if f.default not in (dataclasses.MISSING, None, ()):
            shown = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
            assert f"[default: {shown}]" in option.help, name
        if typing.get_origin(hints[name]) is typing.Literal:
            assert list(option.type.choices) == list(typing.get_args(hints[name]))
    shown = " ".join(command.get_help(_ctx(command)).split())
    assert "--config FILE" in shown and " ".join(m.help.splitlines()[0].split()) in shown


def _ctx(command):
    import click

    return click.Context(command)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "nope:x"], "source"),
        (["--source", "gym:basic_arithmetic", "--samples", "0"], "--samples"),
        (["--source", "file:/does/not/exist.jsonl"], "does not exist"),
        (["--source", "hf:gsm9k"], "gsm8k"),
        (["--source", "gym:basic_arithmetic", "--teacher", "tranformers:x"], "transformers"),
        (["--source", "gym:basic_arithmetic", "--limit", "0"], "--limit"),
        (["--source", "gym:basic_arithmetic", "--temperature", "nan"], "--temperature"),
        (["--source", "gym:basic_arithmetic", "--temperature", "-1"], "--temperature"),
        (["--source", "gym:basic_arithmetic", "--top-p", "0"], "--top-p"),
        (["--source", "gym:basic_arithmetic", "--max-new-tokens", "0"], "--max-new-tokens"),
        (["--source", "gym:basic_arithmetic", "--concurrency", "0"], "--concurrency"),
        (["--source", "gym:basic_arithmetic", "--template", "nope.jinja"], "nope.jinja"),
        (["--source", "gym:basic_arithmetic", "--teacher", "fake:nope"], "fake teacher"),
        ([], "--source"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    result = CliRunner().invoke(main, ["build-dataset", "cot", *args, "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "run").exists()  # nothing written


def test_a_typo_in_the_method_suggests_the_near_miss():
    result = CliRunner().invoke(main, ["build-dataset", "cott", "--help"])
    assert result.exit_code != 0 and "did you mean 'cot'" in result.output


def test_inspect_of_a_non_build_is_a_user_error(tmp_path):
    result = CliRunner().invoke(main, ["inspect", str(tmp_path)])
    assert result.exit_code != 0 and "not a hubtool build" in result.output


# --- successful builds on the shipped fake teacher ------------------------------------------------


def test_fake_rules_build_through_the_cli(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", "gym:chain_sum", "--limit", "4",
                                       "--samples", "4", "--teacher", "fake:cycle", "--out", str(out),
                                       "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cot: 4 problems, 16 samples, 4 correct (25.0%), 4 kept, 4 truncated, 0 failed" in result.output
    manifest = read_manifest(out)
    assert manifest.models[0].spec == "fake:cycle" and manifest.config["teacher"] == "fake:cycle"
    assert all(r["correct"] and r["sample_idx"] == 0 for r in rows(out))


def test_a_fake_script_and_a_config_file_with_flags_on_top(tmp_path):
    script = tmp_path / "script.jsonl"
    script.write_text("\n".join(json.dumps(line) for line in [
        {"match": "1 \\+ 5", "replies": ["1 + 5 = 6.\nThe answer is 6.", "It is 7. The answer is 7."]},
        {"match": "4 - 1 - 7", "error": "HTTP 500: try later"},
        {"match": ".", "replies": ["no idea"]},
    ]))  # fmt: skip
    config = tmp_path / "build.yaml"
    config.write_text(f"source: gym:chain_sum\nlimit: 3\nsamples: 2\nteacher: fake:{script}\nkeep: all\nmax-new-tokens: 64\n")
    out = tmp_path / "run"
    args = ["build-dataset", "cot", "--config", str(config), "--keep", "correct", "--out", str(out),
            "--cache", str(tmp_path / "c.sqlite")]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.config["keep"] == "correct" and manifest.config["max_new_tokens"] == 64  # flag over file
    assert manifest.counts["failed"] == 1 and manifest.counts["correct"] == 1
    assert [r["completion"][0]["content"] for r in rows(out)] == ["1 + 5 = 6.\nThe answer is 6."]
    failed = [json.loads(line) for line in (out / "failed.jsonl").read_text().splitlines()]
    assert [f["error"] for f in failed] == ["HTTP 500: try later"]


def test_a_config_file_with_an_unknown_key_is_one_line(tmp_path):
    config = tmp_path / "build.yaml"
    config.write_text("source: gym:chain_sum\nsampels: 2\n")
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--config", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "unknown option 'sampels'" in result.output and "did you mean 'samples'" in result.output
    assert len(result.output.strip().splitlines()) == 1


# --- a new method: one module and one registry line ----------------------------------------------

ECHO = '''
"""A throwaway method: the teacher's reply to each question, kept as it is."""
from dataclasses import dataclass
from pathlib import Path

from toolkit.builders.config import BuildConfig, Preset, param
from toolkit.builders.method import SFT, Method, Paper, Work
from toolkit.builders.rows import SFTRow, assistant, user
from toolkit.teachers.base import CallFailure, Request


@dataclass(frozen=True, kw_only=True)
class EchoConfig(BuildConfig):
    teacher: str = param("fake:right", help="Who answers.", model=True)
    shout: bool = param(False, help="Upper-case the reply.")


async def run(problem, work: Work[EchoConfig]) -> None:
    messages = user(problem.question)
    [result] = await work.teacher.gather(Request(tuple(messages), params=work.config.sampling))
    if isinstance(result, CallFailure):
        work.fail(result.error)
        return
    text = result[0].text.upper() if work.config.shout else result[0].text
    work.counts["kept"] += 1
    work.keep(SFTRow(prompt=messages, completion=assistant(text), id=problem.id, source=problem.source,
                     question=problem.question, gold=problem.gold, pred=None, correct=False,
                     answer_type=problem.answer_type, choices=[], teacher=work.teacher.identity, sample_idx=0,
                     finish_reason=result[0].finish_reason, num_tokens=result[0].completion_tokens))


METHOD = Method(
    name="echo", folder=Path(__file__).parent, summary="Echo what the teacher says.", help="Echo what the teacher says.",
    config=EchoConfig, row=SFTRow, kind="sft", trainer=SFT, run=run, counts=("problems", "failed", "kept"),
    paper=Paper(name="Echo", citation="Nobody, 2026", url="https://example.org", summary="Echoes.",
                bibtex="@misc{echo, title={Echo}}"),
    presets={"loud": Preset(about="everything upper-case", values={"shout": True})},
)
'''


@pytest.fixture
def echo_method(tmp_path, monkeypatch):
    import toolkit.methods as registry

    (tmp_path / "echo_method.py").write_text(ECHO)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "MODULES", [*registry.MODULES, "echo_method"])  # the one registry line
    registry.reset()
    yield
    registry.reset()
    sys.modules.pop("echo_method", None)  # a later test's throwaway module is another


def test_a_new_method_is_one_module_and_one_registry_line(tmp_path, echo_method):
    """The CLI side: its command, options, presets, build, card, inspect and push (a method with its own
    prompt, card, recipes, eval tasks and trainer: tests/test_methods_contract.py)."""
    runner = CliRunner()
    listing = runner.invoke(main, ["build-dataset", "--help"])
    assert "echo" in listing.output and "Echo what the teacher says." in listing.output
    help_text = runner.invoke(main, ["build-dataset", "echo", "--help"]).output
    assert "--shout / --no-shout" in help_text and "--preset [loud]" in help_text
    out = tmp_path / "run"
    result = runner.invoke(main, ["build-dataset", "echo", "--source", "gym:chain_sum", "--limit", "2",
                                  "--preset", "loud", "--out", str(out), "--cache", str(tmp_path / "c.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = read_manifest(out)
    assert manifest.method == "echo" and manifest.preset == "loud" and manifest.preset_values == {"shout": True}
    assert manifest.config["shout"] is True and manifest.row_format.recipe is None
    assert all(r["completion"][0]["content"].startswith("LET'S WORK OUT") for r in rows(out))
    card = (out / "README.md").read_text()
    assert "**Echo** — Nobody, 2026" in card and "preset `loud`" in card
    assert runner.invoke(main, ["inspect", str(out)]).exit_code == 0
    pushed = runner.invoke(main, ["push", str(out), "me/echo"])
    assert pushed.exit_code == 0, pushed.output


def test_shared_fields_come_from_build_config_only():
    """A method adds fields; it never redefines the shared ones with other defaults."""
    shared = {f.name: f for f in dataclasses.fields(BuildConfig)}
    for m in methods():
        for f in dataclasses.fields(m.config):
            if f.name in shared:
                assert f.default == shared[f.name].default, (m.name, f.name)


def test_a_config_naming_another_method_is_refused(tmp_path):
    config = tmp_path / "cf.yaml"
    config.write_text("method: counterfactual\nsource: gym:chain_sum\nlimit: 2\nteacher: fake:right\n")
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--config", str(config), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output == (f"Error: --config {config} is for method 'counterfactual', not 'cot'; run `hubtool "
                             f"build-dataset counterfactual --config {config}`, or remove its `method:` line\n")  # fmt: skip
    assert not (tmp_path / "o").exists()


def test_where_given_twice_for_one_column_is_refused_not_the_last():
    from toolkit.errors import UserError
    from toolkit.training.data import parse_where

    with pytest.raises(UserError, match=r"^--where c is given twice \(false, true\); a row must match every --where"):
        parse_where(["c=false", "c=true"])
    assert parse_where(["c=false", "d=x", "c=false"]) == {"c": "false", "d": "x"}


def test_show_on_a_folder_that_is_no_dataset_answers_from_its_layout_without_hashing(tmp_path, monkeypatch):
    from toolkit.hub import resolve

    venv = tmp_path / "venv"
    for i in range(50):
        (venv / "lib" / f"pkg{i}").mkdir(parents=True)
        (venv / "lib" / f"pkg{i}" / "__init__.py").write_text("x = 1\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")

    def hashed(path):
        raise AssertionError(f"hashed {path}")

    monkeypatch.setattr(resolve, "_file_sha256", hashed)
    result = CliRunner().invoke(main, ["show", str(venv)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {venv} holds no dataset (no data files in data/, at its top or one ")
    from toolkit.errors import UserError
    from toolkit.training.data import load_training_data

    with pytest.raises(UserError, match="holds no dataset"):
        load_training_data(str(venv), "sft")
