"""Students are scored on the prompt they were trained on (issue 20 item 3): a dataset's prompt goes into
the training record and model card, `hubtool eval` asks a trained student with it by default, `--prompt`
overrides it, and the report names the prompt of each column."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from tests.fakes import FakeTeacher, build
from toolkit.cli import main
from toolkit.evaluate import report as R
from toolkit.hub import resolve_dataset
from toolkit.sources import eval_tasks as T
from toolkit.training import provenance as P

ROOT = Path(__file__).resolve().parents[1]
RANALDI = ROOT / "toolkit" / "prompts" / "ranaldi-cot.jinja"


def _reply(request, j):
    return "Two plus two is four.\nThe answer is 4."


def _dataset(tmp_path: Path, template: str) -> SimpleNamespace:
    """A CoT build made with `template`, as `training_splits` hands it to the record."""
    source = tmp_path / "q.jsonl"
    source.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    run = tmp_path / "run"
    build("cot", run, teachers={"teacher": FakeTeacher(_reply)}, source=f"file:{source}", samples=1, template=template)
    return SimpleNamespace(resolved=resolve_dataset(str(run)), split="train", rows=1, columns=("prompt", "completion"),
                           dropped=(), where=None, rows_before=1)  # fmt: skip


def _record(dataset: dict, out: Path) -> dict:
    """A training record as toolkit.training.run writes it (the parts the card reads)."""
    return {
        "trainer": "sft", "output_dir": str(out), "dataset": dataset,
        "recipe": {"path": "recipes/cot/smollm2-135m-lora.yaml", "sha256": "0" * 64, "overrides": {}},
        "model": {"base_model": "HuggingFaceTB/SmolLM2-135M-Instruct", "path": "HuggingFaceTB/SmolLM2-135M-Instruct"},
        "peft": None, "loss": None, "outputs": {"merged": None},
        "training": {"global_steps": 2, "seconds": 4.0, "seconds_per_step": 2.0, "train_loss": 1.5},
    }  # fmt: skip


def test_the_record_and_card_name_a_shipped_prompt(tmp_path):
    data = _dataset(tmp_path, "ranaldi-cot")
    prompt = P.dataset_record(data)["prompt"]
    digest = hashlib.sha256(RANALDI.read_bytes()).hexdigest()
    assert prompt == {"name": "ranaldi-cot", "sha256": digest, "shipped": True, "text": RANALDI.read_text()}
    card = P.model_card(_record(P.dataset_record(data), tmp_path / "student"))
    assert (f"| prompt | `ranaldi-cot` (shipped with hubtool, sha256 {digest[:12]}): what the rows ask; "
            "`hubtool eval` asks with it by default |") in card  # fmt: skip


def test_a_users_prompt_file_is_named_by_file_name_and_hash_not_its_folder(tmp_path):
    mine = tmp_path / "private-folder" / "short.jinja"
    mine.parent.mkdir()
    mine.write_text("Q: {{ question }}\nWrite your reasoning, then: The answer is ___ ({{ answer_hint }}).")
    dataset = P.dataset_record(_dataset(tmp_path, str(mine)))
    prompt = dataset["prompt"]
    assert (prompt["name"], prompt["shipped"]) == ("short.jinja", False)
    assert prompt["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()
    card = P.model_card(_record(dataset, tmp_path / "student"))
    assert f"`short.jinja` (own file, sha256 {prompt['sha256'][:12]})" in card and "private-folder" not in card


def test_a_dataset_without_a_manifest_records_no_prompt(tmp_path):
    assert P.prompt_record(SimpleNamespace(local=True, path=str(tmp_path))) is None
    card = P.model_card(_record({"name": "x", "local": True, "path": "x", "split": "train", "rows": 1, "prompt": None},
                                tmp_path / "student"))  # fmt: skip
    assert "| prompt | not recorded by the dataset (`hubtool eval` asks with each task's own prompt) |" in card


# --- hubtool eval picks it ---------------------------------------------------------------------------------
def _student(tmp_path: Path, prompt: dict | None) -> Path:
    """A trained student's folder as hubtool writes it: weights config and the training record."""
    out = tmp_path / "student"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / P.PROVENANCE).write_text(json.dumps({"dataset": {"name": "d", "prompt": prompt}}))
    return out


