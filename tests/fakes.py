"""Test helpers: the fake teacher that ships with hubtool, and a build in one call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.builders.engine import build_dataset
from toolkit.manifest import Manifest
from toolkit.methods import get_method
from toolkit.teachers.base import Teacher
from toolkit.teachers.fake import FakeTeacher

__all__ = ["FakeTeacher", "build", "render_card", "rows"]


def build(method: str, out: str | Path, *, teachers: dict[str, Teacher] | None = None, **fields: Any) -> Manifest:
    """`hubtool build-dataset METHOD --out OUT ...` in-process: fields are the method config's
    (the call cache defaults to one beside `out`, so tests never share it)."""
    fields.setdefault("cache", str(Path(out).parent / "calls.sqlite"))
    found = get_method(method)
    return build_dataset(found.config(out=str(out), **fields), method=found, teachers=teachers)


def render_card(run_dir: str | Path, **options: Any) -> str:
    """`toolkit.cards.render_card` with the method its manifest names, as `hubtool push` renders it
    (None for a method this hubtool does not know)."""
    from toolkit import cards
    from toolkit.methods import find_method
    from toolkit.rundir import read_manifest

    return cards.render_card(run_dir, find_method(read_manifest(run_dir).method), **options)


def rows(run_dir: str | Path) -> list[dict]:
    import pyarrow.parquet as pq

    from toolkit.rundir import data_file

    return pq.read_table(data_file(run_dir)).to_pylist()
