"""The contract every method package fulfils: one `Method` value, named in `toolkit.methods.MODULES`.

A method is one folder (`toolkit/methods/<name>/`, or any package on sys.path) and declares all its
parts: its config dataclass (the CLI options are generated from it), its row type (the Arrow schema
is derived from it), its prompt templates (`<folder>/prompts/`), its card template, its recipes
folder and default recipe, its eval tasks, its trainer (a factory, so a method may bring its own),
its paper, and a per-problem coroutine `run(problem, work)` that asks the models through `work` and
keeps rows. The engine (`toolkit.builders.engine`) does everything else once for every method: the
source, the run directory, the models and their cache, the manifest, the card; `hubtool train` and
`hubtool eval` read the rest from here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from toolkit.builders.config import BuildConfig, Preset
from toolkit.records import Problem
from toolkit.resources import resource_dir
from toolkit.teachers.session import Session

C = TypeVar("C", bound=BuildConfig)
TRL_FORMATS = {"sft": "conversational prompt-completion", "preference": "conversational preference"}


@dataclass(frozen=True, kw_only=True)
class Trainer:
    """How `hubtool train` trains a method's rows. `config` is the TRL config family its recipes are
    parsed with (TrlParser over SFTConfig or DPOConfig); `factory` ("module:callable", imported when
    training starts, as it pulls in torch and TRL) makes the trainer from TRL's trainer arguments
    (model, args, train_dataset, eval_dataset, quantization_config, peft_config) and `settings=`, the
    hubtool settings the recipe holds. `settings` names the settings this trainer reads (HUBTOOL_*
    keys of a recipe's `env:` mapping, see toolkit.training.recipe) and the parser of each
    ("module:callable"); `columns` are the row columns it reads beside the TRL format's while any of
    its settings is set, each with what to tell someone whose rows lack it. A trainer that changes
    TRL's loss may give itself a `loss_record()` method: the provenance record keeps it."""

    name: str  # as the manifest, the model card and `--trainer` name it
    config: Literal["sft", "dpo"]
    factory: str
    settings: Mapping[str, str] = field(default_factory=dict)
    columns: Mapping[str, str] = field(default_factory=dict)


# TRL's two trainers, made by toolkit.training (a method that brings its own names its own factory)
SFT = Trainer(name="sft", config="sft", factory="toolkit.training.trainers:sft_trainer")
DPO = Trainer(name="dpo", config="dpo", factory="toolkit.training.trainers:dpo_trainer")
TRAINERS = {t.name: t for t in (SFT, DPO)}


@dataclass(frozen=True, kw_only=True)
class Paper:
    """What the card and the README say about a method's origin."""

    name: str  # the method's name in the paper, e.g. "Instruction-tuning-CoT"
    citation: str  # authors, title, venue
    url: str
    summary: str  # what the method does, two or three sentences
    bibtex: str
    tags: tuple[str, ...] = ()  # Hub card tags


@dataclass(kw_only=True)
class Work(Generic[C]):
    """One problem's work: the models to ask, the counts to add to, the rows it keeps."""

    problem: Problem
    config: C
    state: Any  # what the method's `setup` returned: loaded exemplars, checked templates, running stats
    models: Mapping[str, Session]  # role -> the model's session (cached, in the build's event loop)
    counts: Counter[str]
    rows: list[Any] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def teacher(self) -> Session:
        """The method's main model (its first model role)."""
        return next(iter(self.models.values()))

    def keep(self, row: Any) -> None:
        self.rows.append(row)

    def fail(self, error: str, role: str | None = None, **info: Any) -> None:
        """A call that failed after every retry: recorded in failed.jsonl, retried by a re-run."""
        p = self.problem
        self.failed.append({"id": p.id, "question": p.question, "role": role or next(iter(self.models)),
                            "error": error, **info})  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Method(Generic[C]):
    name: str  # the CLI name: `hubtool build-dataset NAME`
    folder: Path  # the method's package folder: Path(__file__).parent
    summary: str  # one line for `hubtool build-dataset --help`
    help: str  # the command's help: what it builds, then examples
    config: type[C]
    row: type  # a dataclass: SFTRow / PreferenceRow or a subclass
    kind: Literal["sft", "preference"]
    trainer: Trainer  # SFT, DPO, or the method's own
    run: Callable[[Problem, Work[C]], Awaitable[None]]
    counts: tuple[str, ...]  # every count a build reports, zeros included ("problems", "failed" first)
    paper: Paper | None = None
    # card template: a file name in dataset_cards/ (default "<kind>.md.jinja"), or a Path to the method's own
    # (inside its folder; it may extend or include dataset_cards/'s templates)
    card: str | Path | None = None
    recipes: str | Path | None = None  # its recipes folder: a folder of the shipped recipes/ (default <name>), or a Path
    recipe: str | None = None  # default recipe as `hubtool train` names it: "<recipe_folder>/<file without .yaml>"
    # its folders of lm-eval task YAML: folders of the shipped eval_tasks/ (default: <name>, if there is one), or
    # Paths (e.g. inside its own folder: `hubtool eval` indexes them beside eval_tasks/)
    eval_tasks: tuple[str | Path, ...] | None = None
    student_prompt: str | None = "template"  # the config field naming the prompt its rows show a student
    reasoning: bool = True  # its completions are reasoning demonstrations (the card measures their reasoning)
    # what its card warns of, from the rows' quality (toolkit.card_quality.Quality): e.g. a mix missing a mode
    card_warnings: Callable[[Any], list[str]] | None = None
    presets: Mapping[str, Preset] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    setup: Callable[[C], Any] | None = None  # before any model loads: check templates, files; build state
    templates: Callable[[C], tuple[str, ...]] | None = None  # the prompt templates a config uses
    load_problems: Callable[[C], Any] | None = None  # instead of `--source` (returns a LoadedSource)
    # a last pass over every kept row, in problem order, before they are written (e.g. rebalancing a
    # mix across problems); it returns the rows to write and may update the counts
    select: Callable[[C, Any, list[Any], Counter[str]], list[Any]] | None = None
    finish: Callable[[C, Any, Counter[str]], dict[str, Any]] | None = None  # stats for the manifest
    # the build's result in the method's own words for the summary line, where "N samples, N correct"
    # means nothing (evolve has no gold); default: problems, samples, correct, kept
    outcome: Callable[[Counter[str]], str] | None = None
    # an experiment's builds of this method (step id -> run directory, in the file's order) compared: the
    # markdown lines of a section of the experiment's report and their numbers (evolve: search vs chains),
    # and a chart written to the path given (the lines name it)
    compare: Callable[[Mapping[str, Path], Path], tuple[list[str], dict[str, Any]]] | None = None

    @property
    def card_template(self) -> str | Path:
        return self.card or f"{self.kind}.md.jinja"

    @property
    def trl_format(self) -> str:
        return TRL_FORMATS[self.kind]

    @property
    def prompt_dirs(self) -> tuple[Path, ...]:
        """Where its own prompt templates are (toolkit.prompts looks there after the shared ones)."""
        return (self.folder / "prompts",)

    @property
    def recipes_dir(self) -> Path:
        recipes = self.recipes or self.name
        return recipes if isinstance(recipes, Path) else resource_dir("recipes") / recipes

    @property
    def recipe_folder(self) -> str:
        """Its recipes folder's name: `hubtool train FOLDER/RECIPE` (self-refine for preference)."""
        return self.recipes_dir.name

    @property
    def eval_task_dirs(self) -> tuple[Path, ...]:
        if self.eval_tasks is None:
            shipped = resource_dir("eval_tasks") / self.name
            return (shipped,) if shipped.is_dir() else ()
        return tuple(d if isinstance(d, Path) else resource_dir("eval_tasks") / d for d in self.eval_tasks)
