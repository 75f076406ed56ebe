"""The methods: one package each (`toolkit/methods/<name>/`), exposing `METHOD` (the contract is
`toolkit.builders.method.Method`), and this registry of them.

Adding a method is one package (its config, rows, run, prompt templates, and what it declares: recipes,
card, eval tasks, trainer) and one line in MODULES; the CLI command, the manifest, the card, `hubtool
train`'s trainer and `hubtool eval`'s tasks follow from it. The layers below (`toolkit.builders`, the
cards, the run directory) take the `Method` they need as an argument; the layers above ask this registry.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path

from toolkit.builders.config import BuildConfig
from toolkit.builders.method import Method
from toolkit.errors import UserError
from toolkit.registry import Registry

# One line per method. Modules are imported on first use (their imports are light: no torch).
MODULES: list[str] = [
    "toolkit.methods.cot",
    "toolkit.methods.preference",
    "toolkit.methods.counterfactual",
    "toolkit.methods.mixed",
    "toolkit.methods.evolve",
]

__all__ = ["MODULES", "eval_task_dirs", "find_method", "get_method", "method_for_config", "method_for_recipe_folder", "methods", "reset"]


@cache
def _registry() -> Registry[Method]:
    registry: Registry[Method] = Registry("method")
    for method in methods():
        for name in (method.name, *method.aliases):
            registry.add(name, method)
    return registry


def methods() -> list[Method]:
    """Every method once, in MODULES order."""
    return [importlib.import_module(module).METHOD for module in MODULES]


def get_method(name: str) -> Method:
    """The method called `name` (or one of its aliases); UserError with the near miss on a typo."""
    return _registry().get(name)


def find_method(name: str) -> Method | None:
    """The method called `name`, or None for one this hubtool does not know (a manifest of a newer build)."""
    try:
        return get_method(name)
    except UserError:
        return None


def method_for_config(config: BuildConfig) -> Method:
    for method in methods():
        if type(config) is method.config:
            return method
    raise TypeError(f"{type(config).__name__} is no method's config")


def method_for_recipe_folder(folder: str) -> Method | None:
    """The method whose recipes live in `recipes/<folder>/` (e.g. self-refine -> preference)."""
    return next((m for m in methods() if m.recipe_folder == folder), None)


def eval_task_dirs() -> list[Path]:
    """The eval-task folders methods bring in their own packages (`Method.eval_task_dirs`), for the task
    index (`toolkit.sources.eval_tasks.task_manager(extra=...)`); the shipped methods' are in eval_tasks/."""
    return [d for m in methods() for d in m.eval_task_dirs]


def reset() -> None:
    """Forget the loaded methods (after MODULES changed, e.g. in a test that adds one)."""
    _registry.cache_clear()
