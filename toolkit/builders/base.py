"""What every builder returns, and small helpers they share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class BuildResult:
    """Rows in TRL's columns plus counts and failures, as the run directory stores them."""

    schema: Any  # pyarrow.Schema
    rows: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    failed: list[dict] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # per-method manifest entries
    elapsed: float = 0.0


def chunked(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
