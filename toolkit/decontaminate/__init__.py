"""Decontamination: keep evaluation questions out of training data.

A training problem is contaminated when its question shares an n-gram (n = 8 by default, as
open-r1 does) with a question of an evaluation task, on normalised text: lower case, words and
single symbols as tokens (so `4 - 1` and `4 + 1` differ), spacing ignored. Templated tasks (every
reasoning-gym question opens "State the final answer to the following arithmetic problem:") would
make every problem of the template match every other, so each task's template is left out before
n-grams are taken: the token prefix and suffix that most of its questions share, and inside them
every run of three tokens that most of its questions contain (reasoning-gym's syllogisms read
"... 2. No cats are dogs\n\nDoes it logically follow that: ...": with the inner phrase counted, every
syllogism shared an 8-gram with some test syllogism). A question whose rest is shorter than n tokens
matches only as a whole.

Builds filter problems before any teacher call (`--decontaminate SUITE|TASKS`); a finished run
directory is filtered in place by `hubtool decontaminate RUN --against ...` (`toolkit.decontaminate.run`).
Either way the manifest and the card record what was removed and against which tasks. Each pass is
kept (`stats.decontaminations`; the card shows their sum), and a re-run of the build, resumed or
extended, applies the `hubtool decontaminate` passes again (`reapply`, called by the run directory).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import UserError
from toolkit.sources import eval_tasks as tasks_mod

log = logging.getLogger(__name__)
DEFAULT_N = 8
TEMPLATE_SHARE = 0.5  # a prefix, suffix or inner run more than this share of a task's questions have is template
INNER_RUN = 3  # the length of the inner runs of tokens counted as template
_TOKEN = re.compile(r"[0-9a-z]+|[^\sa-z0-9]")

Tokens = tuple[str, ...]


def tokens(text: str) -> Tokens:
    return tuple(_TOKEN.findall(text.lower()))


def common_affixes(questions: Sequence[Tokens]) -> tuple[Tokens, Tokens]:
    """The longest token prefix and suffix that more than TEMPLATE_SHARE of the questions share."""
    if len(questions) < 4:
        return (), ()

    def longest(seqs: Sequence[Tokens]) -> Tokens:
        best: Tokens = ()
        for length in range(1, max(map(len, seqs)) + 1):
            top, count = Counter(q[:length] for q in seqs if len(q) >= length).most_common(1)[0]
            if count / len(seqs) <= TEMPLATE_SHARE:
                break
            best = top
        return best

    prefix = longest(questions)
    suffix = longest([q[::-1] for q in questions])[::-1]
    return prefix, suffix


def common_runs(questions: Sequence[Tokens], k: int = INNER_RUN) -> frozenset[Tokens]:
    """The runs of k tokens that more than TEMPLATE_SHARE of the questions contain."""
    if len(questions) < 4:
        return frozenset()
    counts = Counter(g for q in questions for g in {q[i : i + k] for i in range(len(q) - k + 1)})
    return frozenset(g for g, c in counts.items() if c / len(questions) > TEMPLATE_SHARE)


Template = tuple[Tokens, Tokens, frozenset[Tokens]]  # prefix, suffix, inner runs
NO_TEMPLATE: Template = ((), (), frozenset())


def template_of(questions: Sequence[Tokens]) -> Template:
    """A task's template: its common prefix and suffix, and the inner runs most of the rest contain."""
    return (*common_affixes(questions), common_runs(questions))


def content(toks: Tokens, template: Template) -> Tokens:
    """The tokens of a question that are not `template` (all of them when the template would leave none)."""
    prefix, suffix, runs = template
    toks = _cut(toks, prefix, suffix)
    if not runs:
        return toks
    k = len(next(iter(runs)))
    inner = [False] * len(toks)
    for i in range(len(toks) - k + 1):
        if toks[i : i + k] in runs:
            inner[i : i + k] = [True] * k
    rest = tuple(t for t, skip in zip(toks, inner) if not skip)
    return rest or toks


