"""What every source returns (`SourceInfo`, `LoadedSource`), and the row identity and field
mapping the loaders share."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.records import Problem, stable_id

CATEGORIES = {
    "number": "numeric answers",
    "option": "multiple choice",
    "yesno": "yes/no questions",
    "label": "labelled answers",
}


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What a source is, for provenance and dataset cards."""

    spec: str
    kind: str  # "hf" | "gym" | "file"
    name: str
    hub_id: str | None
    config: str | None
    split: str
    revision: str | None
    license: str | None
    answer_type: str  # the type every problem has; "label" when a gym task mixes types
    task_category: str
    citation: str | None
    url: str | None
    notes: tuple[str, ...] = ()  # what hubtool changed of the source's own data, for the card


@dataclass(frozen=True, slots=True)
class LoadedSource:
    info: SourceInfo
    problems: list[Problem]


@dataclass(frozen=True, slots=True)
class _Fields:
    question: str
    answer: str
    choices: str | None
    answer_type: str | None
    explicit: bool  # any of them given: map the rows generically, not by the catalogue


@dataclass(frozen=True, slots=True)
class _Where:
    """Identity of the rows being converted, for ids and for error messages."""

    label: str
    source: str
    version: str
    split: str
    limit: int | None

    def id(self, index: int) -> str:
        return stable_id(self.source, self.version, self.split, index)
