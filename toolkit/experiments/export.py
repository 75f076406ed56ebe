"""`hubtool run EXPERIMENT --results DIR`: the experiment's record in a folder of its own, written again
after every step that runs, so a run stopped after its fourth step has its first four on record (and a
report of the eval steps that have run).

    DIR/report.md, DIR/<eval step>.png, DIR/results.json   the report (toolkit.experiments.report)
    DIR/cards/dataset-<name>.md                               the card of each dataset a push step made
    DIR/cards/model-<step>.md                                 the model card of each student
    DIR/records/build-<step>.json                             each build's manifest
    DIR/records/train-<step>.json                             each training record (hubtool_train.json)
    DIR/records/eval-<step>.json                              each eval's scores.json
    DIR/records/state.json                                    the run's step state

Everything is written as the report is: no password, no path of this machine (the workdir's own as
`work/...`). Anything else in DIR (its README.md: what the run shows) is the experimenter's and left
alone; files of steps that have not run are not removed, so an earlier run's stay until replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from toolkit.experiments.report import public_text
from toolkit.experiments.spec import Experiment
from toolkit.hub import resolve_dataset


def export_results(experiment: Experiment, outputs: dict[str, str], work: Path, report: Path | None,
                   results: Path) -> list[Path]:  # fmt: skip
    """Copy what the steps that have run produced into `results`; returns the files written."""
    results.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(text: str, *where: str) -> None:
        path = results.joinpath(*where)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(public_text(text, work))
        written.append(path)

    if report is not None:
        for path in sorted(report.parent.iterdir()):
            if path.suffix == ".png":
                shutil.copyfile(path, results / path.name)
                written.append(results / path.name)
            elif path.name in ("report.md", "results.json"):
                put(path.read_text(), path.name)  # already public: written so by the report
    for step in experiment.steps:
        out = outputs.get(step.id)
        if out is None:
            continue
        for text, where in _records(step.kind, step.id, step.spec, Path(out)):
            put(text, *where)
    if (work / "state.json").is_file():
        put((work / "state.json").read_text(), "records", "state.json")
    return written


def _records(kind: str, step: str, spec: dict[str, Any], out: Path) -> list[tuple[str, tuple[str, ...]]]:
    if kind == "build":
        found = [(out / "manifest.json", ("records", f"build-{step}.json"))]
    elif kind == "train":
        found = [(out / "hubtool_train.json", ("records", f"train-{step}.json")),
                 (out / "README.md", ("cards", f"model-{step}.md"))]  # fmt: skip
    elif kind == "eval":
        found = [(out / "scores.json", ("records", f"eval-{step}.json"))]
    elif kind == "push":
        found = [(_dataset_card(str(out)), ("cards", f"dataset-{Path(str(spec.get('name', step))).name}.md"))]
    else:
        found = []
    return [(path.read_text(), where) for path, where in found if path is not None and path.is_file()]


def _dataset_card(name: str) -> Path | None:
    try:
        return Path(resolve_dataset(name).path) / "README.md"
    except Exception:  # noqa: BLE001 - a dataset no longer in the registry has no card to copy
        return None
