"""Builders: one module per method, each exposing `METHOD` (see `toolkit.builders.method`).

Adding a method is one module (plus its prompt and card templates) and one line in MODULES; the CLI
command, the manifest, the card, `hubtool train`'s trainer choice and the docs' tables follow from it.
"""

from __future__ import annotations

import importlib
from functools import cache

from toolkit.builders.config import BuildConfig
from toolkit.builders.engine import build_dataset, summary_line
from toolkit.builders.method import Method
from toolkit.registry import Registry

# One line per method. Modules are imported on first use (their imports are light: no torch).
MODULES: list[str] = [
    "toolkit.builders.cot",
    "toolkit.builders.preference",
    "toolkit.builders.counterfactual",
    "toolkit.builders.mixed",
    "toolkit.builders.evolve",
]

__all__ = ["MODULES", "BuildConfig", "Method", "build_dataset", "get_method", "methods", "summary_line"]


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


def method_for_config(config: BuildConfig) -> Method:
    for method in methods():
        if type(config) is method.config:
            return method
    raise TypeError(f"{type(config).__name__} is no method's config")


def method_for_recipe_folder(folder: str) -> Method | None:
    """The method whose recipes live in `recipes/<folder>/` (e.g. self-refine -> preference)."""
    return next((m for m in methods() if m.recipe_folder == folder), None)


def reset() -> None:
    """Forget the loaded methods (after MODULES changed, e.g. in a test that adds one)."""
    _registry.cache_clear()
