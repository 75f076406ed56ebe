"""Prompt templates (Jinja files beside this module), rendered in one place.

Templates are loaded with StrictUndefined and their placeholders checked when a builder is set up,
so a typo in a template fails before the first teacher call, not mid-run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import UserError

PROMPTS_DIR = Path(__file__).parent


@cache
def _env():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def template_source(name: str) -> str:
    """The template text itself (it goes into manifests and cards)."""
    path = PROMPTS_DIR / f"{name}.jinja"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in PROMPTS_DIR.glob("*.jinja")))
        raise UserError(f"no prompt template {name!r}; known: {known}")
    return path.read_text()


def template_variables(name: str) -> set[str]:
    import jinja2.meta

    env = _env()
    return jinja2.meta.find_undeclared_variables(env.parse(template_source(name)))


def check_template(name: str, provided: set[str]) -> None:
    """Fail early when a template needs a variable the builder does not provide."""
    missing = template_variables(name) - provided
    if missing:
        raise UserError(f"prompt template {name!r} uses undefined variables: {', '.join(sorted(missing))}")


def render(name: str, **variables: Any) -> str:
    return _env().get_template(f"{name}.jinja").render(**variables).strip()
