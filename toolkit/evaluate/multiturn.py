"""The turns after the first of a multi-turn task (MT-Bench): lm-eval generates the first answer as for
any task; each later turn is asked here, on the same lm-eval model object, with the conversation so far
(the earlier questions and the model's own answers) in its chat template.

A task says it is multi-turn with `metadata.turns: FIELD`, the document field holding the user turns.
Every logged sample of such a task gets `turns`: the model's answers, one per user turn.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)


def add_later_turns(lm, results: dict, max_gen_toks: int | None = None) -> None:
    """Answer the later turns of every multi-turn task in `results` (lm-eval's, samples logged)."""
    for task, config in (results.get("configs") or {}).items():
        field = (config.get("metadata") or {}).get("turns")
        rows = (results.get("samples") or {}).get(task)
        if field and rows:
            kwargs = generation_kwargs(config, max_gen_toks)
            answers = converse(lm, first_answers(rows), field, kwargs, task)
            for row in rows:
                row["turns"] = answers[row["doc_id"]]


def generation_kwargs(config: Mapping[str, Any], max_gen_toks: int | None) -> dict[str, Any]:
    """The task's own generation settings, with `--max-gen-toks` applied as lm-eval applies it."""
    kwargs = dict(config.get("generation_kwargs") or {})
    if max_gen_toks:
        kwargs["max_gen_toks"] = max_gen_toks
    return kwargs


def first_answers(rows: Sequence[Mapping[str, Any]]) -> dict[int, tuple[dict, str]]:
    """doc_id -> (the document, the raw first answer), one per document (rows repeat per filter)."""
    out: dict[int, tuple[dict, str]] = {}
    for row in rows:
        resps = row.get("resps") or [[""]]
        out.setdefault(row["doc_id"], (row["doc"], resps[0][0] if resps and resps[0] else ""))
    return out


def converse(lm, firsts: Mapping[int, tuple[dict, str]], field: str, gen_kwargs: dict[str, Any],
             task: str) -> dict[int, list[str]]:  # fmt: skip
    """Turn by turn, all documents at once: doc_id -> the answers to every user turn."""
    from lm_eval.api.instance import Instance  # lm-eval: only inside a run

    answers = {doc_id: [first] for doc_id, (_, first) in firsts.items()}
    most = max((len(doc[field]) for doc, _ in firsts.values()), default=0)
    for turn in range(1, most):
        due = [doc_id for doc_id, (doc, _) in firsts.items() if len(doc[field]) > turn]
        requests = [
            Instance("generate_until", firsts[d][0], (lm.apply_chat_template(conversation(firsts[d][0][field],
                     answers[d], turn)), dict(gen_kwargs)), 0, (task, d, 1))
            for d in due
        ]  # fmt: skip
        log.warning("%s: turn %d for %d documents", task, turn + 1, len(due))
        for doc_id, text in zip(due, lm.generate_until(requests)):
            answers[doc_id].append(text)
    return answers


def conversation(questions: Sequence[str], answers: Sequence[str], turn: int) -> list[dict[str, str]]:
    """The chat up to user turn `turn` (0-based): each earlier question with the model's own answer."""
    chat: list[dict[str, str]] = []
    for question, answer in zip(questions[:turn], answers[:turn]):
        chat += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return chat + [{"role": "user", "content": questions[turn]}]
