"""The experiment's report: every model x every task with a 95% confidence interval, the in-domain
and out-of-domain averages, each model's difference to the baseline measured on the same documents
(paired bootstrap interval and McNemar's exact test), and where every number comes from. A contrast
set (documents in groups of minimal edits with different labels: `group`, `group_size`) keeps its
accuracy out of both averages and adds its consistency, the share of complete groups answered right
throughout, with an interval over groups and a paired test on the same groups.

Scores are lm-eval's per-document exact match (the samples `hubtool eval` writes), so an interval
says how much the number would move on another draw of documents of the same task.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from toolkit.evaluate.report import FILTERS, Report, markdown, read_nothing, repeats_itself, reply_of
from toolkit.evaluate.run import _folder_name
from toolkit.experiments.spec import substitute
from toolkit.hub import resolve_dataset
from toolkit.methods import get_method
from toolkit.public_paths import scrub
from toolkit.redact import redact
from toolkit.training.provenance import PROVENANCE

RESAMPLES = 2000
SEED = 0

Scores = dict[str, dict[str, dict[str, dict[int, float]]]]  # label -> task -> filter -> doc_id -> score
# label -> task -> doc_id -> whether its generation ends repeating itself, for the documents where
# strict-match read no answer
Unanswered = dict[str, dict[str, dict[int, bool]]]
# task -> doc_id -> (group, group size), for the contrast sets' documents
Groups = dict[str, dict[int, tuple[str, int]]]
CONSISTENCY = " consistency"  # the suffix of a contrast set's consistency column: "<task> consistency"


def read_scores(eval_dir: Path, labels: list[str]) -> Scores:
    return read_samples(eval_dir, labels)[0]


def read_samples(eval_dir: Path, labels: list[str]) -> tuple[Scores, Unanswered]:
    """Each document's score per filter, and the documents whose strict reading found no answer."""
    scores, unanswered, _ = read_all(eval_dir, labels)
    return scores, unanswered


def read_all(eval_dir: Path, labels: list[str]) -> tuple[Scores, Unanswered, Groups]:
    """read_samples, and the contrast groups of the documents that have one."""
    scores: Scores = {}
    unanswered: Unanswered = {}
    groups: Groups = defaultdict(dict)
    for label in labels:
        per_task: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        missing: dict[str, dict[int, bool]] = defaultdict(dict)
        for path in sorted((eval_dir / _folder_name(label)).glob("samples_*.jsonl")):
            task = path.stem.removeprefix("samples_")
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if "exact_match" in row and row.get("filter") in FILTERS:
                    per_task[task][row["filter"]][int(row["doc_id"])] = float(row["exact_match"])
                    if row["filter"] == "strict-match" and read_nothing(row.get("filtered_resps")):
                        missing[task][int(row["doc_id"])] = repeats_itself(reply_of(row))
                    doc = row.get("doc") or {}
                    if doc.get("group") and doc.get("group_size"):
                        groups[task][int(row["doc_id"])] = (str(doc["group"]), int(doc["group_size"]))
        scores[label] = {t: dict(f) for t, f in per_task.items()}
        unanswered[label] = dict(missing)
    return scores, unanswered, dict(groups)


def group_scores(per_doc: dict[int, float], members: dict[int, tuple[str, int]]) -> dict[str, float]:
    """Per complete contrast group, 1.0 when every member is right (as the tasks' `consistency`
    metric counts it: a group that --limit cut is left out)."""
    by_group: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, int] = {}
    for doc_id, score in per_doc.items():
        if doc_id in members:
            group, size = members[doc_id]
            by_group[group].append(score)
            sizes[group] = size
    return {g: float(all(v == 1.0 for v in vs)) for g, vs in by_group.items() if len(vs) == sizes[g]}



