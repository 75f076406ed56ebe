"""The mixed-distillation eval tasks (eval_tasks/mixed/): generated files current, every task resolved
by lm-eval with the builder's own prompts, programs run in the sandbox by the filter, the mixed task's
two requests and vote, and the report's modes side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_module
from toolkit.methods.mixed import prompt_messages
from toolkit.records import Problem
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "eval_tasks" / "mixed"
FIXTURES = ROOT / "tests" / "fixtures" / "eval"
MISS = "[invalid]"


@pytest.fixture(scope="module")
def hooks():
    return load_module(FOLDER / "utils.py", "hubtool_mixed_eval_hooks")


@pytest.fixture(scope="module")
def catalog(manager):
    return T.catalog(manager)


@pytest.fixture(scope="module")
def mixed_names(catalog) -> list[str]:
    return [t for t in catalog.tasks if t.startswith("hubtool_mixed_")]


@pytest.fixture(scope="module")
def tasks(manager, mixed_names) -> dict:
    return dict(zip(mixed_names, T.load_tasks(manager, mixed_names, FIXTURES), strict=True))


def test_generated_files_are_current():
    generator = load_module(ROOT / "eval_tasks" / "generate_tasks.py", "hubtool_generate_tasks")
    mixed = generator.mixed_outputs()
    stale = [str(p.relative_to(ROOT)) for p, text in mixed.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"re-run python eval_tasks/generate_tasks.py; stale: {stale}"
    assert {p for p in FOLDER.rglob("hubtool_*.yaml")} == set(mixed)


def test_three_modes_per_benchmark_and_the_suites(catalog, mixed_names):
    benchmarks = ["gsm8k", "svamp", "asdiv", "gym_gsm_symbolic", "gym_basic_arithmetic", "gym_chain_sum", "gym_leg_counting"]
    assert sorted(mixed_names) == sorted(f"hubtool_mixed_{b}_{m}" for b in benchmarks for m in ("cot", "pot", "mixed"))
    assert set(catalog.suites["mixed_math"]) == {f"hubtool_mixed_{b}_{m}" for b in benchmarks[:3] for m in ("cot", "pot", "mixed")}
    assert catalog.in_domain["mixed_gym"] == tuple(f"hubtool_mixed_gym_gsm_symbolic_{m}" for m in ("cot", "pot", "mixed"))


# The two user turns a mixed student is trained on, written out here (not rendered by the prompt code the
# builder and the tasks share): every mixed benchmark has number answers.
TURNS = {
    "cot": "Answer with a chain of thought (CoT).\n\nQuestion: {question}\n\nLet's think step by step, writing out "
           "each step of your reasoning. Then write a last line of the form below, with the final number in place "
           "of the blank:\nThe answer is ___.",
    "pot": "Answer with a program of thought (PoT).\n\nQuestion: {question}\n\nWrite a Python program that solves the "
           "problem step by step and stores the final answer, the final number, in a variable named `ans` (a number, "
           "or a string for a word or a letter). Reply with the program only, in one ```python code block.",
}  # fmt: skip


def test_tasks_ask_exactly_what_the_builder_trains_on(tasks):
    for name, task in tasks.items():
        mode = name.rsplit("_", 1)[1]
        docs = list(task.eval_docs)
        assert docs and all(d["mode"] == mode and d["answer_type"] == "number" for d in docs), name
        doc = docs[0]
        problem = Problem(id="x", source="eval", question=doc["question"], gold=doc["gold"],
                          answer_type=doc["answer_type"], choices=tuple(doc["choices"]))  # fmt: skip
        prompt_mode = "pot" if mode == "pot" else "cot"  # the mixed task's PoT turn is made per request
        expected = TURNS[prompt_mode].format(question=doc["question"])
        assert task.doc_to_text(doc) == expected, name
        assert prompt_messages(problem, prompt_mode)[-1]["content"] == expected, name  # what a build sends
        assert task.config.num_fewshot == 0 and task.config.repeats == (4 if mode == "mixed" else 1)
        assert type(task).__name__ == ("MixedModeTask" if mode == "mixed" else "ConfigurableTask")
    [gsm8k, *_] = tasks["hubtool_mixed_gsm8k_pot"].eval_docs  # tests/fixtures/eval/gsm8k.jsonl, row 1
    assert (gsm8k["question"], gsm8k["gold"]) == ("Tom has 3 apples and buys 4 more. How many apples does he have?", "7")


def test_benchmarks_read_the_same_documents_as_the_cot_tasks(manager, tasks):
    base = dict(zip(["hubtool_gsm8k", "hubtool_gym_chain_sum"],
                    T.load_tasks(manager, ["hubtool_gsm8k", "hubtool_gym_chain_sum"], FIXTURES)))  # fmt: skip
    for bench, task in base.items():
        ours = [{k: d[k] for k in ("id", "question", "gold")} for d in tasks[f"hubtool_mixed_{bench.removeprefix('hubtool_')}_pot"].eval_docs]
        theirs = [{k: d[k] for k in ("id", "question", "gold")} for d in task.eval_docs]
        assert ours == theirs


NUMBER = {"answer_type": "number", "choices": [], "gold": "7"}


@pytest.mark.parametrize(
    ("text", "mode", "strict", "flexible"),
    [
        ("3 + 4 = 7.\nThe answer is 7.", "cot", "7", "7"),
        ("3 + 4 makes 7", "cot", MISS, "7"),
        ("```python\nans = 3 + 4\n```", "pot", "7", "7"),
        ("x = 3\nans = x + 4", "pot", "7", "7"),  # bare code
        ("```python\nans = 14 / 2\n```", "pot", "7", "7"),  # 7.0 -> "7"
        ("```python\nans = 1 / 0\n```\nThe answer is 7.", "pot", MISS, "7"),  # the program fails; flexible reads the text
        ("```python\nimport os\nans = os.fork()\n```", "pot", MISS, MISS),  # contained, no answer
        ("```python\nwhile True: pass\n```", "pot", MISS, MISS),
        ("I think it is 7.", "pot", MISS, "7"),  # no program at all
        ("", "pot", MISS, MISS),
    ],
)
def test_mode_filter_on_raw_generations(hooks, text, mode, strict, flexible, monkeypatch):
    monkeypatch.setattr(hooks, "_box", None)
    from toolkit.sandbox import Sandbox

    box = Sandbox(hooks.sandbox_limits(wall_s=1.0))
    monkeypatch.setattr(hooks, "_sandbox", lambda: box)
    try:
        doc = {**NUMBER, "mode": mode}
        for extract, expected in (("strict", strict), ("flexible", flexible)):
            assert hooks.ModeFilter(extract=extract).apply([[text]], [doc]) == [[expected]], extract
    finally:
        box.close()


NEGATIVE = {"answer_type": "number", "choices": [], "gold": "-4", "question": "What is 3 - 7?", "mode": "pot"}
ESCAPE = "import socket\ntry:\n    socket.socket().connect(('10.0.0.1', 80))\nexcept Exception:\n    pass\nans = -4"


@pytest.mark.parametrize(
    ("program", "expected"),
    [
        ("ans = 3 - 7", "-4"),
        ("ans = -4.0", "-4"),
        ("ans = -4.001", "-4"),  # one number, at the gold's precision (whole numbers), as the builder checks it
        ("ans = [-4, 17, 99]", MISS),  # candidates, not an answer
        ("ans = '-4\\n17'", MISS),  # one per line: candidates too
        (ESCAPE, MISS),  # it tried to reach the network: no answer, whatever it left in `ans`
        ("import os\ntry:\n    os.system('id')\nexcept Exception:\n    pass\nans = -4", MISS),
        ("ans = -5", "-5"),
    ],
)
def test_a_students_program_is_read_by_the_builders_rule_in_the_sandbox(hooks, program, expected, monkeypatch):
    from toolkit.sandbox import Sandbox

    box = Sandbox(hooks.sandbox_limits(wall_s=2.0))
    monkeypatch.setattr(hooks, "_sandbox", lambda: box)
    try:
        text = f"```python\n{program}\n```"
        assert hooks.ModeFilter(extract="strict").apply([[text]], [NEGATIVE]) == [[expected]]
        assert hooks.process_results(NEGATIVE, [expected]) == {"exact_match": float(expected == "-4")}
    finally:
        box.close()


@pytest.mark.parametrize(
    ("results", "score"),
    [(["7"], 1.0), ([MISS], 0.0), (["8"], 0.0),
     ([["7", "8", MISS, "8"], ["7", "7", MISS, MISS]], 1.0),  # 3 x 7 beat 2 x 8 across both modes
     ([["7", "8", "8", MISS], ["7", MISS, MISS, MISS]], 1.0),  # a tie goes to the earliest ...
     ([["8", "7", "8", MISS], ["7", MISS, MISS, MISS]], 0.0),  # ... either way
     ([[MISS, MISS], ["8", "8"]], 0.0), ([[MISS], [MISS]], 0.0)],
)  # fmt: skip
def test_process_results_votes_over_both_modes(hooks, results, score):
    assert hooks.process_results(NUMBER, results) == {"exact_match": score}


def test_the_mixed_task_asks_twice_and_votes_over_both(tasks, hooks):
    """Two requests per document in a real chat context (only the user turn differs), the filters as
    the YAML wires them, and the evaluator's call of process_results."""
    from transformers import AutoTokenizer

    from toolkit.teachers.models import resolve_model_path

    task = tasks["hubtool_mixed_gsm8k_mixed"]
    doc = list(task.eval_docs)[0]  # Tom has 3 apples and buys 4 more: gold 7
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("smollm2-135m"))
    ctx = task.fewshot_context(doc, num_fewshot=0, apply_chat_template=True,
                               chat_template=lambda h, add_generation_prompt=True: tokenizer.apply_chat_template(
                                   h, tokenize=False, add_generation_prompt=add_generation_prompt))  # fmt: skip
    cot, pot = task.construct_requests(doc, ctx, metadata=(task.config.task, 0, 4), apply_chat_template=True)
    assert (cot.idx, pot.idx, cot.doc["mode"], pot.doc["mode"]) == (0, 1, "cot", "pot")
    assert cot.arguments[0] == ctx and cot.arguments[1]["do_sample"] and cot.repeats == pot.repeats == 4
    cot_text, pot_text = (hooks.doc_to_text({**doc, "mode": m}) for m in ("cot", "pot"))
    assert pot.arguments[0] == ctx.replace(cot_text, pot_text) and "<|im_start|>assistant" in pot.arguments[0]
    cot.resps = ["The answer is 8.", "3 + 4 = 7. The answer is 7.", "no idea", "The answer is 8."]
    pot.resps = ["```python\nans = 3 + 4\n```", "ans = 7", "```python\nans = (\n```", "x = 1"]
    for ensemble in task._filters:
        ensemble.apply([cot, pot])
    strict = task.process_results(doc, [cot.filtered_resps["strict-match"], pot.filtered_resps["strict-match"]])
    assert cot.filtered_resps["strict-match"] == ["8", "7", MISS, "8"]
    assert pot.filtered_resps["strict-match"] == ["7", "7", MISS, MISS]
    assert strict == {"exact_match": 1.0}  # CoT alone would have voted 8


