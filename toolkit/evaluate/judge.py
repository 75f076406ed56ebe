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

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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


def judge_models(judge: str, samples: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
                 tasks: Sequence[str], max_new_tokens: int = 256,
                 cache_path: str | None = None) -> tuple[list[Judged], list[dict[str, Any]]]:  # fmt: skip
    """Every model after the first against the first, on every task: the tallies and each judgment."""
    import asyncio

    from toolkit import prompts
    from toolkit.paths import call_cache_path
    from toolkit.teachers import load_teacher
    from toolkit.teachers.base import Request, SamplingParams
    from toolkit.teachers.cache import CallCache
    from toolkit.teachers.session import Session

    models = list(samples)
    reference, others = models[0], models[1:]
    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=0)
    plan: list[tuple[str, str, int, bool, Request]] = []  # task, model, doc, swapped, request
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
                    plan.append((task, model, doc_id, swapped, Request(({"role": "user", "content": text},), 1, params)))
    backend = load_teacher(judge)
    cache = CallCache(cache_path or call_cache_path())
    session = Session(backend, cache, "judge")

    async def ask() -> list:
        try:
            return await session.gather(*(p[4] for p in plan))
        finally:
            await session.aclose()

    try:
        results = asyncio.run(ask()) if plan else []
    finally:
        backend.close()
        cache.close()
    tallies: dict[tuple[str, str], dict[str, Any]] = {}
    records = []
    for (task, model, doc_id, swapped, _), result in zip(plan, results):
        t = tallies.setdefault((task, model), {"docs": set(), "wins": 0, "losses": 0, "ties": 0, "unparsed": 0})
        t["docs"].add(doc_id)
        text = "" if isinstance(result, Exception) or not isinstance(result, list) else result[0].text
        verdict = parse_verdict(text)
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
                        "model_is": model_side, "verdict": verdict,
                        "error": getattr(result, "error", None), "reply": text})  # fmt: skip
    judged = [Judged(task, model, reference, backend.identity, len(t["docs"]), t["wins"], t["losses"], t["ties"],
                     t["unparsed"]) for (task, model), t in tallies.items()]  # fmt: skip
    return judged, records
