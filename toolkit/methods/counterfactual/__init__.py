"""Counterfactual distillation (Feng et al., EMNLP 2024): label-flipped inputs, validated, with
multi-view chain of thought.

For a labelled example (x, y) and each target label y' != y (`--targets`), one problem's work is

    teacher: x' = a minimal edit of x whose label is y'   (--candidates replies)
      -> checks: x' parses and keeps the options; x' != x; x' does not state y' ("(Answer No)") and
         keeps the task's answer format ("(Answer Yes or No)"); token edit ratio <= --max-edit
      -> judge, blind (it sees x' only): --judge-votes answers; a reply with no answer or two different
         ones is no vote; kept when a strict majority of the readable votes (at least half) says y'
    teacher, told the label: multi-view rationales for (x, y) and each kept (x', y'):
        "why the answer is y" and "why it is not z" for the other labels z (--refute-views)
      -> each kept only when its own closing answer line states its label (the shared checker) and
         it states no other label anywhere (argued one way, ended the other: `contradicting`)

Prompts call the input what it is (a question, a review, a premise-hypothesis pair: `input_name`).
The judge defaults to the teacher; the build then warns and records `judge.is_teacher` (a model
confirming its own edits is not an independent check).

Rows are SFT prompt-completion: the prompt is what the student sees (the question and its label
space, no hint of the answer), the completion a verified rationale ending "The answer is X.". Every
drop is counted by stage, so the card's funnel adds up: generated -> minimal -> judged y' ->
selected (one per target) -> rationale verified.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from toolkit import prompts
from toolkit.builders.config import BuildConfig, at_least, option_name, param
from toolkit.builders.method import SFT, Method, Work
from toolkit.builders.reasoning import TEACHER_HELP, judge
from toolkit.builders.rows import SFTRow, assistant
from toolkit.errors import UserError
from toolkit.methods.counterfactual import edits
from toolkit.methods.counterfactual.edits import Label
from toolkit.methods.counterfactual.labelled import load_problems
from toolkit.methods.counterfactual.messages import (
    EDIT_VARIABLES,
    PROMPT_DIRS,
    STUDENT_VARIABLES,
    VIEW_VARIABLES,
    edit_messages,
    student_messages,
    view_messages,
)
from toolkit.methods.counterfactual.paper import PAPER, PRESETS
from toolkit.methods.counterfactual.stats import EDIT_DROPS, Stats, card_warnings, finish
from toolkit.records import Problem, stable_id
from toolkit.teachers import DEFAULT_TEACHER, redact_spec
from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams

FOLDER = Path(__file__).parent

EXAMPLE_CHARS = 400
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class CounterfactualConfig(BuildConfig):
    teacher: str = param(DEFAULT_TEACHER, help=f"The teacher: {TEACHER_HELP}", metavar="BACKEND:MODEL", model=True)
    judge: str | None = param(
        None, help="BACKEND:MODEL that re-labels every edit blind; give a model other than the teacher (default: the "
             "teacher, which confirms its own edits: the build warns and records it).", metavar="BACKEND:MODEL",
        model=True)  # fmt: skip
    targets: str = param("one", help="Target labels per example: all (every other label), one, or a count N "
                                     "(drawn with --seed).")  # fmt: skip
    candidates: int = param(1, help="Edits the teacher writes per target; the first that passes every check is kept.")
    max_edit: float = param(0.3, help="Largest token edit ratio of a counterfactual: token edit distance / tokens "
                                      "of the original.")  # fmt: skip
    judge_votes: int = param(3, help="Blind re-labellings per edit; kept when a strict majority says the target.")
    judge_temperature: float = param(0.7, help="Sampling temperature of the judge's votes (0: one greedy answer, "
                                               "repeated).")  # fmt: skip
    refute_views: str = param("all", help="Multi-view CoT: besides 'why the answer is y', a 'why it is not z' view "
                                          "for every other label (all), for N drawn ones, or none (0).")  # fmt: skip
    samples: int = param(1, help="Rationales sampled per view.")
    label_field: str | None = param(None, help="Column holding the label (file: and hf:ORG/NAME sources).")
    labels: tuple[str, ...] = param(
        (), help="The label set, in order, e.g. --labels negative,positive; golds are labels or indices into them.",
        metavar="A,B,...")  # fmt: skip
    template: str = param("counterfactual_cot", help="What the student sees and the judge answers: a name in "
                                                     "toolkit/prompts, or a FILE.jinja.")  # fmt: skip
    edit_template: str = param("counterfactual_edit", help="The teacher's edit prompt: a name or FILE.jinja.")
    view_template: str = param("counterfactual_view", help="The teacher's rationale prompt: a name or FILE.jinja.")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("candidates", "judge_votes", "samples"):
            at_least(self, name, 1)
        if not (self.targets in ("all", "one") or (self.targets.isdigit() and int(self.targets) >= 1)):
            raise UserError(f"--targets must be all, one or a count >= 1, not {self.targets!r}")
        if not (self.refute_views == "all" or self.refute_views.isdigit()):
            raise UserError(f"--refute-views must be all or a count >= 0, not {self.refute_views!r}")
        if not math.isfinite(self.max_edit) or self.max_edit <= 0:
            raise UserError(f"--max-edit must be a number > 0 (a share of the original's tokens), not {self.max_edit}")
        if not math.isfinite(self.judge_temperature) or self.judge_temperature < 0:
            raise UserError(f"--judge-temperature must be a finite number >= 0, not {self.judge_temperature}")
        if self.label_field is not None and self.answer_field is not None:
            raise UserError("give the label column once: --label-field or --answer-field, not both")
        labels = tuple(part.strip() for item in self.labels for part in item.split(",") if part.strip())
        if self.labels and (len(labels) < 2 or len({label.casefold() for label in labels}) != len(labels)):
            raise UserError(f"--labels needs two or more distinct labels, not {', '.join(labels)}")
        if labels and self.answer_type not in (None, "label"):
            raise UserError(f"--labels is a label set; drop {option_name('answer_type')} {self.answer_type}")
        object.__setattr__(self, "labels", labels)
        if self.judge is None:
            object.__setattr__(self, "judge", self.teacher)  # one backend serves both roles

    @property
    def judge_sampling(self) -> SamplingParams:
        return SamplingParams(self.judge_temperature, self.top_p, self.max_new_tokens, self.seed)


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterfactualRow(SFTRow):
    pair_id: str  # the original example's id: its rows and its counterfactuals' rows share it
    is_counterfactual: bool
    target_label: str  # the label of this row's input (y' for a counterfactual, y for an original)
    original_label: str  # y
    original_question: str  # x (`question` is x' on a counterfactual row)
    view: str  # "support" or "refute:Z"
    edit_ratio: float  # token edit distance / tokens of x (0 on originals)
    edit_idx: int | None  # which of the teacher's --candidates edits this is (None on originals)
    judge_votes: list[str]  # the judge's blind answers to x' ("" for none); [] on originals
    judge: str | None  # the judge's identity (None on originals)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a problem's rows come from: an original example, or a kept counterfactual of one."""

    pair_id: str
    original: Problem
    edit_ratio: float = 0.0
    edit_idx: int | None = None
    votes: tuple[str, ...] = ()
    judge: str | None = None

    @property
    def is_counterfactual(self) -> bool:
        return self.edit_idx is not None


