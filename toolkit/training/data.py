"""The training data: a dataset resolved by name, checked against what the trainer reads, trimmed to it.

SFT reads conversational prompt-completion rows (`prompt`, `completion`: TRL then puts the loss on
the completion only) or `messages`; DPO reads `prompt`, `chosen`, `rejected`. The metadata columns
a hubtool build carries (`id`, `gold`, `correct`, ...) are dropped before TRL sees them: TRL only
tokenizes its own columns, and list- or struct-typed extras can trip its collators.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.errors import MissingSplitError, UserError
from toolkit.hub import load_dataset, resolve_dataset
from toolkit.methods import methods

log = logging.getLogger(__name__)

# trainer -> the column sets it accepts, in order of preference.
FORMATS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sft": (("prompt", "completion"), ("messages",)),
    "dpo": (("prompt", "chosen", "rejected"),),
}
WHAT = {
    "sft": "prompt + completion (conversational prompt-completion) or messages",
    "dpo": "prompt + chosen + rejected (preference pairs)",
}


@dataclass(frozen=True)
class TrainingData:
    dataset: Any  # datasets.Dataset, trimmed to the trainer's columns
    resolved: Any  # toolkit.hub.ResolvedDataset
    split: str
    rows: int
    columns: tuple[str, ...]  # what the trainer reads
    dropped: tuple[str, ...]  # metadata left out
    where: dict[str, str] | None = None  # the row filter applied (column -> value), if any
    rows_before: int | None = None  # rows before the filter


def load_training_data(
    name: str, trainer: str, *, split: str = "train", config: str | None = None,
    where: dict[str, str] | None = None, extra: Mapping[str, str] | None = None,
) -> TrainingData:
    """Resolve `name` (local dir -> local registry -> Hub), load `split`, keep the rows `where` selects
    (column -> value, e.g. {"is_counterfactual": "false"}), check and trim its columns. `extra`
    names metadata columns the trainer reads too (`Trainer.columns`: column -> what to do without it)."""
    extra = dict(extra or {})

    if config:
        raise UserError(
            f"dataset_config {config!r} is not supported; hubtool datasets have one config, remove the key"
        )
    resolved = resolve_dataset(name)
    empty = f"dataset {name!r} has no rows in split {split!r}; rebuild it with more problems or --keep all"
    try:
        dataset = load_dataset(name, split=split)
    except ValueError as e:
        if "corresponds to no data" in str(e):  # how `datasets` reports an empty parquet split
            raise UserError(empty) from None
        raise
    columns = select_columns(dataset.column_names, trainer, name)
    missing = [c for c in extra if c not in dataset.column_names]
    if missing:
        raise UserError(f"dataset {name!r} has no {', '.join(map(repr, missing))} column, which this training "
                        f"reads; {extra[missing[0]]}")  # fmt: skip
    columns = (*columns, *extra)
    if len(dataset) == 0:
        raise UserError(empty)
    rows_before = len(dataset)
    if where:
        dataset = filter_rows(dataset, where, name)
    dropped = tuple(c for c in dataset.column_names if c not in columns)
    if dropped:
        log.info("dropping metadata columns the %s trainer does not read: %s", trainer, ", ".join(dropped))
        dataset = dataset.select_columns(list(columns))
    _check_conversational(dataset, columns, name)
    return TrainingData(dataset, resolved, split, len(dataset), columns, dropped, where or None, rows_before)


def parse_where(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`COLUMN=VALUE` strings -> {column: value}. Several columns combine with AND; a column given
    twice is refused rather than one value silently winning (one value per column)."""
    out: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column.strip():
            raise UserError(f"--where {item!r} is not COLUMN=VALUE; write e.g. --where is_counterfactual=false")
        column = column.strip()
        if column in out and out[column] != value.strip():
            raise UserError(f"--where {column} is given twice ({out[column]}, {value.strip()}); a row must match "
                            "every --where, so give each column once")  # fmt: skip
        out[column] = value.strip()
    return out