def bootstrap(per_task: list[list[float]], resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float, float]:
    """Mean over tasks of the per-task mean, and its 95% percentile interval, resampling documents
    within each task (a stratified bootstrap: each task keeps its size)."""
    import numpy as np  # numpy (~100 ms): only when intervals are computed

    rng = np.random.default_rng(seed)
    arrays = [np.asarray(v, dtype=float) for v in per_task if len(v)]
    if not arrays:
        return math.nan, math.nan, math.nan
    point = float(np.mean([a.mean() for a in arrays]))
    draws = np.zeros(resamples)
    for a in arrays:
        draws += a[rng.integers(0, len(a), size=(resamples, len(a)))].mean(axis=1)
    draws /= len(arrays)
    low, high = np.percentile(draws, [2.5, 97.5])
    return point, float(low), float(high)


def mcnemar(model: list[float], base: list[float]) -> float:
    """Exact two-sided McNemar p-value on paired 0/1 scores (1.0 when they never disagree)."""
    b = sum(1 for m, s in zip(model, base) if m > s)
    c = sum(1 for m, s in zip(model, base) if m < s)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def summarize(scores: Scores, tasks: list[str], in_domain: set[str], baseline: str,
              unanswered: Unanswered | None = None, contrast: Groups | None = None) -> dict[str, Any]:  # fmt: skip
    """Every number of the report, as data. Each contrast set (`contrast`: its documents' groups) stays
    out of the averages and adds a column "<task> consistency", scored per complete group."""
    contrast = {t: g for t, g in (contrast or {}).items() if t in tasks and g}
    out: dict[str, Any] = {"baseline": baseline, "tasks": tasks, "in_domain": sorted(in_domain), "models": {},
                           "contrast": sorted(contrast)}  # fmt: skip
    plain = [t for t in tasks if t not in contrast]
    groups = {"ID avg": [t for t in plain if t in in_domain], "OOD avg": [t for t in plain if t not in in_domain]}
    for label, per_task in scores.items():
        entry: dict[str, Any] = {}
        for f in FILTERS:
            # a consistency column is scored like a task whose documents are the complete groups
            columns = {t: per_task.get(t, {}).get(f, {}) for t in tasks}
            columns |= {t + CONSISTENCY: group_scores(columns[t], members) for t, members in contrast.items()}
            base_columns = {t: scores[baseline].get(t, {}).get(f, {}) for t in tasks}
            base_columns |= {t + CONSISTENCY: group_scores(base_columns[t], members) for t, members in contrast.items()}
            cell = {c: _interval([list(v.values())]) for c, v in columns.items()}
            cell |= {g: _interval([list(columns[t].values()) for t in ts]) for g, ts in groups.items() if ts}
            diffs: dict[str, Any] = {}
            if label != baseline:
                for name, ts in [*[(c, [c]) for c in columns], *[(g, ts) for g, ts in groups.items() if ts]]:
                    pairs = [_paired_docs(columns[t], base_columns[t]) for t in ts]
                    model_all = [m for ms, _ in pairs for m in ms]
                    base_all = [b for _, bs in pairs for b in bs]
                    diffs[name] = _interval([[m - b for m, b in zip(ms, bs)] for ms, bs in pairs])
                    diffs[name]["p_mcnemar"] = mcnemar(model_all, base_all)
            entry[f] = {"score": cell, "vs_baseline": diffs}
        out["models"][label] = entry
    out["documents"] = {t: len(next(iter(scores.values())).get(t, {}).get(FILTERS[0], {})) for t in tasks}
    if unanswered is not None:
        out["unanswered"] = {label: {t: _answered(per_task.get(t, {}).get("strict-match", {}), unanswered[label].get(t, {}))
                                     for t in tasks} for label, per_task in scores.items() if label in unanswered}  # fmt: skip
    return out


def _answered(strict: dict[int, float], missing: dict[int, bool]) -> dict[str, Any]:
    """How many documents got no answer read (and of them, how many end in a loop), and strict
    accuracy on those that did: a model whose reasoning runs past the token cap loses its score
    there, not by answering wrong."""
    answered = [v for d, v in strict.items() if d not in missing]
    return {"n": len(strict), "unanswered": len(missing.keys() & strict.keys()),
            "looping": sum(looped for d, looped in missing.items() if d in strict),
            "answered_accuracy": sum(answered) / len(answered) if answered else float("nan")}


