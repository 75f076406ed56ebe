"""Experiment files written carelessly or with intent: every problem found before anything runs,
nothing written outside the workdir, YAML bombs refused, damaged state and outputs noticed, and no
credential in the report (issue 21, items 9-15 and 18)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit.cli import main
from toolkit.errors import UserError
from toolkit.experiments import load_experiment

from .test_experiments import CHAIN, _run, _write

ROOT = Path(__file__).resolve().parents[1]


def _raw(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_step_ids_and_names_that_are_paths_are_refused_before_anything_runs(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "README.md").write_text("mine\n")
    absolute = tmp_path / "abs" / "dir"  # under tmp_path: the unfixed code builds there
    path = _raw(tmp_path, f"""\
        name: ../../../x
        decontaminate: false
        steps:
          ../victim: {{build: cot, with: {{source: "gym:chain_sum", limit: 2, teacher: "fake:right"}}}}
          {absolute}: {{build: cot, with: {{source: "gym:chain_sum", limit: 2, teacher: "fake:right"}}}}
        """)  # fmt: skip
    work = tmp_path / "a" / "b" / "work"
    result = CliRunner().invoke(main, ["run", str(path), "--workdir", str(work)])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[0] == f"Error: experiment {path} has 3 problems; nothing was run:"
    assert lines[1:] == [
        "  name: '../../../x' is not a name (letters, digits, '-', '_'); it names the run's folder",
        "  step '../victim': a step id is a name (letters, digits, '-', '_'); it names the step's folder",
        f"  step '{absolute}': a step id is a name (letters, digits, '-', '_'); it names the step's folder",
    ]
    assert (victim / "README.md").read_text() == "mine\n" and not (tmp_path / "a").exists()
    assert not absolute.exists()


HOSTILE = """\
    name: hostile
    decontaminate: false
    steps:
      cot: {build: cot, with: {source: "gym:chain_sum", limit: 2, teacher: "fake:right", out: /tmp/elsewhere}}
      typo: {build: cto}
      bogus: {build: cot, with: {bogus_key: 1}}
      listed: {build: cot, with: [source, "gym:chain_sum"]}
      text: {build: cot, with: "source=gym:chain_sum"}
      zero: {build: cot, with: {source: "gym:chain_sum", samples: 0, teacher: "fake:right"}}
      data: {push: cot, name: "not a name!"}
      sft: {train: cot/smollm2-135m-lora, dataset: [cot]}
    """


def test_every_problem_of_a_file_is_listed_at_once_one_line_each_and_nothing_runs(tmp_path):
    path, work = _raw(tmp_path, HOSTILE), tmp_path / "work"
    with pytest.raises(UserError) as caught:
        _run(path, work)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"experiment {path} has 8 problems; nothing was run:"
    assert lines[1:] == [
        "  step 'cot': with: 'out' is set by the experiment (its builds go to WORKDIR/builds/STEP)",
        "  step 'typo': unknown method 'cto' (did you mean 'cot'?); known: cot, counterfactual, evolve, idea-mcts, "
        "mixed, preference, self-refine",
        "  step 'bogus': with: unknown option 'bogus_key' of cot",
        "  step 'listed': with: ['source', 'gym:chain_sum'] is not a mapping",
        "  step 'text': with: 'source=gym:chain_sum' is not a mapping",
        "  step 'zero': with: --samples must be at least 1, not 0",
        "  step 'data': name: 'not a name!' is not a dataset name; use ORG/NAME with letters, digits, '-', '_' or '.'",
        "  step 'sft': dataset: ['cot'] is not text",
    ]
    assert not work.exists()


def test_dry_run_catches_what_a_run_would(tmp_path):
    result = CliRunner().invoke(main, ["run", str(_raw(tmp_path, HOSTILE)), "--workdir", str(tmp_path / "w"),
                                       "--dry-run"])  # fmt: skip
    assert result.exit_code == 1 and "run  " not in result.output and "has 8 problems" in result.output


def test_duplicate_step_ids_are_refused_not_silently_the_last(tmp_path):
    path = _raw(tmp_path, """\
        steps:
          cot: {build: cot, with: {source: "gym:chain_sum", limit: 2}}
          cot: {build: cot, with: {source: "gym:chain_sum", limit: 9}}
        """)  # fmt: skip
    with raises_one_line(match=r"key 'cot' appears twice in one mapping \(line 3\)"):
        load_experiment(path)


# a 1 KB billion laughs (9 ** 9 strings once expanded) and a document that contains itself, each
# where the unfixed code reads it: an option's value, which it walked or printed in an error
LAUGHS = "[" + ", ".join(
    ['&a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"&{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]" for i in range(8)]
) + "]"
RECURSIVE = "&r [a, *r]"
BOUNDED = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from toolkit.cli import main
main(sys.argv[1:], prog_name="hubtool")
"""


