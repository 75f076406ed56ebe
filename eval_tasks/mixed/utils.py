"""Hooks of the mixed-distillation tasks: CoT, PoT (the program runs in hubtool's sandbox) and mixed
(k CoT + k PoT samples, one majority vote over both).

Documents are read through the shared hooks (`toolkit.evaluate.docs`: the builders' own reading of
each benchmark) and carry one more field, `mode` ("cot", "pot" or "mixed"). The prompt of a mode is
the one `hubtool build-dataset mixed` trains on (`toolkit.methods.mixed.prompt_messages`: one
definition), and programs are taken out of a generation by the builder's own parser and run in the
same sandbox, with the builder's default limits.

Filters (both named as in every hubtool task, so the report reads them alike):
  strict-match      CoT: only "The answer is X."; PoT: the program's `ans`
  flexible-extract  CoT: else the last number / option / yes-no; PoT: else the same fallback on the text
The mixed task's filters keep every sample's answer; `process_results` votes over all 2k of them.
"""

from __future__ import annotations

import json
import threading

from lm_eval.api.filter import Filter
from lm_eval.api.task import ConfigurableTask

from toolkit import answers
from toolkit.evaluate.docs import gym_dataset, process_docs_for
from toolkit.evaluate.hooks import MISS, doc_problem, extract, score, vote  # the shared reading and scoring
from toolkit.methods.mixed import prompt_messages, sandbox_limits
from toolkit.methods.mixed.programs import extract_program, matches_gold, program_answer
from toolkit.sources import known_benchmarks

MODES = ("cot", "pot", "mixed")


# --- documents -------------------------------------------------------------------------------------
def _with_mode(process_docs, mode: str):
    def process(dataset):
        return process_docs(dataset).map(lambda _: {"mode": mode})

    return process


# process_docs_<benchmark>_<mode>: the shared reading of the benchmark, plus the mode; one per catalogue
# benchmark, so whichever the generator's MIXED_HUB names has its hooks
for _benchmark in known_benchmarks():
    for _mode in MODES:
        globals()[f"process_docs_{_benchmark}_{_mode}"] = _with_mode(process_docs_for(_benchmark), _mode)


def load(hubtool_mode: str = "cot", **kwargs):
    """A gym task's `custom_dataset`: the shared gym documents, plus the mode."""
    data = gym_dataset(**kwargs)
    return data.map(lambda _: {"mode": hubtool_mode})


def doc_to_text(doc: dict) -> str:
    """The user turn of the document's mode (the mixed task's CoT turn; its PoT turn is made per request)."""
    mode = "pot" if doc.get("mode") == "pot" else "cot"
    return prompt_messages(doc_problem(doc), mode)[-1]["content"]


def doc_to_target(doc: dict) -> str:
    return doc["gold"]


# --- the mixed task: two requests per document ------------------------------------------------------
class MixedModeTask(ConfigurableTask):
    """k CoT samples and k PoT samples per document (two requests, `repeats` samples each), so that
    `process_results` can vote over both. The PoT request's context is the CoT one with the user turn
    swapped, so the chat template, a system prompt and the generation prefix stay exactly the same."""

    def __init__(self, config: dict | None = None, **kwargs) -> None:
        super().__init__(config={k: v for k, v in (config or {}).items() if k != "class"}, **kwargs)

    def construct_requests(self, doc: dict, ctx, **kwargs):
        cot_doc, pot_doc = {**doc, "mode": "cot"}, {**doc, "mode": "pot"}
        pot_ctx = swap_user_turn(ctx, doc_to_text(cot_doc), doc_to_text(pot_doc))
        cot = super().construct_requests(cot_doc, ctx, **kwargs)
        pot = super().construct_requests(pot_doc, pot_ctx, **kwargs)
        pot.idx = 1
        return [cot, pot]