# -- one problem --------------------------------------------------------------------------------
async def run(problem: Problem, work: Work[CounterfactualConfig]) -> None:
    c = work.config
    if work.state.judge_is_teacher is None:
        work.state.judge_is_teacher = work.models["judge"].identity == work.models["teacher"].identity
    targets = edits.pick(edits.other_labels(problem), c.targets, c.seed, problem.id)
    work.counts["targets"] += len(targets)
    original = Origin(problem.id, problem)
    jobs = [rationales(problem, original, work), *(counterfactual(problem, t, work) for t in targets)]
    found = await asyncio.gather(*jobs)  # every call of the problem at once: one batch for a local backend
    work.counts["originals_kept"] += bool(found[0])
    for rows in found:  # in a fixed order: the original's rows, then each target's
        for row in rows:
            work.keep(row)
            work.counts["kept"] += 1
            work.counts["kept_counterfactual" if row.is_counterfactual else "kept_original"] += 1


async def counterfactual(problem: Problem, target: Label, work: Work[CounterfactualConfig]) -> list[CounterfactualRow]:
    """Edits toward `target`, checked and judged; the rows of the first one that passes."""
    c, counts, stats = work.config, work.counts, work.state
    request = Request(edit_messages(problem, target, c.edit_template), n=c.candidates, params=c.sampling)
    result = await work.models["teacher"].generate(request)
    if isinstance(result, CallFailure):
        work.fail(result.error, role="teacher", step="edit", target=target.value)
        return []
    minimal = []
    for idx, completion in enumerate(result):
        counts["cf_generated"] += 1
        reason, text, ratio = check_edit(problem, completion, c.max_edit, target)
        if ratio is not None:
            stats.ratios[edits.histogram_bin(ratio)] += 1
        if reason:
            counts[f"cf_{reason}"] += 1
            continue
        counts["cf_minimal"] += 1
        edited = Problem(id=stable_id(problem.id, "counterfactual", target.value), source=problem.source, question=text,
                         gold=target.value, answer_type=problem.answer_type, choices=problem.choices,
                         meta={"pair_id": problem.id})  # fmt: skip
        minimal.append((idx, edited, ratio))
    if not minimal:
        return []
    requests = [Request(student_messages(edited, c.template), n=c.judge_votes, params=c.judge_sampling)
                for _, edited, _ in minimal]  # fmt: skip
    chosen = None
    for (idx, edited, ratio), judged in zip(minimal, await work.models["judge"].gather(*requests)):
        if isinstance(judged, CallFailure):
            work.fail(judged.error, role="judge", step="judge", target=target.value)
            counts["cf_judge_failed"] += 1
            continue
        votes = tuple(vote(edited, completion) for completion in judged)
        decided = edits.verdict(problem, votes, target.value)  # the original: its gold is the old label
        counts[{"target": "cf_judged", "original": "cf_kept_old_label", "other": "cf_judged_other",
                "unreadable": "cf_judge_unreadable"}[decided]] += 1  # fmt: skip
        if decided == "target" and chosen is None:
            chosen = Origin(problem.id, problem, ratio, idx, votes, work.models["judge"].identity), edited
        elif decided == "target":
            counts["cf_spare"] += 1
    if chosen is None:
        return []
    origin, edited = chosen
    rows = await rationales(edited, origin, work)
    counts["cf_verified" if rows else "cf_no_rationale"] += 1
    if rows:
        stats.kept_ratios[edits.histogram_bin(origin.edit_ratio)] += 1
        stats.target_labels[target.value] += 1
        stats.add_example({"pair_id": problem.id, "original": _cut(problem.question), "original_label": problem.gold,
                           "counterfactual": _cut(edited.question), "target_label": target.value,
                           "edit_ratio": origin.edit_ratio, "judge_votes": list(origin.votes)})  # fmt: skip
    return rows