@pytest.mark.parametrize("text", [LAUGHS, RECURSIVE], ids=["billion-laughs", "recursive"])
@pytest.mark.parametrize("command", ["run", "build-dataset"])
def test_yaml_bombs_are_refused_fast_for_experiments_and_configs(tmp_path, text, command):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"steps: {{s: {{build: cot, with: {{source: {text}}}}}}}\n" if command == "run"
                    else f"source: {text}\nlimit: 2\n")  # fmt: skip
    assert len(bomb.read_text()) < 1100
    args = ["run", str(bomb)] if command == "run" else ["build-dataset", "cot", "--config", str(bomb), "--out",
                                                         str(tmp_path / "out")]  # fmt: skip
    # in a child with 1 GB of address space and 60 s: the unfixed code blew past both
    done = subprocess.run([sys.executable, "-c", BOUNDED, *args], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})  # fmt: skip
    assert done.returncode == 1, done.stderr[-2000:]
    what = "experiment" if command == "run" else "--config"
    reason = ("an alias refers to a node that contains it" if text is RECURSIVE
              else "its aliases expand it by more than 10000 values")  # fmt: skip
    assert done.stderr.startswith(f"Error: {what} {bomb} is refused: {reason}") and done.stderr.count("\n") == 1


@pytest.mark.parametrize("content", [b"[1]", b'{"cot": "x"}', b'{"cot": {"output": 42}}', b"\x89PNG\x00\xff"])
def test_a_damaged_state_file_is_one_line_that_says_how_to_start_over(tmp_path, content):
    work = tmp_path / "work"
    work.mkdir()
    (work / "state.json").write_bytes(content)
    with pytest.raises(UserError) as caught:
        _run(_write(tmp_path, CHAIN), work)
    message = str(caught.value)
    assert message.startswith(f"{work / 'state.json'} is damaged (") and "\n" not in message
    assert message.endswith("delete it to run every step again, or pass another --workdir")


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_a_damaged_build_data_file_is_not_up_to_date(tmp_path, damage):
    path, work = _write(tmp_path, CHAIN), tmp_path / "work"
    _run(path, work)
    [data] = (work / "builds" / "cot" / "data").glob("train-*.parquet")
    if damage == "delete":
        data.unlink()
    else:
        data.write_bytes(data.read_bytes()[:-40] + b"\0" * 40)  # same size, other bytes
    plan, lines = _run(path, work)
    assert plan.actions["cot"] == "run" and lines[0].startswith("[cot] build: running")
    assert plan.actions["cot-data"] == "skip"  # the same rows again: the pushed dataset did not change


def test_a_truncated_manifest_in_an_experiment_build_names_the_experiments_way_out(tmp_path):
    path, work = _write(tmp_path, CHAIN), tmp_path / "work"
    _run(path, work)
    manifest = work / "builds" / "cot" / "manifest.json"
    manifest.write_text(manifest.read_text()[:100])
    with pytest.raises(UserError) as caught:
        _run(path, work)
    assert str(caught.value) == (f"{manifest} is corrupt; run again with --rerun cot to rebuild that step "
                                 "(finished teacher calls are cached)")  # fmt: skip
    plan, _ = _run(path, work, rerun=["cot"])
    assert plan.actions == {"cot": "run", "cot-data": "skip", "pref": "skip", "pref-data": "skip"}
    assert json.loads(manifest.read_text())["status"] == "complete"


def test_the_report_masks_credentials_in_the_experiments_own_text(tmp_path):
    spec = {**CHAIN, "about": "Served by http://alice:hunter2hunter2@teacher.example:8000/v1 (ours)."}
    path, work = _write(tmp_path, spec), tmp_path / "work"
    plan, _ = _run(path, work)
    report = plan.report.read_text()
    assert "Served by http://teacher.example:8000/v1 (ours)." in report
    assert "hunter2" not in report and "alice" not in report