def filter_rows(dataset, where: dict[str, str], name: str):
    """The rows whose every `where` column reads as its value (booleans as true/false, any case)."""
    missing = [c for c in where if c not in dataset.column_names]
    if missing:
        raise UserError(f"--where: dataset {name!r} has no column {', '.join(map(repr, missing))}; "
                        f"columns: {', '.join(dataset.column_names)}")  # fmt: skip
    wanted = {column: value.casefold() for column, value in where.items()}
    kept = dataset.filter(lambda row: all(_as_text(row[c]) == v for c, v in wanted.items()))
    if len(kept) == 0:
        shown = ", ".join(f"{c}={v}" for c, v in where.items())
        raise UserError(f"dataset {name!r} has no rows where {shown}; check the values with `hubtool show`")
    log.info("training on %d of %d rows (where %s)", len(kept), len(dataset), where)
    return kept


def _as_text(value) -> str:
    return str(value).casefold()  # True -> "true", 3 -> "3"


HOLDOUT = 0.05  # the share of train held out as the eval split when a dataset has none (ours)


def training_splits(name: str, trainer: str, *, train_split: str, eval_split: str | None, seed: int,
                    config: str | None = None, where: dict[str, str] | None = None, extra: Mapping[str, str] | None = None,
                    ) -> tuple[TrainingData, TrainingData | None]:  # fmt: skip
    """The train data and, when `eval_split` is asked for, the eval data: that split if the dataset
    has it, else HOLDOUT of the train rows (seeded; at least one), taken out of train. `where`
    selects rows of both, `extra` keeps metadata columns (see `load_training_data`)."""
    data = load_training_data(name, trainer, split=train_split, config=config, where=where, extra=extra)
    if eval_split is None:
        return data, None
    try:
        return data, load_training_data(name, trainer, split=eval_split, config=config, where=where, extra=extra)
    except MissingSplitError:
        pass
    if data.rows < 2:
        raise UserError(f"dataset {name!r} has {data.rows} row(s) and no {eval_split!r} split; an eval needs more")
    parts = data.dataset.train_test_split(test_size=max(1, round(HOLDOUT * data.rows)), seed=seed)
    log.warning("dataset %r has no %r split: holding out %d of its %d rows for evaluation",
                name, eval_split, len(parts["test"]), data.rows)  # fmt: skip
    train = dataclasses.replace(data, dataset=parts["train"], rows=len(parts["train"]))
    held = dataclasses.replace(data, dataset=parts["test"], rows=len(parts["test"]), split=f"{train_split} (held out)")
    return train, held


def select_columns(available: list[str], trainer: str, name: str) -> tuple[str, ...]:
    """The first column set of the trainer's formats that the dataset has, else a UserError saying what was expected."""
    for wanted in FORMATS[trainer]:
        if all(c in available for c in wanted):
            return wanted
    other = "dpo" if trainer == "sft" else "sft"
    fits_other = any(all(c in available for c in wanted) for wanted in FORMATS[other])
    hint = f"; it looks like {other.upper()} data, use {_recipes_of(other)}" if fits_other else ""
    raise UserError(
        f"dataset {name!r} has columns {', '.join(available) or '(none)'}, but a {trainer.upper()} recipe "
        f"expects {WHAT[trainer]}{hint}"
    )


def _recipes_of(config: str) -> str:
    """Where recipes of a TRL config family are: "a DPO recipe (recipes/self-refine/)"."""
    folders = [f"recipes/{m.recipe_folder}/" for m in methods() if m.trainer.config == config]
    article = "an" if config == "sft" else "a"
    return f"{article} {config.upper()} recipe ({'e.g. ' if len(folders) > 1 else ''}{', '.join(folders[:1])})"


def _check_conversational(dataset, columns: tuple[str, ...], name: str) -> None:
    """Message columns must be lists of {role, content}: the chat template renders them, TRL masks by them."""
    first = dataset[0]
    for column in columns:
        value = first[column]
        if isinstance(value, str):
            continue  # standard (plain-text) format: TRL accepts it too
        if not (
            isinstance(value, list)
            and value
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
        ):
            raise UserError(
                f"dataset {name!r}: column {column!r} holds {type(value).__name__}, expected a list of "
                "{role, content} messages or a string"
            )
