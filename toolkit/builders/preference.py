"""Self-refine instruction-tuning (Ranaldi & Freitas, 2024): preference pairs from the student's own reasoning.

Stage two of the method. The CoT-instructed student samples k reasoning paths per problem from the
prompt it was trained on (the CoT builder's prompt, or with `--from-dataset` the CoT dataset's own
prompt messages); each path is scored against gold with the shared answer checker, and the pair
rules of `toolkit.builders.pairs` turn correct paths (chosen) and wrong paths or a direct, no-CoT
answer (rejected) into DPO rows. `build_dataset` runs the student where other builders run the
teacher: the same backends, the same call cache, the same resume.

Chosen texts are normalised to end with `The answer is X.` (the convention SFT trained on);
rejected texts stay as the student wrote them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from toolkit import answers, prompts
from toolkit.builders import pairs
from toolkit.builders.base import BuildResult, chunked
from toolkit.builders.cot import ANSWER_HINTS, CoTOptions, prompt_messages, score
from toolkit.builders.pairs import Candidate, Origin, PairRules
from toolkit.builders.progress import Progress
from toolkit.builders.rows import assistant, preference_schema
from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.teachers.base import CallFailure, Completion, OnResult, Request, Result, SamplingParams
from toolkit.teachers.cache import CachedTeacher

TEMPLATE = "cot"
DIRECT_TEMPLATE = "direct"
# Metadata beside TRL's prompt / chosen / rejected (DESIGN.md, "TRL-native rows").
META = (
    ("id", "string"), ("source", "string"), ("question", "string"), ("gold", "string"), ("answer_type", "string"),
    ("choices", "list<string>"), ("chosen_pred", "string"), ("rejected_pred", "string"), ("chosen_from", "string"),
    ("rejected_from", "string"), ("chosen_idx", "int32"), ("rejected_idx", "int32"), ("pass_rate", "float64"),
    ("samples", "int32"), ("student", "string"),
)  # fmt: skip
# Every build reports all of these, zeros included. all_correct / none_correct: prompts with pass rate
# 1 / 0 (paired or not); skipped: prompts that gave no pair; failed: prompts whose call failed.
COUNTS = ("problems", "samples", "correct", "pairs", "all_correct", "none_correct", "skipped", "failed",
          "direct", "direct_correct", "teacher_chosen")  # fmt: skip


@dataclass(frozen=True, slots=True)
class PreferenceOptions:
    samples: int = 8
    rules: PairRules = field(default_factory=PairRules)
    template: str = TEMPLATE  # the CoT prompt, for problems that bring no prompt of their own
    direct_template: str = DIRECT_TEMPLATE
    system: str | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise UserError("--samples must be at least 1")

    def to_manifest(self) -> dict:
        return {
            "samples": self.samples,
            **self.rules.to_manifest(),
            "template": self.template,
            "direct_template": self.direct_template if self.rules.wants_direct else None,
            "system": self.system,
            "sampling": self.sampling.to_dict(),
            "direct_sampling": direct_params(self.sampling).to_dict() if self.rules.wants_direct else None,
        }


@dataclass(frozen=True, slots=True)
class Ask:
    """What one problem asks of the student: k CoT samples, and a direct answer when a rule needs it."""

    problem: Problem
    cot: Request
    direct: Request | None


def direct_params(sampling: SamplingParams) -> SamplingParams:
    """Greedy: the student's one most likely plain answer."""
    return SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=sampling.max_new_tokens, seed=sampling.seed)


def cot_messages(problem: Problem, options: PreferenceOptions) -> tuple[dict[str, str], ...]:
    """The prompt the student was trained on: the problem's own (a CoT dataset row's), else the CoT builder's."""
    own = problem.meta.get("prompt")
    if own:
        return tuple(own)
    return prompt_messages(problem, CoTOptions(template=options.template, system=options.system))


def direct_messages(problem: Problem, cot: Sequence[dict[str, str]], options: PreferenceOptions) -> tuple[dict[str, str], ...]:
    """The same question without "think step by step", after the CoT prompt's system message(s)."""
    choices = problem.choices if problem.answer_type == "option" else ()
    text = prompts.render(
        options.direct_template,
        question=problem.question,
        choices=list(zip(answers.option_letters(len(choices)), choices)),
        answer_hint=ANSWER_HINTS[problem.answer_type],
    )
    return (*[m for m in cot if m["role"] == "system"], {"role": "user", "content": text})


def ask(problem: Problem, options: PreferenceOptions) -> Ask:
    messages = cot_messages(problem, options)
    direct = None
    if options.rules.wants_direct:
        direct = Request(direct_messages(problem, messages, options), n=1, params=direct_params(options.sampling))
    return Ask(problem, Request(messages, n=options.samples, params=options.sampling), direct)


def candidate(problem: Problem, text: str, origin: Origin, idx: int | None = None) -> Candidate:
    """A scored answer; a correct reasoning path gets the convention's closing line."""
    pred, correct = score(problem, Completion(text, "stop"))
    if correct and origin != "direct":
        text = answers.ensure_answer_line(text, pred)
    return Candidate(text.strip(), pred, correct, origin, idx)


