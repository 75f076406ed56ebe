"""AlpacaEval and MT-Bench (eval_tasks/alpaca_eval, eval_tasks/mt_bench): the tasks resolve and read
local files of the Hub datasets' shape; MT-Bench's second turn sees the first answer; a scripted judge
pins the win rate, the ratings and what is counted as unparsed; the real default model judges once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.assertions import raises_one_line
from toolkit.evaluate import report as R
from toolkit.evaluate.judged import parse_rating, score_suites
from toolkit.evaluate.multiturn import add_later_turns
from toolkit.sources import eval_tasks as T

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "judged"


@pytest.fixture(scope="module")
def loaded(manager):
    alpaca, mt = T.load_tasks(manager, ["hubtool_alpaca_eval", "hubtool_mt_bench"], FIXTURES)
    return alpaca, mt


def test_the_tasks_and_the_papers_suite_resolve(manager):
    catalog = T.catalog(manager)
    assert catalog.suites["idea_mcts"] == ("hubtool_alpaca_eval", "hubtool_mt_bench")
    assert T.select_tasks(catalog, [], ["alpaca_eval", "mt_bench"]) == ["hubtool_alpaca_eval", "hubtool_mt_bench"]
    judged = T.judged_tasks(manager, ["hubtool_gym_chain_sum", "hubtool_alpaca_eval", "hubtool_mt_bench"])
    assert {t: m["judged"] for t, m in judged.items()} == {"hubtool_alpaca_eval": "reference_win_rate",
                                                          "hubtool_mt_bench": "rating"}  # fmt: skip
    assert judged["hubtool_mt_bench"]["turns"] == "prompt"


def test_local_files_in_the_hub_shape_are_read(loaded):
    alpaca, mt = loaded
    docs = list(alpaca.eval_docs)
    assert len(docs) == 3 and docs[0]["generator"] == "text_davinci_003"
    assert alpaca.doc_to_text(docs[1]) == "How do I make a simple syrup for cocktails?"
    assert alpaca.config.generation_kwargs["do_sample"] is False
    docs = list(mt.eval_docs)
    assert [d["category"] for d in docs] == ["writing", "math", "roleplay"]
    assert mt.doc_to_text(docs[1]) == ("The vertices of a triangle are at points (0, 0), (-1, 1), and (3, 3). "
                                       "What is the area of the triangle?")  # fmt: skip
    assert docs[1]["reference"] == ["Area is 3", "5pi"]
    assert alpaca.process_results(docs[0], ["Hugh Jackman started on Broadway."]) == {"answer_words": 5}


@pytest.mark.parametrize(("text", "rating"), [
    ("The answer is accurate and well organised.\n\nRating: [[8]]", 8.0),
    ("Rating: [[6.5]]", 6.5),
    ("Rating: [7]", 7.0),  # FastChat's fallback pattern
    ("[[3]] at first; on reflection [[9]]", 3.0),  # FastChat takes the first
    ("I would rate this response 7 out of 10.", None),
    ("Rating: [[11]]", None),
    ("Rating: [[0]]", None),
    ("", None),
])  # fmt: skip
def test_parse_rating(text, rating):
    assert parse_rating(text) == rating


class RecordingLM:
    """An lm-eval model that answers every request with its position and keeps what it was asked."""

    def __init__(self):
        self.asked: list[tuple[str, dict]] = []

    def apply_chat_template(self, chat, add_generation_prompt=True):
        return json.dumps(chat)

    def generate_until(self, requests):
        self.asked += [r.args for r in requests]
        return [f"second answer {i}" for i in range(len(requests))]


def _rows(docs: dict[int, tuple[dict, str]]) -> list[dict]:
    return [{"doc_id": i, "doc": doc, "filter": "none", "resps": [[first]], "filtered_resps": [first]}
            for i, (doc, first) in docs.items()]  # fmt: skip


def test_the_second_turn_is_asked_with_the_first_question_and_answer():
    lm = RecordingLM()
    rows = _rows({0: ({"prompt": ["Q1", "Q2"]}, "A1"), 1: ({"prompt": ["only one turn"]}, "B1")})
    config = {"metadata": {"turns": "prompt"}, "generation_kwargs": {"until": [], "max_gen_toks": 1024}}
    results = {"configs": {"hubtool_mt_bench": config, "hubtool_gsm8k": {"metadata": {}}},
               "samples": {"hubtool_mt_bench": rows, "hubtool_gsm8k": [{"doc_id": 0}]}}  # fmt: skip
    add_later_turns(lm, results, max_gen_toks=64)
    [(context, kwargs)] = lm.asked  # one request: the one-turn document is not asked again
    assert json.loads(context) == [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"},
                                   {"role": "user", "content": "Q2"}]  # fmt: skip
    assert kwargs == {"until": [], "max_gen_toks": 64}
    assert [r["turns"] for r in rows] == [["A1", "second answer 0"], ["B1"]]
    assert "turns" not in results["samples"]["hubtool_gsm8k"][0]


def _script(tmp_path: Path, lines: list[dict]) -> str:
    path = tmp_path / "judge.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"fake:{path}"


def test_alpaca_eval_win_rate_against_the_reference_in_both_orders(tmp_path):
    docs = [json.loads(line) for line in (FIXTURES / "alpaca_eval.jsonl").read_text().splitlines()]
    rows = _rows({0: (docs[0], "STUDENT Hugh Jackman, Idina Menzel."), 1: (docs[1], "STUDENT boil it."),
                  2: (docs[2], "STUDENT focus.")})  # fmt: skip
    judge = _script(tmp_path, [
        {"match": r"Broadway\?\n\n\[Output A\]\nSTUDENT", "replies": ["A names more actors.\n[[A]]"]},
        {"match": r"Broadway\?\n\n\[Output A\]\nSome", "replies": ["B names more actors.\n[[B]]"]},
        {"match": r"syrup", "replies": ["Both are fine. [[C]]"]},
        {"match": r"\[Output A\]\nSTUDENT", "replies": ["The first one."]},  # doc 2, student first: no verdict
        {"match": r"\[Output A\]\n1\.", "replies": ["A lists three tips. [[A]]"]}])  # fmt: skip
    meta = {"judged": "reference_win_rate", "instruction_field": "instruction", "reference_field": "output"}
    scores, records = score_suites(judge, {"student": {"hubtool_alpaca_eval": rows}}, {"hubtool_alpaca_eval": meta},
                                   cache_path=str(tmp_path / "c.sqlite"))  # fmt: skip
    [s] = scores
    # doc 0: won both orders; doc 1: two ties; doc 2: one unreadable, one loss -> (2 + 2/2) / 5
    assert (s.docs, s.judgments, s.unparsed) == (3, 6, 1)
    assert s.detail == {"wins": 2, "ties": 2, "losses": 1} and s.score == pytest.approx(0.6)
    assert [(r["doc_id"], r["part"], r["value"]) for r in records] == [
        (0, "model is B", "B"), (0, "model is A", "A"), (1, "model is B", "C"), (1, "model is A", "C"),
        (2, "model is B", "A"), (2, "model is A", None)]  # fmt: skip


def test_mt_bench_ratings_per_turn_with_references_for_math_only(tmp_path):
    docs = [json.loads(line) for line in (FIXTURES / "mt_bench.jsonl").read_text().splitlines()]
    rows = _rows({0: (docs[0], "Aloha! Hawaii was great."), 1: (docs[1], "The area is 3."),
                  2: (docs[2], "Meet Old Tom.")})  # fmt: skip
    turns = [["Aloha! Hawaii was great.", "A trip to Hawaii: amazing."], ["The area is 3.", "It is 5 pi."],
             ["Meet Old Tom."]]  # doc 2: the second turn was never generated (a plain lm_eval run)
    for row, answers in zip(rows, turns):
        row["turns"] = answers
    judge = _script(tmp_path, [
        {"match": r"Reference answer:\n5pi[\s\S]*It is 5 pi", "replies": ["Matches the reference. Rating: [[9]]"]},
        {"match": r"\[The Start of Reference Answer\]\nArea is 3\n", "replies": ["Correct. Rating: [[10]]"]},
        {"match": r"Reference", "replies": ["a writing question was shown a reference: [[1]]"]},
        {"match": r"Assistant A:\nA trip to Hawaii", "replies": ["Not every sentence starts with A. Rating: [[4]]"]},
        {"match": r"Aloha", "replies": ["Engaging. Rating: [[8]]"]},
        {"match": r"Old Tom", "replies": ["I cannot rate this."]}])  # fmt: skip
    scores, records = score_suites(judge, {"student": {"hubtool_mt_bench": rows}},
                                   {"hubtool_mt_bench": {"judged": "rating", "turns": "prompt"}},
                                   cache_path=str(tmp_path / "c.sqlite"))  # fmt: skip
    [s] = scores
    assert [(r["doc_id"], r["part"], r["value"]) for r in records] == [
        (0, "turn 1", 8.0), (0, "turn 2", 4.0), (1, "turn 1", 10.0), (1, "turn 2", 9.0), (2, "turn 1", None)]
    assert (s.docs, s.judgments, s.unparsed) == (3, 5, 1)
    assert s.score == pytest.approx(31 / 4) and s.detail == {"turn 1": 9.0, "turn 2": 6.5}


def test_the_report_gives_judged_tasks_their_own_table():
    rep = R.Report(tasks=["hubtool_gsm8k", "hubtool_alpaca_eval", "hubtool_mt_bench"], in_domain=set(),
                   judged_tasks={"hubtool_alpaca_eval", "hubtool_mt_bench"})  # fmt: skip
    rep.add("student", {"results": {"hubtool_gsm8k": {"exact_match,strict-match": 0.25},
                                    "hubtool_alpaca_eval": {"answer_words,none": 120.0}}})  # fmt: skip
    rep.suite_scores = [
        {"task": "hubtool_alpaca_eval", "model": "student", "judge": "fake:j", "kind": "reference_win_rate",
         "docs": 3, "judgments": 6, "unparsed": 1, "score": 0.6, "detail": {"wins": 2, "ties": 2, "losses": 1}},
        {"task": "hubtool_mt_bench", "model": "student", "judge": "fake:j", "kind": "rating", "docs": 3,
         "judgments": 5, "unparsed": 1, "score": 7.75, "detail": {"turn 1": 9.0, "turn 2": 6.5}}]  # fmt: skip
    text = R.markdown(rep)
    assert "| model | gsm8k | ID avg | OOD avg |" in text and "| student | 25.0 | – | 25.0 |" in text
    assert "| alpaca_eval | student | fake:j | 3 | 6 | 1 | 60.0 | wins 2, ties 2, losses 1 |" in text
    assert "| mt_bench | student | fake:j | 3 | 5 | 1 | 7.75 | turn 1 9.00, turn 2 6.50 |" in text
    assert "only when the judge is the papers' (GPT-4)" in text


def test_a_judge_with_one_model_is_accepted_for_the_judged_suites(tmp_path):
    from toolkit.evaluate import EvalOptions, run_eval

    with raises_one_line(match="at least two --model"):
        run_eval(["smollm2-135m"], tmp_path, tasks=["gym_chain_sum"], options=EvalOptions(judge="fake:right"))
    with raises_one_line(match="is not a folder"):  # past the judge check, stopped by the next one
        run_eval(["smollm2-135m"], tmp_path, tasks=["alpaca_eval"],
                 options=EvalOptions(judge="fake:right", data_dir=tmp_path / "missing"))


@pytest.mark.slow
def test_the_default_model_answers_both_turns_and_judges(tmp_path, small_torch):
    from toolkit.evaluate import EvalOptions, run_eval

    options = EvalOptions(limit=2, max_gen_toks=16, data_dir=FIXTURES, judge_max_new_tokens=48, batch_size=2)
    result = run_eval(["smollm2-135m"], tmp_path, tasks=["alpaca_eval", "mt_bench"], options=options)
    rows = [json.loads(line) for line in (tmp_path / "smollm2-135m" / "samples_hubtool_mt_bench.jsonl").open()]
    assert [len(r["turns"]) for r in rows] == [2, 2] and all(r["turns"][1].strip() for r in rows)
    records = [json.loads(line) for line in (tmp_path / "judge_suites.jsonl").open()]
    assert len(records) == 8  # AlpacaEval: 2 documents x 2 orders; MT-Bench: 2 documents x 2 turns
    assert {s["judge"].split(":")[0] for s in result.report.suite_scores} == {"transformers"}
    assert "## Judged suites" in result.markdown and "strict-match:" not in result.markdown