@pytest.fixture
def asked(monkeypatch):
    """Runs `hubtool eval` up to the model: records the task objects lm-eval would be given."""
    import lm_eval

    seen = {}

    def fake_evaluate(model, tasks, **_kwargs):
        seen["tasks"] = tasks
        configs = {t.config.task: {"metadata": dict(t.config.metadata)} for t in tasks}
        return {"results": {t.config.task: {"exact_match,strict-match": 0.5} for t in tasks}, "configs": configs,
                "config": {}, "samples": {}}  # fmt: skip

    monkeypatch.setattr("toolkit.evaluate.run.load_lm", lambda spec, batch_size: object())
    monkeypatch.setattr(lm_eval, "simple_evaluate", fake_evaluate)
    return seen


def _first_prompt(seen) -> tuple[str, str]:
    """(the question of the first document lm-eval would ask, the prompt it would ask it with)."""
    task = seen["tasks"][0]
    doc = next(iter(task.eval_docs))
    return doc["question"], task.doc_to_text(doc)


def test_eval_asks_a_student_with_its_training_prompt(tmp_path, asked):
    ranaldi = {"name": "ranaldi-cot", "sha256": "x", "shipped": True, "text": RANALDI.read_text()}
    student = _student(tmp_path, ranaldi)
    result = CliRunner().invoke(main, ["eval", "-m", str(student), "-t", "gym_chain_sum", "-o", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    question, text = _first_prompt(asked)
    assert text == f"Question: {question}\nAnswer: Let's think step by step"  # the paper's prompt, a number question
    assert "| model | gym_chain_sum [ranaldi-cot] | ID avg | OOD avg |" in result.output
    assert "asked with its training prompt `ranaldi-cot`" in result.output


def test_the_prompt_option_overrides_the_training_prompt(tmp_path, asked):
    student = _student(tmp_path, {"name": "ranaldi-cot", "sha256": "x", "shipped": True, "text": RANALDI.read_text()})
    args = ["eval", "-m", str(student), "-t", "gym_chain_sum", "--prompt", "cot", "-o", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    question, text = _first_prompt(asked)
    assert text.startswith(f"Question: {question}\n\nLet's think step by step, writing out each step of your reasoning. Then write a last line of the form")
    assert text.endswith("in place of the blank:\nThe answer is ___.")
    assert "gym_chain_sum [cot]" in result.output


def test_a_students_own_prompt_file_is_asked_from_its_recorded_text(tmp_path, asked):
    text = "Solve this: {{ question }}\nEnd with: The answer is ___."
    student = _student(tmp_path, {"name": "mine.jinja", "sha256": "ab" * 32, "shipped": False, "text": text})
    result = CliRunner().invoke(main, ["eval", "-m", str(student), "-t", "gym_chain_sum", "-o", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    question, asked_with = _first_prompt(asked)
    assert asked_with == f"Solve this: {question}\nEnd with: The answer is ___." and "gym_chain_sum [mine.jinja]" in result.output


def test_a_model_without_a_record_is_asked_with_the_tasks_prompt(tmp_path, asked):
    student = _student(tmp_path, None)
    args = ["eval", "-m", str(student), "-t", "gym_chain_sum,gym_chain_sum_ranaldi", "-o", str(tmp_path / "e")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "gym_chain_sum [cot] | gym_chain_sum_ranaldi [ranaldi-cot] |" in result.output


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("nope", "no prompt template 'nope'"),
     ("counterfactual_cot", "--prompt counterfactual_cot: the eval tasks cannot fill input_name, labels, shown")],
)  # fmt: skip
def test_a_prompt_the_tasks_cannot_ask_with_is_one_line(tmp_path, prompt, message):
    result = CliRunner().invoke(main, ["eval", "-m", "smollm2-135m", "-t", "gym_chain_sum", "--prompt", prompt])
    assert result.exit_code != 0 and message in result.output and len(result.output.strip().splitlines()) == 1


def test_report_names_different_prompts_of_one_column():
    report = R.Report(tasks=["hubtool_gsm8k"], in_domain=set())
    for model, prompt in (("a", "cot"), ("b", "ranaldi-cot")):
        report.add(model, {"results": {"hubtool_gsm8k": {"exact_match,strict-match": 0.25}},
                           "configs": {"hubtool_gsm8k": {"metadata": {"prompt": prompt}}}})  # fmt: skip
    assert "| model | gsm8k [cot / ranaldi-cot] | ID avg | OOD avg |" in R.markdown(report)
    # a prompt variant scores the same benchmark: in-domain where its base task is
    assert T.benchmark_of("hubtool_gsm8k_ranaldi") == "gsm8k"
    assert R.Report(tasks=[], in_domain={"hubtool_gsm8k"}).is_in_domain("hubtool_gsm8k_ranaldi")
