"""No prompt shows a sentence that reads as a finished answer (issue 20 item 2, issue 21 item 7).

Students trained on chain_sum answered syllogism with the prompt's own format line, `The answer is yes
or no.`, 154 times in 200 (experiments/results/cpu-effect/2026-11-25). Every template of every method and every eval
task prompt is rendered here for every answer type and label set, and read with the answer reader
(`extract_strict`, `stated_answer`) line by line and alternative by alternative: nothing may read as an
answer, except the gold answer a teacher prompt is told on purpose (counterfactual_view). A PoT prompt
may show no expression that Python evaluates to a valid answer; a judge or scorer prompt no verdict,
score or tag list that its own parser reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import load_module
from toolkit import answers, prompts
from toolkit.answer_reading import read_completion
from toolkit.methods import get_method, methods
from toolkit.records import Problem

ROOT = Path(__file__).resolve().parents[1]
# where every template is: toolkit/prompts/ and each method's own prompts/ folder
DIRS = tuple(d for m in methods() for d in m.prompt_dirs)
MIXED, EVOLVE = get_method("mixed").prompt_dirs, get_method("evolve").prompt_dirs

QUESTION = "Which animal has the most legs?"  # no digits, quotes or code: nothing in it evaluates
OPTIONS = ("a spider", "a dog", "a bird", "a snail", "a fish")
SENTIMENT = ("negative", "positive")
NLI = ("entailment", "neutral", "contradiction")
EMOTIONS = ("anger", "fear", "joy", "love", "sadness", "surprise", "disgust")  # more than six: not spelled out
# (answer type, options or label set, gold value, another valid answer)
CASES = {
    "number": ("number", (), "8", "6"),
    "math": ("math", (), "\\frac{1}{2}", "3"),
    "yesno": ("yesno", (), "yes", "no"),
    "option": ("option", OPTIONS, "A", "C"),
    "sentiment": ("label", SENTIMENT, "positive", "negative"),
    "nli": ("label", NLI, "neutral", "contradiction"),
    "emotions": ("label", EMOTIONS, "joy", "fear"),
}
# Teacher prompts told the answer on purpose: the view explains the gold, the edit is told the gold and the
# target it must reach ("Correct answer: 8 ... becomes 6"). Their answer lines may state those, nothing else.
TOLD_THE_ANSWER = {"counterfactual_view": ("gold",), "counterfactual_edit": ("gold", "other")}
# Templates that still fail: strictly marked, so a fix makes the test fail until its entry is deleted.
PENDING: dict[tuple[str, str], str] = {}
_ALTERNATIVES = re.compile(r"\s+(?:and/)?or\s+|\s*/\s*|,\s*|\s+and\s+", re.I)


def read_as_answers(text: str, answer_type: str, choices=()) -> set[str]:
    """Every answer the reader finds: in the text, in each line, and in each alternative of a line, so
    "The answer is yes or no." counts as "yes" (a student copying it states one)."""
    pieces = [text, *text.splitlines()]
    pieces += [part for line in text.splitlines() for part in _ALTERNATIVES.split(line)]
    found = set()
    for piece in pieces:
        found.add(answers.extract_strict(piece, answer_type, choices))
        # Only answer statements count: an option's own line ("(A) a spider") is read as that option by
        # the fuzzy rule (the paper's difflib match), but listing the options is the question, not a format line.
        reading = read_completion(piece, answer_type, choices)
        found.add(reading.value if reading.rule == "strict" else None)
    return found - {None}


def variables(case: str) -> dict:
    """Every variable any shipped template takes, for one answer type."""
    answer_type, shown, gold, other = CASES[case]
    letters = answers.option_letters(len(shown))
    option = answer_type == "option"
    return {
        "question": QUESTION, "choices": list(zip(letters, shown)) if option else [], "exemplars": [],
        "labels": list(shown) if answer_type == "label" else [],
        "answer_hint": prompts.answer_hint(answer_type, shown if answer_type == "label" else ()),
        "answer": gold, "answer_value": gold, "refute": other, "label": gold, "target": other,
        "instruction": "Write a short poem about the sea.", "answer_a": "Waves.", "answer_b": "Salt.",
        "action": "deepen", "directive": "Ask for one more constraint.",
        "low": 1, "high": 5, "input_name": "question", "shown": f"Question: {QUESTION}",
        "questions": ["Write a short poem about the sea.", "Now make it rhyme."], "answers": ["Waves.", "Salt."],
        "references": [], "output": "Waves.", "output_a": "Waves.", "output_b": "Salt.",
    }  # fmt: skip


def _reader_args(case: str) -> tuple[str, tuple[str, ...]]:
    answer_type, shown, _, _ = CASES[case]
    return answer_type, shown


def _allowed(template: str, case: str) -> set[str]:
    answer_type, shown, gold, other = CASES[case]
    told = {"gold": gold, "other": other}
    return {answers.normalize_answer(told[k], answer_type, shown) for k in TOLD_THE_ANSWER.get(template, ())}


def _pending(template: str, case: str):
    reason = PENDING.get((template, case))
    return pytest.param(template, case, marks=pytest.mark.xfail(strict=True, reason=reason) if reason else ())


@pytest.mark.parametrize(("template", "case"), [_pending(t, c) for t in prompts.known_templates(DIRS) for c in CASES])
def test_no_template_shows_a_sentence_read_as_an_answer(template, case):
    given = variables(case)
    missing = prompts.template_variables(template, DIRS) - given.keys()
    assert not missing, f"{template} takes variables this test does not know: {missing}; add them to variables()"
    text = prompts.render(template, dirs=DIRS, **given)
    answer_type, shown = _reader_args(case)
    read = read_as_answers(text, answer_type, shown)
    assert read <= _allowed(template, case), f"{template} ({case}) reads as the answer(s) {read}:\n{text}"


def test_the_reader_check_catches_the_old_format_lines():
    """What 9fb9b19's templates rendered: each is caught (the check is not vacuous)."""
    old = 'Let\'s think step by step. Then finish with a last line of the form "The answer is {}."'
    assert read_as_answers(old.format("yes or no"), "yesno") == {"yes"}
    assert read_as_answers(old.format("negative or positive"), "label", SENTIMENT) == {"negative"}
    assert read_as_answers(old.format("<answer>"), "math") == {"<answer>"}
    assert read_as_answers(old.format("<label>"), "label") == {"<label>"}
    view = "The correct answer is positive.\nExplain step by step why the answer is not negative."
    assert read_as_answers(view, "label", SENTIMENT) == {"positive"}


