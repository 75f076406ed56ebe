"""The row types that flow through a build, as frozen dataclasses.

Inside the toolkit rows are these dataclasses; at the edge (parquet, the Hub) they become exactly
TRL's columns (see `toolkit.builders.rows`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

AnswerType = Literal["number", "option", "yesno", "label", "math"]
ANSWER_TYPES: tuple[str, ...] = ("number", "option", "yesno", "label", "math")
NO_META: Mapping[str, Any] = MappingProxyType({})


def stable_id(*parts: object) -> str:
    """Hash of the parts that identify a problem: (source, revision/config, split, index).

    The same problem keeps the same id across re-runs, resumes and extensions of a build.
    """
    blob = json.dumps([str(p) for p in parts], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Problem:
    """One question with its gold answer, as a source yields it.

    `gold` is the canonical answer as a string: a number ("42", "3.5"), an option letter ("B"),
    "yes"/"no", a label, or for `math` any LaTeX answer (an interval, an expression, a word).
    `choices` holds the option texts in letter order (A, B, ...) for multiple-choice problems, and
    the label set for label problems. `index` is the row's place in its source. `meta` is what a
    source adds (a worked rationale, gym metadata); most problems share one empty mapping, which
    keeps a 100,000-problem build small.
    """

    id: str
    source: str
    question: str
    gold: str
    answer_type: AnswerType
    choices: tuple[str, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=lambda: NO_META, compare=False, hash=False)
    index: int = field(default=-1, compare=False, hash=False)
