"""The Python API (`from toolkit import build, push, train, score`): the same builds, checks and calls
as the CLI, which is a thin layer over it."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import raises_one_line
from toolkit import BuildResult, build, load_dataset, push, score, train
from toolkit.cli import main
from toolkit.errors import UserError
from toolkit.evaluate import EvalOptions, EvalResult
from toolkit.methods import get_method
from toolkit.rundir import data_file, read_manifest
from toolkit.training import TrainResult

from .fakes import rows

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "datasets", "trl", "peft", "lm_eval", "pyarrow", "huggingface_hub", "reasoning_gym")
OPTIONS = {"source": "gym:chain_sum", "limit": 4, "samples": 2, "teacher": "fake:cycle", "keep": "all",
           "max_new_tokens": 64, "seed": 3}  # fmt: skip


def test_import_toolkit_stays_light_and_every_api_name_survives_the_cli_loading():
    code = textwrap.dedent(f"""
        import sys
        import toolkit
        print(sorted(m for m in sys.modules if m.startswith("toolkit")))
        from toolkit import BuildResult, build, load_dataset, push, score, train
        print(sorted(m for m in {HEAVY!r} if m in sys.modules))
        import toolkit.api, toolkit.cli  # everything the commands load: no submodule hides an API name
        print([n for n in toolkit.__all__[1:] if getattr(toolkit, n) is not getattr(toolkit.api, n)])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["['toolkit', 'toolkit.version']", "[]", "[]"], out.stdout


# --- build ----------------------------------------------------------------------------------------


def _cli_args(options: dict) -> list[str]:
    return [arg for name, value in options.items() for arg in ("--" + name.replace("_", "-"), str(value))]


def test_build_writes_exactly_the_rows_the_cli_writes(tmp_path):
    by_cli = tmp_path / "cli"
    result = CliRunner().invoke(main, ["build-dataset", "cot", *_cli_args(OPTIONS), "--out", str(by_cli),
                                       "--cache", str(tmp_path / "cli.sqlite")])  # fmt: skip
    assert result.exit_code == 0, result.output
    run = build("cot", **OPTIONS, out=str(tmp_path / "api"), cache=str(tmp_path / "api.sqlite"))
    assert isinstance(run, BuildResult) and run.run_dir == tmp_path / "api"
    cli_file, api_file = data_file(by_cli), data_file(run)  # a BuildResult is a path
    assert cli_file.name == api_file.name and cli_file.read_bytes() == api_file.read_bytes()
    assert run.rows == 8 and len(rows(run)) == 8  # keep all: 4 problems x 2 samples
    cli_manifest = read_manifest(by_cli)
    for key in ("method", "source", "teacher", "config", "counts", "stats", "rows", "row_format", "data_file"):
        assert getattr(run.manifest, key) == getattr(cli_manifest, key), key
    assert run.counts == {**cli_manifest.counts} and run.counts["samples"] == 8
    # the summary is the CLI's line, timing aside
    untimed = re.compile(r"in [\d.]+s -> \S+$")
    assert untimed.sub("", run.summary()) == untimed.sub("", result.output.strip().splitlines()[-1])
    assert run.dataset().to_list() == rows(by_cli)


def test_a_config_object_is_the_same_build_and_its_recorded_command_rebuilds_it(tmp_path):
    config = get_method("cot").config(**OPTIONS, out=str(tmp_path / "run"), cache=str(tmp_path / "c.sqlite"))
    run = build(config)
    assert run.manifest.command == (f"hubtool build-dataset cot --source gym:chain_sum --limit 4 --seed 3 "
                                    f"--max-new-tokens 64 --out {tmp_path}/run --cache {tmp_path}/c.sqlite "
                                    f"--teacher fake:cycle --samples 2 --keep all")  # fmt: skip
    by_name = build("cot", **OPTIONS, out=str(tmp_path / "named"), cache=str(tmp_path / "c.sqlite"))
    assert by_name.manifest.config == run.manifest.config
    assert data_file(by_name).read_bytes() == data_file(run).read_bytes()
    # the card's "rebuild with" line, run as typed into the same folder, is the same build (it resumes)
    before = data_file(run).read_bytes()
    again = CliRunner().invoke(main, shlex.split(run.manifest.command)[1:])
    assert again.exit_code == 0, again.output
    assert read_manifest(run).config == run.manifest.config and data_file(run).read_bytes() == before
    # keywords replace fields of a ready config, checked as the CLI checks them
    more = build(config, samples=1, out=str(tmp_path / "one"))
    assert more.counts["samples"] == 4 and more.manifest.config["samples"] == 1