def swap_user_turn(ctx, old: str, new: str):
    """The request context with its (last) user turn `old` replaced by `new`, in each form lm-eval
    builds one: a rendered chat template (str), a JSON list of messages for an API model
    (`JsonChatStr`), or the messages themselves."""
    if isinstance(ctx, str):
        if old not in ctx:
            raise ValueError("the mixed task did not find its CoT prompt in the request context (few-shot is not supported)")
        head, _, tail = ctx.rpartition(old)
        return head + new + tail
    if hasattr(ctx, "prompt") and isinstance(ctx.prompt, str):  # lm-eval's JsonChatStr
        messages = swap_user_turn(json.loads(ctx.prompt), old, new)
        return type(ctx)(json.dumps(messages, ensure_ascii=False))
    if isinstance(ctx, list) and all(isinstance(m, dict) for m in ctx):
        last = max((i for i, m in enumerate(ctx) if m.get("role") == "user" and m.get("content") == old), default=None)
        if last is None:
            raise ValueError("the mixed task did not find its CoT prompt among the request's messages")
        return [{**m, "content": new} if i == last else m for i, m in enumerate(ctx)]
    raise ValueError(f"the mixed task cannot build a PoT request from a {type(ctx).__name__} context")


# --- answers ---------------------------------------------------------------------------------------
_box = None
_box_lock = threading.Lock()


def _sandbox():
    """One sandbox per process, with the builder's default limits (closed when the process exits)."""
    global _box
    with _box_lock:
        if _box is None:
            from toolkit.sandbox import Sandbox

            _box = Sandbox(sandbox_limits())
        return _box


def run_programs(texts: list[str], docs: list[dict]) -> list[str]:
    """The canonical `ans` of the program in each generation, read by the builder's rule for a
    teacher's program (MISS when there is none, it fails, it tried to get out of the sandbox, or
    `ans` is not one answer: `[-4, 17, 99]` names no answer), so a student is scored as it was taught."""
    programs = [extract_program(t) for t in texts]
    runnable = [p for p in programs if p is not None]
    ran = iter(_sandbox().run_many(runnable) if runnable else [])
    return [program_value(next(ran) if program is not None else None, doc) for program, doc in zip(programs, docs)]


def program_value(result, doc: dict) -> str:
    """One sandbox result as an answer: a number that matches gold at gold's precision is gold
    (`matches_gold`, the builder's check), any other answer as it is, MISS when there is none."""
    value = program_answer(result, doc["answer_type"], tuple(doc.get("choices") or ()))
    if value is None:
        return MISS
    if doc["answer_type"] == "number" and matches_gold(value, doc_problem({"question": "", **doc})):
        return answers.normalize_answer(doc["gold"], "number") or value
    return value


class ModeFilter(Filter):
    """Each generation -> its answer, by the document's mode: CoT text is read, a PoT program is run.
    Every repeat is kept (take_first or the vote comes after)."""

    def __init__(self, extract: str = "strict", **kwargs) -> None:
        if extract not in ("strict", "flexible"):
            raise ValueError(f"ModeFilter extract must be 'strict' or 'flexible', not {extract!r}")
        self.extract = extract
        super().__init__(**kwargs)

    def apply(self, resps, docs):
        flat = [(i, text, doc) for i, (group, doc) in enumerate(zip(resps, docs)) for text in group]
        pot = [(text, doc) for _, text, doc in flat if doc.get("mode") == "pot"]
        ran = iter(run_programs([t for t, _ in pot], [d for _, d in pot]) if pot else [])
        out: list[list[str]] = [[] for _ in resps]
        for i, text, doc in flat:
            if doc.get("mode") == "pot":
                value = next(ran)
                if value == MISS and self.extract == "flexible":
                    value = extract(text, doc, "flexible")
            else:
                value = extract(text, doc, self.extract)
            out[i].append(value)
        return out


def process_results(doc: dict, results: list) -> dict[str, float]:
    """exact_match of the answer (single-path), or of the vote over every sample of both requests (mixed)."""
    flat = [v for r in results for v in (r if isinstance(r, list) else [r])]
    return score(doc, vote(flat))
