"""Prompt templates: Jinja files beside this module, or a user's own `.jinja` file, rendered in one place.

A template is named by its file stem (`cot`, `direct`, ...) or given as a path to a `.jinja` file
(`--template my_prompt.jinja`). A name is looked up beside this module (the templates several methods
and evaluation share) and then in the folders a caller passes as `dirs`: a method passes its own
`prompts/` folder (`Method.prompt_dirs`), where the templates only it uses live. Templates are rendered with StrictUndefined, and their placeholders
are checked when a build is set up, so a typo fails before the first teacher call, not mid-run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from toolkit.errors import UserError

PROMPTS_DIR = Path(__file__).parent
Dirs = Sequence[str | Path]  # a method's own template folders, searched after PROMPTS_DIR

# What fills the blank of a prompt's closing "The answer is ___." (`answer_hint`), per answer type, in
# words. A prompt never shows a sample value or a placeholder the answer reader takes for an answer:
# students trained on "The answer is yes or no." wrote it as their answer (154 of 200, cpu-effect), and
# the math reader takes "<answer>" for one. `tests/test_prompt_formats.py` renders every template.
ANSWER_HINTS = {"number": "the final number", "option": "the letter of the correct option", "yesno": "yes or no",
                "label": "the label", "math": "the final answer"}  # fmt: skip


def answer_hint(answer_type: str, labels: tuple[str, ...] | list[str] = ()) -> str:
    """What fills the blank: the type's words, or a short label set spelled out ("negative or positive")."""
    if answer_type == "label" and 0 < len(labels) <= 6:
        return " or ".join(labels)
    return ANSWER_HINTS[answer_type]


@cache
def _env():
    import jinja2  # jinja2 (~40 ms) only when a template renders: `hubtool --help` stays fast

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(PROMPTS_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def known_templates(dirs: Dirs = ()) -> list[str]:
    return sorted({p.stem for folder in (PROMPTS_DIR, *dirs) for p in Path(folder).glob("*.jinja")})


def is_file(name: str) -> bool:
    return name.endswith(".jinja") and ("/" in name or Path(name).is_file())


def template_source(name: str, dirs: Dirs = ()) -> str:
    """The template text itself (it goes into manifests and cards)."""
    return _file_source(name) if is_file(name) else _shipped_source(name, tuple(str(d) for d in dirs))


@cache
def _shipped_source(name: str, dirs: tuple[str, ...]) -> str:
    """A template that ships with hubtool: read once per process (a build renders it per problem)."""
    return _file_source(name, dirs)


def _shipped_path(name: str, dirs: Dirs) -> Path:
    """The first `<name>.jinja` in PROMPTS_DIR, then in `dirs` (PROMPTS_DIR's when there is none)."""
    candidates = [Path(folder) / f"{name}.jinja" for folder in (PROMPTS_DIR, *dirs)]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _file_source(name: str, dirs: Dirs = ()) -> str:
    path = Path(name) if is_file(name) else _shipped_path(name, dirs)
    if is_file(name) and not path.is_file():
        raise UserError(f"prompt template file {name} does not exist")
    if not path.exists():
        raise UserError(f"no prompt template {name!r}; known: {', '.join(known_templates(dirs))}, or a FILE.jinja")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"prompt template {name} cannot be read ({e})") from None


@cache
def _compiled(name: str, source: str):
    import jinja2  # jinja2 (~40 ms) only when a template renders: `hubtool --help` stays fast

    try:
        return _env().from_string(source)
    except jinja2.TemplateSyntaxError as e:
        raise UserError(f"prompt template {name!r} line {e.lineno}: {e.message}") from None


def template_variables(name: str, dirs: Dirs = ()) -> set[str]:
    import jinja2.meta  # as above

    source = template_source(name, dirs)
    _compiled(name, source)  # a syntax error is reported as such
    return jinja2.meta.find_undeclared_variables(_env().parse(source))


def check_template(name: str, provided: set[str], dirs: Dirs = ()) -> None:
    """Fail early when a template needs a variable the builder does not provide."""
    missing = template_variables(name, dirs) - provided
    if missing:
        raise UserError(f"prompt template {name!r} uses undefined variables: {', '.join(sorted(missing))}")


def render(name: str, /, *, dirs: Dirs = (), **variables: Any) -> str:
    return _compiled(name, template_source(name, dirs)).render(**variables).strip()


@dataclass(frozen=True, slots=True)
class PromptRef:
    """Which prompt a dataset's rows were made with, as records and cards name it: a shipped template by
    its name; a user's file by its file name and the sha256 of its text (never the folder it was in)."""

    name: str
    sha256: str
    shipped: bool
    text: str

    @classmethod
    def of(cls, name: str, text: str | None = None, dirs: Dirs = ()) -> PromptRef:
        """The reference for a template name or FILE.jinja (its text read now unless given)."""
        text = template_source(name, dirs) if text is None else text
        shipped = not is_file(name)
        return cls(name if shipped else Path(name).name, hashlib.sha256(text.encode()).hexdigest(), shipped, text)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "sha256": self.sha256, "shipped": self.shipped, "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptRef:
        return cls(str(data["name"]), str(data["sha256"]), bool(data["shipped"]), str(data["text"]))

    def describe(self) -> str:
        """`cot` (hubtool's, sha256 1a2b3c4d5e6f), or `mine.jinja` (own file, sha256 ...)."""
        return f"`{self.name}` ({'shipped with hubtool' if self.shipped else 'own file'}, sha256 {self.sha256[:12]})"

    def render(self, **variables: Any) -> str:
        return _compiled(self.name, self.text).render(**variables).strip()
