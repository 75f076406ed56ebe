"""Problems with a finite label space, from any `--source`.

The shared sources already read multiple choice (`option`), yes/no and label columns; what this
method adds on top, without touching them:

- `--label-field COL`: the column holding the label (the answer field, read as a label);
- `--labels a,b,c`: the label set, in order. Golds must be one of them, or an integer index into
  them (how Hub `ClassLabel` columns store labels: imdb's 0/1, snli's 0/1/2);
- a label column without a set (reasoning-gym's syllogism answers "Yes"/"No") is yes/no when every
  gold is yes or no; otherwise the method asks for `--labels`;
- the labelled benchmarks (`hf:imdb`, `hf:sst2`, `hf:snli`, `hf:mnli`, or their Hub ids) are read by
  `toolkit.sources.labelled`, as the eval tasks read them, in the catalogue's label order.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.sources import LoadedSource
from toolkit.sources.labelled import load_labelled
from toolkit.sources.normalize import parse_yesno

FINITE = ("option", "yesno", "label")
log = logging.getLogger(__name__)


def load_problems(config: Any):
    """The source's problems, each with its label space (see module doc). The labelled benchmarks
    (`hf:imdb`, `hf:stanfordnlp/snli`, ...) are read by `toolkit.sources.labelled`, as the eval tasks read them."""
    options = config.source_options()
    if config.label_field is not None:
        options["answer_field"] = config.label_field
    if config.labels and options["answer_type"] is None:
        options["answer_type"] = "label"  # integer class ids would otherwise be read as numbers
    loaded = load_labelled(config.source, labels=config.labels, **options)
    unlabelled = [p for p in loaded.problems if _no_label(p.gold)]
    if unlabelled:  # e.g. snli's -1: annotators did not agree
        log.warning("%s: skipping %d problems without a gold label (-1)", config.source, len(unlabelled))
    problems = [labelled(p, config.labels, i) for i, p in enumerate(loaded.problems) if not _no_label(p.gold)]
    if not problems:
        raise UserError(f"{config.source} yielded no labelled problems; check --split, --limit and --label-field")
    types = {p.answer_type for p in problems}
    info = dataclasses.replace(loaded.info, answer_type=types.pop() if len(types) == 1 else loaded.info.answer_type)
    return LoadedSource(info, problems)


def labelled(problem: Problem, labels: tuple[str, ...], index: int) -> Problem:
    """The problem with a canonical gold in a finite label space, or a UserError saying why not."""
    where = f"problem {index} ({problem.source})"
    if problem.answer_type not in FINITE:
        raise UserError(
            f"{where} has a {problem.answer_type} answer; counterfactual distillation needs a finite label "
            "space: multiple choice, yes/no or labels (--answer-type label --labels a,b,...)"
        )
    if labels:
        if problem.answer_type != "label":
            raise UserError(f"--labels applies to label answers; {where} is {problem.answer_type}")
        return dataclasses.replace(problem, gold=_member(problem.gold, labels, where), choices=labels)
    if problem.answer_type == "label" and not problem.choices:
        gold = parse_yesno(problem.gold)
        if gold is None:
            raise UserError(f"{where}: its labels are not a known set; pass the set with --labels a,b,...")
        return dataclasses.replace(problem, gold=gold, answer_type="yesno", choices=())
    if problem.answer_type == "label" and len(problem.choices) < 2:
        raise UserError(f"{where}: the label set {list(problem.choices)} has fewer than two labels; pass --labels")
    return problem


def _member(gold: str, labels: tuple[str, ...], where: str) -> str:
    key = gold.strip().casefold()
    for label in labels:
        if label.casefold() == key:
            return label
    if key.lstrip("-").isdigit() and 0 <= int(key) < len(labels):
        return labels[int(key)]  # a ClassLabel id
    raise UserError(f"{where}: label {gold!r} is not one of --labels {', '.join(labels)} (nor an index into them)")


def _no_label(gold: str) -> bool:
    return gold.strip().startswith("-") and gold.strip()[1:].isdigit()

