"""Pairwise judged win rate (`hubtool eval --judge BACKEND:MODEL`): a judge model compares the
answers two models gave to the same documents of a task.

The first `--model` is the reference; every other model is compared with it on each evaluated
task, document by document, from the samples lm-eval logged (the first answer of each document).
Each pair is judged twice, A/B and B/A, with `toolkit/prompts/judge_pairwise.jinja`; a verdict is
[[A]], [[B]] or [[C]] (a tie); a reply without one, or a call that failed, is counted as unparsed
and scored as a tie.
win rate = (wins + ties / 2) / judgments. The judge runs through hubtool's generation backends and
call cache, so a re-run asks nothing twice.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from toolkit import prompts
from toolkit.paths import call_cache_path
from toolkit.teachers import load_teacher
from toolkit.teachers.base import Request, SamplingParams
from toolkit.teachers.cache import CallCache
from toolkit.teachers.session import Session

TEMPLATE = "judge_pairwise"
_VERDICT = re.compile(r"\[\[\s*(A|B|C)\s*\]\]")


@dataclass(frozen=True, slots=True)
class Judged:
    """One model against the reference on one task."""

    task: str
    model: str
    reference: str
    judge: str
    docs: int
    wins: int  # judgments preferring `model`
    losses: int
    ties: int  # [[C]] and unparsed replies
    unparsed: int

    @property
    def win_rate(self) -> float | None:
        n = self.wins + self.losses + self.ties
        return (self.wins + self.ties / 2) / n if n else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "win_rate": self.win_rate}


def parse_verdict(text: str) -> str | None:
    """"A", "B" or "C" (tie) from the last [[X]] in a reply; None when there is none."""
    found = _VERDICT.findall(text or "")
    return found[-1] if found else None


def answers_by_doc(samples: Sequence[Mapping[str, Any]]) -> dict[int, tuple[str, str]]:
    """doc_id -> (the instruction, the first answer), from lm-eval's logged samples (one row per
    document and filter: the first row of a document is enough)."""
    out: dict[int, tuple[str, str]] = {}
    for row in samples:
        doc_id = row.get("doc_id")
        if doc_id in out:
            continue
        doc, resps = row.get("doc") or {}, row.get("resps") or [[""]]
        instruction = doc.get("prompt") or doc.get("question") or doc.get("instruction") or _prompt_text(row)
        first = resps[0][0] if resps and resps[0] else ""
        out[doc_id] = (str(instruction), str(first))
    return out


def _prompt_text(row: Mapping[str, Any]) -> str:
    args = row.get("arguments") or [[""]]
    return str(args[0][0]) if args and args[0] else ""


@dataclass(frozen=True, slots=True)
class Reply:
    """A judge's reply to one prompt: its text ("" when the call failed) and the failure, if any."""

    text: str
    error: str | None = None


def ask(judge: str, messages: Sequence[tuple[dict[str, str], ...]], max_new_tokens: int = 256,
        cache_path: str | None = None) -> tuple[str, list[Reply]]:  # fmt: skip
    """Each conversation put to the judge once, greedily, through hubtool's backends and call cache:
    (the judge's identity, one reply per conversation, in order)."""

    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=0)
    requests = [Request(tuple(m), 1, params) for m in messages]
    backend = load_teacher(judge)
    cache = CallCache(cache_path or call_cache_path())
    session = Session(backend, cache, "judge")

    async def gather() -> list:
        try:
            return await session.gather(*requests)
        finally:
            await session.aclose()

    try:
        results = asyncio.run(gather()) if requests else []
    finally:
        backend.close()
        cache.close()
    replies = [Reply(r[0].text) if isinstance(r, list) and r else Reply("", getattr(r, "error", None) or str(r))
               for r in results]  # fmt: skip
    return backend.identity, replies


def judge_models(judge: str, samples: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
                 tasks: Sequence[str], max_new_tokens: int = 256,
                 cache_path: str | None = None) -> tuple[list[Judged], list[dict[str, Any]]]:  # fmt: skip
    """Every model after the first against the first, on every task: the tallies and each judgment."""
    models = list(samples)
    reference, others = models[0], models[1:]
    plan: list[tuple[str, str, int, bool, str]] = []  # task, model, doc, swapped, prompt
    for task in tasks:
        ref = answers_by_doc(samples[reference].get(task, []))
        for model in others:
            mine = answers_by_doc(samples[model].get(task, []))
            for doc_id in sorted(set(ref) & set(mine)):
                instruction, theirs = ref[doc_id]
                ours = mine[doc_id][1]
                for swapped in (False, True):
                    a, b = (ours, theirs) if swapped else (theirs, ours)
                    text = prompts.render(TEMPLATE, instruction=instruction, answer_a=a, answer_b=b)
                    plan.append((task, model, doc_id, swapped, text))
    identity, replies = ask(judge, [({"role": "user", "content": p[4]},) for p in plan], max_new_tokens, cache_path)
    tallies: dict[tuple[str, str], dict[str, Any]] = {}
    records = []
    for (task, model, doc_id, swapped, _), reply in zip(plan, replies):
        t = tallies.setdefault((task, model), {"docs": set(), "wins": 0, "losses": 0, "ties": 0, "unparsed": 0})
        t["docs"].add(doc_id)
        verdict = parse_verdict(reply.text)
        model_side = "A" if swapped else "B"
        if verdict is None:
            t["unparsed"] += 1
            t["ties"] += 1
        elif verdict == "C":
            t["ties"] += 1
        elif verdict == model_side:
            t["wins"] += 1
        else:
            t["losses"] += 1
        records.append({"task": task, "model": model, "reference": reference, "doc_id": doc_id,
                        "model_is": model_side, "verdict": verdict, "error": reply.error, "reply": reply.text})  # fmt: skip
    judged = [Judged(task, model, reference, identity, len(t["docs"]), t["wins"], t["losses"], t["ties"],
                     t["unparsed"]) for (task, model), t in tallies.items()]  # fmt: skip
    return judged, records
