"""Self-refine preference pairs: the pair rules on crafted samples, and builds through build_dataset."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.assertions import assert_one_line, raises_one_line
from toolkit import prompts
from toolkit.builders.reasoning import prompt_messages
from toolkit.cli import main
from toolkit.methods.preference.pairs import Candidate, PairRules, make_pairs, normalize_text
from toolkit.teachers.base import CallFailure, Request

from .fakes import FakeTeacher, build
from .fakes import rows as _rows


def right(text: str = "2 + 2 = 4.\nThe answer is 4.", idx: int | None = 0) -> Candidate:
    return Candidate(text, "4", True, "student", idx)


def wrong(text: str = "2 + 2 = 5.\nThe answer is 5.", idx: int | None = 1) -> Candidate:
    return Candidate(text, "5", False, "student", idx)


DIRECT = Candidate("The answer is 5.", "5", False, "direct")
TEACHER = Candidate("Two and two make four.\nThe answer is 4.", "4", True, "teacher")


def texts(outcome) -> list[tuple[str, str]]:
    return [(p.chosen.text, p.rejected.text) for p in outcome.pairs]


# --- the pair rules -------------------------------------------------------------------------------

C0, C1, C2 = right("c0", 0), right("c1", 2), right("c2", 4)
W0, W1, W2 = wrong("w0", 1), wrong("w1", 3), wrong("w2", 5)


@pytest.mark.parametrize(
    ("samples", "rules", "extra", "pairs", "skipped"),
    [
        # one of each: the plain case
        ([C0, W0], PairRules(), {}, [("c0", "w0")], None),
        # all correct: skipped by default, even when a direct answer could be rejected
        ([C0, C1], PairRules(), {}, [], "all_correct"),
        ([C0, C1], PairRules(rejected="direct"), {"direct": [DIRECT]}, [], "all_correct"),
        # ... and paired against the direct answer with keep_solved
        ([C0, C1], PairRules(rejected="direct", keep_solved=True), {"direct": [DIRECT]},
         [("c0", DIRECT.text), ("c1", DIRECT.text)], None),
        # none correct: no chosen side, unless the teacher's rationale may stand in
        ([W0, W1], PairRules(), {"teacher": [TEACHER]}, [], "none_correct"),
        ([W0, W1], PairRules(fallback="teacher", pairs_per_prompt=1), {"teacher": [TEACHER]},
         [(TEACHER.text, "w0")], None),
        # the teacher never replaces a correct sample of the student's own
        ([C0, W0], PairRules(fallback="teacher"), {"teacher": [TEACHER]}, [("c0", "w0")], None),
        # ties: each next pair takes the least-used chosen and rejected, earliest first
        ([C0, W0, C1, W1], PairRules(pairs_per_prompt=2), {}, [("c0", "w0"), ("c1", "w1")], None),
        ([C0, W0, W1, W2], PairRules(pairs_per_prompt=2), {}, [("c0", "w0"), ("c0", "w1")], None),
        # the cap
        ([C0, C1, C2, W0, W1, W2], PairRules(pairs_per_prompt=1), {}, [("c0", "w0")], None),
        ([C0, C1, W0, W1], PairRules(pairs_per_prompt=10), {},
         [("c0", "w0"), ("c1", "w1"), ("c0", "w1"), ("c1", "w0")], None),
        # duplicates (case and whitespace do not count) make one candidate
        ([C0, W0, wrong("W0 ", 3), wrong(" w0", 5)], PairRules(pairs_per_prompt=5), {}, [("c0", "w0")], None),
        ([C0, right("C0", 2), W0], PairRules(pairs_per_prompt=5), {}, [("c0", "w0")], None),
        # rejected modes
        ([C0, W0], PairRules(rejected="direct"), {"direct": [DIRECT]}, [("c0", DIRECT.text)], None),
        ([C0, W0], PairRules(rejected="direct"), {}, [], "no_rejected"),
        ([C0, W0, W1], PairRules(rejected="both", pairs_per_prompt=2), {"direct": [DIRECT]},
         [("c0", "w0"), ("c0", DIRECT.text)], None),
        ([C0, W0, W1], PairRules(rejected="both", pairs_per_prompt=3), {"direct": [DIRECT]},
         [("c0", "w0"), ("c0", DIRECT.text), ("c0", "w1")], None),
        # a direct answer that is right is still the plain side of the contrast
        ([C0, W0], PairRules(rejected="direct"), {"direct": [Candidate("4", "4", True, "direct")]}, [("c0", "4")], None),
        # the paper's DPO_CoT: every correct sample against a direct answer, solved problems included
        ([C0, C1, C2], PairRules(rejected="direct", keep_solved=True, pairs_per_prompt=0),
         {"direct": [DIRECT, Candidate("d1", "3", False, "direct"), Candidate("d1 ", "3", False, "direct")]},
         [("c0", DIRECT.text), ("c1", "d1"), ("c2", DIRECT.text)], None),
        ([C0, W0, W1], PairRules(pairs_per_prompt=0), {}, [("c0", "w0")], None),  # one per correct sample
        # chosen and rejected never have the same text
        ([right("The answer is 4."), W0], PairRules(rejected="direct"),
         {"direct": [Candidate("the answer  is 4.", "4", True, "direct")]}, [], "identical"),
    ],
)  # fmt: skip
def test_pair_rules(samples, rules, extra, pairs, skipped):
    outcome = make_pairs(samples, rules, **extra)
    assert texts(outcome) == pairs
    assert outcome.skipped == skipped
    assert outcome.pass_rate == sum(s.correct for s in samples) / len(samples)
    assert make_pairs(samples, rules, **extra) == outcome  # deterministic given the samples


def test_pairs_are_distinct_and_never_same_text():
    samples = [right(f"r{i % 3}", i) for i in range(6)] + [wrong(f"w{i % 2}", 6 + i) for i in range(6)]
    outcome = make_pairs(samples, PairRules(rejected="both", pairs_per_prompt=50), direct=[Candidate("R0", "4", True, "direct")])
    keys = [(normalize_text(p.chosen.text), normalize_text(p.rejected.text)) for p in outcome.pairs]
    assert len(keys) == len(set(keys)) == 3 * 3 - 1  # 3 chosen x (2 wrong + direct), less r0 vs "R0"
    assert all(c != r for c, r in keys)
    assert {p.rejected_from for p in outcome.pairs} == {"wrong", "direct"}
    assert {p.chosen_from for p in outcome.pairs} == {"student"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rejected": "worse"}, "--rejected"),
        ({"fallback": "gold"}, "--fallback"),
        ({"pairs_per_prompt": -1}, "--pairs-per-prompt"),
        ({"keep_solved": True}, "--keep-solved"),
    ],
)
def test_bad_rules_are_user_errors(kwargs, message):
    with raises_one_line(match=message):
        PairRules(**kwargs)


def test_direct_prompt_renders_without_step_by_step():
    prompts.check_template("direct", {"question", "choices", "answer_hint"})
    text = prompts.render("direct", question="Which is red?", choices=[("A", "sky"), ("B", "blood")], answer_hint="the letter of the correct option")
    assert text.startswith("Question: Which is red?\nOptions:\n(A) sky\n(B) blood\n")
    assert text.endswith("Reply with one line of the form below, with the letter of the correct option in place of the "
                         "blank:\nThe answer is ___.")
    assert "step by step" not in text


# --- builds through build_dataset -----------------------------------------------------------------

QUESTIONS = [("What is 2 + 2?", "4"), ("What is 3 + 3?", "6"), ("What is 5 + 5?", "10"), ("What is 1 + 1?", "2")]


def _source(tmp_path) -> str:
    path = tmp_path / "problems.jsonl"
    path.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in QUESTIONS))
    return f"file:{path}"


def student_answer(request: Request, j: int) -> str:
    """2 + 2: half right; 3 + 3: always right; 5 + 5: never right; 1 + 1: the call fails.
    A direct request (no "step by step") answers 7, wrong every time."""
    content = request.messages[-1]["content"]
    if "1 + 1" in content:
        return CallFailure("HTTP 500")
    if "step by step" not in content:
        return "The answer is 7."
    if "2 + 2" in content:
        return f"2 + 2 = 4 (path {j})\nThe answer is 4." if j % 2 == 0 else f"2 + 2 = 22 (path {j})\nThe answer is 22."
    if "3 + 3" in content:
        return f"3 + 3 = 6, path {j}. So the answer is 6"
    return f"5 + 5 = 11 (path {j}).\nThe answer is 11."


def _build(tmp_path, out="pref", answer=student_answer, **fields):
    student = FakeTeacher(answer, model="student")
    if "from_dataset" not in fields:
        fields.setdefault("source", _source(tmp_path))
    manifest = build("preference", tmp_path / out, teachers={"student": student}, student="fake:student", **fields)
    return manifest, _rows(tmp_path / out), student


def test_build_rows_counts_and_manifest(tmp_path):
    manifest, rows, student = _build(tmp_path, samples=4, max_new_tokens=64)
    c = manifest.counts
    assert (c["problems"], c["samples"], c["correct"], c["failed"]) == (4, 12, 2 + 4, 1)
    assert (c["all_correct"], c["none_correct"], c["skipped"], c["pairs"]) == (1, 1, 2, 2)
    assert manifest.stats["pass_rate_histogram"] == {"0": 1, "0.25": 0, "0.5": 1, "0.75": 0, "1": 1}
    assert manifest.stats["skipped_reasons"] == {"all_correct": 1, "none_correct": 1}
    assert manifest.method == "preference" and manifest.row_format.kind == "preference"
    assert manifest.teacher_identity == "fake:student@r1" and manifest.config["rejected"] == "wrong"
    assert [m.role for m in manifest.models] == ["student"]
    assert [r["pass_rate"] for r in rows] == [0.5, 0.5]
    assert rows[0]["prompt"] == [{"role": "user", "content": student.calls[0].messages[0]["content"]}]
    assert [(r["chosen_idx"], r["rejected_idx"]) for r in rows] == [(0, 1), (2, 3)]
    first = rows[0]
    assert first["chosen"] == [{"role": "assistant", "content": "2 + 2 = 4 (path 0)\nThe answer is 4."}]
    assert first["rejected"] == [{"role": "assistant", "content": "2 + 2 = 22 (path 1)\nThe answer is 22."}]
    assert (first["gold"], first["chosen_pred"], first["rejected_pred"]) == ("4", "4", "22")
    assert (first["chosen_from"], first["rejected_from"], first["student"]) == ("student", "wrong", "fake:student@r1")
    assert all(r["samples"] == 4 and r["answer_type"] == "number" for r in rows)
    # both pairs of 2 + 2 have sides of the same lengths as the first pair's
    assert manifest.stats["mean_chars"] == {"chosen": 35.0, "rejected": 37.0}
    assert (len(first["chosen"][0]["content"]), len(first["rejected"][0]["content"])) == (35, 37)
    failed = (tmp_path / "pref" / "failed.jsonl").read_text().splitlines()
    assert [json.loads(f)["request"] for f in failed] == ["cot"]


def test_prompt_is_the_cot_builders(tmp_path):
    _, rows, student = _build(tmp_path, samples=2, system="Be brief.")
    from toolkit.sources import load_source

    first = load_source(_source(tmp_path)).problems[0]
    expected = list(prompt_messages(first, system="Be brief."))
    assert list(student.calls[0].messages) == expected
    assert rows[0]["prompt"] == expected


def test_rejected_direct_and_both(tmp_path):
    manifest, rows, student = _build(tmp_path, samples=4, rejected="both", pairs_per_prompt=3, keep_solved=True)
    direct_calls = [r for r in student.calls if "step by step" not in r.messages[-1]["content"]]
    assert {(r.n, r.params.temperature) for r in direct_calls} == {(1, 0.0)}
    assert "Answer directly" in direct_calls[0].messages[-1]["content"]
    by_id: dict[str, list] = {}
    for r in rows:
        by_id.setdefault(r["question"], []).append((r["chosen_from"], r["rejected_from"], r["rejected_pred"]))
    # 2 + 2: wrong, direct, wrong; 3 + 3 is always solved but kept: only the direct answer rejects it
    assert by_id["What is 2 + 2?"] == [("student", "wrong", "22"), ("student", "direct", "7"), ("student", "wrong", "22")]
    assert by_id["What is 3 + 3?"] == [("student", "direct", "7")] * 3  # its 3 first paths vs the one direct answer
    assert all(r["rejected_idx"] is None for r in rows if r["rejected_from"] == "direct")
    chosen_3 = [r["chosen"][0]["content"] for r in rows if r["question"] == "What is 3 + 3?"]
    assert chosen_3 == [f"3 + 3 = 6, path {j}.\nThe answer is 6." for j in range(3)]  # in house form
    c = manifest.counts
    assert (c["direct"], c["direct_correct"], c["pairs"], c["skipped"]) == (3, 0, 6, 1)
    assert manifest.prompt_templates["direct"] == prompts.template_source("direct")


def test_both_sides_are_written_alike(tmp_path):
    """A rejected path gets the same house-form ending as a chosen one: no cue but the reasoning."""

    def sloppy(request: Request, j: int) -> str:
        return f"2 + 2 is {4 if j % 2 == 0 else 5}. Final answer: {4 if j % 2 == 0 else 5}" + (". Cheers!" if j > 1 else "")

    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    _, rows, _ = _build(tmp_path, answer=sloppy, source=f"file:{path}", samples=4, pairs_per_prompt=0)
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        ("2 + 2 is 4.\nThe answer is 4.", "2 + 2 is 5.\nThe answer is 5."),
        # words after the answer are the model's: both sides keep them as written
        ("2 + 2 is 4. Final answer: 4. Cheers!", "2 + 2 is 5. Final answer: 5. Cheers!"),
    ]


def test_rerun_is_served_from_the_cache(tmp_path):
    first, rows, student = _build(tmp_path, samples=4, rejected="direct")
    again, rows_again, student_again = _build(tmp_path, samples=4, rejected="direct")
    assert rows_again == rows and again.counts == first.counts
    # only the failing call is asked again (failures are not cached)
    assert [r.messages[-1]["content"] for r in student_again.calls] == [
        r.messages[-1]["content"] for r in student.calls if "1 + 1" in r.messages[-1]["content"]
    ]


def test_fallback_teacher_needs_a_dataset(tmp_path):
    with raises_one_line(match="--from-dataset"):
        _build(tmp_path, samples=2, fallback="teacher")


# --- --from-dataset: a real CoT run directory ----------------------------------------------------


def teacher_answer(request: Request, j: int) -> str:
    """The CoT teacher: right on every question, two different rationales each."""
    content = request.messages[-1]["content"]
    for q, a in QUESTIONS:
        if q in content:
            return f"Teacher rationale {j} for {q}\nThe answer is {a}."
    raise AssertionError(content)


def _cot_run(tmp_path, answer=teacher_answer, keep="correct"):
    teacher = FakeTeacher(answer, model="big-teacher")
    # A folder name of its own: datasets caches a local folder with a README by its name (not its
    # path or mtime), so two tests' "cot" folders would share one cache entry.
    out = tmp_path / f"cot-{tmp_path.name}"
    build("cot", out, teachers={"teacher": teacher}, source=_source(tmp_path), samples=2, keep=keep, system="Think.")
    return out


def test_from_dataset_reuses_prompts_and_falls_back_to_the_teacher(tmp_path):
    cot_dir = _cot_run(tmp_path)
    manifest, rows, student = _build(tmp_path, from_dataset=str(cot_dir), samples=4, fallback="teacher", pairs_per_prompt=2)
    cot_rows = _rows(cot_dir)
    assert len(cot_rows) == 8  # two rationales per problem: deduplicated by id
    assert manifest.counts["problems"] == 4 and len(student.calls) == 4
    prompts_by_id = {r["id"]: r["prompt"] for r in cot_rows}
    assert sorted(map(str, (list(c.messages) for c in student.calls))) == sorted(
        map(str, (prompts_by_id[r["id"]] for r in cot_rows[::2])))  # fmt: skip
    assert student.calls[0].messages[0] == {"role": "system", "content": "Think."}
    fallback = [r for r in rows if r["chosen_from"] == "teacher"]
    assert [r["question"] for r in fallback] == ["What is 5 + 5?"] * 2
    assert [r["chosen"][0]["content"] for r in fallback] == [
        "Teacher rationale 0 for What is 5 + 5?\nThe answer is 10.",
        "Teacher rationale 1 for What is 5 + 5?\nThe answer is 10.",
    ]
    assert all(r["chosen_idx"] is None and r["rejected_pred"] == "11" for r in fallback)
    assert manifest.counts["teacher_chosen"] == 2 and manifest.counts["none_correct"] == 1
    assert manifest.stats["cot_teacher"] == "fake:big-teacher@r1" and manifest.stats["prompts_from"] == "dataset"
    assert manifest.source["kind"] == "dataset" and manifest.source["revision"]


def test_only_correct_teacher_rationales_stand_in(tmp_path):
    def half_wrong(request: Request, j: int) -> str:
        return teacher_answer(request, j) if j == 0 else "A guess.\nThe answer is 99."

    cot_dir = _cot_run(tmp_path, half_wrong, keep="all")  # the wrong rationales are rows too
    _, rows, _ = _build(tmp_path, from_dataset=str(cot_dir), samples=4, fallback="teacher", pairs_per_prompt=2)
    fallback = [r for r in rows if r["chosen_from"] == "teacher"]
    assert [r["chosen"][0]["content"] for r in fallback] == ["Teacher rationale 0 for What is 5 + 5?\nThe answer is 10."] * 2
    assert [r["rejected_idx"] for r in fallback] == [0, 1]  # one rationale, against two different wrong paths


def test_from_dataset_limit_counts_problems(tmp_path):
    cot_dir = _cot_run(tmp_path)
    manifest, _, student = _build(tmp_path, from_dataset=str(cot_dir), samples=2, limit=2)
    assert manifest.counts["problems"] == 2 and len(student.calls) == 2


def test_from_dataset_rejects_a_dataset_that_is_not_cot(tmp_path):
    run = tmp_path / "plain"
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text(json.dumps({"text": "hello"}) + "\n")
    with raises_one_line(match="no column"):
        _build(tmp_path, from_dataset=str(run), samples=2)


# --- the CLI -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--source"),
        (["--source", "gym:basic_arithmetic", "--from-dataset", "me/cot"], "--source or --from-dataset"),
        (["--source", "gym:basic_arithmetic", "--fallback", "teacher"], "--from-dataset"),
        (["--from-dataset", "me/cot", "--system", "hi"], "--system"),
        (["--from-dataset", "me/cot", "--answer-field", "x"], "--answer-field"),
        (["--source", "gym:basic_arithmetic", "--samples", "0"], "--samples"),
        (["--source", "gym:basic_arithmetic", "--pairs-per-prompt", "-1"], "--pairs-per-prompt"),
        (["--source", "gym:basic_arithmetic", "--direct-samples", "-1"], "--direct-samples"),
        (["--source", "gym:basic_arithmetic", "--keep-solved"], "--rejected direct"),
        (["--from-dataset", "me/not-there"], "me/not-there"),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = CliRunner().invoke(
        main, ["build-dataset", "preference", "--student", "fake:right", *args, "--out", str(tmp_path / "run")]
    )
    assert_one_line(result, message, code=None)


def test_cli_requires_a_student(tmp_path):
    result = CliRunner().invoke(main, ["build-dataset", "preference", "--source", "gym:chain_sum", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "missing --student" in result.output


# --- issue 20.3: judged as the paper judged, under the paper's prompt; issue 20.1: reasoning kept -----

PLANET_PATHS = [
    "Iron oxide dust covers its surface, so it is called the Red Planet.\nAnswer: B",  # strict (an answer label)
    "Iron oxide dust covers its surface, which is why it looks red from Earth.\nMars",  # fuzzy: the option's text
    "Its thick clouds of sulphuric acid reflect sunlight, so it shines brightest.\nVenus",  # wrong: A's text
    "Iron oxide makes the surface red, so the answer is Marss.",  # fuzzy: difflib ratio 0.89
]


def test_self_refine_under_ranaldi_cot_accepts_answers_without_an_answer_line(tmp_path):
    path = tmp_path / "planet.jsonl"
    path.write_text(json.dumps({"question": "Which planet is called the Red Planet?", "choices": ["Venus", "Mars"],
                                "answer": "B"}) + "\n")  # fmt: skip
    manifest, rows, student = _build(tmp_path, answer=lambda r, j: PLANET_PATHS[j], source=f"file:{path}",
                                     choices_field="choices", template="ranaldi-cot", samples=4, pairs_per_prompt=0)  # fmt: skip
    assert student.calls[0].messages[-1]["content"].endswith("Answer: Let's think step by step")
    c = manifest.counts
    assert (c["correct"], c["accepted_strict"], c["accepted_fuzzy"], c["pairs"]) == (3, 1, 2, 3)
    assert [(r["chosen"][0]["content"], r["chosen_pred"], r["rejected_pred"]) for r in rows] == [
        ("Iron oxide dust covers its surface, so it is called the Red Planet.\nThe answer is B.", "B", "A"),
        ("Iron oxide dust covers its surface, which is why it looks red from Earth.\nThe answer is B.", "B", "A"),
        ("Iron oxide makes the surface red.\nThe answer is B.", "B", "A"),
    ]
    assert rows[0]["rejected"][0]["content"] == (
        "Its thick clouds of sulphuric acid reflect sunlight, so it shines brightest.\nThe answer is A."
    )


def test_both_sides_keep_reasoning_stated_after_the_answer(tmp_path):
    paths = [
        "The answer is 4. Two and two make four, since adding two to two counts up to four.",  # answer first
        "Two and two: the answer is 5. Adding two to two counts up to five, I believe.",  # answer mid-way
        "Two and two make four.\nThe answer is 4.\nThe answer is 4.",  # last, doubled
    ]
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps({"question": "What is 2 + 2?", "answer": "4"}) + "\n")
    manifest, rows, _ = _build(tmp_path, answer=lambda r, j: paths[j], source=f"file:{path}", samples=3,
                               pairs_per_prompt=0)  # fmt: skip
    assert [(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in rows] == [
        (paths[0], paths[1]),
        ("Two and two make four.\nThe answer is 4.", paths[1]),
    ]
    assert (manifest.counts["accepted_strict"], manifest.counts["contradictions"]) == (2, 0)
