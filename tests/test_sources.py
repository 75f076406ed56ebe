"""Sources: catalogue benchmarks on local copies, Hub loading from a local repo layout, gym, files, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.records import stable_id
from toolkit.sources import _GymWorker, benchmark_info, known_benchmarks, load_source
from toolkit.sources.gym import gym_gold

FIXTURES = Path(__file__).parent / "fixtures" / "sources"

# name -> (fixture, split, golds, number of options per problem (0 = none), a question fragment)
CATALOGUE_CASES = {
    "gsm8k": ("gsm8k_train.jsonl", "train", ["54", "1080", "12.5", "6"], 0, "half as many on Tuesday"),
    "svamp": ("svamp_train.json", "train", ["8", "15", "2.5"], 0, "on each box. How much do you have"),
    "asdiv": ("asdiv_validation.jsonl", "validation", ["7", "15", "5"], 0, "in the yard. How many animals"),
    "multiarith": ("multiarith_test.json", "test", ["8", "6", "12"], 0, "Lena had 5 stickers"),
    "aqua_rat": ("aqua_rat_train.jsonl", "train", ["C", "C", "B"], 5, "If 3x + 2 = 17"),
    "commonsense_qa": ("commonsense_qa_validation.jsonl", "validation", ["A", "B", "C"], 5, "cut paper"),
    "strategyqa": ("strategyqa_train.json", "train", ["no", "no", "yes"], 0, "Did Aristotle use a laptop?"),
    "openbookqa": ("openbookqa_test.jsonl", "test", ["B", "B", "A"], 4, "conducts electricity"),
    "piqa": ("piqa_validation.jsonl", "validation", ["A", "B", "A"], 2, "To keep bread fresh longer,"),
    "social_i_qa": ("social_i_qa_validation.jsonl", "validation", ["C", "B", "A"], 3, "in the rain. How"),
    "arc_easy": ("arc_easy_train.jsonl", "train", ["B", "C", "A"], None, "measure temperature"),
    "arc_challenge": ("arc_challenge_test.jsonl", "test", ["B", "C", "C"], None, "carries oxygen"),
    # the proof has no boxed answer and is skipped; golds are canonical (3/4, not \frac{3}{4})
    "hendrycks_math": ("hendrycks_math_test.jsonl", "test", ["3/4", "(-\\infty, 2]", "x^2 + 1"], 0, "x - 2 \\le 0"),
    "mmlu": ("mmlu_test.jsonl", "test", ["B", "B", "C"], 4, "closest to the Sun"),
}
TYPES = {
    "hendrycks_math": "math",
    "strategyqa": "yesno",
    "gsm8k": "number",
    "svamp": "number",
    "asdiv": "number",
    "multiarith": "number",
}


def _load(name: str, **kw):
    fixture, split, *_ = CATALOGUE_CASES[name]
    return load_source(f"hf:{name}", split=split, data_files=str(FIXTURES / fixture), **kw)


def _user_error(match: str, **kw) -> str:
    """Assert load_source(**kw) raises a one-line UserError matching `match`; return its text."""
    spec = kw.pop("spec")
    with raises_one_line(match=match) as err:
        load_source(spec, **kw)
    assert "\n" not in str(err.value)
    return str(err.value)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---- the catalogue, on local copies shaped like the Hub rows -------------------------------------


def test_every_benchmark_has_a_fixture_case() -> None:
    assert set(known_benchmarks()) == set(CATALOGUE_CASES)


@pytest.mark.parametrize("name", sorted(CATALOGUE_CASES))
def test_catalogue_benchmark_loads_its_copy(name: str) -> None:
    _, split, golds, n_options, fragment = CATALOGUE_CASES[name]
    loaded = _load(name)
    bench = benchmark_info(name)
    expected_type = TYPES.get(name, "option")
    assert [p.gold for p in loaded.problems] == golds
    assert {p.answer_type for p in loaded.problems} == {expected_type} == {loaded.info.answer_type}
    assert any(fragment in p.question for p in loaded.problems)
    for p in loaded.problems:
        assert p.source == bench.hub_id
        if expected_type == "option":
            assert len(p.choices) == (n_options or len(p.choices)) and len(p.choices) >= 2
            # the question stays without its options: the prompt template renders them
            assert not all(choice in p.question for choice in p.choices)
        else:
            assert p.choices == ()
    info = loaded.info
    assert (info.kind, info.name, info.hub_id, info.split) == ("hf", name, bench.hub_id, split)
    assert info.license == bench.license and info.citation and info.url.endswith(bench.hub_id)
    # ids: the same on a second load, and a raised limit only adds problems
    again = _load(name)
    assert [p.id for p in again.problems] == [p.id for p in loaded.problems]
    first_two = _load(name, limit=2)
    assert first_two.problems == loaded.problems[:2]
    assert len({p.id for p in loaded.problems}) == len(loaded.problems)


def test_gsm8k_keeps_the_reference_rationale_and_ids_follow_the_hub_identity() -> None:
    p = _load("gsm8k").problems[0]
    # the worked solution as a person reads it: no calculator annotations, no "#### 54" line
    assert p.meta["reference_rationale"].startswith("On Tuesday she picked 36/2 = 18 apples.")
    assert "####" not in p.meta["reference_rationale"] and "<<" not in p.meta["reference_rationale"]
    assert p.id == stable_id("openai/gsm8k", "main", "train", 0)


def test_arc_numeric_labels_become_letters() -> None:
    p = _load("arc_challenge").problems[1]
    assert p.gold == "C" and p.choices == ("digestive", "nervous", "circulatory", "skeletal")


def test_aqua_options_lose_their_letter_prefix() -> None:
    p = _load("aqua_rat").problems[1]
    assert p.choices == ("3", "4", "5", "6", "7") and p.gold == "C"
    assert p.meta["reference_rationale"].startswith("3x = 15")


def test_asdiv_skips_a_non_numeric_gold_but_keeps_source_indices() -> None:
    problems = _load("asdiv").problems
    assert [p.meta["index"] for p in problems] == [0, 1, 3]  # row 2 ("3:2") is skipped
    assert problems[2].id == stable_id("EleutherAI/asdiv", "asdiv", "validation", 3)
    assert problems[0].meta["unit"] == "animals" and problems[0].meta["formula"] == "4+3=7"


def test_data_files_take_a_list_and_globs_in_order(tmp_path: Path) -> None:
    lines = (FIXTURES / "gsm8k_train.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "train-00000.jsonl").write_text("".join(lines[:3]))
    (tmp_path / "train-00001.jsonl").write_text("".join(lines[3:]))
    globbed = load_source("hf:gsm8k", data_files=str(tmp_path / "train-*.jsonl"))
    listed = load_source(
        "hf:gsm8k", data_files=[str(tmp_path / "train-00000.jsonl"), str(tmp_path / "train-00001.jsonl")]
    )
    assert globbed.problems == listed.problems == _load("gsm8k").problems


def test_explicit_hub_id_of_a_known_benchmark_maps_like_its_short_name() -> None:
    short = _load("gsm8k")
    full = load_source("hf:openai/gsm8k", data_files=str(FIXTURES / "gsm8k_train.jsonl"))
    assert full.problems == short.problems and full.info.name == "openai/gsm8k"
    assert full.info.license == "mit"


def test_a_broken_copy_names_the_row(tmp_path: Path) -> None:
    row = {"question": "How many?", "answer": "There are 6.\n"}
    path = _write_jsonl(tmp_path / "gsm8k.jsonl", [{"question": "ok?", "answer": "#### 1"}, row])
    _user_error(
        r"row 1 of hf:gsm8k \(local data_files, split train\): .*'#### <number>'",
        spec="hf:gsm8k",
        data_files=str(path),
    )
    _user_error(
        r"hf:svamp .*has no field 'question_concat'; available: answer, question; is this a copy of ChilleD/SVAMP\?",
        spec="hf:svamp",
        data_files=str(FIXTURES / "gsm8k_train.jsonl"),
    )


# ---- the Hub loader, on a local directory laid out like a Hub repo -------------------------------
# `datasets` resolves "org/name" to a local folder of that name before the Hub; offline that is the
# only way to run the real load_dataset path.


@pytest.fixture
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_hub_path_gives_the_same_problems_as_data_files(hub_dir: Path) -> None:
    repo = hub_dir / "ChilleD" / "SVAMP"
    repo.mkdir(parents=True)
    shutil.copy(FIXTURES / "svamp_train.json", repo / "train.json")
    shutil.copy(FIXTURES / "svamp_train.json", repo / "test.json")
    from_hub = load_source("hf:svamp", split="test")
    from_copy = load_source("hf:svamp", split="test", data_files=str(FIXTURES / "svamp_train.json"))
    assert from_hub.problems == from_copy.problems
    assert [p.gold for p in from_hub.problems] == ["8", "15", "2.5"]


def test_hub_path_unknown_split_lists_the_available_ones(hub_dir: Path) -> None:
    rows = [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}]
    _write_jsonl(hub_dir / "acme" / "tiny" / "train.jsonl", rows)
    _write_jsonl(hub_dir / "acme" / "tiny" / "test.jsonl", rows)
    loaded = load_source("hf:acme/tiny", split="test")
    assert [p.gold for p in loaded.problems] == ["4", "6"] and loaded.info.answer_type == "number"
    assert loaded.problems[0].id == stable_id("acme/tiny", "", "test", 0)
    _user_error(
        r"acme/tiny has no split 'validation'; available: .*train", spec="hf:acme/tiny", split="validation"
    )


def test_unreachable_hub_suggests_local_copies_or_gym(hub_dir: Path) -> None:
    _user_error(r"can't be reached.*data.files.*gym:", spec="hf:gsm8k")
    _user_error(r"can't be reached", spec="hf:acme/not-here", question_field="q", answer_field="a")


# ---- gym ------------------------------------------------------------------------------------------


def test_gym_problems_are_stable_under_a_raised_limit_and_seeded() -> None:
    small = load_source("gym:basic_arithmetic", limit=4)
    large = load_source("gym:basic_arithmetic", limit=9)
    assert large.problems[:4] == small.problems
    assert [p.question for p in large.problems[:4]] == [p.question for p in small.problems]
    assert small.problems[0].id == stable_id("gym:basic_arithmetic", "seed=0", "train", 0)
    assert small.info.answer_type == "number" and small.info.license == "apache-2.0"
    assert small.info.task_category == "reasoning-gym arithmetic"
    meta = small.problems[0].meta
    assert meta["gym_task"] == "basic_arithmetic" and meta["gym_answer"] == small.problems[0].gold
    json.dumps(meta)  # all of it is JSON
    other_seed = load_source("gym:basic_arithmetic", limit=4, seed=1)
    assert [p.question for p in other_seed.problems] != [p.question for p in small.problems]
    assert {p.id for p in other_seed.problems}.isdisjoint(p.id for p in small.problems)
    test_split = load_source("gym:basic_arithmetic", limit=4, split="test")
    assert [p.question for p in test_split.problems] != [p.question for p in small.problems]


def test_gym_problems_past_one_block_are_gyms_own_items() -> None:
    import reasoning_gym

    problems = load_source("gym:basic_arithmetic", limit=503).problems
    native = reasoning_gym.create_dataset("basic_arithmetic", seed=0, size=503)
    assert [p.question for p in problems[498:]] == [native[i]["question"] for i in range(498, 503)]
    assert [p.meta["index"] for p in problems[499:501]] == [499, 500]


@pytest.mark.parametrize("task", ["acre", "list_functions"])
def test_gym_tasks_that_depend_on_size_or_global_random_are_made_stable(task: str) -> None:
    # acre builds its items from the dataset size; list_functions draws from the global random
    small = load_source(f"gym:{task}", limit=3).problems
    large = load_source(f"gym:{task}", limit=7).problems
    assert large[:3] == small and [p.question for p in large[:3]] == [p.question for p in small]


def test_gym_items_are_the_same_in_another_process() -> None:
    # ransom_note iterates a set of strings, whose order follows the process's hash seed; a process
    # started with PYTHONHASHSEED=0 generates in-process, this one through its worker
    code = (
        "import json; from toolkit.sources import load_source; "
        "print(json.dumps([p.question for p in load_source('gym:ransom_note', limit=3).problems]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    here = [p.question for p in load_source("gym:ransom_note", limit=3).problems]
    assert json.loads(other.stdout) == here


@pytest.mark.skipif(sys.flags.hash_randomization == 0, reason="generates in-process, without a worker")
def test_gym_worker_exits_when_idle_and_the_next_load_starts_another() -> None:
    worker = _GymWorker(idle_s=0.3)
    first = worker.generate("chain_sum", 0, 2)
    idle = worker._proc
    assert idle is not None and idle.wait(timeout=15) == 0
    assert worker.generate("chain_sum", 0, 2) == first and worker._proc is not idle


def test_gym_label_answers_and_errors() -> None:
    loaded = load_source("gym:family_relationships", limit=2)
    assert {p.answer_type for p in loaded.problems} == {"label"} and loaded.problems[0].gold.isalpha()
    _user_error(
        r"unknown reasoning-gym task 'basic_arithmetc' \(did you mean 'basic_arithmetic'\?\)",
        spec="gym:basic_arithmetc",
    )
    _user_error("no single gold answer", spec="gym:graph_color", limit=1)
    _user_error(
        r"gym sources have no split 'dev'; available: train, validation, test",
        spec="gym:chain_sum",
        split="dev",
    )
    _user_error("take no question-field", spec="gym:chain_sum", question_field="q")


def test_gym_yes_no_tasks_are_yesno_everywhere() -> None:
    loaded = load_source("gym:syllogism", limit=6)
    assert loaded.info.answer_type == "yesno"
    assert {p.answer_type for p in loaded.problems} == {"yesno"}
    assert {p.gold for p in loaded.problems} <= {"yes", "no"}
    assert {p.meta["gym_answer"] for p in loaded.problems} <= {"Yes", "No"}  # gym's own text kept


def test_gym_syllogism_gold_is_the_model_checks_where_reasoning_gym_calls_a_fallacy_valid() -> None:
    loaded = load_source("gym:syllogism", limit=40)
    fixed = [p for p in loaded.problems if "gold_by" in p.meta]
    assert [p.index for p in fixed] == [11, 16, 19, 32, 34, 35, 36]
    assert {(p.meta["gym_answer"], p.gold) for p in fixed} == {("Yes", "no")}
    # by hand: all ants may be spiders while some dolphins (not ants) are not, so it does not follow
    assert "1. All ants are dolphins\n2. Some dolphins are not spiders\n\nDoes it logically follow that:\nSome ants " \
           "are not spiders?" in fixed[0].question  # fmt: skip
    assert all(p.gold == p.meta["gym_answer"].lower() for p in loaded.problems if "gold_by" not in p.meta)
    assert loaded.info.notes == ("7 of 40 problems have the answer of a model check, not reasoning-gym's (it calls "
                                 "some invalid syllogisms valid); `meta.gym_answer` keeps reasoning-gym's",)  # fmt: skip
    assert load_source("gym:chain_sum", limit=3).info.notes == ()


@pytest.mark.parametrize(
    ("task", "answer", "typed"),
    [
        ("syllogism", "No", ("yesno", "no")),  # a task in the table: its type
        ("chain_sum", "-4", ("number", "-4")),
        ("some_new_task", " YES ", ("yesno", "yes")),  # any other task: typed by its answer
        ("some_new_task", "1,000", ("number", "1000")),
        ("some_new_task", "True", ("label", "True")),  # only a literal yes/no is a yes/no
        ("some_new_task", "Ann", ("label", "Ann")),
    ],
)
def test_gym_answer_types_are_decided_in_one_place(task: str, answer: str, typed: tuple[str, str]) -> None:
    assert gym_gold(task, answer) == typed


def test_a_gym_answer_that_breaks_the_table_is_a_user_error() -> None:
    with raises_one_line(match="'syllogism' gave the answer 'Maybe', which is not a yesno"):
        gym_gold("syllogism", "Maybe")


# ---- file: ----------------------------------------------------------------------------------------


def test_jsonl_file_with_numbers_detects_number(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "mine.jsonl",
        [{"question": "1+1?", "answer": 2}, {"question": "Half of 5?", "answer": "2.50"}],
    )
    loaded = load_source(f"file:{path}")
    assert [p.gold for p in loaded.problems] == ["2", "2.5"]
    assert (loaded.info.answer_type, loaded.info.name, loaded.info.kind) == ("number", "mine.jsonl", "file")
    assert loaded.problems[1].id == stable_id("mine.jsonl", "", "train", 1)
    assert loaded.problems[1].source == "mine.jsonl"


def test_csv_file_detects_yesno_and_labels(tmp_path: Path) -> None:
    yesno = tmp_path / "yn.csv"
    yesno.write_text("prompt,truth\nIs ice cold?,True\nIs fire cold?,no\n")
    loaded = load_source(f"file:{yesno}", question_field="prompt", answer_field="truth")
    assert [p.gold for p in loaded.problems] == ["yes", "no"] and loaded.info.answer_type == "yesno"
    labels = tmp_path / "mood.csv"
    labels.write_text(
        "question,answer\nI love it,positive\nI hate it,negative\nIt is fine,neutral\nGreat!,positive\n"
    )
    loaded = load_source(f"file:{labels}")
    assert loaded.info.answer_type == "label"
    assert loaded.problems[0].choices == ("negative", "neutral", "positive")
    # the label set comes from the whole file, so a lower limit sees the same one
    assert load_source(f"file:{labels}", limit=1).problems == loaded.problems[:1]


def test_parquet_file_with_choices_detects_option(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        json.loads(line) for line in (FIXTURES / "commonsense_qa_validation.jsonl").read_text().splitlines()
    ]
    path = tmp_path / "csqa.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    loaded = load_source(f"file:{path}", choices_field="choices", answer_field="answerKey")
    assert loaded.info.answer_type == "option" and [p.gold for p in loaded.problems] == ["A", "B", "C"]
    assert loaded.problems[1].choices == ("spoon", "scissors", "glue", "stapler", "tape")


def test_json_array_with_choice_texts_as_gold(tmp_path: Path) -> None:
    path = tmp_path / "mc.json"
    rows = [
        {"q": "Capital of France?", "opts": ["Rome", "Paris"], "a": "Paris"},
        {"q": "2*3?", "opts": ["5", "6", "7"], "a": "6"},
    ]
    path.write_text(json.dumps({"data": rows}))
    loaded = load_source(f"file:{path}", question_field="q", answer_field="a", choices_field="opts")
    assert loaded.info.answer_type == "option" and [p.gold for p in loaded.problems] == ["B", "B"]


# ---- errors ---------------------------------------------------------------------------------------


def test_unknown_prefix_names_the_valid_forms() -> None:
    _user_error(r"unknown source 'kaggle:x'; use hf:NAME .*gym:TASK or file:PATH", spec="kaggle:x")
    _user_error(r"did you mean 'hf:gsm8k'\?", spec="gsm8k")


def test_unknown_benchmark_lists_the_known_ones() -> None:
    msg = _user_error(
        r"unknown benchmark 'gsm8kk' \(did you mean 'gsm8k'\?\); known: .*svamp", spec="hf:gsm8kk"
    )
    assert "hf:org/name" in msg


def test_missing_files_and_fields(tmp_path: Path) -> None:
    _user_error("file 'nope.jsonl' does not exist", spec="file:nope.jsonl")
    _user_error("data file .*does not exist", spec="hf:gsm8k", data_files=str(tmp_path / "x.parquet"))
    path = _write_jsonl(tmp_path / "f.jsonl", [{"prompt": "1+1?", "gold": "2"}])
    _user_error(r"has no field 'question'; available: gold, prompt", spec=f"file:{path}")
    _user_error(
        r"has no field 'answer'; available: gold, prompt; is this a copy of openai/gsm8k\?",
        spec="hf:gsm8k",
        data_files=str(path),
    )
    other = tmp_path / "f.txt"
    other.write_text("hi")
    _user_error("unknown file type; use .jsonl, .json, .csv or .parquet", spec=f"file:{other}")


def test_empty_source_and_bad_rows(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _user_error("has no rows", spec=f"file:{empty}")
    path = _write_jsonl(
        tmp_path / "f.jsonl", [{"question": "a?", "answer": "1"}, {"question": "b?", "answer": "many"}]
    )
    _user_error(r"row 1 of file:.*'many' is not a valid number", spec=f"file:{path}", answer_type="number")
    _user_error("answer type option needs the options", spec=f"file:{path}", answer_type="option")
    _user_error("unknown answer type 'float'", spec=f"file:{path}", answer_type="float")
    _user_error("limit must be a positive number", spec=f"file:{path}", limit=0)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "a?", "answer": "1"}\n{"question": \n')
    _user_error("broken.jsonl: line 2 is not valid JSON", spec=f"file:{broken}")
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    _user_error("fake.parquet is not a readable parquet file", spec=f"file:{fake}")


def test_catalogue_splits_and_fixed_mappings() -> None:
    _user_error(r"asdiv has no labelled split 'train'; available: validation", spec="hf:asdiv")
    _user_error(
        r"commonsense_qa has no labelled split 'test'; available: train, validation",
        spec="hf:commonsense_qa",
        split="test",
    )
    _user_error("has a fixed field mapping", spec="hf:gsm8k", question_field="q")
