"""Suites scored by a judge model: tasks whose YAML says `metadata.judged` (eval_tasks/alpaca_eval,
eval_tasks/mt_bench). lm-eval generates the answers; the judge (`hubtool eval --judge BACKEND:MODEL`,
default the local default model) scores them from the logged samples:

- `reference_win_rate` (AlpacaEval): the model's answer against the document's reference output, judged
  in both orders (judge_alpaca_eval.jinja); win rate = (wins + ties / 2) / readable verdicts.
- `rating` (MT-Bench): every turn graded 1-10 with the paper's single-answer prompts (judge_mt_bench.jinja:
  the reference answer shown for math, reasoning and coding; the second turn judged with the whole
  conversation); score = mean rating over all graded turns, with the mean per turn.

A judgment without a readable verdict or rating (or a failed call) is counted as unparsed and left out of
the score, as FastChat leaves out a rating of -1. Each judgment goes to judge_suites.jsonl.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit import prompts
from toolkit.evaluate.judge import ask, parse_verdict

KINDS = ("reference_win_rate", "rating")
NEED_REFERENCE = frozenset({"math", "reasoning", "coding"})  # MT-Bench's categories graded against a reference
_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")


@dataclass(frozen=True, slots=True)
class SuiteScore:
    """One model on one judged task."""

    task: str
    model: str
    judge: str
    kind: str
    docs: int
    judgments: int
    unparsed: int
    score: float | None  # a win rate in [0, 1], or a mean rating in [1, 10]
    detail: dict[str, Any] = field(default_factory=dict)  # wins/ties/losses, or the mean rating per turn

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Item:
    """One judgment to ask for."""

    task: str
    model: str
    doc_id: int
    part: str  # "model is A" / "model is B" (win rate), or "turn 1", "turn 2" (rating)
    prompt: str


def parse_rating(text: str) -> float | None:
    """MT-Bench's rating: the first [[N]], else the first [N] (FastChat's two patterns); None when there
    is none or it lies outside 1-10."""
    found = _RATING.search(text or "") or _RATING_BACKUP.search(text or "")
    if not found:
        return None
    value = float(found.group(1))
    return value if 1 <= value <= 10 else None


def first_rows(rows: Sequence[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """doc_id -> its first logged row (lm-eval logs one row per document and filter)."""
    out: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        out.setdefault(row["doc_id"], row)
    return out


def _answer(row: Mapping[str, Any]) -> str:
    resps = row.get("resps") or [[""]]
    return str(resps[0][0]) if resps and resps[0] else ""


def plan_win_rate(task: str, model: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[Item]:
    """Both orders of (reference, model answer) for every document."""
    instruction_field = meta.get("instruction_field", "instruction")
    reference_field = meta.get("reference_field", "output")
    items = []
    for doc_id, row in sorted(first_rows(rows).items()):
        doc, answer = row["doc"], _answer(row)
        for model_is in ("B", "A"):
            a, b = (answer, doc[reference_field]) if model_is == "A" else (doc[reference_field], answer)
            text = prompts.render("judge_alpaca_eval", instruction=doc[instruction_field], output_a=a, output_b=b)
            items.append(Item(task, model, doc_id, f"model is {model_is}", text))
    return items


def plan_rating(task: str, model: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[Item]:
    """One grading per answered turn: the conversation up to that turn, references where the category
    needs them."""
    field_name = meta.get("turns", "prompt")
    items = []
    for doc_id, row in sorted(first_rows(rows).items()):
        doc = row["doc"]
        questions = list(doc[field_name])
        answers = list(row.get("turns") or [_answer(row)])  # without later turns, the first is graded alone
        references = list(doc.get("reference") or []) if doc.get("category") in NEED_REFERENCE else []
        for turn in range(1, min(len(questions), len(answers)) + 1):
            refs = references[:turn] if len(references) >= turn and all(references[:turn]) else []
            text = prompts.render("judge_mt_bench", questions=questions[:turn], answers=answers[:turn], references=refs)
            items.append(Item(task, model, doc_id, f"turn {turn}", text))
    return items


PLANS = {"reference_win_rate": plan_win_rate, "rating": plan_rating}


def score_suites(judge: str, samples: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
                 judged: Mapping[str, Mapping[str, Any]], max_new_tokens: int = 256,
                 cache_path: str | None = None) -> tuple[list[SuiteScore], list[dict[str, Any]]]:  # fmt: skip
    """Every model on every judged task (task -> its metadata): the scores and each judgment."""
    items = [item for model, by_task in samples.items() for task, meta in judged.items()
             for item in PLANS[meta["judged"]](task, model, by_task.get(task, []), meta)]  # fmt: skip
    identity, replies = ask(judge, [({"role": "user", "content": i.prompt},) for i in items], max_new_tokens, cache_path)
    records = []
    for item, reply in zip(items, replies):
        kind = judged[item.task]["judged"]
        value: Any = parse_verdict(reply.text) if kind == "reference_win_rate" else parse_rating(reply.text)
        records.append({"task": item.task, "model": item.model, "doc_id": item.doc_id, "part": item.part,
                        "value": value, "error": reply.error, "reply": reply.text})  # fmt: skip
    scores = []
    for model, by_task in samples.items():
        for task, meta in judged.items():
            mine = [r for r in records if r["model"] == model and r["task"] == task]
            docs = len(first_rows(by_task.get(task, [])))
            scores.append(tally(task, model, identity, meta["judged"], docs, mine))
    return scores, records


def tally(task: str, model: str, judge: str, kind: str, docs: int, records: Sequence[Mapping[str, Any]]) -> SuiteScore:
    """A task's score from its judgments (records with `part` and the parsed `value`)."""
    readable = [r for r in records if r["value"] is not None]
    unparsed = len(records) - len(readable)
    if kind == "reference_win_rate":
        sides = [(r["part"][-1], r["value"]) for r in readable]
        wins = sum(v == side for side, v in sides)
        ties = sum(v == "C" for _, v in sides)
        detail = {"wins": wins, "ties": ties, "losses": len(sides) - wins - ties}
        score = (wins + ties / 2) / len(sides) if sides else None
    else:
        turns = sorted({r["part"] for r in readable})
        detail = {t: sum(r["value"] for r in readable if r["part"] == t) / sum(r["part"] == t for r in readable)
                  for t in turns}  # fmt: skip
        score = sum(r["value"] for r in readable) / len(readable) if readable else None
    return SuiteScore(task, model, judge, kind, docs, len(records), unparsed, score, detail)