def test_a_preset_and_a_config_file_layer_as_on_the_command_line(tmp_path):
    method = next(m for m in (get_method(n) for n in ("cot", "preference", "counterfactual", "mixed", "evolve"))
                  if m.presets)  # fmt: skip
    preset = sorted(method.presets)[0]
    file = tmp_path / "build.yaml"
    file.write_text("limit: 3\n")
    with pytest.raises(UserError) as e:  # the file's values and the preset's reach the config's checks
        build(method.name, config_file=file, preset=preset, limit=0, out=str(tmp_path / "r"))
    assert str(e.value) == "--limit must be at least 1, not 0"
    with raises_one_line(match=r"^unknown preset 'nope'"):
        build(method.name, preset="nope", source="gym:chain_sum", out=str(tmp_path / "r"))
    with raises_one_line(match=r"^config_file and preset apply to a method's name, not to a ready config"):
        build(get_method("cot").config(source="gym:chain_sum", out=str(tmp_path / "r")), preset=preset)
    assert not (tmp_path / "r").exists()


def test_a_ready_backend_answers_instead_of_the_configs_spec(tmp_path):
    """A notebook's own model: any Teacher, here a Python function, by role."""
    from toolkit.teachers.fake import FakeTeacher

    mine = FakeTeacher(lambda request, j: "I add them up.\nThe answer is 0.", model="my-model")
    run = build("cot", source="gym:chain_sum", limit=3, samples=1, keep="all", teachers={"teacher": mine},
                out=str(tmp_path / "run"), cache=str(tmp_path / "c.sqlite"))  # fmt: skip
    assert len(mine.calls) == 3 and run.manifest.models[0].spec == "fake:my-model"
    assert [r["completion"][0]["content"] for r in rows(run)] == ["I add them up.\nThe answer is 0."] * 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda out: build("cot", source="gym:chain_sum", limt=3, out=out),
         "cot has no option 'limt' (did you mean 'limit'?); `hubtool build-dataset cot --help` lists them"),
        (lambda out: build("cott", source="gym:chain_sum", out=out), "unknown method 'cott' (did you mean 'cot'?)"),
        (lambda out: build("cot", source="gym:chain_sum", limit="many", out=out), "--limit: 'many' is not an integer"),
        (lambda out: build("cot", source="gym:chain_sum", samples=0, out=out), "--samples must be at least 1, not 0"),
        (lambda out: build("cot", limit=3, out=out), "give the problems with --source"),
        (lambda out: build("cot", source="gym:chain_sum"), "missing --out (the run directory)"),
        (lambda out: score("smollm2-135m", tasks="hubtool_gym_chain_sum", limt=3),
         "eval has no option 'limt' (did you mean 'limit'?); `hubtool eval --help` lists them"),
        (lambda out: score([]), "name at least one --model"),
        (lambda out: train("cot/smollm2-135m-lora-smoke", dataset="a/b", dataset_name="c/d"),
         "the dataset is given twice ('a/b', and dataset_name='c/d'); give one"),
    ],
)  # fmt: skip
def test_bad_input_is_the_one_line_user_error_the_cli_gives(tmp_path, call, message):
    out = str(tmp_path / "run")
    with pytest.raises(UserError) as e:
        call(out)
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)
    assert not (tmp_path / "run").exists()


def test_a_bad_value_reads_the_same_in_the_cli(tmp_path):
    with pytest.raises(UserError) as e:
        build("cot", source="gym:chain_sum", samples=0, out=str(tmp_path / "run"))
    result = CliRunner().invoke(main, ["build-dataset", "cot", "--source", "gym:chain_sum", "--samples", "0",
                                       "--out", str(tmp_path / "run")])  # fmt: skip
    assert result.exit_code == 1 and result.output == f"Error: {e.value}\n"


