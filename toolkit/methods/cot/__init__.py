"""Instruction-tuning-CoT (Ranaldi & Freitas, EACL 2024): teacher demonstrations for SFT.

The teacher writes `samples` step-by-step demonstrations per problem from a zero-shot CoT prompt
(optionally few-shot); each is checked against gold with the shared answer checker and, by default,
only the correct ones are kept. What a row's completion may say is decided by `judge`: everything
the teacher wrote stays; a closing answer statement is put in the house form `The answer is X.`; a
rationale that states none (or two different ones), or was cut off by `max_new_tokens`, is never
given an answer line (dropped, or kept as it came). A bare answer with no reasoning is left out of
`--keep correct` builds (`bare="auto"`, ours) and kept by `--keep all`, which promises every sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from toolkit import prompts
from toolkit.answer_reading import AnswerLine
from toolkit.builders.config import BuildConfig, Preset, at_least, param
from toolkit.builders.method import SFT, Method, Paper, Work
from toolkit.builders.reasoning import (
    TEACHER_HELP,
    TEMPLATE,
    TEMPLATE_VARIABLES,
    count_verdict,
    judge,
    load_fewshot,
    prompt_messages,
)
from toolkit.builders.rows import SFTRow, assistant
from toolkit.records import Problem
from toolkit.teachers import DEFAULT_TEACHER
from toolkit.teachers.base import CallFailure, Request

FOLDER = Path(__file__).parent
PROMPT_DIRS = (FOLDER / "prompts",)  # its own prompt templates, looked up after toolkit/prompts/ (shared ones)


@dataclass(frozen=True, kw_only=True)
class CoTConfig(BuildConfig):
    teacher: str = param(DEFAULT_TEACHER, help=f"The teacher: {TEACHER_HELP}", metavar="BACKEND:MODEL", model=True)
    samples: int = param(4, help="Rationales sampled per problem.")
    keep: Literal["correct", "all"] = param(
        "correct", help="correct: only complete rationales whose stated answer matches gold; all: every sample, "
                        "flagged by `correct` (cut-off and answerless ones kept as they came).")  # fmt: skip
    bare: Literal["auto", "drop", "keep"] = param(
        "auto", help="A completion that states its answer with no reasoning ('The answer is 6.'): drop it (ours: it "
                     "demonstrates no chain of thought), or keep it; auto: drop with --keep correct, keep with "
                     "--keep all. Counted as no_reasoning either way.")  # fmt: skip
    answer_line: AnswerLine = param(
        "house", help="A closing answer statement: house rewrites it as 'The answer is X.'; verbatim keeps it as "
                      "the teacher wrote it ('Answer: B'). Nothing before it is ever changed.")  # fmt: skip
    template: str = param(TEMPLATE, help="Prompt template: a name in toolkit/prompts, or a FILE.jinja.")
    fewshot: str | None = param(None, help="jsonl of exemplars (question, rationale[, choices]).", metavar="FILE")
    system: str | None = param(None, help="System prompt for the teacher.")

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, "samples", 1)


def setup(config: CoTConfig) -> tuple[dict, ...]:
    prompts.check_template(config.template, TEMPLATE_VARIABLES, PROMPT_DIRS)
    return load_fewshot(config.fewshot) if config.fewshot else ()


async def run(problem: Problem, work: Work[CoTConfig]) -> None:
    c, counts = work.config, work.counts
    messages = prompt_messages(problem, c.template, work.state, c.system, PROMPT_DIRS)
    result = await work.teacher.generate(Request(messages, n=c.samples, params=c.sampling))
    if isinstance(result, CallFailure):
        work.fail(result.error)
        return
    solved = False
    drop_bare = c.bare == "drop" or c.bare == "auto" and c.keep == "correct"
    for idx, completion in enumerate(result):
        verdict = judge(problem, completion.text, completion.finish_reason, c.answer_line)
        counts["samples"] += 1
        counts["correct"] += verdict.correct
        counts["truncated"] += verdict.truncated
        counts["no_answer"] += verdict.pred is None and not verdict.truncated and not verdict.contradiction
        count_verdict(counts, verdict)
        solved |= verdict.correct
        if c.keep == "correct" and not verdict.correct or drop_bare and verdict.bare:
            continue
        work.keep(SFTRow(
            prompt=list(messages), completion=assistant(verdict.text), id=problem.id, source=problem.source,
            question=problem.question, gold=problem.gold, pred=verdict.pred, correct=verdict.correct,
            answer_type=problem.answer_type, choices=list(problem.choices), teacher=work.teacher.public_identity,
            sample_idx=idx, finish_reason=completion.finish_reason, num_tokens=completion.completion_tokens,
        ))  # fmt: skip
        counts["kept"] += 1
    counts["solved_problems"] += solved


PAPER = Paper(
    name="Instruction-tuning-CoT",
    citation='Ranaldi & Freitas, "Aligning Large and Small Language Models via Chain-of-Thought Reasoning", EACL 2024',
    url="https://aclanthology.org/2024.eacl-long.109",
    summary="A teacher model writes step-by-step chain-of-thought demonstrations; the student is "
    "instruction-tuned on them (SFT) to reason the same way.",
    tags=("reasoning", "chain-of-thought"),
    bibtex="""@inproceedings{ranaldi-freitas-2024-aligning,
    title = "Aligning Large and Small Language Models via Chain-of-Thought Reasoning",
    author = "Ranaldi, Leonardo and Freitas, Andre",
    editor = "Graham, Yvette and Purver, Matthew",
    booktitle = "Proceedings of the 18th Conference of the European Chapter of the Association for Computational Linguistics (Volume 1: Long Papers)",
    month = mar,
    year = "2024",
    address = "St. Julian{'}s, Malta",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.eacl-long.109",
    pages = "1812--1827"
}""",
)

PRESETS = {
    "ranaldi-eacl24": Preset(
        about="Ranaldi & Freitas, EACL 2024: their zero-shot CoT prompt, one demonstration per question, "
              "no correctness filter, every demonstration kept as the teacher wrote it (bare answers and "
              "contradictions included, flagged in the counts), class-balanced subsets",
        values={"template": "ranaldi-cot", "samples": 1, "keep": "all", "bare": "keep", "answer_line": "verbatim",
                "balance": True,
                "temperature": 0.0},  # greedy: ours, the paper does not say how its one demonstration was drawn
    ),
}

METHOD = Method(
    name="cot",
    folder=FOLDER,
    summary="Chain-of-thought demonstrations from a teacher, kept when the answer matches gold.",
    help="""Chain-of-thought demonstrations, kept when the answer matches gold (Ranaldi & Freitas, 2024).

    \b
    hubtool build-dataset cot --source gym:basic_arithmetic --limit 64 --samples 4 --out runs/cot
    hubtool build-dataset cot --source hf:gsm8k --teacher vllm:Qwen/Qwen2.5-72B-Instruct --out runs/gsm8k-cot
    """,
    config=CoTConfig,
    row=SFTRow,
    kind="sft",
    trainer=SFT,
    run=run,
    counts=("problems", "failed", "samples", "correct", "kept", "truncated", "no_answer", "contradictions",
            "no_reasoning", "accepted_strict", "accepted_fuzzy", "solved_problems"),  # fmt: skip
    paper=PAPER,
    recipe="cot/smollm2-135m-lora",
    presets=PRESETS,
    setup=setup,
    templates=lambda c: (c.template,),
)