def test_the_blank_is_spelled_out_for_every_answer_type():
    text = prompts.render("cot", **variables("yesno"))
    assert text.endswith("with yes or no in place of the blank:\nThe answer is ___.")
    assert prompts.render("cot", **variables("sentiment")).endswith(
        "with negative or positive in place of the blank:\nThe answer is ___.")
    assert prompts.render("cot", **variables("emotions")).endswith(
        "with the label in place of the blank:\nThe answer is ___.")
    assert prompts.render("cot", **variables("number")).endswith(
        "with the final number in place of the blank:\nThe answer is ___.")


# --- what the builders send and the eval tasks ask ----------------------------------------------------
def _problem(case: str) -> Problem:
    answer_type, shown, gold, _ = CASES[case]
    return Problem(id=case, source="t", question=QUESTION, gold=gold, answer_type=answer_type, choices=shown)


def _builder_prompts(problem: Problem) -> dict[str, str]:
    from toolkit.builders import reasoning
    from toolkit.methods import counterfactual, mixed
    from toolkit.methods.counterfactual import edits

    texts = {"cot": reasoning.prompt_messages(problem)[-1]["content"],
             "ranaldi-cot": reasoning.prompt_messages(problem, "ranaldi-cot")[-1]["content"]}
    if problem.answer_type != "math":  # mixed distillation takes no math (LaTeX) problems
        texts |= {"mixed_cot": mixed.prompt_messages(problem, "cot")[-1]["content"],
                  "pot": mixed.prompt_messages(problem, "pot")[-1]["content"]}  # fmt: skip
    if problem.answer_type in ("option", "label", "yesno"):
        others = edits.other_labels(problem)
        texts["counterfactual_cot"] = counterfactual.student_messages(problem)[-1]["content"]
        texts["counterfactual_edit"] = counterfactual.edit_messages(problem, others[0], "counterfactual_edit")[-1]["content"]
        texts["counterfactual_view"] = counterfactual.view_messages(problem, others[0], "counterfactual_view")[-1]["content"]
    return texts


@pytest.mark.parametrize("case", CASES)
def test_no_builder_prompt_reads_as_an_answer(case):
    from toolkit.methods.preference import PreferenceConfig, direct_messages

    problem = _problem(case)
    texts = _builder_prompts(problem)
    config = PreferenceConfig(out="unused", student="fake:student", source="gym:chain_sum")
    texts["direct"] = direct_messages(problem, [], config)[-1]["content"]
    answer_type, shown = _reader_args(case)
    for template, text in texts.items():
        if (template, case) in PENDING:
            continue  # failing on this branch, strictly marked in the template test above
        read = read_as_answers(text, answer_type, shown)
        assert read <= _allowed(template, case), f"{template} ({case}) reads as {read}:\n{text}"


