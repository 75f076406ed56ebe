"""Where hubtool's shipped resources are: card templates, recipes and eval tasks.

In the repository they are top-level folders (`dataset_cards/`, `recipes/`, `eval_tasks/`); a wheel
carries them inside the package as `toolkit/_data/<name>/` (see `[tool.hatch.build]` in
pyproject.toml). `resource_dir` finds the packaged copy first, through `importlib.resources`, and
else the folder beside the `toolkit` package, which is where an editable install or a checkout
on PYTHONPATH has it.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path
from typing import Literal

from toolkit.errors import UserError

Resource = Literal["dataset_cards", "recipes", "eval_tasks"]
RESOURCES: tuple[Resource, ...] = ("dataset_cards", "recipes", "eval_tasks")
ENV_OVERRIDES: dict[str, str] = {"eval_tasks": "HUBTOOL_EVAL_TASKS"}  # a folder of your own instead


def resource_dir(name: Resource) -> Path:
    """The folder of one shipped resource; a UserError that says how to fix it when it is missing."""
    if name not in RESOURCES:
        raise ValueError(f"unknown resource {name!r}; one of {', '.join(RESOURCES)}")
    env = ENV_OVERRIDES.get(name)
    if env and os.environ.get(env):
        path = Path(os.environ[env]).expanduser()
        if not path.is_dir():
            raise UserError(f"${env} is {path}, which is not a folder; point it at a copy of {name}/ or unset it")
        return path
    for path in _candidates(name):
        if path.is_dir():
            return path
    tried = " and ".join(str(p) for p in _candidates(name))
    raise UserError(
        f"hubtool's {name}/ is missing (looked in {tried}); reinstall hubtool (pip install --force-reinstall "
        "hubtool, or pip install -e . in a checkout)"
    )


def _candidates(name: str) -> list[Path]:
    packaged = importlib.resources.files("toolkit") / "_data" / name  # a wheel install
    source = Path(__file__).resolve().parent.parent / name  # a checkout: editable install, PYTHONPATH
    # Only a real folder will do: lm-eval, jinja and TRL read these by path.
    return [p for p in (packaged, source) if isinstance(p, Path)]