# --- push and load by name ------------------------------------------------------------------------


def test_push_a_build_then_load_it_by_name(tmp_path):
    run = build("cot", **OPTIONS, out=str(tmp_path / "run"), cache=str(tmp_path / "c.sqlite"))
    pushed = push(run, "api-tests/cot")
    assert (pushed.name, pushed.target, pushed.rows, pushed.changed) == ("api-tests/cot", "local", 8, True)
    assert load_dataset("api-tests/cot").to_list() == rows(tmp_path / "run")
    assert push(str(tmp_path / "run"), "api-tests/cot").changed is False  # a path works too; same build: no change
    with raises_one_line(match=r"^--private and --revision apply to --hub pushes"):
        push(run, "api-tests/cot", private=True)


# --- train and score: the same typed calls as the CLI's ---------------------------------------------


@pytest.fixture
def trainer_calls(monkeypatch) -> list[dict]:
    """What `train` hands the trainer (the parsed Recipe), instead of training."""
    import toolkit.api

    calls: list[dict] = []

    def fake(recipe, *, merge, where):
        calls.append({"recipe": recipe, "merge": merge, "where": where})
        return TrainResult(Path(recipe.training.output_dir), None, {})

    monkeypatch.setattr(toolkit.api, "run_training", fake)
    return calls


def test_train_parses_the_recipe_with_keywords_as_the_cli_does_with_set(tmp_path, trainer_calls):
    out = tmp_path / "student"
    result = train("cot/smollm2-135m-lora-smoke", dataset="me/cot", output_dir=out, merge=True, max_steps=2,
                   learning_rate=1e-4, lora_target_modules=["q_proj", "v_proj"], where={"correct": True})  # fmt: skip
    assert result.output_dir == out
    cli = CliRunner().invoke(main, ["train", "cot/smollm2-135m-lora-smoke", "--set", "dataset_name=me/cot",
                                    "--output-dir", str(out), "--merge", "--set", "max_steps=2",
                                    "--set", "learning_rate=0.0001", "--set", "lora_target_modules=q_proj,v_proj",
                                    "--where", "correct=true"])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    api_call, cli_call = trainer_calls
    recipe = api_call["recipe"]
    assert recipe.path == REPO / "recipes" / "cot" / "smollm2-135m-lora-smoke.yaml" and recipe.trainer.config == "sft"
    assert recipe.script.dataset_name == "me/cot" and recipe.training.output_dir == str(out)
    assert (recipe.training.max_steps, recipe.training.learning_rate) == (2, 1e-4)
    assert sorted(recipe.model.lora_target_modules) == ["q_proj", "v_proj"]
    assert api_call["merge"] is True and api_call["where"] == {"correct": "true"}
    assert (api_call["merge"], api_call["where"]) == (cli_call["merge"], cli_call["where"])
    for part in ("script", "training", "model", "trainer"):
        assert getattr(recipe, part) == getattr(cli_call["recipe"], part), part


def test_train_checks_the_recipe_and_the_data_before_any_model_loads(tmp_path, monkeypatch):
    models = tmp_path / "models"
    monkeypatch.setenv("HUBTOOL_MODEL_CACHE", str(models))
    run = build("cot", **OPTIONS, out=str(tmp_path / "run"), cache=str(tmp_path / "c.sqlite"))
    with raises_one_line(match=r"^--set: unknown key 'max_stepz' .*did you mean 'max_steps'"):
        train("cot/smollm2-135m-lora-smoke", dataset=run, max_stepz=2)
    with raises_one_line(match=r"a DPO recipe expects prompt \+ chosen \+ rejected .*use an SFT recipe"):
        train("self-refine/dpo-lora-smoke", dataset=run, output_dir=tmp_path / "s")
    assert not models.exists()


