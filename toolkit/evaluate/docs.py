"""Benchmark rows -> the doc shape the eval tasks read, through the builders' own catalogue.

An eval task and a build then read a benchmark identically (question text, option order, gold
letter, the ARC "1".."4" labels), because both go through `toolkit.sources.catalogue`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def process_docs_for(benchmark: str) -> Callable[[Any], Any]:
    """A `process_docs` hook for lm-eval that converts rows with the catalogue's converter."""
    from toolkit.sources import benchmark_info

    entry = benchmark_info(benchmark)

    def row(doc: dict, idx: int) -> dict:
        converted = entry.convert(doc)
        return {
            "id": doc.get("id") or f"{benchmark}-{idx}",
            "question": converted.question if converted else "",
            "choices": list(converted.choices) if converted else [],
            "gold": converted.gold if converted else "",
            "answer_type": entry.answer_type,
            "rationale": "",
            "_usable": converted is not None,  # a row the benchmark itself leaves unusable
        }

    def process_docs(dataset):
        docs = dataset.map(row, with_indices=True, remove_columns=dataset.column_names)
        return docs.filter(lambda d: d["_usable"]).remove_columns("_usable")

    return process_docs
