"""Experiments: a paper's table in one command (`hubtool run experiments/NAME.yaml`).

`spec` parses the file (steps: build, push, train, eval), `check` reads and checks it, `runner` runs
each step once and again only when what it depends on changed, `report` writes one report with
confidence intervals and the provenance of every number.
"""

from toolkit.experiments.check import load_experiment
from toolkit.experiments.runner import Plan, run_experiment
from toolkit.experiments.spec import Experiment, Step

__all__ = ["Experiment", "Plan", "Step", "load_experiment", "run_experiment"]
