"""The report people read: a markdown table (model x task, with in-domain and out-of-domain
averages) and a bar chart comparing the models, from lm-eval's results."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.public_paths import scrub
from toolkit.sources.eval_tasks import PREFIX, benchmark_of

FILTERS: tuple[str, ...] = ("strict-match", "flexible-extract")
_FILTER_TITLES = {
    "strict-match": "strict-match: only the closing \"The answer is X.\" counts (IFEval: prompt-level strict accuracy)",
    "flexible-extract": "flexible-extract: else the last number / option / yes-no (IFEval: prompt-level loose accuracy)",
}
# Tasks scored otherwise than by exact match fill the same two tables with their strict / lenient metric.
METRICS = {f: (f"exact_match,{f}",) for f in FILTERS}
METRICS["strict-match"] += ("prompt_level_strict_acc,none",)
METRICS["flexible-extract"] += ("prompt_level_loose_acc,none",)
MISS = "[invalid]"  # what hubtool's filters (and lm-eval's) yield when no answer could be read


def read_nothing(filtered: Any) -> bool:
    """Whether a sample's `filtered_resps` holds no answer (a generation cut at the token cap before
    its answer line, or one that never states it)."""
    first = filtered[0] if isinstance(filtered, list) and filtered else filtered
    while isinstance(first, list):  # a repeat-per-document task keeps a list per document
        first = first[0] if first else None
    return first in (None, "", MISS)


def reply_of(sample: dict[str, Any]) -> str:
    """The generation an lm-eval sample logged (its first, for a task that samples several)."""
    first: Any = sample.get("resps")
    while isinstance(first, list):
        first = first[0] if first else ""
    return first if isinstance(first, str) else ""


_NUMBER = re.compile(r"\d+")


def repeats_itself(text: str) -> bool:
    """Whether a generation ends in a loop: its last lines (the last third, 4 at least, of 6 or more)
    are, 80 % of them and the last two always, lines it wrote before, numbers aside ("6. Some lions
    are fish" repeats "5. Some lions are fish"; a last line cut at the token cap counts when an earlier
    line starts with it). A small student's reasoning that never reaches its answer mostly ends so."""
    lines = [_NUMBER.sub("#", line.strip()) for line in text.split("\n") if line.strip()]
    if len(lines) < 6:
        return False

    def again(i: int) -> bool:
        if lines[i] in lines[:i]:
            return True
        return i == len(lines) - 1 and any(earlier.startswith(lines[i]) for earlier in lines[:i])

    tail = range(len(lines) - max(4, len(lines) // 3), len(lines))
    return again(len(lines) - 1) and again(len(lines) - 2) and sum(map(again, tail)) >= 0.8 * len(tail)


@dataclass
class Report:
    """Scores by model, task and filter (fractions), with what is needed to read them."""

    tasks: list[str]
    in_domain: set[str]
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # model -> task -> filter
    # Tasks that also report `consistency` (contrast sets): model -> task -> filter. Their accuracy
    # shows in their own column and in neither average; their consistency gets a column of its own.
    consistency: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)  # task -> documents scored
    notes: list[str] = field(default_factory=list)
    # task -> (benchmark, mode), for tasks whose metadata names both: one benchmark scored in several
    # reasoning modes (e.g. a method's tasks asking for CoT, PoT or both), reported side by side
    modes: dict[str, tuple[str, str]] = field(default_factory=dict)
    judged: list[dict] = field(default_factory=list)  # pairwise win rates (`--judge`), see toolkit.evaluate.judge
    # Tasks a judge scores (AlpacaEval, MT-Bench: toolkit.evaluate.judged): their scores are not exact
    # match, so they have a table of their own and stay out of the two tables and their averages.
    judged_tasks: set[str] = field(default_factory=set)
    suite_scores: list[dict] = field(default_factory=list)
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)  # model -> task -> prompt (`metadata.prompt`)
    # model -> task -> [documents whose strict reading found no answer, documents, of the first those
    # whose generation ends repeating itself (`repeats_itself`)], from the samples
    unanswered: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, model: str, results: dict) -> None:
        """Take one model's lm-eval results (the dict `simple_evaluate` returns)."""
        per_task = self.scores.setdefault(model, {})
        for task in self.tasks:
            metrics = results["results"].get(task, {})
            found = {f: next((metrics[k] for k in METRICS[f] if k in metrics), None) for f in FILTERS}
            per_task[task] = {f: v for f, v in found.items() if v is not None}
            found = {f: metrics[f"consistency,{f}"] for f in FILTERS if f"consistency,{f}" in metrics}
            if found:
                self.consistency.setdefault(model, {})[task] = found
            effective = results.get("n-samples", {}).get(task, {}).get("effective")
            if effective is not None:
                self.samples[task] = effective
            meta = (results.get("configs", {}).get(task) or {}).get("metadata") or {}
            if meta.get("benchmark") and meta.get("mode"):
                self.modes[task] = (str(meta["benchmark"]), str(meta["mode"]))
            if meta.get("prompt"):
                self.prompts.setdefault(model, {})[task] = str(meta["prompt"])
            strict = [s for s in (results.get("samples") or {}).get(task, ()) if s.get("filter") == "strict-match"]
            if strict:
                missed = [s for s in strict if read_nothing(s.get("filtered_resps"))]
                looping = sum(repeats_itself(reply_of(s)) for s in missed)
                self.unanswered.setdefault(model, {})[task] = [len(missed), len(strict), looping]

    def prompt_of(self, task: str) -> str:
        """The prompt a task column was asked with ("a / b" when the models were asked differently)."""
        return " / ".join(dict.fromkeys(p[task] for p in self.prompts.values() if task in p))

    @property
    def matched_tasks(self) -> list[str]:
        """The tasks scored by exact match (or a rule checker): the columns of the two tables."""
        return [t for t in self.tasks if t not in self.judged_tasks]

    def is_in_domain(self, task: str) -> bool:
        """A self-consistency variant is in-domain when its base task is."""
        return task in self.in_domain or PREFIX + benchmark_of(task) in self.in_domain

    @property
    def contrast(self) -> set[str]:
        """The tasks that report consistency, for any model."""
        return {task for per_task in self.consistency.values() for task in per_task}

    def average(self, model: str, filter_name: str, in_domain: bool) -> float | None:
        """Unweighted mean over the in-domain (or out-of-domain) tasks; None when there are none."""
        values = [
            self.scores[model][t][filter_name]
            for t in self.matched_tasks
            if self.is_in_domain(t) == in_domain and t not in self.contrast
            and filter_name in self.scores[model].get(t, {})
        ]
        return sum(values) / len(values) if values else None

    def consistency_average(self, model: str, filter_name: str) -> float | None:
        """Unweighted mean consistency over the contrast tasks (a NaN, no complete group, is left out)."""
        values = [v[filter_name] for v in self.consistency.get(model, {}).values() if filter_name in v]
        values = [v for v in values if v == v]
        return sum(values) / len(values) if values else None

    def to_dict(self) -> dict:
        return {"tasks": self.tasks, "in_domain": sorted(self.in_domain), "samples": self.samples,
                "scores": self.scores, "consistency": self.consistency, "notes": self.notes,
                "modes": {t: list(bm) for t, bm in self.modes.items()}, "judged": self.judged,
                "judged_tasks": sorted(self.judged_tasks), "suite_scores": self.suite_scores,
                "prompts": self.prompts, "unanswered": self.unanswered}


