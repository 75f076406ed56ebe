"""IDEA-MCTS (Li et al., Findings of EMNLP 2024): seed instructions evolved by Monte Carlo tree search.

Per seed instruction (`run`): the scorer rates the seed; the search (`search.Search`) evolves it
by UCT-guided expansion, random rollouts and backpropagation over the evolution actions
(`actions.py`), each new instruction rated by the scorer (reward = quality + complexity +
diversity, `scoring.py`); the instructions on the root-to-terminal paths are answered by the
answerer and become SFT rows. `--search none` spends the same evolver budget on Evol-Instruct-style
random chains instead, so what the search adds is measured. Each seed's tree is written to
RUN/trees/<seed id>.json (`hubtool inspect RUN --tree ID` prints it).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from toolkit import prompts
from toolkit.builders.config import BuildConfig, Preset, at_least, param
from toolkit.builders.method import SFT, Method, Paper, Work
from toolkit.builders.rows import SFTRow, assistant, user
from toolkit.errors import UserError
from toolkit.methods.evolve import search as S
from toolkit.methods.evolve import tree as T
from toolkit.methods.evolve.actions import DEFAULT_ACTIONS, load_actions
from toolkit.methods.evolve.compare import compare_builds
from toolkit.methods.evolve.oracle import PROMPT_DIRS, ModelOracle
from toolkit.methods.evolve.scoring import is_empty, is_refusal, parse_range
from toolkit.methods.evolve.seeds import ANSWER_TYPE, load_seeds
from toolkit.methods.evolve.stats import Stats, finish, outcome
from toolkit.records import Problem
from toolkit.rundir import atomic_write
from toolkit.teachers import DEFAULT_TEACHER
from toolkit.teachers.base import CallFailure, Request

FOLDER = Path(__file__).parent

__all__ = ["METHOD", "EvolveConfig", "EvolveRow"]

TREES = "trees"
MODEL_HELP = "BACKEND:MODEL (transformers, openai MODEL@URL, vllm, fake; see the README)"
TEMPLATE_VARIABLES = {"evolve": {"instruction", "action", "directive"}, "score": {"instruction", "low", "high"}}


@dataclass(frozen=True, kw_only=True)
class EvolveConfig(BuildConfig):
    evolver: str = param(DEFAULT_TEACHER, help=f"The model that evolves instructions: {MODEL_HELP}.",
                         metavar="BACKEND:MODEL", model=True)  # fmt: skip
    scorer: str | None = param(None, help="The judge that rates quality, complexity and diversity (default: the "
                                          "evolver).", metavar="BACKEND:MODEL", model=True)  # fmt: skip
    answerer: str | None = param(None, help="The model that answers the evolved instructions (default: the "
                                            "evolver).", metavar="BACKEND:MODEL", model=True)  # fmt: skip
    search: Literal["mcts", "none"] = param(
        "mcts", help="mcts: IDEA-MCTS; none: Evol-Instruct-style random chains on the same evolver budget (the "
                     "baseline).")  # fmt: skip
    children: int = param(5, help="Nodes one expansion adds, each by a different action.")
    iterations: int = param(3, help="MCTS iterations per seed (selection, expansion, evaluation, simulation, "
                                    "backpropagation).")  # fmt: skip
    max_depth: int = param(4, help="A path ends at a node deeper than this many evolutions from the seed (the "
                                   "paper: depth > 4).")  # fmt: skip
    uct_c: float = param(1.0, help="UCT exploration constant C.")
    reward_threshold: float = param(10.0, help="A path also ends at a node whose reward (the sum of the three "
                                               "scores, 3-15 on the 1-5 range) passes this.")  # fmt: skip
    scorer_mode: Literal["rubric", "expected"] = param(
        "rubric", help="rubric: the scorer writes 'Score: N' (ours); expected: quality and complexity are the "
                       "probability-weighted mean over the score tokens, as Deita's and the paper's trained "
                       "scorers (a transformers:MODEL scorer, or openai:MODEL@URL on a server that gives "
                       "top_logprobs, as llama.cpp's llama-server does).")  # fmt: skip
    score_range: str = param("1-5", help="The scores' range LOW-HIGH (e.g. 1-6 for Deita-style scorers); "
                                         "diversity is the tag count clamped to it.", metavar="LOW-HIGH")  # fmt: skip
    actions: str | None = param(None, help="Evolution actions (YAML/JSON {name: directive}, or jsonl) instead of "
                                           "the paper's twelve.", metavar="FILE")  # fmt: skip
    budget: int | None = param(None, help="--search none: evolver calls per seed (default: the most the search "
                                          "can spend, iterations x (children + max_depth - 1)).")  # fmt: skip
    budget_from: str | None = param(None, help="--search none: a finished --search mcts run directory; each seed "
                                               "gets the evolver calls the search spent on it.", metavar="DIR")  # fmt: skip
    rows: Literal["paths", "sample", "all"] = param(
        "paths", help="paths: the nodes on the paths the search followed (ours); sample: --sample-rows drawn at "
                      "random over every root-to-terminal path of every seed (the paper); all: every valid "
                      "evolved node.")  # fmt: skip
    sample_rows: int = param(1000, help="--rows sample: rows drawn over all seeds' paths, seeded by --seed (the "
                                        "paper: 1,000); every path node is answered first.")  # fmt: skip
    include_seed: bool = param(False, help="Also answer the seed instruction itself and keep it as a row.")
    rows_per_seed: int | None = param(None, help="Keep at most N rows per seed, drawn with the seed's generator.")
    keep: Literal["complete", "all"] = param(
        "complete", help="complete: only answers that ended on their own; all: cut-off answers too, flagged "
                         "`correct` false.")  # fmt: skip
    input_field: str | None = param(None, help="A column appended to the instruction when non-empty (Alpaca's "
                                               "`input`).")  # fmt: skip
    judge_max_new_tokens: int = param(96, help="Longest scorer reply, in tokens (the scorer samples greedily).")
    template: str = param("evolve", help="Evolution prompt: a name (toolkit/prompts, or this method's prompts/), or a FILE.jinja.")
    quality_template: str = param("evolve_quality", help="Quality rubric prompt (reply: 'Score: N', 1-5).")
    complexity_template: str = param("evolve_complexity", help="Complexity rubric prompt (reply: 'Score: N', 1-5).")
    diversity_template: str = param("evolve_diversity", help="Intent-tag prompt (reply: a JSON list of tags).")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("children", "iterations", "max_depth", "budget", "rows_per_seed", "judge_max_new_tokens",
                     "sample_rows"):  # fmt: skip
            at_least(self, name, 1)
        if not (math.isfinite(self.uct_c) and self.uct_c >= 0):
            raise UserError(f"--uct-c must be a finite number of at least 0, not {self.uct_c}")
        if not math.isfinite(self.reward_threshold):
            raise UserError(f"--reward-threshold must be a finite number, not {self.reward_threshold}")
        if parse_range(self.score_range) is None:
            raise UserError(f"--score-range must be LOW-HIGH with LOW < HIGH (e.g. 1-5 or 1-6), not {self.score_range!r}")
        if self.search == "mcts" and (self.budget is not None or self.budget_from is not None):
            raise UserError("--budget and --budget-from set the baseline's budget; use them with --search none")
        if self.budget is not None and self.budget_from is not None:
            raise UserError("give the baseline's budget as --budget N or --budget-from DIR, not both")
        for role in ("scorer", "answerer"):  # unset: the evolver (one backend serves all roles)
            if getattr(self, role) is None:
                object.__setattr__(self, role, self.evolver)
        if self.scorer_mode == "expected" and not str(self.scorer).startswith(("transformers:", "openai:")):
            raise UserError(f"--scorer-mode expected reads the scorer's logits or log-probabilities: give "
                            f"--scorer transformers:MODEL or openai:MODEL@URL (a server that gives top_logprobs, "
                            f"as llama.cpp's llama-server does), not {self.scorer!r}")  # fmt: skip
        if self.scorer_mode == "expected" and self.score_bounds[1] > 9:
            raise UserError(f"--scorer-mode expected reads one digit token per score: --score-range up to 9, "
                            f"not {self.score_range}")  # fmt: skip

    @property
    def score_bounds(self) -> tuple[int, int]:
        """The score range (LOW, HIGH)."""
        return parse_range(self.score_range) or (1, 5)

    @property
    def knobs(self) -> S.Knobs:
        return S.Knobs(self.children, self.iterations, self.max_depth, self.uct_c, self.reward_threshold)

    @property
    def score_templates(self) -> tuple[str, str, str]:
        return (self.quality_template, self.complexity_template, self.diversity_template)


@dataclass(frozen=True, slots=True, kw_only=True)
class EvolveRow(SFTRow):
    """An evolved instruction (`prompt`, also `question`) and the answerer's reply (`completion`).

    There is no gold answer: `gold` is "", `pred` None, and `correct` says the answer is complete
    (it ended on its own, not at the token limit, and is not empty)."""

    seed_id: str  # the seed instruction's id (its tree: trees/<seed_id>.json)
    seed: str  # the seed instruction
    node: int  # the node's id in its tree
    depth: int  # evolutions from the seed
    actions: list[str]  # the actions from the seed to this instruction
    scores: T.Scores
    visits: int  # MCTS visits of the node (0 for rollout and chain nodes)
    search: str  # mcts | none


# -- one seed ---------------------------------------------------------------------------------------
async def run(problem: Problem, work: Work[EvolveConfig]) -> None:
    c, counts, stats = work.config, work.counts, work.state
    rng = S.rng_for(problem.id, c.seed)
    search = S.Search(ModelOracle(work), stats.actions, c.knobs, rng)
    try:
        root = await search.root(problem.question)
        if c.search == "mcts":
            await search.mcts(root)
        else:
            await search.chains(root, *stats.budget_for(problem.id, counts))
    except S.CallFailed as e:
        work.fail(e.error, role=e.role)
        return
    nodes = S.row_nodes(root, c.rows, c.include_seed)
    if c.rows_per_seed is not None and len(nodes) > c.rows_per_seed:
        nodes = sorted(rng.sample(nodes, c.rows_per_seed), key=lambda n: n.id)
    answerer = work.models["answerer"]
    results = await answerer.gather(*(Request(tuple(user(n.instruction)), 1, c.sampling) for n in nodes))
    failed = next((r for r in results if isinstance(r, CallFailure)), None)
    if failed is not None:
        work.fail(failed.error, role="answerer")
        return
    kept = []
    for node, result in zip(nodes, results):
        answer = result[0]
        counts["answered"] += 1
        if is_empty(answer.text) or is_refusal(answer.text):  # a non-answer is no row, whatever --keep says
            counts["empty_answers" if is_empty(answer.text) else "refusals"] += 1
            continue
        complete = answer.finish_reason != "length"
        counts["truncated"] += not complete
        if c.keep == "complete" and not complete:
            continue
        kept.append(node)
        work.keep(EvolveRow(
            prompt=user(node.instruction), completion=assistant(answer.text.strip() if complete else answer.text),
            id=f"{problem.id}-{node.id}", source=problem.source, question=node.instruction, gold="", pred=None,
            correct=complete, answer_type=ANSWER_TYPE, choices=[], teacher=answerer.public_identity, sample_idx=0,
            finish_reason=answer.finish_reason, num_tokens=answer.completion_tokens, seed_id=problem.id,
            seed=problem.question, node=node.id, depth=node.depth, actions=node.actions(),
            scores=node.scores or T.Scores(0, 0, 0, 0), visits=node.visits, search=c.search,
        ))  # fmt: skip
    counts["kept"] += len(kept)
    counts["nodes"] += sum(1 for _ in T.walk(root)) - 1
    counts["seeds_done"] += 1
    counts["seeds_without_rows"] += not kept
    stats.record(problem.id, root, kept, search)
    write_tree(c, problem, root, search)
    stats.written.add(problem.id)


def write_tree(c: EvolveConfig, problem: Problem, root: T.Node, search: S.Search) -> None:
    data = {
        "seed_id": problem.id, "seed": problem.question, "source": problem.source, "search": c.search,
        "knobs": dataclasses.asdict(c.knobs),
        "evolver_calls": search.calls, "scorer_calls": search.scored, "iterations_run": search.iterations_run,
        "nodes": sum(1 for _ in T.walk(root)),
        "root": T.to_json(root),
    }  # fmt: skip
    atomic_write(Path(c.out) / TREES / f"{problem.id}.json", json.dumps(data, indent=1, ensure_ascii=False).encode())


# -- before any model loads -------------------------------------------------------------------------
def setup(config: EvolveConfig) -> Stats:
    prompts.check_template(config.template, TEMPLATE_VARIABLES["evolve"], PROMPT_DIRS)
    for name in config.score_templates:
        prompts.check_template(name, TEMPLATE_VARIABLES["score"], PROMPT_DIRS)
    actions = load_actions(config.actions) if config.actions else DEFAULT_ACTIONS
    budgets = read_budgets(config.budget_from) if config.budget_from else None
    default = config.budget or S.max_budget(config.knobs)
    return Stats(search=config.search, actions=actions, budgets=budgets, default_budget=default)


def read_budgets(run_dir: str) -> dict[str, tuple[int, int | None]]:
    """Evolver and scorer calls per seed, from the trees of a finished search build (trees written
    before scorer calls were recorded give None: only the evolver calls are matched)."""
    folder = Path(run_dir) / TREES
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise UserError(f"--budget-from {run_dir}: no trees in {folder}; give a finished `build-dataset evolve` run")
    budgets = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            scorer = data.get("scorer_calls")
            budgets[str(data["seed_id"])] = (int(data["evolver_calls"]), None if scorer is None else int(scorer))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
            raise UserError(f"--budget-from: {path} is not a hubtool tree ({e})") from None
    return budgets


def select(config: EvolveConfig, stats: Stats, rows: list[EvolveRow], counts: Counter[str]) -> list[EvolveRow]:
    """--rows sample: --sample-rows rows drawn at random over every seed's path rows (the paper's
    selection), seeded by --seed; the other modes keep every row."""
    if config.rows != "sample" or len(rows) <= config.sample_rows:
        return rows
    chosen = set(random.Random(f"hubtool-evolve-rows:{config.seed}").sample(range(len(rows)), config.sample_rows))
    picked = [r for i, r in enumerate(rows) if i in chosen]
    stats.selected = {r.id for r in picked}
    counts["not_sampled"] += len(rows) - len(picked)
    counts["kept"] = len(picked)
    return picked


def templates(config: EvolveConfig) -> tuple[str, ...]:
    return (config.template, *config.score_templates)


PAPER = Paper(
    name="IDEA-MCTS",
    citation='Li et al., "Optimizing Instruction Synthesis: Effective Exploration of Evolutionary Space with '
             'Tree Search", Findings of EMNLP 2024',  # fmt: skip
    url="https://arxiv.org/abs/2410.10392",
    summary="Each seed instruction is the root of a search tree whose edges are evolution actions (add "
    "constraints, deepen reasoning, change the format, ...). Monte Carlo tree search (UCT selection, "
    "expansion, evaluation, random simulation, backpropagation) steers the evolution toward instructions an "
    "evaluator rates high on quality, complexity and diversity; the instructions on the search paths are "
    "answered by the teacher and used for SFT.",
    tags=("instruction-tuning", "instruction-evolution", "mcts", "idea-mcts"),
    bibtex="""@inproceedings{li-etal-2024-optimizing,
    title = "Optimizing Instruction Synthesis: Effective Exploration of Evolutionary Space with Tree Search",
    author = "Li, Chenglin and Chen, Qianglong and Li, Zhi and Tao, Feng and Li, Yicheng and Chen, Hao and Yu, Fei and Zhang, Yin",
    booktitle = "Findings of the Association for Computational Linguistics: EMNLP 2024",
    year = "2024",
    publisher = "Association for Computational Linguistics",
    url = "https://arxiv.org/abs/2410.10392"
}""",
)

PRESETS = {
    "idea-mcts": Preset(
        about="Li et al. 2024: UCT C=1, 5 children per expansion, 3 iterations, paths end past depth 4 or at "
              "reward > 10, evolver temperature 0.7 (the evolver itself was gpt-3.5-turbo-0125), 1,000 rows "
              "drawn at random over all paths",
        values={"search": "mcts", "children": 5, "iterations": 3, "max_depth": 4, "uct_c": 1.0,
                "reward_threshold": 10.0, "temperature": 0.7, "rows": "sample", "sample_rows": 1000},
    ),  # fmt: skip
}

METHOD = Method(
    name="evolve",
    folder=FOLDER,
    aliases=("idea-mcts",),
    summary="Instructions evolved by Monte Carlo tree search, scored, and answered by the teacher (IDEA-MCTS).",
    help="""Instructions evolved by Monte Carlo tree search (IDEA-MCTS, Li et al., 2024), for SFT.

    Each seed instruction is searched over evolution actions; every new instruction is rated by the
    scorer (quality + complexity + diversity); the instructions on the search paths are answered by the
    answerer. --search none runs random chains on the same evolver budget (the baseline).

    \b
    hubtool build-dataset evolve --source file:seeds.jsonl --limit 50 --out runs/evolve
    hubtool build-dataset evolve --source file:alpaca.jsonl --input-field input --preset idea-mcts \\
        --evolver openai:gpt-4o-mini@https://api.openai.com/v1 --out runs/idea-mcts
    hubtool build-dataset evolve --source file:seeds.jsonl --search none --budget-from runs/evolve --out runs/chains
    hubtool inspect runs/evolve --tree first
    """,
    config=EvolveConfig,
    row=EvolveRow,
    kind="sft",
    trainer=SFT,
    run=run,
    counts=("problems", "failed", "seeds_done", "seeds_without_rows", "evolver_calls", "invalid_evolutions",
            "nodes", "scored", "unparsed_scores", "copied_tags", "answered", "refusals", "empty_answers",
            "truncated", "not_sampled", "kept", "budget_fallback"),  # fmt: skip
    paper=PAPER,
    card="evolve.md.jinja",
    recipe="evolve/smollm2-135m-lora",
    eval_tasks=("ifeval", "alpaca_eval", "mt_bench"),  # the idea_mcts suite (eval_tasks/groups)
    student_prompt=None,  # its rows are instructions, not a template's rendering
    compare=compare_builds,  # search vs random chains vs the seeds, in an experiment's report
    reasoning=False,  # instruction following: its replies are not reasoning demonstrations
    presets=PRESETS,
    setup=setup,
    templates=templates,
    load_problems=load_seeds,
    select=select,
    finish=finish,
    outcome=outcome,
)
