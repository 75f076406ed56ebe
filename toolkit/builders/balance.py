"""`--balance`: a class-balanced subset of a labelled source, reproducible by seed.

Ranaldi & Freitas (EACL 2024) train on "4000 examples with equally distributed target classes" for
SIQA, PIQA, CSQA and OBQA. The subset takes the same number of problems from every gold class
(option letter, yes/no, label); within a class, problems are ordered by a hash of (seed, id), so a
larger `--limit` keeps every problem a smaller one took (a build extends, it does not reshuffle).
The chosen problems keep the source's order.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence

from toolkit.errors import UserError
from toolkit.records import Problem

log = logging.getLogger(__name__)


def balance_classes(problems: Sequence[Problem], limit: int | None, seed: int) -> list[Problem]:
    if any(p.answer_type == "number" for p in problems):
        log.warning("--balance: numeric answers have no classes; taking the first --limit problems")
        return list(problems[:limit])
    classes: dict[str, list[Problem]] = defaultdict(list)
    for p in problems:
        classes[p.gold].append(p)
    if len(classes) < 2:
        raise UserError(f"--balance: the source has one gold class ({next(iter(classes), '-')!r}); nothing to balance")
    smallest = min(len(members) for members in classes.values())
    per_class = smallest if limit is None else limit // len(classes)
    if per_class > smallest:
        log.warning("--balance: the rarest class has %d problems, so %d per class (%d in all), not %d",
                    smallest, smallest, smallest * len(classes), limit)  # fmt: skip
        per_class = smallest
    if per_class == 0:
        raise UserError(f"--limit {limit} is smaller than the {len(classes)} classes; raise it to balance them")
    chosen: set[str] = set()
    for members in classes.values():
        ranked = sorted(members, key=lambda p: hashlib.sha256(f"{seed}:{p.id}".encode()).hexdigest())
        chosen.update(p.id for p in ranked[:per_class])
    return [p for p in problems if p.id in chosen]
