"""The contract every method module fulfils: one `Method` value, named in `toolkit.builders.MODULES`.

A method is its config dataclass (the CLI options are generated from it), its row type (the Arrow
schema is derived from it), its card template, its trainer and default recipe, its paper, and a
per-problem coroutine `run(problem, work)` that asks the models through `work` and keeps rows. The
engine (`toolkit.builders.engine`) does everything else once for every method: the source, the
run directory, the models and their cache, the manifest, the card.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from toolkit.builders.config import BuildConfig, Preset
from toolkit.records import Problem
from toolkit.teachers.session import Session

C = TypeVar("C", bound=BuildConfig)
TRL_FORMATS = {"sft": "conversational prompt-completion", "preference": "conversational preference"}


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
    summary: str  # one line for `hubtool build-dataset --help`
    help: str  # the command's help: what it builds, then examples
    config: type[C]
    row: type  # a dataclass: SFTRow / PreferenceRow or a subclass
    kind: Literal["sft", "preference"]
    trainer: Literal["sft", "dpo"]
    run: Callable[[Problem, Work[C]], Awaitable[None]]
    counts: tuple[str, ...]  # every count a build reports, zeros included ("problems", "failed" first)
    paper: Paper | None = None
    card: str | None = None  # card template in dataset_cards/ (default: "<kind>.md.jinja")
    recipe: str | None = None  # default recipe, short name, e.g. "cot/smollm2-135m-lora"
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

    @property
    def card_template(self) -> str:
        return self.card or f"{self.kind}.md.jinja"

    @property
    def trl_format(self) -> str:
        return TRL_FORMATS[self.kind]

    @property
    def recipe_folder(self) -> str | None:
        return self.recipe.split("/")[0] if self.recipe else None
