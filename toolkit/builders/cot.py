"""Instruction-tuning-CoT (Ranaldi & Freitas, EACL 2024).

The teacher writes k step-by-step demonstrations per problem from a zero-shot CoT prompt (optionally
few-shot); each is checked against gold with the shared answer checker and, by default, only the
correct ones are kept. Kept rationales are normalised to end with `The answer is X.`, the
convention the recipes train on and the eval tasks extract.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from toolkit import answers, prompts
from toolkit.builders.base import BuildResult, chunked
from toolkit.builders.progress import Progress
from toolkit.builders.rows import assistant, sft_schema, user
from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams
from toolkit.teachers.cache import CachedTeacher

TEMPLATE = "cot"
COUNTS = ("problems", "samples", "correct", "kept", "failed", "solved_problems")
ANSWER_HINTS = {"number": "<number>", "option": "<letter>", "yesno": "yes or no", "label": "<label>"}


@dataclass(frozen=True, slots=True)
class CoTOptions:
    samples: int = 4
    keep: Literal["correct", "all"] = "correct"
    template: str = TEMPLATE
    fewshot: tuple[dict, ...] = ()  # exemplars: question, rationale, optional choices
    system: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def to_manifest(self) -> dict:
        return {
            "samples": self.samples,
            "keep": self.keep,
            "template": self.template,
            "fewshot": len(self.fewshot),
            "system": self.system,
            "sampling": self.sampling.to_dict(),
        }


def load_fewshot(path: str | Path) -> tuple[dict, ...]:
    """Exemplars from a jsonl file with `question` and `rationale` (and optional `choices`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"few-shot file {path} does not exist")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        if not {"question", "rationale"} <= row.keys():
            raise UserError(f"{path} line {i + 1}: an exemplar needs 'question' and 'rationale' fields")
    return tuple(rows)


def _choices(problem_choices: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(answers.option_letters(len(problem_choices)), problem_choices))


def prompt_messages(problem: Problem, options: CoTOptions) -> tuple[dict[str, str], ...]:
    exemplars = [{**ex, "choices": _choices(ex.get("choices") or [])} for ex in options.fewshot]
    text = prompts.render(
        options.template,
        question=problem.question,
        choices=_choices(problem.choices) if problem.answer_type == "option" else [],
        exemplars=exemplars,
        answer_hint=ANSWER_HINTS[problem.answer_type],
    )
    system = [{"role": "system", "content": options.system}] if options.system else []
    return (*system, {"role": "user", "content": text})


def score(problem: Problem, completion: Completion) -> tuple[str | None, bool]:
    """The predicted answer (canonical) and whether it matches gold."""
    found = answers.extract_answer(completion.text, problem.answer_type, problem.choices)
    pred = found.value if found else None
    return pred, pred is not None and answers.is_correct(pred, problem.gold, problem.answer_type, problem.choices)


def build(problems: Sequence[Problem], teacher: CachedTeacher, options: CoTOptions) -> BuildResult:
    prompts.check_template(options.template, {"question", "choices", "exemplars", "answer_hint"})
    if options.samples < 1:
        raise UserError("--samples must be at least 1")
    result = BuildResult(schema=sft_schema())
    result.counts.update(dict.fromkeys(COUNTS, 0))  # every count present, zeros included
    progress = Progress(len(problems), "cot")
    try:
        for chunk in chunked(problems, 64):
            requests = [Request(prompt_messages(p, options), n=options.samples, params=options.sampling) for p in chunk]
            outputs = teacher.generate(requests, on_result=lambda _i, r: progress.update(r))
            for problem, request, output in zip(chunk, requests, outputs):
                _collect(result, problem, request, output, teacher.identity, options)
    finally:
        progress.close()
    result.elapsed = progress.elapsed
    return result


def _collect(result: BuildResult, problem: Problem, request: Request, output, teacher: str, options: CoTOptions) -> None:
    result.counts["problems"] += 1
    if isinstance(output, CallFailure):
        result.failed.append({"id": problem.id, "question": problem.question, "error": output.error})
        result.counts["failed"] += 1
        return
    solved = False
    for idx, completion in enumerate(output):
        pred, correct = score(problem, completion)
        result.counts["samples"] += 1
        result.counts["correct"] += correct
        solved |= correct
        if options.keep == "correct" and not correct:
            continue
        text = answers.ensure_answer_line(completion.text, pred) if pred is not None else completion.text
        result.rows.append({
            "prompt": list(request.messages), "completion": assistant(text), "id": problem.id,
            "source": problem.source, "question": problem.question, "gold": problem.gold, "pred": pred,
            "correct": correct, "answer_type": problem.answer_type, "choices": list(problem.choices),
            "teacher": teacher, "sample_idx": idx, "finish_reason": completion.finish_reason,
            "num_tokens": completion.completion_tokens,
        })  # fmt: skip
        result.counts["kept"] += 1
    result.counts["solved_problems"] += solved


__all__ = ["CoTOptions", "build", "load_fewshot", "prompt_messages", "score", "user"]
