"""`hubtool eval` and toolkit.evaluate: task and suite selection, model resolution (aliases,
adapters, bad input), the report, and an end-to-end run with two real models on the gym suite."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.assertions import assert_one_line, raises_one_line
from toolkit.cli import main
from toolkit.evaluate import report as R
from toolkit.evaluate.models import describe, load_lm, model_spec
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "eval"


@pytest.fixture(scope="module")
def catalog(manager):
    return T.catalog(manager)


# --- selection -------------------------------------------------------------------------------------


def test_select_tasks_by_suite_and_name(catalog):
    assert T.select_tasks(catalog, ["gym"], []) == list(catalog.suites["gym"])
    chosen = T.select_tasks(catalog, ["ood_from_gsm8k"], ["gsm8k", "hubtool_svamp", "gsm8k_maj8"])
    assert chosen == ["hubtool_svamp", "hubtool_asdiv", "hubtool_multiarith", "hubtool_gsm8k", "hubtool_gsm8k_maj8"]


@pytest.mark.parametrize(
    ("suites", "tasks", "message"),
    [
        (["maths"], [], "unknown suite 'maths' (did you mean 'math'?); suites: adaptability, commonsense, gym, idea_mcts, math"),
        ([], ["gsm8kk"], "unknown task 'gsm8kk' (did you mean 'gsm8k'?); tasks: alpaca_eval, aqua_rat"),
        ([], [], "choose what to evaluate: --suite (adaptability, commonsense, gym, idea_mcts, math"),
    ],
)
def test_select_tasks_rejects_unknown_names_and_lists_the_known(catalog, suites, tasks, message):
    with raises_one_line(match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        T.select_tasks(catalog, suites, tasks)


def test_in_domain_defaults_and_override(catalog):
    assert "hubtool_gsm8k" in T.resolve_in_domain(catalog, None)
    assert T.resolve_in_domain(catalog, ["gym_chain_sum"]) == {"hubtool_gym_chain_sum"}
    with raises_one_line(match="--in-domain: unknown task 'nope'"):
        T.resolve_in_domain(catalog, ["nope"])


def test_loading_a_generated_task_prints_no_metadata_hint(manager, caplog):
    """lm-eval's 'kwargs can be passed to --metadata' hint for every function-built task is not for us."""
    caplog.set_level(logging.INFO)
    [task] = T.load_tasks(manager, ["hubtool_gym_chain_sum"], None)
    assert len(task.eval_docs) > 0
    assert not [r for r in caplog.records if "--metadata" in r.getMessage()]


def test_benchmark_of_maps_variants_to_their_data():
    assert T.benchmark_of("hubtool_gsm8k_maj8") == "gsm8k"
    assert T.local_data_file(Path("d"), "hubtool_arc_easy") == Path("d/arc_easy.jsonl")


# --- models ----------------------------------------------------------------------------------------


def _adapter(folder: Path, base: str | None) -> Path:
    folder.mkdir(parents=True)
    config = {"peft_type": "LORA"} | ({"base_model_name_or_path": base} if base is not None else {})
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


def test_model_spec_alias_and_adapter(tmp_path, smol_path):
    spec = model_spec("smollm2-135m")
    assert (spec.label, spec.lm_eval_model, spec.args) == ("smollm2-135m", "hf", {"pretrained": smol_path})
    adapter = _adapter(tmp_path / "student", "smollm2-135m")
    spec = model_spec(str(adapter))
    assert spec.label == "student" and spec.args == {"pretrained": smol_path, "peft": str(adapter)}
    assert describe(spec) == f"LoRA adapter {adapter} on {smol_path} (hf)"
    assert model_spec(str(adapter), "vllm").args == {"pretrained": smol_path, "lora_local_path": str(adapter)}


def test_model_spec_openai():
    spec = model_spec("my-model", "openai", "http://localhost:8000/v1/")
    assert spec.lm_eval_model == "local-chat-completions"
    assert spec.args["base_url"] == "http://localhost:8000/v1/chat/completions" and spec.args["model"] == "my-model"
    assert model_spec("/srv/models/student/", "openai", "http://h/v1").label == "student"
    with raises_one_line(match="needs --base-url"):
        model_spec("my-model", "openai")


