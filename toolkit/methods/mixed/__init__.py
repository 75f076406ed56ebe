"""Mixed distillation (Li et al., Findings of EMNLP 2024): CoT and PoT rationales for one student.

Per problem the teacher writes `cot_samples` chain-of-thought rationales and `pot_samples` Python
programs (one `gather`, so a batching backend sees both). A rationale is judged by the shared checker
(`cot.judge`: honest rows, never an answer line the model did not write); a program is taken out of
its reply (`mixed_programs.extract_program`), run in the sandbox, and verified when its `ans` matches
gold under the same rule. Only verified rationales are kept, each exactly once (identical texts of a
mode are one rationale), and `select` balances the mix per problem and overall (`mixed_balance`).

Every row's prompt starts with its mode instruction (`prompt_messages(problem, mode)`, the one
definition the eval tasks in eval_tasks/mixed/ import), so one student learns both modes and is told
which one to use; `mode` says which it is, and PoT rows carry what the sandbox ran and found.
"""

from __future__ import annotations

import copy
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import answers, prompts
from toolkit.builders.config import BuildConfig, Preset, at_least, param
from toolkit.builders.method import Method, Paper, Trainer, Work
from toolkit.builders.reasoning import TEACHER_HELP, judge
from toolkit.builders.rows import SFTRow, assistant
from toolkit.errors import UserError
from toolkit.methods.mixed.balance import balance
from toolkit.methods.mixed.execution import Executor
from toolkit.methods.mixed.programs import FAILURE_KINDS, as_completion, extract_program, judge_program
from toolkit.methods.mixed.training import MIXED_ALPHA, MODE_COLUMN
from toolkit.paths import call_cache_path
from toolkit.records import Problem
from toolkit.sandbox import Limits
from toolkit.teachers import DEFAULT_TEACHER
from toolkit.teachers.base import CallFailure, Request

FOLDER = Path(__file__).parent
PROMPT_DIRS = (FOLDER / "prompts",)  # its own prompt templates, looked up after toolkit/prompts/ (shared ones)

MODES = ("cot", "pot")
TEMPLATES = {"cot": "mixed_cot", "pot": "pot"}
TEMPLATE_VARIABLES = {"question", "choices", "answer_hint"}
EXEC_TIMEOUT, EXEC_MEMORY_MB = 5.0, 512  # per program, in the builder and the eval tasks alike
COT_FAILURES = ("truncated", "no_answer", "contradiction", "no_reasoning", "wrong")  # why a sampled rationale is not kept (PoT: FAILURE_KINDS)


@dataclass(frozen=True, kw_only=True)
class MixedConfig(BuildConfig):
    teacher: str = param(DEFAULT_TEACHER, help=f"The teacher: {TEACHER_HELP}", metavar="BACKEND:MODEL", model=True)
    cot_samples: int = param(4, help="Chain-of-thought rationales sampled per problem.")
    pot_samples: int = param(4, help="Python programs (program of thought, leaving the answer in `ans`) sampled per problem.")
    pot_ratio: float = param(
        0.5, help="Share of PoT rows in the kept mix: rows of the over-represented mode are dropped until it "
                  "holds (0: CoT only, 1: PoT only).")  # fmt: skip
    max_per_mode: int | None = param(None, help="At most this many verified rationales of each mode per problem (default: all).")
    require_both: bool = param(
        False, help="Keep only problems with a verified rationale in both modes (default: a problem solved in one "
                    "mode only keeps that mode's rows).")  # fmt: skip
    cot_template: str = param(TEMPLATES["cot"], help="CoT prompt: a name (toolkit/prompts, or this method's prompts/), or a FILE.jinja (the eval tasks use the default).")
    pot_template: str = param(TEMPLATES["pot"], help="PoT prompt: a name (toolkit/prompts, or this method's prompts/), or a FILE.jinja (the eval tasks use the default).")
    exec_timeout: float = param(EXEC_TIMEOUT, help="Wall-clock seconds a program may run in the sandbox.")
    exec_memory_mb: int = param(EXEC_MEMORY_MB, help="Memory (MB) a program may hold in the sandbox: its address "
                                                     "space plus its private /tmp (16 MB).")  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("cot_samples", "pot_samples"):
            at_least(self, name, 0)
        at_least(self, "max_per_mode", 1)
        if self.cot_samples + self.pot_samples == 0:
            raise UserError("--cot-samples and --pot-samples are both 0; sample at least one rationale per problem")
        if not 0.0 <= self.pot_ratio <= 1.0:
            raise UserError(f"--pot-ratio must be between 0 and 1 (the share of PoT rows), not {self.pot_ratio}")
        if self.exec_timeout <= 0:
            raise UserError(f"--exec-timeout must be a positive number of seconds, not {self.exec_timeout}")
        self.limits  # noqa: B018 - the sandbox limits check themselves

    @property
    def limits(self):
        return sandbox_limits(self.exec_timeout, self.exec_memory_mb)


