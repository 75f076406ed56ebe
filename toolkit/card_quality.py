"""The data-quality section of a card: what a researcher checks before training on the rows.

Two sources. The rows themselves (read once, in batches, text columns only): how many show
reasoning and how many are bare answers, the median reasoning length, rows by mode / view /
kind. And the counts the method reported in the manifest (`no_reasoning`, `contradictions`,
`refusals`, escape attempts, rejected edits by kind, ...): each is shown when the method reports
it, so a count a newer method adds shows up without a template change if it is named below.
A method whose defining rows are missing (a counterfactual build that kept no counterfactual, a
mixed build without one of its modes) gets a warning: the method says what it warns of
(`Method.card_warnings`, called with the `Quality`). A role the build gave to hubtool's `fake:` test
backend (canned or scripted text, no model) is warned of too (`stand_in_warnings`): an experiment may
mean it (cpu-evolve's answers are not what it measures), but no reader may train on it unwarned.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ours, as the answer reader's: "The answer is 6." has no reasoning, "3 + 3 = 6." has five tokens
MIN_REASONING_WORDS = 3
_TOKEN = re.compile(r"[^\W_]+|[-+*/=×÷^<>]")  # words, numbers, operators
_ANSWER_LINE = re.compile(r"^\s*\**the answer is\b.*$", re.IGNORECASE | re.MULTILINE)
TEXT_COLUMNS = ("completion", "chosen")  # the trained-toward text of SFT and preference rows
GROUP_COLUMNS = ("mode", "is_counterfactual", "view", "search")

# Counts a method may report -> what the card calls them (shown only when reported).
FLAGS = {
    "no_reasoning": "bare answers (no reasoning besides the answer)",
    "contradictions": "rationales stating two different answers",
    "contradicting": "rationales stating two different answers",
    "wrong_label": "rationales that argued for another label",
    "refusals": "refusals and empty non-answers",
    "escape_attempts": "programs that tried to leave the sandbox (never rows)",
    "label_leak": "edits that wrote the target label into the input",
    "copied_tags": "diversity tags copied from the scoring prompt",
    "seeds_without_rows": "seeds without any row",
}
# Counts by kind, by the prefix of their names -> what the card calls the group.
KIND_GROUPS = {"escape_": "Programs that tried to leave the sandbox, by kind",
               "edit_rejected_": "Edits rejected, by kind", "rejected_": "Rejected, by kind"}  # fmt: skip
NOT_REJECTIONS = ("spare",)  # a counterfactual funnel's spare edits passed; they were just not needed


@dataclass
class Quality:
    rows: int = 0
    with_reasoning: int | None = None  # None: not measured (no text column, or not reasoning data)
    bare: int | None = None
    median_words: float | None = None
    groups: dict[str, dict[str, int]] = field(default_factory=dict)  # column -> value -> rows
    flags: list[tuple[str, int]] = field(default_factory=list)  # (label, count)
    rejected: dict[str, dict[str, int]] = field(default_factory=dict)  # group title -> kind -> count (> 0)
    warnings: list[str] = field(default_factory=list)


def reasoning_words(text: str) -> int:
    """Words, numbers and operators outside the `The answer is X.` lines."""
    return len(_TOKEN.findall(_ANSWER_LINE.sub(" ", text or "")))


def quality(path: Path, counts: dict[str, Any], stats: dict[str, Any], *, reasoning: bool = True,
            warnings: Callable[[Quality], list[str]] | None = None, models: Sequence[Any] = ()) -> Quality:  # fmt: skip
    """The rows' quality. `reasoning`: the completions are reasoning demonstrations, whose reasoning is
    measured (not an instruction-following method's replies); `warnings`: the method's own (see above);
    `models`: the manifest's, by role."""
    q = _from_rows(path, reasoning)
    q.flags = [(label, int(counts[key])) for key, label in FLAGS.items() if isinstance(counts.get(key), int)]
    for prefix, title in KIND_GROUPS.items():
        kinds = {k.removeprefix(prefix): v for k, v in counts.items()
                 if k.startswith(prefix) and k not in FLAGS and isinstance(v, int) and v > 0}  # fmt: skip
        if kinds:
            q.rejected[title] = dict(sorted(kinds.items()))
    drops = {k: v for k, v in _funnel_drops(stats).items() if v > 0 and k not in NOT_REJECTIONS}
    if drops:
        q.rejected["Edits rejected, by kind"] = dict(sorted(drops.items()))
    q.warnings = [*(warnings(q) if warnings else []), *_warnings(q), *stand_in_warnings(models)]
    return q


def _from_rows(path: Path, reasoning: bool) -> Quality:
    import pyarrow.parquet as pq  # pyarrow is slow to import (~150 ms): only when rows are checked

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    text = next((c for c in TEXT_COLUMNS if c in names), None) if reasoning else None
    groups = [c for c in GROUP_COLUMNS if c in names]
    q = Quality(rows=pf.metadata.num_rows)
    words: list[int] = []
    tallies: dict[str, Counter[str]] = {c: Counter() for c in groups}
    columns = [c for c in (text, *groups) if c]
    for batch in pf.iter_batches(batch_size=1024, columns=columns) if columns else ():
        data = batch.to_pydict()
        if text:
            words += [reasoning_words(_content(m)) for m in data[text]]
        for c in groups:
            tallies[c].update(_group(c, v) for v in data[c])
    if text:
        shown = [w for w in words if w >= MIN_REASONING_WORDS]
        q.with_reasoning, q.bare = len(shown), len(words) - len(shown)
        q.median_words = statistics.median(shown) if shown else None
    q.groups = {c: dict(sorted(t.items())) for c, t in tallies.items() if t}
    return q


def _content(messages: Any) -> str:
    """The assistant text of a message list (TRL's conversational columns), or the text itself."""
    if isinstance(messages, list):
        return "\n".join(m.get("content") or "" for m in messages if isinstance(m, dict))
    return messages if isinstance(messages, str) else ""


def _group(column: str, value: Any) -> str:
    if column == "view" and isinstance(value, str):
        return value.split(":")[0]  # refute:Z -> refute
    if column == "is_counterfactual":
        return "counterfactual" if value else "original"
    return str(value)


def _funnel_drops(stats: dict[str, Any]) -> dict[str, int]:
    """A counterfactual build's edits dropped on the way, by reason, summed over its stages."""
    drops: Counter[str] = Counter()
    for stage in stats.get("funnel") or []:
        dropped = stage.get("dropped") if isinstance(stage, dict) else None
        for reason, n in (dropped or {}).items():
            if isinstance(n, int):
                drops[str(reason)] += n
    return dict(drops)


def stand_in_warnings(models: Sequence[Any]) -> list[str]:
    """One warning per role played by the `fake:` test backend: its text in the rows is placeholder."""
    return [f"the {m.role} is hubtool's test backend (`fake:`), not a model: what it wrote in these rows is "
            "placeholder text, not fit to train on" for m in models if m.backend == "fake"]  # fmt: skip


def _warnings(q: Quality) -> list[str]:
    warn: list[str] = []
    if q.rows and q.with_reasoning == 0:
        warn.append("no row shows any reasoning: every completion is a bare answer")
    return warn