def build(problems: Sequence[Problem], teacher: CachedTeacher, options: PreferenceOptions) -> BuildResult:
    """`teacher` is the student (see the module doc)."""
    prompts.check_template(options.template, {"question", "choices", "exemplars", "answer_hint"})
    if options.rules.wants_direct:
        prompts.check_template(options.direct_template, {"question", "choices", "answer_hint"})
    if options.rules.fallback == "teacher" and not any("teacher_rationales" in p.meta for p in problems):
        raise UserError("--fallback teacher needs the teacher's rationales: read the problems with --from-dataset NAME")
    result = BuildResult(schema=preference_schema(META))
    result.counts.update(dict.fromkeys(COUNTS, 0))
    histogram = Counter({_bucket(i / options.samples): 0 for i in range(options.samples + 1)})
    skipped: Counter[str] = Counter()
    progress = Progress(len(problems), "preference")
    try:
        for chunk in chunked(problems, 64):
            asks = [ask(p, options) for p in chunk]
            requests, cot_at = _flatten(asks)
            outputs = iter(teacher.generate(requests, on_result=_ticks(progress, cot_at)))
            for a in asks:
                cot_out = next(outputs)
                direct_out = next(outputs) if a.direct is not None else None
                rate, reason = _collect(result, a, cot_out, direct_out, teacher.identity, options.rules)
                if rate is not None:
                    histogram[_bucket(rate)] += 1
                if reason:
                    skipped[reason] += 1
    finally:
        progress.close()
    result.elapsed = progress.elapsed
    result.extra.update(
        student=teacher.identity,
        pass_rate_histogram=dict(sorted(histogram.items(), key=lambda kv: float(kv[0]))),
        skipped_reasons=dict(sorted(skipped.items())),
        prompts_from="dataset" if any(p.meta.get("prompt") for p in problems) else "template",
        cot_teacher=next((p.meta["teacher"] for p in problems if p.meta.get("teacher")), None),
        direct_prompt_template=prompts.template_source(options.direct_template) if options.rules.wants_direct else None,
    )  # fmt: skip
    return result


def _flatten(asks: Sequence[Ask]) -> tuple[list[Request], set[int]]:
    """All requests of a chunk, each problem's CoT request before its direct one; and where the CoT ones are."""
    requests: list[Request] = []
    cot_at: set[int] = set()
    for a in asks:
        cot_at.add(len(requests))
        requests += [a.cot] if a.direct is None else [a.cot, a.direct]
    return requests, cot_at


def _ticks(progress: Progress, cot_at: set[int]) -> OnResult:
    """One tick per problem, when its CoT request is done."""

    def on_result(i: int, result: Result) -> None:
        if i in cot_at:
            progress.update(result)

    return on_result


def _bucket(rate: float) -> str:
    return f"{round(rate, 3):g}"


def _collect(result: BuildResult, a: Ask, cot_out: Result, direct_out: Result | None, student: str,
             rules: PairRules) -> tuple[float | None, str | None]:  # fmt: skip
    """Score one problem's samples, pair them, append its rows; returns (pass rate, why skipped)."""
    problem, counts = a.problem, result.counts
    counts["problems"] += 1
    failure = next((o for o in (cot_out, direct_out) if isinstance(o, CallFailure)), None)
    if failure is not None:
        kind = "cot" if isinstance(cot_out, CallFailure) else "direct"
        result.failed.append({"id": problem.id, "question": problem.question, "request": kind, "error": failure.error})
        counts["failed"] += 1
        return None, None
    samples = [candidate(problem, c.text, "student", idx) for idx, c in enumerate(cot_out)]
    direct = candidate(problem, direct_out[0].text, "direct") if direct_out else None
    teacher = []
    if rules.fallback == "teacher":  # the CoT dataset's rationales, re-scored: only correct ones stand in
        teacher = [candidate(problem, text, "teacher") for text in problem.meta.get("teacher_rationales", ())]
        teacher = [t for t in teacher if t.correct]
    outcome = pairs.make_pairs(samples, rules, direct=direct, teacher=teacher)
    counts["samples"] += len(samples)
    counts["correct"] += sum(s.correct for s in samples)
    counts["all_correct"] += outcome.pass_rate == 1.0
    counts["none_correct"] += outcome.pass_rate == 0.0
    if direct is not None:
        counts["direct"] += 1
        counts["direct_correct"] += direct.correct
    counts["skipped"] += outcome.skipped is not None
    for pair in outcome.pairs:
        counts["pairs"] += 1
        counts["teacher_chosen"] += pair.chosen_from == "teacher"
        result.rows.append({
            "prompt": list(a.cot.messages), "chosen": assistant(pair.chosen.text),
            "rejected": assistant(pair.rejected.text), "id": problem.id, "source": problem.source,
            "question": problem.question, "gold": problem.gold, "answer_type": problem.answer_type,
            "choices": list(problem.choices), "chosen_pred": pair.chosen.pred, "rejected_pred": pair.rejected.pred,
            "chosen_from": pair.chosen_from, "rejected_from": pair.rejected_from, "chosen_idx": pair.chosen.idx,
            "rejected_idx": pair.rejected.idx, "pass_rate": outcome.pass_rate, "samples": len(samples),
            "student": student,
        })  # fmt: skip
    return outcome.pass_rate, outcome.skipped


__all__ = ["PreferenceOptions", "ask", "build", "candidate", "cot_messages", "direct_messages", "direct_params"]
