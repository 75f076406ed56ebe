"""Problems from a CoT dataset by name (`--from-dataset`), with the prompts and rationales it holds.

A CoT build (`hubtool build-dataset cot`) has one row per kept rationale: `prompt`, `completion`,
`id`, `question`, `gold`, `answer_type`, `choices`, ... Rows are grouped by `id` (first-seen order,
`limit` counts problems); each problem keeps the prompt messages its rows were made from, so a
student trained on the dataset is asked exactly what it was trained on, and the teacher's
rationales (`meta["teacher_rationales"]`), which a builder may re-score and use as ground truth.
The name resolves like everywhere else (`toolkit.hub.load_dataset`): a local run directory, the
local registry, then the Hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.hub import load_dataset, resolve_dataset
from toolkit.hub.names import is_repo_id
from toolkit.records import ANSWER_TYPES, Problem
from toolkit.rundir import MANIFEST, read_manifest
from toolkit.sources import LoadedSource, SourceInfo

REQUIRED = ("prompt", "id", "question", "gold", "answer_type")


def load_cot_dataset(name: str, *, split: str = "train", revision: str | None = None,
                     limit: int | None = None) -> LoadedSource:  # fmt: skip
    """The first `limit` problems (unique ids) of the CoT dataset `name`."""
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1")
    resolved = resolve_dataset(name, revision)
    dataset = load_dataset(name, split=split, revision=revision)
    missing = [c for c in REQUIRED if c not in dataset.column_names]
    if missing:
        raise UserError(
            f"dataset {name!r} has no column(s) {', '.join(missing)}; --from-dataset reads a CoT dataset "
            "made by `hubtool build-dataset cot` (prompt, completion, id, question, gold, answer_type)"
        )
    groups: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(dataset):
        key = str(row["id"])
        if key not in groups:
            if limit is not None and len(groups) >= limit:
                continue  # later rows may still add rationales to problems already taken
            groups[key] = {"row": row, "index": index, "rationales": []}
        text = _completion_text(row)
        if text and text not in groups[key]["rationales"]:
            groups[key]["rationales"].append(text)
    if not groups:
        raise UserError(f"dataset {name!r} has no rows in split {split!r}; build it with more problems or --keep all")
    problems = [_problem(name, g["row"], g["index"], tuple(g["rationales"])) for g in groups.values()]
    return LoadedSource(_info(name, split, resolved, problems), problems)


def _problem(name: str, row: Mapping[str, Any], index: int, rationales: tuple[str, ...]) -> Problem:
    where = f"dataset {name!r} row {index}"
    answer_type = row["answer_type"]
    if answer_type not in ANSWER_TYPES:
        raise UserError(f"{where}: answer_type {answer_type!r} is not one of {', '.join(ANSWER_TYPES)}")
    if row["gold"] is None or not str(row["gold"]).strip():
        raise UserError(f"{where}: empty gold answer; rebuild the CoT dataset")
    meta = {"index": index, "prompt": _messages(row["prompt"], where), "teacher_rationales": rationales,
            "teacher": row.get("teacher")}  # fmt: skip
    return Problem(str(row["id"]), str(row.get("source") or name), str(row["question"]), str(row["gold"]),
                   answer_type, tuple(row.get("choices") or ()), meta, index)  # fmt: skip


def _messages(prompt: Any, where: str) -> tuple[dict[str, str], ...]:
    """The prompt as chat messages ending with the user's turn (a plain string is one user message)."""
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    ok = isinstance(prompt, list) and prompt and all(isinstance(m, Mapping) and {"role", "content"} <= m.keys() for m in prompt)
    if not ok or prompt[-1]["role"] != "user":
        raise UserError(f"{where}: 'prompt' is not a list of chat messages ending with a user turn")
    return tuple({"role": str(m["role"]), "content": str(m["content"])} for m in prompt)


def _completion_text(row: Mapping[str, Any]) -> str | None:
    completion = row.get("completion")
    if isinstance(completion, list) and completion and isinstance(completion[-1], Mapping):
        return completion[-1].get("content") or None
    return completion if isinstance(completion, str) and completion.strip() else None


def _info(name: str, split: str, resolved: Any, problems: list[Problem]) -> SourceInfo:
    """The dataset as a source. `revision` pins what was read (the Hub commit, or a hash of the local
    data files), so a changed dataset is a different build; license, category and citation come
    from its build's manifest when it is local (a run directory or the local registry keeps it)."""

    origin = _manifest(resolved.path).source if resolved.local and _manifest(resolved.path) else {}
    types = {p.answer_type for p in problems}
    return SourceInfo(
        spec=f"dataset:{name}", kind="dataset", name=name,
        hub_id=name if is_repo_id(name) and not Path(name).is_dir() else None,
        config=None, split=split, revision=resolved.fingerprint, license=origin.get("license"),
        answer_type=types.pop() if len(types) == 1 else "label",
        task_category=origin.get("task_category") or "reasoning", citation=origin.get("citation"),
        url=origin.get("url"), notes=tuple(origin.get("notes") or ()),
    )  # fmt: skip


def _manifest(folder: str):
    """The build's manifest where the folder has one (a run directory, the local registry)."""
    if not (Path(folder) / MANIFEST).is_file():
        return None
    try:
        return read_manifest(folder)
    except UserError:
        return None  # an unreadable manifest leaves the dataset's provenance unknown, not its rows