def check_edit(problem: Problem, completion: Completion, max_edit: float,
               target: Label) -> tuple[str | None, str, float | None]:  # fmt: skip
    """(why the edit is dropped or None, the edited input, its edit ratio when it was measured)."""
    if completion.finish_reason == "length":
        return "truncated", "", None  # cut off mid-edit: what is there is not the whole input
    edit = edits.parse_edit(completion.text, problem)
    if edit.problem:
        return edit.problem, edit.text, None
    text, _ = edits.restore_format(problem, edit.text)  # an answer written into the format line taken out
    if edits.is_identical(problem.question, text):
        return "identical", text, 0.0
    if edits.label_leak(problem, text, target):
        return "label_leak", text, None  # the input would tell the student its answer
    if edits.instructions_changed(problem, text):
        return "instructions", text, None  # the task, not the content, was edited
    ratio = edits.edit_ratio(problem.question, text)
    return ("too_far" if ratio > max_edit else None), text, ratio


def vote(problem: Problem, completion: Completion) -> str:
    """One blind answer: the label the judge's completion states ("" for none, cut off, or contradicting)."""
    verdict = judge(problem, completion.text, completion.finish_reason)
    if verdict.pred is None or verdict.truncated or edits.argues_other(problem, completion.text, verdict.pred):
        return ""  # no answer, cut off, or two different answers: unreadable, no vote
    return verdict.pred


async def rationales(problem: Problem, origin: Origin, work: Work[CounterfactualConfig]) -> list[CounterfactualRow]:
    """Multi-view rationales for a problem whose `gold` is its label; the verified ones as rows."""
    c, counts = work.config, work.counts
    refuted = edits.pick(edits.other_labels(problem), c.refute_views, c.seed, f"{problem.id}:views")
    views = [("support", None), *((f"refute:{label.value}", label) for label in refuted)]
    requests = [Request(view_messages(problem, label, c.view_template), n=c.samples, params=c.sampling) for _, label in views]
    prompt = list(student_messages(problem, c.template))
    rows = []
    for (view, _), result in zip(views, await work.teacher.gather(*requests)):
        if isinstance(result, CallFailure):
            work.fail(result.error, role="teacher", step=view, pair_id=origin.pair_id)
            continue
        for idx, completion in enumerate(result):
            verdict = judge(problem, completion.text, completion.finish_reason)
            counts["samples"] += 1
            if verdict.truncated:
                counts["truncated"] += 1
            elif verdict.contradiction:
                counts["contradicting"] += 1  # states two different labels (the shared judge reads none)
            elif verdict.pred is None:
                counts["no_answer"] += 1
            elif not verdict.correct:
                counts["wrong_label"] += 1  # it argues for another label than its own
            elif edits.argues_other(problem, completion.text, verdict.pred):
                counts["contradicting"] += 1  # it also states another label: argued one way, ended the other
            elif verdict.bare:
                counts["no_reasoning"] += 1  # "The answer is positive." alone explains no view
            else:
                counts["correct"] += 1
                rows.append(_row(problem, origin, prompt, view, idx, verdict.text, verdict.pred, completion, work))
    return rows