def _interval(groups: list[list[float]]) -> dict[str, float]:
    point, low, high = bootstrap(groups)
    return {"mean": point, "low": low, "high": high, "n": sum(len(g) for g in groups)}


def _paired_docs(m: dict, b: dict) -> tuple[list[float], list[float]]:
    """The scores of the documents (or groups) both have, in one order."""
    common = sorted(set(m) & set(b))
    return [m[d] for d in common], [b[d] for d in common]


# -- writing --------------------------------------------------------------------------------------------
def write_experiment_report(experiment, outputs: dict[str, str], state: dict, folder: Path) -> Path:
    """report.md, report.png and results.json for the experiment's eval steps, and a section for each
    method whose builds the experiment compares (`Method.compare`)."""
    folder.mkdir(parents=True, exist_ok=True)
    sections, results = [f"# {experiment.name}", "", experiment.about, ""], {}
    for name, builds in _compared_builds(experiment, outputs).items():
        lines, numbers = get_method(name).compare(builds, folder / f"builds-{name}.png")
        sections += [f"## {name} builds compared ({', '.join(builds)})", "", *lines, ""]
        results[f"builds:{name}"] = numbers
    for step in [s for s in experiment.steps if s.kind == "eval" and s.id in outputs]:  # those that have run
        labels = list(step.spec["eval"])
        scores, unanswered, contrast = read_all(Path(outputs[step.id]), labels)
        meta = json.loads((Path(outputs[step.id]) / "scores.json").read_text())
        baseline = step.spec.get("baseline") or labels[0]
        # judged suites (AlpacaEval, MT-Bench) score no exact match: the judge's scores, in a table of their own
        judged = set(meta.get("judged_tasks", []))
        tasks = [t for t in meta["tasks"] if t not in judged]
        summary = summarize(scores, tasks, set(meta["in_domain"]) - judged, baseline, unanswered, contrast)
        summary["judged"] = meta.get("suite_scores", [])
        summary["provenance"] = provenance(experiment, step, outputs)
        summary["eval_config"] = {k: v for k, v in step.spec.items() if k != "eval"} | {"notes": meta.get("notes", [])}
        results[step.id] = summary
        headline = step.spec.get("filter") or "strict-match"
        sections += _markdown(step.id, summary, headline)
        if tasks:
            _chart(summary, headline, folder / f"{step.id}.png")
    # the experiment's own text (about:, model names, eval settings) may hold a URL with a password, and
    # its outputs are folders of this machine: written relative to the workdir (toolkit.public_paths)
    (folder / "results.json").write_text(public_text(json.dumps(results, indent=2), folder.parent))
    (folder / "report.md").write_text(public_text("\n".join(sections) + "\n", folder.parent))
    return folder / "report.md"


def _compared_builds(experiment, outputs: dict[str, str]) -> dict[str, dict[str, Path]]:
    """method name -> its finished build steps' run directories, for the methods that compare builds
    and that the experiment builds twice or more."""
    by_method: dict[str, dict[str, Path]] = defaultdict(dict)
    for step in experiment.steps:
        if step.kind == "build" and step.id in outputs:
            method = get_method(step.spec["build"])
            if method.compare is not None:
                by_method[method.name][step.id] = Path(outputs[step.id])
    return {name: builds for name, builds in by_method.items() if len(builds) > 1}


def public_text(text: str, workdir: Path) -> str:
    """What a report may say: no password, no path of this machine (the workdir's own as `work/...`)."""
    return scrub(redact(text), workdir)