def test_the_pot_request_swaps_only_the_user_turn_for_every_kind_of_context(hooks):
    from lm_eval.models.api_models import JsonChatStr

    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "COT?"}]
    assert hooks.swap_user_turn("<s>COT?</s><a>", "COT?", "POT?") == "<s>POT?</s><a>"
    assert hooks.swap_user_turn(messages, "COT?", "POT?") == [messages[0], {"role": "user", "content": "POT?"}]
    api = hooks.swap_user_turn(JsonChatStr(json.dumps(messages)), "COT?", "PoT: é")
    assert isinstance(api, JsonChatStr) and json.loads(api.prompt)[1] == {"role": "user", "content": "PoT: é"}
    with pytest.raises(ValueError, match="did not find"):
        hooks.swap_user_turn("no prompt here", "COT?", "POT?")


def test_local_data_of_a_mode_task_is_its_benchmarks_file(manager):
    from lm_eval.tasks._yaml_loader import load_yaml

    cfg = load_yaml(manager.task_index["hubtool_mixed_svamp_pot"].yaml_path, resolve_func=False)
    assert T.local_data_file(Path("d"), "hubtool_mixed_svamp_pot", cfg["metadata"]["benchmark"]) == Path("d/svamp.jsonl")


def test_report_puts_the_modes_side_by_side(tmp_path):
    from toolkit.evaluate.report import Report, markdown

    names = [f"hubtool_mixed_gsm8k_{m}" for m in ("cot", "pot", "mixed")]
    report = Report(tasks=names, in_domain=set(names))
    results = {
        "results": {n: {"exact_match,strict-match": s, "exact_match,flexible-extract": s} for n, s in zip(names, (0.25, 0.5, 0.75))},
        "configs": {n: {"metadata": {"benchmark": "gsm8k", "mode": n.rsplit("_", 1)[1]}} for n in names},
    }  # fmt: skip
    report.add("student", results)
    text = markdown(report)
    assert "| model | benchmark | cot | pot | mixed |" in text and "| student | gsm8k | 25.0 | 50.0 | 75.0 |" in text
    assert report.to_dict()["modes"][names[1]] == ["gsm8k", "pot"]


@pytest.mark.slow
def test_every_mixed_task_runs_with_the_default_model(manager, mixed_names, small_torch):
    """All 21 tasks, one document each, through lm-eval with the real default model (mixed: 2+2 samples)."""
    from lm_eval import simple_evaluate

    from toolkit.evaluate.models import load_lm, model_spec

    tasks = T.load_tasks(manager, mixed_names, FIXTURES)
    for task in tasks:
        if task.config.repeats > 1:
            task.set_config("repeats", 2)
    lm = load_lm(model_spec("smollm2-135m"), batch_size=8)
    results = simple_evaluate(model=lm, tasks=tasks, task_manager=manager, limit=1, apply_chat_template=True,
                              gen_kwargs={"max_gen_toks": 16}, bootstrap_iters=0)  # fmt: skip
    for name in mixed_names:
        metrics = results["results"][name]
        for f in ("strict-match", "flexible-extract"):
            assert 0.0 <= metrics[f"exact_match,{f}"] <= 1.0, (name, metrics)
        for sample in results["samples"][name]:
            assert len(sample["resps"]) == (2 if name.endswith("_mixed") else 1)
            assert all(len(r) == (2 if name.endswith("_mixed") else 1) for r in sample["resps"])