def sandbox_limits(wall_s: float | None = None, memory_mb: int | None = None):
    """The sandbox limits of a build (its --exec-* options), and by default those the eval tasks run
    students' programs with."""

    wall_s = EXEC_TIMEOUT if wall_s is None else wall_s
    memory_mb = EXEC_MEMORY_MB if memory_mb is None else memory_mb
    return Limits(wall_s=wall_s, cpu_s=max(1, round(wall_s)), memory_mb=memory_mb)


@dataclass(frozen=True, slots=True, kw_only=True)
class MixedRow(SFTRow):
    mode: str  # "cot" | "pot": which instruction the prompt gives and what the completion is
    exec_outcome: str | None  # PoT: the sandbox's outcome ("ok" for every kept program); None for CoT
    exec_value: str | None  # PoT: the value `ans` held, canonical (equals `pred`); None for CoT
    exec_runtime_s: float | None  # PoT: seconds the program ran in the sandbox; None for CoT


@dataclass
class State:
    """The build's sandbox (behind its execution cache) and what the card reports beyond counts."""

    executor: Any  # toolkit.methods.mixed.execution.Executor
    failures: dict[str, Counter[str]] = field(default_factory=lambda: {m: Counter() for m in MODES})
    runtimes: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # exception types of failed programs
    balance: dict[str, Any] = field(default_factory=dict)
    token_counter: str = ""  # how rows' num_tokens were counted (see `row_tokens`)
    tokenizer: Any = None  # a copy of the teacher's tokenizer (False: it has none)