@pytest.fixture
def eval_calls(monkeypatch) -> list[dict]:
    import toolkit.api

    calls: list[dict] = []

    def fake(models, output_dir, *, suites, tasks, options, labels):
        calls.append({"models": models, "output_dir": output_dir, "suites": suites, "tasks": tasks,
                      "options": options, "labels": labels})  # fmt: skip
        return EvalResult(report=None, markdown="| model |")

    monkeypatch.setattr(toolkit.api, "run_eval", fake)
    return calls


def test_score_builds_the_eval_options_the_cli_builds(tmp_path, eval_calls):
    student = TrainResult(tmp_path / "student", None, {})
    score(["smollm2-135m", student], suites="gym", tasks="hubtool_gym_chain_sum, hubtool_gym_syllogism",
          limit=0.5, in_domain="hubtool_gym_chain_sum", data_dir=str(tmp_path), max_gen_toks=64,
          batch_size="auto", output_dir=tmp_path / "e")  # fmt: skip
    cli = CliRunner().invoke(main, ["eval", "-m", "smollm2-135m", "-m", str(tmp_path / "student"), "-s", "gym",
                                    "-t", "hubtool_gym_chain_sum,hubtool_gym_syllogism", "--limit", "0.5",
                                    "--in-domain", "hubtool_gym_chain_sum", "--data-dir", str(tmp_path),
                                    "--max-gen-toks", "64", "--batch-size", "auto", "-o", str(tmp_path / "e")])  # fmt: skip
    assert cli.exit_code == 0 and cli.output.startswith("| model |"), cli.output
    api_call, cli_call = eval_calls
    assert api_call == cli_call
    assert api_call["models"] == ["smollm2-135m", str(tmp_path / "student")]
    assert api_call["tasks"] == ["hubtool_gym_chain_sum", "hubtool_gym_syllogism"] and api_call["suites"] == ["gym"]
    assert api_call["options"] == EvalOptions(limit=0.5, in_domain=["hubtool_gym_chain_sum"], data_dir=tmp_path,
                                              max_gen_toks=64, batch_size="auto")  # fmt: skip
    score("smollm2-135m", options=EvalOptions(limit=3), backend="vllm")  # a ready EvalOptions, keywords on top
    assert eval_calls[-1]["options"] == EvalOptions(limit=3, backend="vllm")
    assert eval_calls[-1]["output_dir"] == Path("eval-results") and eval_calls[-1]["models"] == ["smollm2-135m"]


# --- the README's example -------------------------------------------------------------------------


def readme_example() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("```python\n", text.index("\n## Python API\n")) + len("```python\n")
    return text[start:text.index("\n```", start)]


def test_the_readme_example_runs(tmp_path, monkeypatch, trainer_calls, eval_calls):
    """The README's notebook example as written, with a scripted teacher for the default model
    (a reply each way on a yes/no question: one correct sample per problem) and the trainer and
    lm-eval runs recorded instead of run; the recipe, the options and the data are the real ones."""
    script = tmp_path / "teacher.jsonl"
    script.write_text("\n".join(json.dumps(line) for line in [
        {"match": ".", "replies": ["Both premises speak of the same group, so the conclusion follows.\n"
                                   "The answer is Yes.",
                                   "The premises say nothing that links the two groups.\nThe answer is No."]},
    ]))  # fmt: skip
    code = readme_example()
    assert 'teacher="transformers:smollm2-135m"' in code
    code = code.replace('teacher="transformers:smollm2-135m"', f'teacher="fake:{script}"')
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})  # noqa: S102
    built = read_manifest(tmp_path / "runs" / "nb-cot")
    assert built.rows == 16 and built.counts["correct"] == 16  # 16 problems, one right sample each
    [trained] = trainer_calls
    assert trained["recipe"].script.dataset_name == "demo/nb-cot"
    assert trained["recipe"].training.output_dir == "out/nb-student"
    [scored] = eval_calls
    assert scored["models"] == ["smollm2-135m", "out/nb-student"]
    from toolkit.sources.eval_tasks import catalog, select_tasks, task_manager

    assert select_tasks(catalog(task_manager()), scored["suites"], scored["tasks"]) == scored["tasks"]
