"""`hubtool decontaminate RUN`: a finished build's rows filtered in place, the removal recorded.

Apart from the index and the records (`toolkit.decontaminate`), because it writes a run directory and
the run directory itself re-applies earlier passes with those.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from toolkit.cards import write_card
from toolkit.decontaminate import DEFAULT_N, add_record, index_for, report, run_record, split_clean
from toolkit.errors import UserError
from toolkit.rundir import RunDir, read_manifest, read_rows


def decontaminate_run(run_dir: str | Path, against: str, *, method: Any, n: int = DEFAULT_N,
                      data_dir: str | Path | None = None) -> dict:  # fmt: skip
    """Drop the rows of a finished build whose question overlaps the evaluation questions; rewrite
    the data, the manifest and the card. Returns the report of this pass. The removal becomes part
    of the run: a re-run of the build (resumed or extended) applies it again (`reapply`). `method` is
    the build's (a `toolkit.builders.method.Method`, or None for one this hubtool does not know): its card."""
    index = index_for(against, n, data_dir)  # before the lock: loading eval tasks takes seconds
    run = RunDir(run_dir)
    run.claim()  # no build may write the directory while its rows are rewritten
    try:
        manifest = read_manifest(run_dir)
        if manifest.status != "complete":
            raise UserError(f"{run_dir} holds an unfinished build; finish it by re-running: {manifest.command}")
        table = read_rows(run_dir)
        if "question" not in table.column_names:
            raise UserError(f"{run_dir} rows have no `question` column to check")
        rows = table.to_pylist()
        kept, removed = split_clean(rows, lambda r: r["question"] or "", index)
        result = report(index, removed, len(rows)) | run_record(removed, data_dir)
        add_record(manifest, result)
        run.rewrite(table.schema, kept, manifest)
        write_card(run_dir, method)
    finally:
        run.release()
    return result
