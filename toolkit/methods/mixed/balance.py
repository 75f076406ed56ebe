"""The mix of a mixed-distillation build: verified CoT and PoT rows, balanced per problem and overall.

Every verified rationale of a problem comes in; what goes out, in two passes:

1. **Per problem.** A problem with verified rationales in both modes keeps as many of each (the
   smaller count; at most `max_per_mode`), so no problem teaches one mode more than the other. A
   problem verified in one mode only keeps up to `max_per_mode` of it, or nothing with `require_both`.
2. **Overall.** The over-represented mode loses rows until PoT is `pot_ratio` of the mix (as close as
   whole rows allow), one row at a time, never a problem's last row: a problem that was solved keeps a
   row, and one solved in one mode only keeps that mode. Rows go first from the surplus of easy problems
   (verified in both modes, with more than one row of that mode), then from the extra samples of
   problems solved in one mode only, and last the only row of that mode of a problem that keeps the
   other mode. Within a tier: the problem where that mode leads the other the most (then: has the
   most rows of it; then a hash of seed and id), and within it the last-sampled row. When that cannot
   reach the ratio the report says `target_missed`. A mode with no rows at all cannot be balanced
   against: the other is kept and the report says the mix is one-sided. Only `pot_ratio` 0 or 1 (one
   mode asked for) drops a mode entirely, with the problems solved only in it.

Pure and deterministic: the same rows in give the same rows out, whatever order problems finished in.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)
MODES = ("cot", "pot")


@dataclass
class BalanceReport:
    """What balancing did, for the manifest and the card."""

    before: Counter[str] = field(default_factory=Counter)  # verified rows per mode
    after_problem: Counter[str] = field(default_factory=Counter)  # after pass 1
    kept: Counter[str] = field(default_factory=Counter)  # after pass 2
    problems: Counter[str] = field(default_factory=Counter)  # both / cot_only / pot_only (verified)
    one_sided: bool = False
    target_missed: bool = False  # the ratio would have cost problems their last rows
    problems_kept: int = 0  # problems with at least one kept row

    def as_dict(self, pot_ratio: float) -> dict[str, Any]:
        total = sum(self.kept.values())
        return {
            "target_pot_ratio": pot_ratio,
            "pot_ratio": round(self.kept["pot"] / total, 4) if total else None,
            "verified": {m: self.before[m] for m in MODES},
            "after_per_problem": {m: self.after_problem[m] for m in MODES},
            "kept": {m: self.kept[m] for m in MODES},
            "dropped_per_problem": sum(self.before.values()) - sum(self.after_problem.values()),
            "dropped_overall": sum(self.after_problem.values()) - total,
            "problems": {k: self.problems[k] for k in ("both", "cot_only", "pot_only")},
            "one_sided": self.one_sided,
            "target_missed": self.target_missed,
            "problems_kept": self.problems_kept,
        }


def balance(rows: Sequence[Any], *, pot_ratio: float, max_per_mode: int | None = None, require_both: bool = False,
            seed: int = 0) -> tuple[list[Any], BalanceReport]:  # fmt: skip
    """The rows to keep, in their input order. Rows need `.id` (problem), `.mode` and `.sample_idx`."""
    report = BalanceReport()
    by_problem: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {m: [] for m in MODES})
    for row in rows:
        by_problem[row.id][row.mode].append(row)
        report.before[row.mode] += 1
    kept: dict[str, dict[str, list[Any]]] = {}
    for pid, modes in by_problem.items():
        kept[pid] = per_problem(modes, max_per_mode, require_both)
        n_cot, n_pot = len(modes["cot"]), len(modes["pot"])
        report.problems["both" if n_cot and n_pot else "cot_only" if n_cot else "pot_only"] += 1
        report.after_problem.update({m: len(kept[pid][m]) for m in MODES})
    report.one_sided, report.target_missed = _overall(kept, pot_ratio, seed)
    chosen = {id(r) for modes in kept.values() for m in MODES for r in modes[m]}
    out = [r for r in rows if id(r) in chosen]
    report.kept.update(r.mode for r in out)
    report.problems_kept = len({r.id for r in out})
    return out, report


def per_problem(modes: dict[str, list[Any]], max_per_mode: int | None, require_both: bool) -> dict[str, list[Any]]:
    """Pass 1 for one problem: the first-sampled rows of each mode, as many of each as the modes allow."""
    ranked = {m: sorted(modes[m], key=lambda r: r.sample_idx) for m in MODES}
    cap = max_per_mode if max_per_mode is not None else max(len(v) for v in ranked.values())
    if ranked["cot"] and ranked["pot"]:
        n = min(len(ranked["cot"]), len(ranked["pot"]), cap)
        return {m: ranked[m][:n] for m in MODES}
    if require_both:
        return {m: [] for m in MODES}
    return {m: ranked[m][:cap] for m in MODES}


def _overall(kept: dict[str, dict[str, list[Any]]], pot_ratio: float, seed: int) -> tuple[bool, bool]:
    """Pass 2, in place; (one mode is missing entirely, the ratio was not reached)."""
    totals = Counter({m: sum(len(v[m]) for v in kept.values()) for m in MODES})
    if not totals["cot"] and not totals["pot"]:
        return False, False
    drop, target = _target(totals, pot_ratio)
    if drop is None:
        return False, False
    other = "cot" if drop == "pot" else "pot"
    if totals[other] == 0 and 0 < pot_ratio < 1:
        log.warning("mixed: no verified %s rationale at all, so the %s rows cannot be balanced against it; "
                    "keeping every %s row (the mix is one-sided)", other.upper(), drop.upper(), drop.upper())  # fmt: skip
        return True, False
    last_rows_too = pot_ratio in (0.0, 1.0)  # one mode asked for: the other goes entirely
    heap = [(key, pid) for pid, v in kept.items() if (key := _priority(v, drop, other, pid, seed, last_rows_too))]
    heapq.heapify(heap)
    for done in range(totals[drop] - target):
        if not heap:
            log.warning("mixed: PoT share %.2f not reached; %d more %s rows would have been problems' last rows",
                        pot_ratio, totals[drop] - target - done, drop.upper())  # fmt: skip
            return False, True
        _, pid = heapq.heappop(heap)
        kept[pid][drop].pop()  # the last-sampled row of that problem
        if key := _priority(kept[pid], drop, other, pid, seed, last_rows_too):
            heapq.heappush(heap, (key, pid))
    return False, False


def _target(totals: Counter[str], pot_ratio: float) -> tuple[str | None, int]:
    """Which mode is over-represented and how many of its rows the ratio allows."""
    n_cot, n_pot = totals["cot"], totals["pot"]
    if pot_ratio >= 1.0:
        return ("cot", 0) if n_cot else (None, 0)
    if pot_ratio <= 0.0:
        return ("pot", 0) if n_pot else (None, 0)
    want_pot = round(pot_ratio / (1 - pot_ratio) * n_cot)
    if n_pot > want_pot:
        return "pot", want_pot
    want_cot = round((1 - pot_ratio) / pot_ratio * n_pot)
    if n_cot > want_cot:
        return "cot", want_cot
    return None, 0


def _priority(modes: dict[str, list[Any]], drop: str, other: str, pid: str, seed: int,
              last_rows_too: bool) -> tuple | None:  # fmt: skip
    """Smallest first (None: nothing of this problem may go). Tier 0: a problem solved both ways with
    more than one `drop` row; 1: a problem solved in `drop` only, with more than one; 2: the only `drop`
    row of a problem that keeps `other` rows; 3 (only when one mode was asked for): a problem's last row.
    Within a tier: where `drop` leads `other` the most, then has the most `drop` rows."""
    n_drop, n_other = len(modes[drop]), len(modes[other])
    if n_drop == 0:
        return None
    tier = (0 if n_other else 1) if n_drop > 1 else 2 if n_other else 3
    if tier == 3 and not last_rows_too:
        return None
    tiebreak = hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()
    return (tier, n_other - n_drop, -n_drop, tiebreak)
