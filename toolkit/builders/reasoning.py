"""What later methods take from chain-of-thought building: the CoT prompt, the reading of a
completion against gold (`judge`), the counts it reports, few-shot exemplars. The cot method is
these plus its config and `run`; preference, mixed and counterfactual judge their samples the same
way, and evaluation renders the same prompt (`prompt_messages`), so none of them imports a method.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit import answers, prompts
from toolkit.answer_reading import AnswerLine, Rule, read_completion
from toolkit.errors import UserError
from toolkit.records import Problem

TEMPLATE = "cot"
TEMPLATE_VARIABLES = {"question", "choices", "exemplars", "answer_hint"}
ANSWER_HINTS = prompts.ANSWER_HINTS  # what fills the blank of "The answer is ___." (toolkit/prompts)
TEACHER_HELP = "BACKEND:MODEL; backends: transformers, openai (MODEL@BASE_URL), vllm, fake (see the README)."


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a completion says, checked: `text` is what a row may hold (see `judge`)."""

    pred: str | None  # the answer it states, canonical; None when it states none, or two different ones
    correct: bool  # states the gold answer (once) and is complete
    truncated: bool  # cut off by max_new_tokens
    text: str
    rule: Rule | None  # how pred was read: "strict" (an answer statement) or "fuzzy" (an option's text)
    contradiction: bool  # states two different answers ("the answer is No. ... The answer is Yes.")
    reasoning: bool  # says more than its answer; `The answer is 6.` alone does not

    @property
    def bare(self) -> bool:
        """A complete answer without reasoning: not a chain-of-thought demonstration."""
        return not self.reasoning and not self.truncated and (self.pred is not None or self.contradiction)


def judge(problem: Problem, text: str, finish_reason: str, answer_line: AnswerLine = "house") -> Verdict:
    """The completion read whole (`toolkit.answer_reading`): everything the model reasoned stays; a
    closing answer statement of a complete completion is put in house form (or kept as written,
    `answer_line="verbatim"`); a cut-off completion stays exactly as it came."""
    truncated = finish_reason == "length"
    reading = read_completion(text, problem.answer_type, problem.choices, answer_line=answer_line)
    pred = reading.value
    matches = pred is not None and answers.is_correct(pred, problem.gold, problem.answer_type, problem.choices)
    final = text.strip() if truncated else reading.text
    return Verdict(pred, matches and not truncated, truncated, final, reading.rule, reading.contradiction,
                   reading.reasoning)  # fmt: skip


def count_verdict(counts, verdict: Verdict) -> None:
    """The counts every method that judges with `judge` may report: how answers were read."""
    counts["contradictions"] += verdict.contradiction and not verdict.truncated
    counts["no_reasoning"] += verdict.bare
    if verdict.correct:
        counts[f"accepted_{verdict.rule}"] += 1


def load_fewshot(path: str | Path) -> tuple[dict, ...]:
    """Exemplars from a jsonl file with `question` and `rationale` (and optional `choices`)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"few-shot file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"few-shot file {path} cannot be read as UTF-8 text ({e})") from None
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {i + 1} is not JSON ({e})") from None
        if not isinstance(row, dict) or not {"question", "rationale"} <= row.keys():
            raise UserError(f"{path} line {i + 1}: an exemplar needs 'question' and 'rationale' fields")
        rows.append(row)
    return tuple(rows)


def _choices(problem_choices: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(answers.option_letters(len(problem_choices)), problem_choices))


def prompt_messages(problem: Problem, template: str = TEMPLATE, exemplars: Sequence[dict] = (),
                    system: str | None = None, dirs: prompts.Dirs = ()) -> tuple[dict[str, str], ...]:  # fmt: skip
    """The CoT prompt for a problem: what the teacher sees, what students are trained and scored on
    (`dirs`: the calling method's own template folders, see toolkit.prompts)."""
    shots = [{**ex, "choices": _choices(ex.get("choices") or [])} for ex in exemplars]
    text = prompts.render(
        template,
        dirs=dirs,
        question=problem.question,
        choices=_choices(problem.choices) if problem.answer_type == "option" else [],
        exemplars=shots,
        answer_hint=prompts.answer_hint(problem.answer_type, problem.choices),
    )
    head = [{"role": "system", "content": system}] if system else []
    return (*head, {"role": "user", "content": text})
