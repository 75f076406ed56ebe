"""`hf:` sources: a known benchmark (`hf:NAME`) or any Hub dataset (`hf:org/name`), read from the
Hub or from local `data_files`."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.errors import UserError
from toolkit.records import Problem
from toolkit.sources.base import CATEGORIES, LoadedSource, SourceInfo, _Fields, _Where
from toolkit.sources.catalogue import Benchmark, benchmark_for_hub_id, benchmark_info
from toolkit.sources.files import _read_files
from toolkit.sources.mapping import _mapped_problems, _missing, _require_rows
from toolkit.sources.normalize import BadRow, MissingField

log = logging.getLogger(__name__)


def _load_hf(
    spec: str,
    name: str,
    split: str,
    limit: int | None,
    config: str | None,
    revision: str | None,
    data_files: str | list[str] | None,
    fields: _Fields,
) -> LoadedSource:
    if "/" in name:
        bench = None if fields.explicit else benchmark_for_hub_id(name, config)
    else:
        bench = _catalogue_entry(name, fields.explicit)
    hub_id = bench.hub_id if bench else name
    config = config or (bench.config if bench else None)
    if bench and split not in bench.splits:
        raise UserError(f"{bench.name} has no labelled split {split!r}; available: {', '.join(bench.splits)}")
    rows = _read_files(data_files) if data_files else _hub_rows(hub_id, config, split, revision)
    origin = "local data_files" if data_files else hub_id
    where = _Where(f"{spec} ({origin}, split {split})", hub_id, revision or config or "", split, limit)
    if bench:
        problems, answer_type = _benchmark_problems(bench, rows, where), bench.answer_type
    else:
        problems, answer_type = _mapped_problems(rows, fields, where)
    return LoadedSource(
        SourceInfo(
            spec=spec,
            kind="hf",
            name=name,
            hub_id=hub_id,
            config=config,
            split=split,
            revision=revision,
            license=bench.license if bench else None,
            answer_type=answer_type,
            task_category=bench.task_category if bench else CATEGORIES[answer_type],
            citation=bench.citation if bench else None,
            url=f"https://huggingface.co/datasets/{hub_id}",
        ),
        problems,
    )


def _catalogue_entry(name: str, mapped: bool) -> Benchmark:
    try:
        bench = benchmark_info(name)
    except UserError as e:
        raise UserError(f"{e}; or name any Hub dataset as hf:org/name") from None
    if mapped:
        raise UserError(
            f"hf:{name} has a fixed field mapping; drop the field/answer-type options, or map "
            f"{bench.hub_id} yourself as hf:{bench.hub_id}"
        )
    return bench


def _hub_rows(hub_id: str, config: str | None, split: str, revision: str | None) -> Any:
    """The split as a `datasets.Dataset`, with the Hub's failures turned into one-line UserErrors."""
    import datasets  # datasets takes about a second to import: only when a Hub source is read
    from datasets.exceptions import DatasetNotFoundError

    try:
        return datasets.load_dataset(hub_id, config, split=split, revision=revision)
    except DatasetNotFoundError as e:
        first = str(e).splitlines()[0]
        raise UserError(f"{hub_id!r} can't be loaded: {first}; check the name and revision") from None
    except ConnectionError:
        raise UserError(
            f"the Hugging Face Hub can't be reached to load {hub_id!r} (offline?); point "
            "data_files (--data-files) at a local copy, or use a gym: source"
        ) from None
    except ValueError as e:
        if str(e).startswith("Unknown split"):
            available = ", ".join(re.findall(r"'([^']+)'", str(e)))
            raise UserError(f"{hub_id} has no split {split!r}; available: {available}") from None
        if "BuilderConfig" in str(e) or "Config name is missing" in str(e):
            raise UserError(f"{hub_id}: {e}; pass --config") from None
        raise
    except RuntimeError as e:
        if "scripts are no longer supported" not in str(e):
            raise
        raise UserError(
            f"{hub_id} is a loading-script dataset, which datasets>=4 can't run; download its "
            "data files and pass them as data_files (--data-files)"
        ) from None


def benchmark_problems(name: str, rows: Sequence[Mapping[str, Any]], split: str) -> list[Problem]:
    """The problems a known benchmark's raw rows (a `datasets.Dataset` or a list of dicts) make,
    exactly as `load_source(f"hf:{name}", split=split)` reads them: the eval tasks call this."""
    bench = benchmark_info(name)
    where = _Where(f"hf:{name} (rows, split {split})", bench.hub_id, bench.config or "", split, None)
    return _benchmark_problems(bench, rows, where)


def _benchmark_problems(bench: Benchmark, rows: Sequence[Mapping[str, Any]], where: _Where) -> list[Problem]:
    _require_rows(rows, where)
    problems, skipped = [], 0
    for index, raw in enumerate(rows):
        if where.limit is not None and len(problems) >= where.limit:
            break
        try:
            row = bench.convert(raw)
        except MissingField as e:
            raise UserError(
                _missing(e.names, e.available, where, f"is this a copy of {bench.hub_id}?")
            ) from None
        except BadRow as e:
            raise UserError(f"row {index} of {where.label}: {e}; is this a copy of {bench.hub_id}?") from None
        if row is None:
            skipped += 1
            continue
        problems.append(
            Problem(
                id=where.id(index),
                source=where.source,
                question=row.question,
                gold=row.gold,
                answer_type=bench.answer_type,
                choices=row.choices,
                meta={"index": index, **row.meta},
                index=index,
            )
        )
    if skipped:
        log.warning("%s: skipped %d rows whose gold is unusable (%s)", where.label, skipped, bench.note)
    if not problems:
        raise UserError(f"{where.label} yielded no problems; check the split and data files")
    return problems