def provenance(experiment, step, outputs: dict[str, str]) -> dict[str, Any]:
    """For each label: what it is, and for a trained student its recipe, dataset and the card."""
    by_output = {v: k for k, v in outputs.items()}
    out: dict[str, Any] = {}
    for label, ref in step.spec["eval"].items():
        model = str(substitute(ref, outputs))
        entry: dict[str, Any] = {"model": model}
        record_path = Path(model) / PROVENANCE
        if record_path.is_file():
            record = json.loads(record_path.read_text())
            dataset = record["dataset"]
            entry |= {"train_step": by_output.get(model), "recipe": record["recipe"]["path"],
                      "recipe_sha256": record["recipe"]["sha256"], "overrides": record["recipe"]["overrides"],
                      "base_model": record["model"]["base_model"], "dataset": dataset["name"],
                      "dataset_fingerprint": dataset["fingerprint"]}  # fmt: skip
            try:
                entry["dataset_card"] = str(Path(resolve_dataset(dataset["name"]).path) / "README.md")
            except Exception:  # noqa: BLE001 - provenance is best effort; the record above stands
                entry["dataset_card"] = None
        out[label] = entry
    return out


def _pct(cell: dict[str, float]) -> str:
    if math.isnan(cell["mean"]):
        return "–"
    return f"{100 * cell['mean']:.1f} [{100 * cell['low']:.1f}, {100 * cell['high']:.1f}]"


def _diff(cell: dict[str, float]) -> str:
    if math.isnan(cell["mean"]):
        return "–"
    sign = "+" if cell["mean"] >= 0 else ""
    return f"{sign}{100 * cell['mean']:.1f} [{100 * cell['low']:+.1f}, {100 * cell['high']:+.1f}] p={cell['p_mcnemar']:.2g}"


def _columns(summary: dict[str, Any], headline: str) -> list[str]:
    """The report's columns in order: the tasks, the averages there are, the contrast sets' consistency."""
    scored = next(iter(summary["models"].values()))[headline]["score"]
    return [*summary["tasks"], *[c for c in ("ID avg", "OOD avg") if c in scored],
            *[t + CONSISTENCY for t in summary.get("contrast", ()) if t + CONSISTENCY in scored]]  # fmt: skip


def _heading(column: str, summary: dict[str, Any]) -> str:
    if column.endswith(CONSISTENCY):
        return column.removeprefix("hubtool_").removesuffix(CONSISTENCY) + " consistency"
    tag = " (ID)" if column in summary["in_domain"] else " (contrast)" if column in summary.get("contrast", ()) else ""
    return column.removeprefix("hubtool_") + tag


def _markdown(step_id: str, summary: dict[str, Any], headline: str) -> list[str]:
    tasks = summary["tasks"]
    columns = _columns(summary, headline) if summary["models"] else []
    short = [_heading(c, summary) for c in columns]
    docs = ", ".join(f"{t.removeprefix('hubtool_')} {n}" for t, n in summary["documents"].items())
    lines = [f"## {step_id}", ""]
    if tasks:
        lines += [f"Documents per task: {docs}. Exact match in %, with 95% bootstrap intervals.", ""]
    if summary.get("contrast"):
        lines += ["A contrast set's accuracy is in neither average. Its consistency is the share of its complete "
                  "groups (a document and its minimal edits with other labels) whose every member is answered "
                  "right, with intervals and paired tests over groups.", ""]  # fmt: skip
    for f in (headline, *[x for x in FILTERS if x != headline]) if tasks else ():
        lines += [f"### {f}", "", "| model | " + " | ".join(short) + " |", "|---|" + "---:|" * len(columns)]
        for label, entry in summary["models"].items():
            lines.append(f"| {label} | " + " | ".join(_pct(entry[f]["score"][c]) for c in columns) + " |")
        lines += ["", f"Difference to `{summary['baseline']}` on the same documents (points; paired bootstrap 95%"
                  " interval; McNemar's exact p):", "", "| model | " + " | ".join(short) + " |", "|---|" + "---:|" * len(columns)]  # fmt: skip
        for label, entry in summary["models"].items():
            if entry[f]["vs_baseline"]:
                lines.append(f"| {label} | " + " | ".join(_diff(entry[f]["vs_baseline"][c]) for c in columns) + " |")
        lines.append("")
    if any(c["unanswered"] for per_task in summary.get("unanswered", {}).values() for c in per_task.values()):
        lines += _unanswered_table(summary, tasks)
    if summary.get("judged"):
        lines += _judged_table(summary["judged"])
    lines += ["### Where the numbers come from", ""]
    for label, p in summary["provenance"].items():
        if p.get("recipe"):
            lines.append(f"- `{label}`: `{p['model']}`, trained by step `{p['train_step']}` with recipe `{p['recipe']}` "
                         f"(sha256 {p['recipe_sha256'][:12]}, overrides {p['overrides']}) from `{p['base_model']}` on "
                         f"dataset `{p['dataset']}` (fingerprint {p['dataset_fingerprint'][:12]}; card {p['dataset_card']})")  # fmt: skip
        else:
            lines.append(f"- `{label}`: `{p['model']}` as it is")
    config = ", ".join(f"{k}={v}" for k, v in summary["eval_config"].items() if k != "notes")
    lines += [f"- evaluation: {config}; " + "; ".join(summary["eval_config"]["notes"]), ""]
    return lines