def prompt_messages(problem: Problem, mode: str, template: str | None = None) -> tuple[dict[str, str], ...]:
    """The prompt of one mode for a problem: what the teacher sees, what the student is trained and scored on."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    choices = problem.choices if problem.answer_type == "option" else ()
    text = prompts.render(
        template or TEMPLATES[mode], dirs=PROMPT_DIRS, question=problem.question, answer_hint=prompts.answer_hint(problem.answer_type, problem.choices),
        choices=list(zip(answers.option_letters(len(choices)), choices)),
    )  # fmt: skip
    return ({"role": "user", "content": text},)


def setup(config: MixedConfig) -> State:
    for template in (config.cot_template, config.pot_template):
        prompts.check_template(template, TEMPLATE_VARIABLES, PROMPT_DIRS)
    return State(executor=Executor(config.limits, config.cache or call_cache_path()))


async def run(problem: Problem, work: Work[MixedConfig]) -> None:
    c, counts = work.config, work.counts
    messages = {m: prompt_messages(problem, m, c.cot_template if m == "cot" else c.pot_template) for m in MODES}
    wanted = [m for m in MODES if _samples(c, m)]
    results = await work.teacher.gather(*(Request(messages[m], n=_samples(c, m), params=c.sampling) for m in wanted))
    for mode, result in zip(wanted, results):
        if isinstance(result, CallFailure):
            work.fail(result.error, request=mode)
            return
    got = dict(zip(wanted, results))
    rows = _cot_rows(problem, got.get("cot", []), messages["cot"], work)
    rows += await _pot_rows(problem, got.get("pot", []), messages["pot"], work)
    counts["solved_problems"] += bool(rows)
    for row in rows:
        work.keep(row)


def _samples(config: MixedConfig, mode: str) -> int:
    return config.cot_samples if mode == "cot" else config.pot_samples


def _cot_rows(problem: Problem, completions, messages, work: Work[MixedConfig]) -> list[MixedRow]:
    counts, rows, seen = work.counts, [], set()
    for idx, completion in enumerate(completions):
        verdict = judge(problem, completion.text, completion.finish_reason)
        kind = "truncated" if verdict.truncated else "contradiction" if verdict.contradiction else (
            "no_answer" if verdict.pred is None else "no_reasoning" if verdict.bare else
            "verified" if verdict.correct else "wrong")  # fmt: skip
        _count(work, "cot", kind)
        if kind != "verified" or _seen(verdict.text, seen, counts):  # bare or self-contradicting: counted, not kept
            continue
        rows.append(_row(problem, work, messages, "cot", verdict.text, idx, completion, pred=verdict.pred))
    return rows


async def _pot_rows(problem: Problem, completions, messages, work: Work[MixedConfig]) -> list[MixedRow]:
    counts, state = work.counts, work.state
    programs = [extract_program(c.text) if c.finish_reason != "length" else None for c in completions]
    runnable = [p for p in programs if p is not None]
    ran = iter(await state.executor.run(runnable) if runnable else [])
    rows, seen = [], set()
    for idx, (completion, program) in enumerate(zip(completions, programs)):
        result = next(ran) if program is not None else None
        verdict = judge_program(problem, program, result, completion.finish_reason)
        _count(work, "pot", verdict.kind)
        if result is not None:
            counts["pot_executed"] += 1
            state.runtimes.append(result.runtime_s)
            if result.outcome == "exception":
                state.errors[result.error.split(":")[0]] += 1
        if not verdict.verified or _seen(program, seen, counts):
            continue
        rows.append(_row(problem, work, messages, "pot", as_completion(program), idx, completion, pred=verdict.value,
                         exec_outcome=verdict.outcome, exec_value=verdict.value, exec_runtime_s=verdict.runtime_s))  # fmt: skip
    return rows


def _count(work: Work[MixedConfig], mode: str, kind: str) -> None:
    work.counts[f"{mode}_samples"] += 1
    work.counts["samples"] += 1
    if kind == "verified":
        work.counts[f"{mode}_verified"] += 1
        work.counts["correct"] += 1
    else:
        work.state.failures[mode][kind] += 1
        work.counts["truncated"] += kind == "truncated"


def _seen(text: str, seen: set[str], counts: Counter[str]) -> bool:
    """True for a rationale identical (up to whitespace) to one already kept for this problem."""
    key = " ".join(text.split())
    if key in seen:
        counts["duplicates"] += 1
        return True
    seen.add(key)
    return False


def _row(problem: Problem, work: Work, messages, mode: str, text: str, idx: int, completion, *, pred: str | None,
         exec_outcome: str | None = None, exec_value: str | None = None,
         exec_runtime_s: float | None = None) -> MixedRow:  # fmt: skip
    return MixedRow(
        prompt=list(messages), completion=assistant(text), id=problem.id, source=problem.source,
        question=problem.question, gold=problem.gold, pred=pred, correct=True, answer_type=problem.answer_type,
        choices=list(problem.choices), teacher=work.teacher.public_identity, sample_idx=idx,
        finish_reason=completion.finish_reason, num_tokens=row_tokens(work, text, completion), mode=mode,
        exec_outcome=exec_outcome, exec_value=exec_value, exec_runtime_s=exec_runtime_s,
    )  # fmt: skip


def row_tokens(work: Work, text: str, completion) -> int:
    """Tokens of what the row holds (a kept program is not the whole reply: its prose is left out).
    With the teacher's own tokenizer where the backend has one loaded (transformers); otherwise the
    reply's token count scaled by the row's share of its characters (an estimate: API backends
    report only the whole reply's count). The build records which (`stats.num_tokens`)."""
    state = work.state
    if state.tokenizer is None:
        found = getattr(getattr(work.teacher, "backend", None), "tokenizer", None)
        # a copy: a fast tokenizer used by the generating thread at the same time raises "Already borrowed"
        state.tokenizer = copy.deepcopy(found) if found is not None else False
    if state.tokenizer is not False:
        state.token_counter = "the teacher's tokenizer"
        return len(state.tokenizer(text, add_special_tokens=False).input_ids)
    state.token_counter = state.token_counter or (
        "estimated: the reply's completion tokens x the row's share of the reply's characters")
    reply = completion.text.strip()
    if text.strip() == reply or not reply:
        return completion.completion_tokens
    return round(completion.completion_tokens * len(text) / len(reply))


def select(config: MixedConfig, state: State, rows: list[MixedRow], counts: Counter[str]) -> list[MixedRow]:
    kept, report = balance(rows, pot_ratio=config.pot_ratio, max_per_mode=config.max_per_mode,
                           require_both=config.require_both, seed=config.seed)  # fmt: skip
    state.balance = report.as_dict(config.pot_ratio)
    counts["kept"] = len(kept)
    counts["kept_cot"], counts["kept_pot"] = report.kept["cot"], report.kept["pot"]
    counts["dropped_balance"] = len(rows) - len(kept)
    counts["kept_problems"] = report.problems_kept  # == solved_problems unless --require-both or --pot-ratio 0/1
    return kept


def finish(config: MixedConfig, state: State, counts: Counter[str]) -> dict[str, Any]:
    hello = state.executor.hello
    state.executor.close()
    runtimes = state.runtimes
    return {
        "verification": {m: _rate(counts[f"{m}_verified"], counts[f"{m}_samples"]) for m in MODES},
        "failures": {"cot": {k: state.failures["cot"][k] for k in COT_FAILURES},
                     "pot": {k: state.failures["pot"][k] for k in FAILURE_KINDS}},  # fmt: skip
        "exception_types": dict(state.errors.most_common(10)),
        "balance": state.balance,
        "num_tokens": state.token_counter or None,
        "sandbox": {"isolation": hello.get("isolation"), "missing": hello.get("missing") or {},
                    "limits": config.limits.to_dict(), "programs_run": counts["pot_executed"],
                    "run_now": state.executor.ran, "from_cache": state.executor.cached,
                    "median_runtime_s": round(statistics.median(runtimes), 4) if runtimes else None,
                    "max_runtime_s": round(max(runtimes), 4) if runtimes else None},  # fmt: skip
    }


def _rate(verified: int, samples: int) -> dict[str, Any]:
    return {"samples": samples, "verified": verified, "rate": round(verified / samples, 4) if samples else None}


def templates(config: MixedConfig) -> tuple[str, ...]:
    return (config.cot_template, config.pot_template)


PAPER = Paper(
    name="Mixed Distillation",
    citation='Li et al., "Mixed Distillation Helps Smaller Language Models Reason Better", Findings of EMNLP 2024',
    url="https://aclanthology.org/2024.findings-emnlp.91/",
    summary="A teacher samples several chain-of-thought (CoT) rationales and several Python programs "
    "(program of thought, PoT) per problem; rationales are verified (programs by running them), balanced "
    "into one mixed set with a mode instruction per example, and one student is trained on both modes with "
    "a multi-task loss. At inference it reasons by CoT, by PoT, or by both with a vote.",
    tags=("reasoning", "chain-of-thought", "program-of-thought", "math"),
    bibtex="""@inproceedings{chenglin-etal-2024-mixed,
    title = "Mixed Distillation Helps Smaller Language Models Reason Better",
    author = "Chenglin, Li and Chen, Qianglong and Li, Liangyue and Wang, Caiyu and Tao, Feng and Li, Yicheng and Chen, Zulong and Zhang, Yin",
    editor = "Al-Onaizan, Yaser and Bansal, Mohit and Chen, Yun-Nung",
    booktitle = "Findings of the Association for Computational Linguistics: EMNLP 2024",
    month = nov,
    year = "2024",
    address = "Miami, Florida, USA",
    publisher = "Association for Computational Linguistics",
    url = "https://aclanthology.org/2024.findings-emnlp.91/",
    doi = "10.18653/v1/2024.findings-emnlp.91",
    pages = "1673--1690"
}""",
)

PRESETS = {
    "li-emnlp24": Preset(
        about="Li et al., Findings of EMNLP 2024: several sampled rationales of each mode, only verified ones, "
              "a well-balanced mix (every kept problem in both modes, half of the rows PoT); the counts are ours",
        values={"cot_samples": 4, "pot_samples": 4,  # "multiple ... rationales by sampling": the count is ours
                "require_both": True, "pot_ratio": 0.5},  # our reading of "high-quality, well-balanced mixed thought data"
    ),
}

def card_warnings(quality) -> list[str]:
    """A build without one of its modes is not a mix."""
    modes = quality.groups.get("mode", {})
    return [f"no {m.upper()} row was kept: this is not a mixed CoT/PoT dataset" for m in MODES
            if quality.rows and not modes.get(m)]  # fmt: skip


# TRL's SFT with the mixed CoT/PoT loss when the recipe sets α (HUBTOOL_MIXED_ALPHA in its `env:`); see
# training.py (the pure parts) and trainer.py (MixedSFTTrainer)
TRAINER = Trainer(name="mixed", config="sft", factory="toolkit.methods.mixed.trainer:mixed_trainer",
                  settings={MIXED_ALPHA: "toolkit.methods.mixed.training:parse_alpha"},
                  columns={MODE_COLUMN: f"the mixed CoT/PoT loss ({MIXED_ALPHA}) needs rows of `hubtool build-dataset "
                                        f"mixed`; --set {MIXED_ALPHA}=none trains plain SFT"})  # fmt: skip

METHOD = Method(
    name="mixed",
    folder=FOLDER,
    summary="Chain-of-thought and executed, verified Python (PoT) rationales, balanced into one mix.",
    help="""Chain-of-thought and program-of-thought rationales in one mix (Li et al., Findings of EMNLP 2024).

    Per problem the teacher writes --cot-samples rationales and --pot-samples Python programs that leave
    their answer in `ans`; rationales are checked against gold, programs run in hubtool's sandbox and are
    checked by their `ans`. Verified ones are balanced per problem and to --pot-ratio overall; each row's
    prompt says which mode to use (`mode` column). Train with recipes/mixed/ (multi-task loss).

    \b
    hubtool build-dataset mixed --source gym:gsm_symbolic --limit 64 --out runs/mixed
    hubtool build-dataset mixed --source hf:svamp --teacher vllm:Qwen/Qwen2.5-72B-Instruct --preset li-emnlp24 --out runs/svamp-md
    """,
    config=MixedConfig,
    row=MixedRow,
    kind="sft",
    trainer=TRAINER,
    run=run,
    counts=("problems", "failed", "samples", "correct", "kept", "truncated", "cot_samples", "cot_verified",
            "pot_samples", "pot_executed", "pot_verified", "duplicates", "kept_cot", "kept_pot", "dropped_balance",
            "solved_problems", "kept_problems"),  # fmt: skip
    paper=PAPER,
    card="mixed.md.jinja",
    card_warnings=card_warnings,
    recipe="mixed/smollm2-135m-lora",
    student_prompt="cot_template",  # the CoT half; the PoT prompt is the other config field
    presets=PRESETS,
    setup=setup,
    templates=templates,
    select=select,
    finish=finish,
)