@dataclass
class Index:
    """The n-grams of evaluation questions (templates cut), each mapped to the tasks it comes from."""

    n: int
    tasks: list[str]
    grams: dict[Tokens, set[str]] = field(default_factory=dict)
    templates: set[Template] = field(default_factory=set)
    documents: dict[str, int] = field(default_factory=dict)

    def add_task(self, task: str, questions: Sequence[str]) -> None:
        toks = [tokens(q) for q in questions]
        template = template_of(toks)
        self.templates.add(template)
        for t in toks:
            for g in self._grams(content(t, template)):
                self.grams.setdefault(g, set()).add(task)
        self.documents[task] = len(questions)

    def hits(self, question: str) -> set[str]:
        """The tasks whose questions share an n-gram with `question` (under any task's template)."""
        toks = tokens(question)
        found: set[str] = set()
        for template in self.templates | {NO_TEMPLATE}:
            for g in self._grams(content(toks, template)):
                found |= self.grams.get(g, set())
        return found

    def _grams(self, toks: Tokens) -> set[Tokens]:
        if len(toks) < self.n:
            return {toks} if toks else set()  # short: matches only as a whole
        return {toks[i : i + self.n] for i in range(len(toks) - self.n + 1)}


def _cut(toks: Tokens, prefix: Tokens, suffix: Tokens) -> Tokens:
    if prefix and toks[: len(prefix)] == prefix:
        toks = toks[len(prefix) :]
    if suffix and len(toks) >= len(suffix) and toks[len(toks) - len(suffix) :] == suffix:
        toks = toks[: len(toks) - len(suffix)]
    return toks


@dataclass(frozen=True)
class Removed:
    id: str
    question: str
    tasks: tuple[str, ...]


def index_for(against: str | Iterable[str], n: int = DEFAULT_N, data_dir: str | Path | None = None) -> Index:
    """The index of the questions of every task `against` names (suites or tasks, comma-separated)."""
    names = [a.strip() for a in (against.split(",") if isinstance(against, str) else against) if a.strip()]
    if not names:
        raise UserError("--decontaminate names no suite or task; e.g. --decontaminate gym or gsm8k,svamp")
    if n < 1:
        raise UserError(f"the n-gram length must be at least 1, not {n}")
    manager = tasks_mod.task_manager()
    catalog = tasks_mod.catalog(manager)
    suites = [x for x in names if x.removeprefix(tasks_mod.PREFIX) in catalog.suites]
    chosen = tasks_mod.select_tasks(catalog, suites, [x for x in names if x not in suites])
    chosen = list(dict.fromkeys(base_task(t) for t in chosen))
    index = Index(n, chosen)
    loaded = tasks_mod.load_tasks(manager, chosen, Path(data_dir) if data_dir else None)
    for name, task in zip(chosen, loaded):
        index.add_task(name, [question_of(task, doc) for doc in _documents(task)])
    log.info("decontamination index: %d %d-grams from %s", len(index.grams), n, index.documents)
    return index


# Variants that score their base task's documents another way: `_majN` (a vote over N samples) and
# `_ranaldi` (asked with the papers' prompt). Their questions are their base task's: indexed once, as it.
_VARIANT = re.compile(r"_(maj\d+|ranaldi)$")


def base_task(task: str) -> str:
    """The task whose documents `task` scores (itself unless it is a variant)."""
    return _VARIANT.sub("", task)


def _documents(task: Any) -> list[dict]:
    """The documents a task scores (its few-shot examples are not what it measures, and often come
    from the very training split a build reads)."""
    return list(task.eval_docs)


def question_of(task: Any, doc: dict) -> str:
    """The question of an evaluation document: the shared doc shape's `question`, else the prompt."""
    if isinstance(doc, dict) and isinstance(doc.get("question"), str):
        return doc["question"]
    return str(task.doc_to_text(doc))


