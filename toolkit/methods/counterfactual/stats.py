"""What a counterfactual build reports beyond its rows: the examples and edit ratios gathered as
problems finish (`Stats`), the funnel from generated edits to verified rationales, the warnings a
user must read before training on the rows, and the card's headline (`finish`, `card_warnings`)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.methods.counterfactual import edits
from toolkit.teachers import redact_spec

if TYPE_CHECKING:
    from toolkit.methods.counterfactual import CounterfactualConfig

EXAMPLES = 3  # original / counterfactual pairs the card shows
# Why an edit is not minimal-and-clean, in the funnel's order (each counted as cf_<kind>).
EDIT_DROPS = ("truncated", "unparsable", "format", "identical", "label_leak", "instructions", "too_far")
log = logging.getLogger("toolkit.methods.counterfactual")  # the method's lines, as before the split


@dataclass
class Stats:
    """What the card reports beyond counts, gathered as problems finish."""

    ratios: Counter[str] = field(default_factory=Counter)  # every edit that was measured
    kept_ratios: Counter[str] = field(default_factory=Counter)  # edits that made rows
    target_labels: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    judge_is_teacher: bool | None = None  # the same model re-labels the teacher's own edits (self-confirming)

    def add_example(self, example: dict[str, Any]) -> None:
        """Keep the first EXAMPLES by (pair id, target): the same ones however problems interleave."""
        self.examples = sorted([*self.examples, example], key=lambda e: (e["pair_id"], e["target_label"]))[:EXAMPLES]


def finish(config: CounterfactualConfig, stats: Stats, counts: Counter[str]) -> dict[str, Any]:
    c = counts
    selected = c["cf_judged"] - c["cf_spare"]
    funnel = [
        {"stage": "generated", "count": c["cf_generated"], "dropped": {}},
        {"stage": "minimal", "count": c["cf_minimal"],
         "dropped": {k: c[f"cf_{k}"] for k in EDIT_DROPS}},
        {"stage": "judged target label", "count": c["cf_judged"],
         "dropped": {"kept_old_label": c["cf_kept_old_label"], "judged_other": c["cf_judged_other"],
                     "judge_unreadable": c["cf_judge_unreadable"], "judge_failed": c["cf_judge_failed"]}},
        {"stage": "selected (one per target)", "count": selected, "dropped": {"spare": c["cf_spare"]}},
        {"stage": "rationale verified", "count": c["cf_verified"], "dropped": {"no_rationale": c["cf_no_rationale"]}},
    ]  # fmt: skip
    bins = edits.histogram_bins()
    kept = {"originals": c["originals_kept"], "counterfactuals": c["cf_verified"],
            "rows_original": c["kept_original"], "rows_counterfactual": c["kept_counterfactual"]}  # fmt: skip
    return {
        "funnel": funnel,
        "edit_ratio_histogram": {b: {"measured": stats.ratios[b], "kept": stats.kept_ratios[b]} for b in bins},
        "max_edit": config.max_edit,
        "target_labels": dict(sorted(stats.target_labels.items())),
        "examples": stats.examples,
        "kept": kept,
        "what": what_was_kept(kept),
        "judge": {"model": redact_spec(config.judge), "is_teacher": stats.judge_is_teacher},  # None: no problem ran
        "warnings": _warnings(config, stats, c),
    }


def what_was_kept(kept: dict[str, int]) -> str:
    """The card's headline: what the rows are, as they came out (not what the method aims at)."""
    if not kept["counterfactuals"]:
        return "original examples only (no counterfactual passed every check) with multi-view reasoning"
    return (f"{kept['originals']} original and {kept['counterfactuals']} counterfactual (label-flipped) examples "
            "with multi-view reasoning")  # fmt: skip


def _warnings(config: CounterfactualConfig, stats: Stats, c: Counter[str]) -> list[str]:
    """What a user must know before training on the rows; logged, and kept for the card."""
    found = []
    if c["targets"] and not c["cf_verified"]:
        found.append(f"0 of {c['targets']} counterfactuals were kept: the rows are originals only, which is plain "
                     "multi-view CoT, not counterfactual distillation (see the funnel for where edits were dropped)")
    if stats.judge_is_teacher:
        found.append(f"the judge is the teacher ({redact_spec(config.judge)}): the model that wrote the edits confirmed them; "
                     "use --judge with another model for an independent check")
    if found and not c["cf_verified"]:
        log.warning("counterfactual: %s", found[0])  # the judge warning was logged at the start
    return found


def card_warnings(quality) -> list[str]:
    """A build that kept no counterfactual is not counterfactual distillation data."""
    if quality.rows and not quality.groups.get("is_counterfactual", {}).get("counterfactual"):
        return ["no counterfactual (label-flipped) example was kept: these rows are originals only, "
                "which is not counterfactual distillation data"]  # fmt: skip
    return []