def _docs() -> list[dict]:
    docs = []
    for case in CASES:
        answer_type, shown, gold, _ = CASES[case]
        docs.append({"id": case, "question": QUESTION, "choices": list(shown), "gold": gold,
                     "answer_type": answer_type, "rationale": ""})  # fmt: skip
    return docs


def test_no_eval_task_prompt_reads_as_an_answer():
    common = load_module(ROOT / "eval_tasks" / "_common" / "utils.py", "hubtool_fmt_common")
    mixed = load_module(ROOT / "eval_tasks" / "mixed" / "utils.py", "hubtool_fmt_mixed")
    cf = load_module(ROOT / "eval_tasks" / "counterfactual" / "utils.py", "hubtool_fmt_cf")
    makers = {"cot": common.doc_to_text, "ranaldi": common.doc_to_text_ranaldi,
              "mixed cot": lambda d: mixed.doc_to_text({**d, "mode": "cot"}),
              "mixed pot": lambda d: mixed.doc_to_text({**d, "mode": "pot"})}  # fmt: skip
    for doc in _docs():
        texts = {name: make(doc) for name, make in makers.items() if doc["answer_type"] != "math" or "mixed" not in name}
        if doc["answer_type"] == "label" and ("counterfactual_cot", doc["id"]) not in PENDING:
            texts["counterfactual"] = cf.doc_to_text(doc)
        for name, text in texts.items():
            read = read_as_answers(text, doc["answer_type"], tuple(doc["choices"]))
            assert not read, f"eval task prompt {name} ({doc['id']}) reads as {read}:\n{text}"


# --- PoT: no copyable expression (issue 21 item 7) ------------------------------------------------------
def copyable_values(text: str) -> list[object]:
    """Whatever Python makes of the prompt's code-like pieces: quoted strings, bracketed groups, backticked
    code, and every run of up to eight words (`("yes" or "no")` is "yes")."""
    words = text.split()
    pieces = [" ".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, min(i + 9, len(words) + 1))]
    for pattern in (r"\"[^\"\n]*\"", r"'[^'\n]*'", r"\([^()\n]*\)", r"`+([^`\n]+)`+"):
        pieces += re.findall(pattern, text)
    values = []
    for piece in pieces:
        piece = piece.strip().rstrip(".,;:")
        try:
            values.append(eval(piece, {"__builtins__": {}}, {}))  # noqa: S307 (our own prompt text, no builtins)
        except Exception:  # noqa: BLE001, S112 (most pieces are prose)
            continue
    return values


@pytest.mark.parametrize("case", CASES)
def test_the_pot_prompt_shows_no_expression_that_is_an_answer(case):
    from toolkit.methods import mixed

    problem = _problem(case)
    texts = [prompts.render("pot", dirs=MIXED, **variables(case))]
    texts += [mixed.prompt_messages(problem, "pot")[-1]["content"]] if case != "math" else []  # mixed takes no math
    for text in texts:
        valid = [v for v in copyable_values(text) if answers.normalize_answer(str(v), problem.answer_type, problem.choices)]
        assert not valid, f"the PoT prompt ({case}) shows code that evaluates to an answer: {valid}\n{text}"


def test_the_copyable_check_catches_the_old_pot_hints():
    old = "Write a Python program that stores the final answer ({}) in a variable named `ans`."
    assert "yes" in copyable_values(old.format('"yes" or "no"'))
    assert "B" in copyable_values(old.format('the letter of the option, a string such as "B"'))


# --- judge and scorer prompts: their own parsers read nothing -------------------------------------------
def test_the_judge_prompt_shows_no_verdict():
    from toolkit.evaluate.judge import parse_verdict

    text = prompts.render("judge_pairwise", **variables("number"))
    assert parse_verdict(text) is None, text
    assert parse_verdict('the verdict: [[A]] if A is better, [[B]] if B is better, [[C]] for a tie.') == "C"


@pytest.mark.parametrize("template", ["evolve_quality", "evolve_complexity"])
def test_the_scorer_prompts_show_no_score(template):
    from toolkit.methods.evolve.scoring import parse_score

    assert parse_score(prompts.render(template, dirs=EVOLVE, **variables("number"))) is None


def test_the_diversity_prompt_shows_no_tag_list():
    from toolkit.methods.evolve.scoring import parse_tags

    assert parse_tags(prompts.render("evolve_diversity", dirs=EVOLVE, **variables("number"))) is None