def _row(problem: Problem, origin: Origin, prompt: list, view: str, idx: int, text: str, pred: str,
         completion: Completion, work: Work) -> CounterfactualRow:  # fmt: skip
    o = origin.original
    return CounterfactualRow(
        prompt=prompt, completion=assistant(text), id=problem.id, source=problem.source, question=problem.question,
        gold=problem.gold, pred=pred, correct=True, answer_type=problem.answer_type, choices=list(problem.choices),
        teacher=work.teacher.public_identity, sample_idx=idx, finish_reason=completion.finish_reason,
        num_tokens=completion.completion_tokens, pair_id=origin.pair_id, is_counterfactual=origin.is_counterfactual,
        target_label=problem.gold, original_label=o.gold, original_question=o.question, view=view,
        edit_ratio=origin.edit_ratio, edit_idx=origin.edit_idx, judge_votes=list(origin.votes), judge=origin.judge,
    )  # fmt: skip


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + " […]"


# -- before and after ---------------------------------------------------------------------------
def setup(config: CounterfactualConfig) -> Stats:
    if config.judge == config.teacher:
        log.warning("counterfactual: the judge is the teacher (%s), so edits are confirmed by the model that "
                    "wrote them; pass --judge BACKEND:MODEL with another model for an independent check",
                    redact_spec(config.teacher))  # fmt: skip
    prompts.check_template(config.template, STUDENT_VARIABLES, PROMPT_DIRS)
    prompts.check_template(config.edit_template, EDIT_VARIABLES, PROMPT_DIRS)
    prompts.check_template(config.view_template, VIEW_VARIABLES, PROMPT_DIRS)
    return Stats()


METHOD = Method(
    name="counterfactual",
    folder=FOLDER,
    summary="Label-flipped counterfactual inputs, validated, with multi-view CoT for SFT (Feng et al., 2024).",
    help="""Counterfactual distillation: minimal label-flipping edits, validated, with multi-view CoT
    (Feng et al., EMNLP 2024).

    For each labelled example the teacher rewrites the input so its label becomes a target label;
    an edit is kept when it differs from the input, stays within --max-edit, keeps the options, and a
    blind judge's majority gives it the target label. The teacher then explains the original and each
    kept counterfactual from several views (why the answer is y, why it is not z); only rationales
    whose closing answer states the right label become rows.

    \b
    hubtool build-dataset counterfactual --source gym:syllogism --limit 64 --out runs/cf
    hubtool build-dataset counterfactual --source hf:stanfordnlp/imdb --question-field text --label-field label \\
        --labels negative,positive --teacher vllm:Qwen/Qwen2.5-72B-Instruct --preset feng-emnlp24 --out runs/cf-imdb
    """,
    config=CounterfactualConfig,
    row=CounterfactualRow,
    kind="sft",
    trainer=SFT,
    run=run,
    counts=("problems", "failed", "targets", "cf_generated", *(f"cf_{k}" for k in EDIT_DROPS), "cf_minimal",
            "cf_kept_old_label", "cf_judged_other", "cf_judge_unreadable", "cf_judge_failed", "cf_judged", "cf_spare",
            "cf_no_rationale", "cf_verified", "samples", "correct", "wrong_label", "contradicting", "no_answer",
            "truncated", "originals_kept", "kept", "kept_original", "kept_counterfactual"),  # fmt: skip
    paper=PAPER,
    card="counterfactual.md.jinja",
    card_warnings=card_warnings,
    recipe="counterfactual/smollm2-135m-lora",
    presets=PRESETS,
    setup=setup,
    templates=lambda c: (c.template, c.edit_template, c.view_template),
    load_problems=load_problems,
    finish=finish,
)
