"""Prompt templates: Jinja files beside this module, or a user's own `.jinja` file, rendered in one place.

A template is named by its file stem (`cot`, `direct`, ...) or given as a path to a `.jinja` file
(`--template my_prompt.jinja`). Templates are rendered with StrictUndefined, and their placeholders
are checked when a build is set up, so a typo fails before the first teacher call, not mid-run.
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


def known_templates() -> list[str]:
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.jinja"))


def is_file(name: str) -> bool:
    return name.endswith(".jinja") and ("/" in name or Path(name).is_file())


def template_source(name: str) -> str:
    """The template text itself (it goes into manifests and cards)."""
    return _file_source(name) if is_file(name) else _shipped_source(name)


@cache
def _shipped_source(name: str) -> str:
    """A template that ships with hubtool: read once per process (a build renders it per problem)."""
    return _file_source(name)


def _file_source(name: str) -> str:
    path = Path(name) if is_file(name) else PROMPTS_DIR / f"{name}.jinja"
    if is_file(name) and not path.is_file():
        raise UserError(f"prompt template file {name} does not exist")
    if not path.exists():
        raise UserError(f"no prompt template {name!r}; known: {', '.join(known_templates())}, or a FILE.jinja")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"prompt template {name} cannot be read ({e})") from None


@cache
def _compiled(name: str, source: str):
    import jinja2

    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"prompt template {name!r} line {e.lineno}: {e.message}") from None


def template_variables(name: str) -> set[str]:
    import jinja2.meta

    source = template_source(name)
    _compiled(name, source)  # a syntax error is reported as such
    return jinja2.meta.find_undeclared_variables(_env().parse(source))


def check_template(name: str, provided: set[str]) -> None:
    """Fail early when a template needs a variable the builder does not provide."""
    missing = template_variables(name) - provided
    if missing:
        raise UserError(f"prompt template {name!r} uses undefined variables: {', '.join(sorted(missing))}")


def render(name: str, **variables: Any) -> str:
    return _compiled(name, template_source(name)).render(**variables).strip()