def test_top_level_decontaminate_names_suites_or_tasks_in_one_spelling(tmp_path):
    base = {"name": "d", "steps": {"cot": {"build": "cot", "with": {"source": "gym:chain_sum"}}}}
    assert load_experiment(_write(tmp_path, {**base, "decontaminate": "gym"})).decontaminate == "gym"
    assert load_experiment(_write(tmp_path, {**base, "decontaminate": False})).decontaminate is False
    with raises_one_line(match=r"decontaminate: 'gmy' is no eval suite or task \(did you mean 'gym'\?\)"):
        load_experiment(_write(tmp_path, {**base, "decontaminate": "gmy"}))
    with raises_one_line(match="decontaminate: 3 is neither true/false nor eval suites or tasks"):
        load_experiment(_write(tmp_path, {**base, "decontaminate": 3}))


def test_train_steps_are_checked_before_the_builds_they_follow_run(tmp_path):
    spec = {"name": "t", "decontaminate": False, "steps": {
        "cot": {"build": "cot", "with": {"source": "gym:chain_sum", "limit": 2, "teacher": "fake:right"}},
        "data": {"push": "cot", "name": "exp/t-cot"},
        "sft": {"train": "cot/smollm2-135m-lora", "dataset": "dat"},
    }}  # fmt: skip
    with raises_one_line(match=r"step 'sft': dataset: 'dat' is not an earlier step, a folder or an "
                                         r"ORG/NAME \(did you mean 'data'\?\); nothing was run$"):
        load_experiment(_write(tmp_path, spec))
    spec["steps"]["sft"] = {"train": "cot/smollm2-135m-lora", "dataset": "data", "set": {"max_stepz": 5}}
    work = tmp_path / "work"
    with raises_one_line(match=r"^experiment .*: step 'sft': --set: unknown .*max_stepz.*nothing was run$"):
        _run(_write(tmp_path, spec), work, dry_run=True)
    with raises_one_line(match="max_stepz"):
        _run(_write(tmp_path, spec), work)
    assert not work.exists()


def test_a_top_level_decontaminate_string_reaches_the_builds(tmp_path):
    spec = {"name": "d", "decontaminate": "gym_chain_sum", "eval": {"tasks": ["gym_basic_arithmetic"]},
            "steps": {"cot": {"build": "cot", "with": {"source": "gym:chain_sum", "limit": 2, "teacher": "fake:right"}}}}  # fmt: skip
    plan, _ = _run(_write(tmp_path, spec), tmp_path / "work")
    manifest = json.loads((Path(plan.outputs["cot"]) / "manifest.json").read_text())
    assert manifest["config"]["decontaminate"] == "gym_chain_sum"  # the string given, not the eval's tasks
    spec["eval"]["tasks"] = ["gym_chain_sun"]
    with raises_one_line(match=r"eval: 'gym_chain_sun' is no eval suite or task \(did you mean 'gym_chain_sum'"):
        load_experiment(_write(tmp_path, spec))


def test_a_student_or_eval_folder_whose_files_changed_is_not_up_to_date(tmp_path):
    from toolkit.experiments.runner import _files, _files_unchanged
    from toolkit.experiments.spec import Step

    student = tmp_path / "models" / "sft"
    (student / "adapter").mkdir(parents=True)
    (student / "hubtool_train.json").write_text("{}")
    (student / "adapter" / "adapter_model.safetensors").write_bytes(b"\1" * 64)
    step = Step("sft", "train", {"train": "r", "dataset": "d"})
    recorded = {"files": _files(step, str(student))}
    assert _files_unchanged(step, str(student), recorded)
    (student / "merged").mkdir()  # what using a LoRA student (a DPO from it, an eval) writes into it
    (student / "merged" / "model.safetensors").write_bytes(b"\2" * 64)
    assert _files_unchanged(step, str(student), recorded)
    (student / "adapter" / "adapter_model.safetensors").write_bytes(b"\1" * 10)  # truncated weights
    assert not _files_unchanged(step, str(student), recorded)
    (student / "adapter" / "adapter_model.safetensors").unlink()
    assert not _files_unchanged(step, str(student), recorded)
    assert _files_unchanged(step, str(student), {"files": None})  # a state from before files were recorded
