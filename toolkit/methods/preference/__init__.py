"""Self-refine instruction-tuning (Ranaldi & Freitas, 2024): preference pairs from the student's own reasoning.

Stage two of the method. The CoT-instructed student samples k reasoning paths per problem from the
prompt it was trained on (the CoT builder's prompt, or with `--from-dataset` the CoT dataset's own
prompt messages); each path is scored against gold with the shared checker, and the pair rules of
`toolkit.methods.preference.pairs` turn correct paths (chosen) and wrong paths or a direct, no-CoT answer
(rejected) into DPO rows. The engine runs the student where other methods run the teacher: the
same backends, call cache and resume.

Both sides are written alike (`cot.judge`): a complete answer that states its result ends in the
house form, anything else stays as written, so no cue but the reasoning tells chosen from rejected.
Cut-off samples take no side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from toolkit import answers, prompts
from toolkit.builders.config import BuildConfig, Preset, at_least, option_name, param
from toolkit.builders.engine import source_problems
from toolkit.builders.method import DPO, Method, Paper, Work
from toolkit.builders.reasoning import (
    TEMPLATE,
    TEMPLATE_VARIABLES,
    Verdict,
    count_verdict,
    judge,
    prompt_messages,
)
from toolkit.builders.rows import PreferenceRow, assistant
from toolkit.errors import UserError
from toolkit.methods.preference import pairs
from toolkit.methods.preference.from_dataset import load_cot_dataset
from toolkit.methods.preference.pairs import Candidate, Origin, PairRules
from toolkit.records import Problem
from toolkit.teachers.base import CallFailure, Completion, Request, SamplingParams

FOLDER = Path(__file__).parent
PROMPT_DIRS = (FOLDER / "prompts",)  # its own prompt templates, looked up after toolkit/prompts/ (shared ones)

DIRECT_TEMPLATE = "direct"
# What only a --source reads; --from-dataset takes the problems and prompts as the dataset has them.
SOURCE_ONLY = ("subset", "data_files", "question_field", "answer_field", "answer_type", "choices_field", "system")


@dataclass(frozen=True, kw_only=True)
class PreferenceConfig(BuildConfig):
    student: str = param(
        help="BACKEND:MODEL of the CoT-trained student, e.g. transformers:out/cot-student (a training output "
             "folder), openai:NAME@URL, vllm:PATH.", metavar="BACKEND:MODEL", model=True)  # fmt: skip
    from_dataset: str | None = param(
        None, help="Instead of --source: a CoT dataset (ORG/NAME, or a run directory) whose problems, prompts and "
                   "teacher rationales are used; --split, --revision, --limit apply to it.", metavar="NAME")  # fmt: skip
    samples: int = param(8, help="Reasoning paths the student samples per problem.")
    rejected: Literal["wrong", "direct", "both"] = param(
        "wrong", help="The rejected side: a wrong CoT sample; the student's direct answer without CoT (one greedy "
                      "request, prompts/direct.jinja), right or wrong; or both.")  # fmt: skip
    pairs_per_prompt: int = param(
        2, help="At most this many pairs per problem, each from the least-used samples; 0: one pair per "
                "correct sample.")  # fmt: skip
    direct_samples: int = param(
        1, help="Direct answers asked per problem (--rejected direct or both): 1 is one greedy answer; N > 1 "
                "samples N at --temperature; 0 samples as many as --samples.")  # fmt: skip
    fallback: Literal["none", "teacher"] = param(
        "none", help="A problem the student never solves: skip it, or take the teacher's correct rationale from "
                     "--from-dataset as chosen.")  # fmt: skip
    keep_solved: bool = param(
        False, help="Also pair problems the student always solves (against the direct answer: needs --rejected "
                    "direct or both). Default: skip them.")  # fmt: skip
    template: str = param(TEMPLATE, help="CoT prompt for problems that bring none (--source): a name or FILE.jinja.")
    direct_template: str = param(DIRECT_TEMPLATE, help="Prompt of the direct (no-CoT) answer: a name or FILE.jinja.")
    system: str | None = param(None, help="System prompt for the student (--source only).")

    def __post_init__(self) -> None:
        super().__post_init__()
        at_least(self, "samples", 1)
        at_least(self, "direct_samples", 0)
        if self.source is not None and self.from_dataset is not None:
            raise UserError("give the problems with either --source or --from-dataset, not both")
        if self.fallback == "teacher" and self.from_dataset is None:
            raise UserError("--fallback teacher uses the teacher's rationales of a CoT dataset; add --from-dataset NAME")
        if self.from_dataset is not None:
            given = [option_name(k) for k in SOURCE_ONLY if getattr(self, k) is not None]
            if given:
                raise UserError(f"{', '.join(given)} apply to --source only; --from-dataset uses the dataset's problems and prompts")
        self.rules  # noqa: B018 - the pair rules check themselves

    def has_problems(self) -> bool:
        return self.source is not None or self.from_dataset is not None

    @property
    def rules(self) -> PairRules:
        return PairRules(rejected=self.rejected, pairs_per_prompt=self.pairs_per_prompt, fallback=self.fallback,
                         keep_solved=self.keep_solved)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class PairRow(PreferenceRow):
    chosen_pred: str | None
    rejected_pred: str | None
    chosen_from: str  # "student" | "teacher" (fallback)
    rejected_from: str  # "wrong" (a wrong CoT sample) | "direct" (the answer without CoT)
    chosen_idx: int | None
    rejected_idx: int | None
    pass_rate: float  # share of the problem's complete samples that were correct
    samples: int
    student: str


@dataclass
class Stats:
    """What the card reports beyond counts, gathered as problems finish."""

    samples: int
    histogram: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    chars: Counter[str] = field(default_factory=Counter)  # total characters of chosen / rejected texts
    prompts_from: set[str] = field(default_factory=set)
    cot_teacher: str | None = None


def direct_request(messages: tuple[dict[str, str], ...], config: PreferenceConfig) -> Request:
    """One greedy direct answer (the student's most likely plain answer), or several sampled ones."""
    n = config.direct_samples or config.samples
    if n == 1:
        s = config.sampling
        return Request(messages, n=1, params=SamplingParams(0.0, 1.0, s.max_new_tokens, s.seed))
    return Request(messages, n=n, params=config.sampling)


def cot_messages(problem: Problem, config: PreferenceConfig) -> tuple[dict[str, str], ...]:
    """The prompt the student was trained on: the problem's own (a CoT dataset row's), else the CoT builder's."""
    own = problem.meta.get("prompt")
    return tuple(own) if own else prompt_messages(problem, config.template, (), config.system, PROMPT_DIRS)


def direct_messages(problem: Problem, cot: Sequence[dict[str, str]], config: PreferenceConfig) -> tuple[dict[str, str], ...]:
    """The same question without "think step by step", after the CoT prompt's system message(s)."""
    choices = problem.choices if problem.answer_type == "option" else ()
    text = prompts.render(
        config.direct_template, dirs=PROMPT_DIRS, question=problem.question, answer_hint=prompts.answer_hint(problem.answer_type, problem.choices),
        choices=list(zip(answers.option_letters(len(choices)), choices)),
    )  # fmt: skip
    return (*[m for m in cot if m["role"] == "system"], {"role": "user", "content": text})


def candidate(problem: Problem, completion: Completion, origin: Origin, idx: int | None = None) -> Candidate | None:
    """A scored answer, written as `cot.judge` writes any row; None for a cut-off one."""
    return as_candidate(judge(problem, completion.text, completion.finish_reason), origin, idx)


def as_candidate(verdict: Verdict, origin: Origin, idx: int | None = None) -> Candidate | None:
    if verdict.truncated:
        return None
    return Candidate(verdict.text, verdict.pred, verdict.correct, origin, idx)


def setup(config: PreferenceConfig) -> Stats:
    prompts.check_template(config.template, TEMPLATE_VARIABLES, PROMPT_DIRS)
    if config.rules.wants_direct:
        prompts.check_template(config.direct_template, {"question", "choices", "answer_hint"}, PROMPT_DIRS)
    stats = Stats(samples=config.samples)
    stats.histogram.update({f"{round(i / config.samples, 3):g}": 0 for i in range(config.samples + 1)})
    return stats


def load_problems(config: PreferenceConfig):
    if config.from_dataset is None:
        return source_problems(config)
    loaded = load_cot_dataset(config.from_dataset, split=config.split, revision=config.revision, limit=config.limit)
    if config.fallback == "teacher" and not any(p.meta.get("teacher_rationales") for p in loaded.problems):
        raise UserError(f"--fallback teacher: dataset {config.from_dataset!r} holds no teacher rationales")
    return loaded


async def run(problem: Problem, work: Work[PreferenceConfig]) -> None:
    c, counts, stats, rules = work.config, work.counts, work.state, work.config.rules
    messages = cot_messages(problem, c)
    cot_request = Request(messages, n=c.samples, params=c.sampling)
    requests = [cot_request]
    if rules.wants_direct:
        requests.append(direct_request(direct_messages(problem, messages, c), c))
    results = await work.teacher.gather(*requests)
    for kind, result in zip(("cot", "direct"), results):
        if isinstance(result, CallFailure):
            work.fail(result.error, request=kind)
            return
    # Judged as the paper did: an answer statement, else an option's text (difflib >= 0.6), so a
    # student prompted without an answer line (ranaldi-cot) can still be right; counted by rule.
    verdicts = [judge(problem, comp.text, comp.finish_reason) for comp in results[0]]
    for verdict in verdicts:
        count_verdict(counts, verdict)
    drawn = [as_candidate(verdict, "student", idx) for idx, verdict in enumerate(verdicts)]
    samples = [s for s in drawn if s is not None]
    direct = [d for d in (candidate(problem, comp, "direct") for comp in results[1]) if d] if rules.wants_direct else []
    teacher = []
    if rules.fallback == "teacher":  # the CoT dataset's rationales, re-scored: only correct ones stand in
        teacher = [candidate(problem, Completion(text, "stop"), "teacher") for text in problem.meta.get("teacher_rationales", ())]
        teacher = [t for t in teacher if t is not None and t.correct]
    outcome = pairs.make_pairs(samples, rules, direct=direct, teacher=teacher)
    counts["samples"] += len(drawn)
    counts["truncated"] += len(drawn) - len(samples)
    counts["correct"] += sum(s.correct for s in samples)
    counts["all_correct"] += bool(samples) and outcome.pass_rate == 1.0
    counts["none_correct"] += outcome.pass_rate == 0.0
    if rules.wants_direct:
        counts["direct"] += len(results[1])
        counts["direct_correct"] += sum(d.correct for d in direct)
    counts["skipped"] += outcome.skipped is not None
    stats.histogram[f"{round(outcome.pass_rate, 3):g}"] += 1
    if outcome.skipped:
        stats.skipped[outcome.skipped] += 1
    stats.prompts_from.add("dataset" if problem.meta.get("prompt") else "template")
    stats.cot_teacher = stats.cot_teacher or problem.meta.get("teacher")
    for pair in outcome.pairs:
        counts["pairs"] += 1
        counts["teacher_chosen"] += pair.chosen_from == "teacher"
        stats.chars["chosen"] += len(pair.chosen.text)
        stats.chars["rejected"] += len(pair.rejected.text)
        work.keep(PairRow(
            prompt=list(messages), chosen=assistant(pair.chosen.text), rejected=assistant(pair.rejected.text),
            id=problem.id, source=problem.source, question=problem.question, gold=problem.gold,
            answer_type=problem.answer_type, choices=list(problem.choices), chosen_pred=pair.chosen.pred,
            rejected_pred=pair.rejected.pred, chosen_from=pair.chosen_from, rejected_from=pair.rejected_from,
            chosen_idx=pair.chosen.idx, rejected_idx=pair.rejected.idx, pass_rate=outcome.pass_rate,
            samples=len(samples), student=work.teacher.public_identity,
        ))  # fmt: skip


def finish(config: PreferenceConfig, stats: Stats, counts: Counter[str]) -> dict:
    pairs_made = counts["pairs"]
    return {
        "pass_rate_histogram": dict(sorted(stats.histogram.items(), key=lambda kv: float(kv[0]))),
        "skipped_reasons": dict(sorted(stats.skipped.items())),
        "mean_chars": {side: round(stats.chars[side] / pairs_made, 1) if pairs_made else None
                       for side in ("chosen", "rejected")},  # fmt: skip
        "prompts_from": "dataset" if stats.prompts_from == {"dataset"} else "template",
        "cot_teacher": stats.cot_teacher,
    }


def templates(config: PreferenceConfig) -> tuple[str, ...]:
    return (config.template, config.direct_template) if config.rules.wants_direct else (config.template,)


PAPER = Paper(
    name="Self-refine Instruction-tuning",
    citation='Ranaldi & Freitas, "Self-Refine Instruction-Tuning for Aligning Reasoning in Language Models", EMNLP 2024',
    url="https://aclanthology.org/2024.emnlp-main.139",
    summary="The instruction-tuned student samples several reasoning paths per problem; paths whose answer "
    "matches the ground truth become `chosen`, wrong ones (or a direct answer without reasoning) `rejected`, "
    "and the student is refined on the pairs with Direct Preference Optimization.",
    tags=("reasoning", "chain-of-thought", "dpo", "self-refine"),
    bibtex="""@inproceedings{ranaldi-freitas-2024-self,
    title = "Self-Refine Instruction-Tuning for Aligning Reasoning in Language Models",
    author = "Ranaldi, Leonardo and Freitas, Andre",
    editor = "Al-Onaizan, Yaser and Bansal, Mohit and Chen, Yun-Nung",
    booktitle = "Proceedings of the 2024 Conference on Empirical Methods in Natural Language Processing",
    month = nov,
    year = "2024",
    address = "Miami, Florida, USA",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.emnlp-main.139",
    doi = "10.18653/v1/2024.emnlp-main.139",
    pages = "2325--2347"
}""",
)

PRESETS = {
    "ranaldi-selfrefine24": Preset(
        about="Ranaldi & Freitas, EMNLP 2024, DPO_CoT: chosen = the student's correct CoT answer, rejected = its "
              "direct answer, solved problems included, one pair per correct sample",
        values={"rejected": "direct", "keep_solved": True, "pairs_per_prompt": 0,
                "direct_samples": 0},  # as many sampled direct answers as CoT samples: ours (the paper is silent)
    ),
}

METHOD = Method(
    name="preference",
    folder=FOLDER,
    summary="Preference pairs from the student's own reasoning, for DPO (self-refine).",
    help="""Preference pairs from the student's own reasoning, for DPO (self-refine, Ranaldi & Freitas, 2024).

    The student samples --samples reasoning paths per problem with the CoT prompt it was trained on;
    paths are scored against gold: chosen = a correct path, rejected = a wrong one (or the direct answer).
    Problems the student always or never solves are counted and skipped unless --keep-solved / --fallback.

    \b
    hubtool build-dataset preference --student transformers:out/cot-student --source gym:basic_arithmetic \\
        --limit 256 --samples 8 --out runs/pref
    hubtool build-dataset preference --student vllm:out/cot-student --from-dataset me/gsm8k-cot \\
        --samples 8 --rejected direct --out runs/pref-gsm8k
    """,
    config=PreferenceConfig,
    row=PairRow,
    kind="preference",
    trainer=DPO,
    run=run,
    counts=("problems", "failed", "samples", "correct", "truncated", "contradictions", "no_reasoning",
            "accepted_strict", "accepted_fuzzy", "pairs", "all_correct", "none_correct", "skipped", "direct",
            "direct_correct", "teacher_chosen"),  # fmt: skip
    paper=PAPER,
    recipe="self-refine/dpo-lora",
    recipes="self-refine",  # the paper calls the method self-refine
    aliases=("self-refine",),
    presets=PRESETS,
    setup=setup,
    templates=templates,
    load_problems=load_problems,
    finish=finish,
)