def _unanswered_table(summary: dict[str, Any], tasks: list[str]) -> list[str]:
    cap = summary["eval_config"].get("max_gen_toks")
    lines = ["### No answer read (strict-match)", "",
             "Documents where no answer could be read (the generation " + (f"cut at {cap} tokens" if cap else "cut at the token cap")
             + " before it, or none stated), how many of those end repeating lines they already wrote (\"looping\"), "
             "and in brackets strict accuracy on the documents that were answered:", "",
             "| model | " + " | ".join(t.removeprefix("hubtool_") for t in tasks) + " |", "|---|" + "---:|" * len(tasks)]  # fmt: skip
    for label, per_task in summary["unanswered"].items():
        cells = []
        for t in tasks:
            c = per_task[t]
            accuracy = "–" if math.isnan(c["answered_accuracy"]) else f"{100 * c['answered_accuracy']:.1f}"
            looping = f", {c['looping']} looping" if c.get("looping") else ""
            cells.append(f"{c['unanswered']} of {c['n']}{looping} ({accuracy})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _judged_table(suite_scores: list[dict[str, Any]]) -> list[str]:
    """The judged suites as `hubtool eval` reports them (toolkit.evaluate.report): AlpacaEval's win rate,
    MT-Bench's mean rating, each with the judge and how many of its judgments could not be read."""
    table = markdown(Report(tasks=[], in_domain=set(), suite_scores=suite_scores)).split("## Judged suites\n")[1]
    return ["### Judged suites", *table.rstrip("\n").split("\n"), ""]


def _chart(summary: dict[str, Any], headline: str, path: Path) -> None:
    import matplotlib  # matplotlib is slow to import; only the chart needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary["models"])
    columns = _columns(summary, headline)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(columns) + 2), 4))
    for i, label in enumerate(models):
        cells = [summary["models"][label][headline]["score"][c] for c in columns]
        means = [100 * (0 if math.isnan(c["mean"]) else c["mean"]) for c in cells]
        errors = [[m - 100 * c["low"] if not math.isnan(c["low"]) else 0 for m, c in zip(means, cells)],
                  [100 * c["high"] - m if not math.isnan(c["high"]) else 0 for m, c in zip(means, cells)]]  # fmt: skip
        xs = [j + (i - (len(models) - 1) / 2) * width for j in range(len(columns))]
        ax.bar(xs, means, width, yerr=errors, capsize=3, label=label)
    ax.set_xticks(range(len(columns)), [_heading(c, summary) for c in columns], rotation=30, ha="right")
    ax.set_ylabel(f"exact match, {headline} (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