def _short(task: str) -> str:
    return task.removeprefix(PREFIX)


def _pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"  # NaN: nothing to score


def markdown(report: Report) -> str:
    """One table per filter; in-domain task columns are marked ID."""
    lines = ["# Evaluation", ""]
    lines += [f"- {note}" for note in report.notes]
    sizes = ", ".join(f"{_short(t)} {report.samples.get(t, '?')}" for t in report.tasks)
    lines += [f"- documents per task: {sizes}", "- scores are exact match in %; ID = in-domain, OOD = out-of-domain"]
    if report.prompts:
        lines.append("- [name] = the prompt template a task asked with (toolkit/prompts/NAME.jinja, or the model's own)")
    if report.contrast:
        lines.append("- contrast = a set of minimal edits with different labels, in neither average; consistency = "
                     "share of its groups answered right throughout")
    lines.append("")
    for filter_name in FILTERS if report.matched_tasks else ():
        lines += [f"## {_FILTER_TITLES[filter_name]}", "", *_table(report, filter_name), ""]
    if any(counts[0] for per_task in report.unanswered.values() for counts in per_task.values()):
        lines += _unanswered_table(report)
    if report.suite_scores:
        lines += _suite_table(report)
    if report.modes:
        lines += ["# Reasoning modes side by side", "",
                  "Each row is one benchmark scored in several reasoning modes (the tasks' `metadata.mode`; the "
                  "README of the tasks' folder says how each mode asks and scores).", ""]  # fmt: skip
        for filter_name in FILTERS:
            lines += [f"## {filter_name}", "", *_modes_table(report, filter_name), ""]
    if report.judged:
        lines += ["## Judged win rate against the first model", "",
                  "Each document's two answers judged in both orders; win rate = (wins + ties / 2) / judgments; "
                  "unparsed verdicts count as ties.", "",
                  "| task | model | against | judge | documents | wins | ties | losses | unparsed | win rate |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for j in report.judged:
            lines.append(f"| {_short(j['task'])} | {j['model']} | {j['reference']} | {j['judge']} | {j['docs']} | "
                         f"{j['wins']} | {j['ties']} | {j['losses']} | {j['unparsed']} | {_pct(j['win_rate'])} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def _unanswered_table(report: Report) -> list[str]:
    """How many documents each model left without an answer: a low score from a cap, not from errors."""
    tasks = [t for t in report.matched_tasks if any(t in per_task for per_task in report.unanswered.values())]
    lines = ["## No answer read (strict-match)", "",
             "Documents whose generation states no answer (cut at the token cap before its answer line, or never "
             "stated), of those scored; \"looping\": of them, those whose generation ends repeating lines it "
             "already wrote:", "",
             "| model | " + " | ".join(_short(t) for t in tasks) + " |", "|---|" + "---:|" * len(tasks)]  # fmt: skip
    for model, per_task in report.unanswered.items():
        cells = [_missed(*per_task[t]) if t in per_task else "–" for t in tasks]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _missed(missed: int, n: int, looping: int = 0) -> str:
    return f"{missed} of {n}" + (f", {looping} looping" if looping else "")


def _suite_table(report: Report) -> list[str]:
    """AlpacaEval win rates and MT-Bench ratings, with how many judgments could not be read."""
    lines = ["## Judged suites", "",
             "AlpacaEval: win rate (%) against the reference outputs, each answer judged in both orders, ties "
             "half. MT-Bench: mean rating 1-10 over the graded turns (per turn beside it). Unparsed judgments "
             "are counted and left out of the score. Comparable with published numbers only when the judge "
             "is the papers' (GPT-4); another judge's numbers rank models, they do not reproduce the paper.", "",
             "| task | model | judge | documents | judgments | unparsed | score | detail |",
             "|---|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
    for s in report.suite_scores:
        win_rate = s["kind"] == "reference_win_rate"
        score = _pct(s["score"]) if win_rate else "–" if s["score"] is None else f"{s['score']:.2f}"
        detail = ", ".join(f"{k} {v}" if win_rate else f"{k} {v:.2f}" for k, v in s["detail"].items())
        lines.append(f"| {_short(s['task'])} | {s['model']} | {s['judge']} | {s['docs']} | {s['judgments']} | "
                     f"{s['unparsed']} | {score} | {detail} |")  # fmt: skip
    return [*lines, ""]


def _modes_table(report: Report, filter_name: str) -> list[str]:
    """One row per model and benchmark, one column per mode (tasks whose metadata names both)."""
    modes = list(dict.fromkeys(mode for _, mode in report.modes.values()))
    benchmarks = list(dict.fromkeys(benchmark for benchmark, _ in report.modes.values()))
    task_of = {bm: task for task, bm in report.modes.items()}
    rows = ["| model | benchmark | " + " | ".join(modes) + " |", "|---|---|" + "---:|" * len(modes)]
    for model, per_task in report.scores.items():
        for benchmark in benchmarks:
            cells = [_pct(per_task.get(task_of.get((benchmark, m), ""), {}).get(filter_name)) for m in modes]
            rows.append(f"| {model} | {benchmark} | " + " | ".join(cells) + " |")
    return rows


def _table(report: Report, filter_name: str) -> list[str]:
    heads = [_short(t) + (" (contrast)" if t in report.contrast else " (ID)" if report.is_in_domain(t) else "")
             + (f" [{report.prompt_of(t)}]" if report.prompt_of(t) else "") for t in report.matched_tasks]  # fmt: skip
    heads += ["ID avg", "OOD avg"] + (["consistency"] if report.contrast else [])
    rows = ["| model | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for model, per_task in report.scores.items():
        cells = [_pct(per_task.get(t, {}).get(filter_name)) for t in report.matched_tasks]
        cells += [_pct(report.average(model, filter_name, True)), _pct(report.average(model, filter_name, False))]
        if report.contrast:
            cells.append(_pct(report.consistency_average(model, filter_name)))
        rows.append(f"| {model} | " + " | ".join(cells) + " |")
    return rows


def bar_chart(report: Report, path: Path) -> None:
    """Grouped bars: one panel per filter, tasks and the two averages on x, one bar per model."""
    import matplotlib  # matplotlib is slow to import; only the chart needs it

    matplotlib.use("Agg")  # files only: no display on servers and in tests
    import matplotlib.pyplot as plt

    if not report.matched_tasks:  # judged suites only: their scores are on other scales, in report.md
        fig = plt.figure(figsize=(6, 1.5))
        fig.text(0.5, 0.5, "judged suites only: see the 'Judged suites' table in report.md", ha="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    columns = [_short(t) for t in report.matched_tasks] + ["ID avg", "OOD avg"]
    models = list(report.scores)
    width = 0.8 / max(len(models), 1)
    fig, axes = plt.subplots(len(FILTERS), 1, figsize=(max(6, 1.1 * len(columns) + 2), 3.2 * len(FILTERS)),
                             squeeze=False)
    for ax, filter_name in zip(axes[:, 0], FILTERS):
        for i, model in enumerate(models):
            values = [report.scores[model].get(t, {}).get(filter_name) for t in report.matched_tasks]
            values += [report.average(model, filter_name, True), report.average(model, filter_name, False)]
            xs = [c + (i - (len(models) - 1) / 2) * width for c in range(len(columns))]
            ax.bar(xs, [100 * (v or 0.0) for v in values], width, label=model)
        ax.set_title(filter_name)
        ax.set_ylabel("exact match (%)")
        ax.set_ylim(0, 100)
        ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
        ax.axvline(len(report.matched_tasks) - 0.5, color="grey", linewidth=0.8, linestyle=":")
    axes[0, 0].legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(report: Report, output_dir: Path) -> dict[str, Path]:
    """report.md, report.png and scores.json under output_dir."""
    paths = {"markdown": output_dir / "report.md", "chart": output_dir / "report.png",
             "scores": output_dir / "scores.json"}

    # models and --data-dir are folders of this machine: the files name them as cards do (toolkit.public_paths)
    paths["markdown"].write_text(scrub(markdown(report), output_dir))
    bar_chart(report, paths["chart"])
    paths["scores"].write_text(scrub(json.dumps(report.to_dict(), indent=2), output_dir))
    return paths