def split_clean(items: Sequence[Any], question: Any, index: Index) -> tuple[list[Any], list[Removed]]:
    """(the items whose question overlaps no evaluation question, the ones removed and why)."""
    kept, removed = [], []
    for item in items:
        tasks = index.hits(question(item))
        if tasks:
            removed.append(Removed(str(_get(item, "id")), question(item), tuple(sorted(tasks))))
        else:
            kept.append(item)
    return kept, removed


def _get(item: Any, key: str) -> Any:
    return item[key] if isinstance(item, dict) else getattr(item, key)


def report(index: Index, removed: Sequence[Removed], total: int) -> dict[str, Any]:
    """What the manifest and the card say about a decontamination."""
    by_task = Counter(t for r in removed for t in r.tasks)
    return {"against": index.tasks, "n": index.n, "documents": index.documents, "checked": total,
            "removed": len(removed), "removed_by_task": dict(sorted(by_task.items())),
            "removed_examples": [{"id": r.id, "question": r.question[:200], "tasks": list(r.tasks)} for r in removed[:5]]}  # fmt: skip


# -- the record: every pass kept, the card's numbers computed from them ---------------------------------
def run_record(removed: Sequence[Removed], data_dir: str | Path | None) -> dict[str, Any]:
    """What a re-run needs to remove the same rows again (and check new ones the same way)."""
    return {"stage": "run", "data_dir": str(data_dir) if data_dir else None, "removed_ids": [r.id for r in removed]}


def records(stats: dict[str, Any]) -> list[dict[str, Any]]:
    """Every decontamination of a build, in order (a build's own, then each `hubtool decontaminate`)."""
    if isinstance(stats.get("decontaminations"), list):
        return list(stats["decontaminations"])
    return [stats["decontamination"]] if isinstance(stats.get("decontamination"), dict) else []


def add_record(manifest: Any, record: dict[str, Any]) -> None:
    """Append a pass to the manifest; the summary the card shows and the count follow from all passes."""
    every = [*records(manifest.stats), record]
    manifest.stats["decontaminations"] = every
    manifest.stats["decontamination"] = summary(every)
    manifest.counts["decontaminated"] = sum(r["removed"] for r in every)


def summary(passes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One view of several passes: items checked by the first, removed by all, tasks of all."""
    by_task: Counter[str] = Counter()
    for r in passes:
        by_task.update(r["removed_by_task"])
    return {"against": list(dict.fromkeys(t for r in passes for t in r["against"])), "n": passes[-1]["n"],
            "documents": {k: v for r in passes for k, v in r["documents"].items()}, "checked": passes[0]["checked"],
            "removed": sum(r["removed"] for r in passes), "removed_by_task": dict(sorted(by_task.items())),
            "removed_examples": [e for r in passes for e in r["removed_examples"]][:5]}  # fmt: skip


def reapply(passes: Sequence[dict[str, Any]], rows: list[dict]) -> tuple[list[dict], list[dict[str, Any]]]:
    """The rows without what earlier `hubtool decontaminate` passes removed, and those passes as
    they apply to these rows: each pass checks every row again (the same questions give the same
    answer; rows a higher --limit added are checked too). Without the eval data now, the rows
    removed before are removed by id."""
    redone = []
    for old in passes:
        try:
            index = index_for(old["against"], old["n"], old.get("data_dir"))
        except UserError as e:
            log.warning("decontamination against %s not re-checked (%s); removing its %d rows by id",
                        ", ".join(old["against"]), e, len(old["removed_ids"]))  # fmt: skip
            ids = set(old["removed_ids"])
            removed = [Removed(str(r.get("id")), r.get("question") or "", ()) for r in rows if str(r.get("id")) in ids]
            rows = [r for r in rows if str(r.get("id")) not in ids]
            redone.append({**old, "checked": len(rows) + len(removed), "removed": len(removed),
                           "removed_ids": [r.id for r in removed]})  # fmt: skip
            continue
        checked = len(rows)
        rows, removed = split_clean(rows, lambda r: r.get("question") or "", index)
        redone.append(report(index, removed, checked) | run_record(removed, old.get("data_dir")))
    return rows, redone