@pytest.mark.parametrize(("label", "folder"), [("student", "student"), ("/root/m", "root_m"), ("../up", "up"), ("..", "model")])
def test_result_folders_stay_inside_the_output_dir(label, folder):
    from toolkit.evaluate.run import _folder_name

    assert _folder_name(label) == folder


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("/nonexistent/base-model", "its base model '/nonexistent/base-model' cannot be found"),
        ("someorg/not-cached", "'someorg/not-cached' is not a local folder and not in the Hugging Face cache"),
        (None, "names no base_model_name_or_path"),
    ],
)
def test_adapter_without_a_base_is_a_user_error(tmp_path, base, message):
    adapter = _adapter(tmp_path / "adapter", base)
    with raises_one_line(match=message):
        model_spec(str(adapter))


def test_folder_that_is_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with raises_one_line(match="holds neither config.json nor adapter_config.json"):
        model_spec(str(tmp_path / "empty"))
    with raises_one_line(match="not found"):
        model_spec(str(tmp_path / "missing"))


def test_model_that_does_not_load(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    with raises_one_line(match="^model 'broken' does not load: "):
        load_lm(model_spec(str(broken)))


# --- CLI errors: one line, no traceback, before any model runs -------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "smollm2-135m", "--suite", "nope"], "Error: unknown suite 'nope'"),
        (["-m", "smollm2-135m", "--tasks", "gsm8k"], "a task's dataset could not be loaded (ConnectionError"),
        (["-m", "smollm2-135m", "--suite", "gym", "--limit", "0"], "Error: --limit must be positive"),
        (["-m", "./no-such-dir", "--suite", "gym"], "Error: model './no-such-dir' not found"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(main, ["eval", *args, "-o", str(tmp_path / "out")])
    assert_one_line(result, message)


def test_tasks_path_prints_the_task_folder_without_a_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HUBTOOL_EVAL_TASKS", raising=False)
    result = CliRunner().invoke(main, ["eval", "--tasks-path"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{ROOT / 'eval_tasks'}\n" and Path(result.output.strip()) == T.tasks_dir()


def test_eval_help_imports_no_heavy_library():
    code = ("import sys; import toolkit.evaluate; from toolkit.cli import main\n"
            "try: main(['eval', '--help'])\nexcept SystemExit: pass\n"
            "print(sorted({'lm_eval', 'torch', 'transformers', 'matplotlib', 'datasets'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--suite" in done.stdout and done.stdout.strip().endswith("[]")


# --- report ----------------------------------------------------------------------------------------


def _results(scores: dict[str, tuple[float, float]]) -> dict:
    """The part of lm-eval's results dict the report reads."""
    return {
        "results": {t: {"exact_match,strict-match": s, "exact_match,flexible-extract": f} for t, (s, f) in scores.items()},
        "n-samples": {t: {"original": 200, "effective": 4} for t in scores},
    }


def test_report_table_and_averages(tmp_path):
    tasks = ["hubtool_gsm8k", "hubtool_gsm8k_maj8", "hubtool_svamp", "hubtool_asdiv"]
    report = R.Report(tasks=tasks, in_domain={"hubtool_gsm8k"}, notes=["limit 4"])
    report.add("base", _results({t: (0.25, 0.5) for t in tasks}))
    report.add("student", _results({"hubtool_gsm8k": (1.0, 1.0), "hubtool_gsm8k_maj8": (0.5, 0.5),
                                    "hubtool_svamp": (0.5, 0.75), "hubtool_asdiv": (0.0, 0.25)}))
    assert report.average("student", "strict-match", True) == 0.75  # gsm8k and its maj8 variant
    assert report.average("student", "flexible-extract", False) == 0.5
    text = R.markdown(report)
    assert "| model | gsm8k (ID) | gsm8k_maj8 (ID) | svamp | asdiv | ID avg | OOD avg |" in text
    assert "| student | 100.0 | 50.0 | 50.0 | 0.0 | 75.0 | 25.0 |" in text  # strict-match table
    assert "| student | 100.0 | 50.0 | 75.0 | 25.0 | 75.0 | 50.0 |" in text  # flexible-extract table
    assert "documents per task: gsm8k 4" in text and "- limit 4" in text

    only_ood = R.Report(tasks=["hubtool_svamp"], in_domain=set())
    only_ood.add("base", _results({"hubtool_svamp": (0.5, 0.5)}))
    assert "| base | 50.0 | – | 50.0 |" in R.markdown(only_ood)

    paths = R.write(report, tmp_path)
    from PIL import Image

    with Image.open(paths["chart"]) as image:
        assert image.format == "PNG" and image.width > 300
    assert json.loads(paths["scores"].read_text())["scores"]["student"]["hubtool_gsm8k"]["strict-match"] == 1.0


def test_report_says_how_many_documents_got_no_answer(tmp_path):
    """lm-eval's own samples (tests/fixtures/lm_eval_samples: one document cut at the cap, two answered)."""
    folder = ROOT / "tests" / "fixtures" / "lm_eval_samples" / "sft"
    rows = [json.loads(line) for line in (folder / "samples_hubtool_gym_syllogism.jsonl").read_text().splitlines()]
    results = _results({"hubtool_gym_syllogism": (1 / 3, 1 / 3)}) | {"samples": {"hubtool_gym_syllogism": rows}}
    report = R.Report(tasks=["hubtool_gym_syllogism"], in_domain=set())
    report.add("sft", results)
    report.add("base", _results({"hubtool_gym_syllogism": (0.5, 0.5)}))  # no samples kept: nothing to count
    assert report.unanswered == {"sft": {"hubtool_gym_syllogism": [1, 3, 0]}}  # cut at 160 tokens, not looping
    text = R.markdown(report)
    assert "## No answer read (strict-match)" in text and "| sft | 1 of 3 |" in text
    answered = R.Report(tasks=["hubtool_gym_syllogism"], in_domain=set())
    answered.add("sft", _results({"hubtool_gym_syllogism": (0.5, 0.5)}) |
                 {"samples": {"hubtool_gym_syllogism": [r for r in rows if r["doc_id"] != 0]}})  # fmt: skip
    assert answered.unanswered == {"sft": {"hubtool_gym_syllogism": [0, 2, 0]}}
    assert "No answer read" not in R.markdown(answered)
    # the same student at 512 tokens: of 4 documents without an answer, 2 end in a loop up to the cap
    folder = ROOT / "tests" / "fixtures" / "lm_eval_samples" / "sft-512"
    rows = [json.loads(line) for line in (folder / "samples_hubtool_gym_syllogism.jsonl").read_text().splitlines()]
    long = R.Report(tasks=["hubtool_gym_syllogism"], in_domain=set())
    long.add("sft", _results({"hubtool_gym_syllogism": (1 / 6, 1 / 6)}) | {"samples": {"hubtool_gym_syllogism": rows}})
    assert long.unanswered == {"sft": {"hubtool_gym_syllogism": [4, 6, 2]}}
    assert "| sft | 4 of 6, 2 looping |" in R.markdown(long)


def test_a_generation_that_repeats_itself_to_the_cap_is_looping_and_one_that_concludes_is_not():
    """Real replies (tests/fixtures/lm_eval_samples/sft-512): two loops, one of them counting up ("5.
    Some lions are fish", "6. Some lions are fish") and cut mid-line at the cap; two replies that stop
    without an answer line; two answered ones."""
    folder = ROOT / "tests" / "fixtures" / "lm_eval_samples" / "sft-512"
    rows = [json.loads(line) for line in (folder / "samples_hubtool_gym_syllogism.jsonl").read_text().splitlines()]
    strict = {r["doc_id"]: R.reply_of(r) for r in rows if r["filter"] == "strict-match"}
    assert {d: R.repeats_itself(text) for d, text in strict.items()} == {
        0: True, 1: False, 2: True, 9: False, 13: False, 15: False}  # fmt: skip
    assert strict[0].endswith("Now, let's think about the")  # cut mid-line: an earlier line starts so
    assert not R.repeats_itself(strict[0][: strict[0].index("Let's start with statement 1:")])  # before it repeats
    assert not R.repeats_itself("a\nb\na\nb\na")  # under 6 lines: too short to call a loop


# --- end to end ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def random_adapter(tmp_path_factory, smol_path) -> Path:
    """A LoRA adapter on the default model with random weights: a second model whose outputs differ."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(smol_path)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("adapters") / "student"
    get_peft_model(model, config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_cli_eval_two_models_on_the_gym_suite(tmp_path, random_adapter, small_torch):
    result = CliRunner().invoke(main, ["eval", "-m", "smollm2-135m", "-m", str(random_adapter), "--suite", "gym",
                                       "--limit", "1", "--max-gen-toks", "8", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    gym = [t.removeprefix("hubtool_") for t in T.catalog(T.task_manager()).suites["gym"]]
    # each column names the prompt its models were asked with (issue 20 item 3)
    header = "| model | gym_gsm_symbolic (ID) [cot] | " + " | ".join(f"{t} [cot]" for t in gym[1:]) + " | ID avg | OOD avg |"
    assert result.output.count(header) == 2  # one table per filter
    assert "| smollm2-135m | " in result.output and "| student | " in result.output
    assert f"- `student`: LoRA adapter {random_adapter} on " in result.output
    # the terminal shows the report; the file names no folder of this machine (toolkit.public_paths)
    tables = [line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("|")]
    assert len(tables) >= 6 and all(line in result.output for line in tables)
    assert str(tmp_path) not in (tmp_path / "report.md").read_text()

    from PIL import Image

    with Image.open(tmp_path / "report.png") as image:
        image.verify()
    responses = {}
    for label in ("smollm2-135m", "student"):
        results = json.loads((tmp_path / label / "results.json").read_text())
        assert set(results["results"]) == {f"hubtool_{t}" for t in gym}
        # every task's generation: on a single short one the random adapter may well say the same
        responses[label] = [
            json.loads(line)["resps"] for t in gym for line in (tmp_path / label / f"samples_hubtool_{t}.jsonl").open()
        ]
    assert responses["smollm2-135m"] != responses["student"], "the adapter was not applied"
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert set(scores["scores"]) == {"smollm2-135m", "student"} and scores["in_domain"]


@pytest.mark.slow
def test_num_fewshot_puts_worked_examples_before_the_question(tmp_path, small_torch):
    """--num-fewshot reaches the tasks (a task that pinned num_fewshot: 0 would silently ignore it)."""
    from toolkit.evaluate import EvalOptions, run_eval

    options = EvalOptions(limit=1, num_fewshot=1, max_gen_toks=2, batch_size=1)
    result = run_eval(["smollm2-135m"], tmp_path, tasks=["gym_chain_sum"], options=options)
    row = json.loads((tmp_path / "smollm2-135m" / "samples_hubtool_gym_chain_sum.jsonl").open().readline())
    prompt = row["arguments"][0][0]
    assert prompt.count("Question:") == 2 and prompt.count("The answer is") == 3  # 2 instructions + 1 worked answer
    assert "1-shot chain of thought" in result.markdown


@pytest.mark.slow
def test_a_model_scored_alike_before_is_taken_from_disk_not_run_again(tmp_path, random_adapter, small_torch,
                                                                      monkeypatch):  # fmt: skip
    """A killed eval resumes at the model it was in; an experiment's later step reuses an earlier step's
    results of the same weights; new weights or another option run again (toolkit.evaluate.kept)."""
    import shutil

    from toolkit.evaluate import EvalOptions, run, run_eval

    adapter = tmp_path / "student"
    shutil.copytree(random_adapter, adapter)
    options = EvalOptions(limit=2, max_gen_toks=4, batch_size=2)
    real, ran = run._evaluate_one, []

    def counting(spec, *args, **kwargs):
        ran.append(spec.label)
        if spec.label == "student" and len(ran) == 2 and "killed" not in ran:
            ran.append("killed")
            raise KeyboardInterrupt  # the run is killed while it scores its second model
        return real(spec, *args, **kwargs)

    monkeypatch.setattr(run, "_evaluate_one", counting)
    first = tmp_path / "first"
    with pytest.raises(KeyboardInterrupt):
        run_eval(["smollm2-135m", str(adapter)], first, tasks=["gym_chain_sum"], options=options)
    assert ran == ["smollm2-135m", "student", "killed"]
    assert (first / "smollm2-135m" / "hubtool_eval.json").is_file() and not (first / "student").exists()

    ran.clear()
    resumed = run_eval(["smollm2-135m", str(adapter)], first, tasks=["gym_chain_sum"], options=options)
    assert ran == ["student"]  # the base model's results were complete: not run again
    samples = {m: (first / m / "samples_hubtool_gym_chain_sum.jsonl").read_text() for m in ("smollm2-135m", "student")}

    ran.clear()
    again = run_eval(["smollm2-135m", str(adapter)], first, tasks=["gym_chain_sum"], options=options)
    assert ran == [] and again.markdown == resumed.markdown

    # an experiment's later step: other labels, another folder, the earlier step's folder to look in
    ran.clear()
    later = tmp_path / "later"
    run_eval([str(adapter), "smollm2-135m"], later, tasks=["gym_chain_sum"], options=options, labels=["sft", "base"],
             reuse=[first])  # fmt: skip
    assert ran == []
    assert (later / "sft" / "samples_hubtool_gym_chain_sum.jsonl").read_text() == samples["student"]
    assert json.loads((later / "sft" / "results.json").read_text())["config"]["model"] == "sft"
    recorded = json.loads((later / "sft" / "hubtool_eval.json").read_text())
    assert "adapter_model.safetensors" in {name for name, _, _ in recorded["weights"]["peft"]}
    assert str(tmp_path) not in json.dumps(recorded)  # the adapter counts by its files, not its folder
    assert "peft" not in json.loads((later / "base" / "hubtool_eval.json").read_text())["args"]
    assert json.loads((later / "scores.json").read_text())["scores"]["sft"] == \
        json.loads((first / "scores.json").read_text())["scores"]["student"]  # fmt: skip

    # the run moved to another machine: the same adapter under another path keeps its scores
    moved = tmp_path / "elsewhere" / "student"
    shutil.copytree(adapter, moved)
    run_eval([str(moved)], tmp_path / "moved", tasks=["gym_chain_sum"], options=options, labels=["sft"], reuse=[first])
    assert ran == []

    # weights written again to the same bytes (a deterministic retraining, with its own card and record
    # of the day) are the same model; other weights, or an option that changes the generations, run again
    weights = next(adapter.glob("adapter_model.*"))
    weights.write_bytes(weights.read_bytes())
    (adapter / "README.md").write_text("trained again today")
    (adapter / "merged").mkdir()
    (adapter / "merged" / "model.safetensors").write_bytes(b"a merged copy is not what --model names")
    ran.clear()
    run_eval(["smollm2-135m", str(adapter)], first, tasks=["gym_chain_sum"], options=options)
    assert ran == []
    from safetensors.torch import load_file, save_file

    tensors = load_file(weights)
    save_file({k: v * 1.5 for k, v in tensors.items()}, weights)
    run_eval(["smollm2-135m", str(adapter)], first, tasks=["gym_chain_sum"], options=options)
    assert ran == ["student"]
    ran.clear()
    run_eval(["smollm2-135m"], first, tasks=["gym_chain_sum"], options=EvalOptions(limit=2, max_gen_toks=5, batch_size=2))
    assert ran == ["smollm2-135m"]
