"""What a published card may say about where things were: no path of the machine it was made on.

A card pushed to the Hub is read by the world; `/home/alice/projects/x/runs/cot` tells it the
user's name and directory layout. Cards therefore name things by what they are, not where they
lay: a shipped recipe by its name (`cot/smollm2-135m-lora`), a model in hubtool's model cache by
its alias, a dataset in the local registry by `org/name`, a path inside the run relative to the
run (`cot/data/...`), and anything else by its last component only (`questions.jsonl`). A model
folder is "a local model" with its hash (`local-<hash>`, see toolkit.teachers.models).

Only absolute paths (`/...`, `~/...`) are rewritten; relative ones carry no machine detail beyond
what the user typed in the command. A run's merged weights (`OUT/merged`) keep their run's name.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.paths import MERGED, models_dir, registry_dir
from toolkit.resources import resource_dir

LOCAL_MODEL = "a local model"
MODEL_BACKENDS = ("transformers:", "vllm:", "fake:", "openai:")  # `BACKEND:PATH` names a model
# An absolute path inside a text: `/...` or `~/...` not inside a word or a URL (`http://h/v1`
# has its slashes after `:` + `/` or after a host, which the lookbehinds exclude).
_ABSOLUTE = re.compile(r"(?<![\w/.~-])(?<!:/)(?:~|/(?!/))[^\s'\"`,;()\[\]{}<>|]*")


def _roots() -> list[tuple[Path, Callable[[Path], str]]]:
    """Known homes of named things: path under it -> its public name."""
    roots: list[tuple[Path, Callable[[Path], str]]] = []
    try:
        recipes = resource_dir("recipes")
        roots.append((recipes, lambda rel: rel.with_suffix("").as_posix()))  # a shipped recipe's name
    except Exception:  # noqa: BLE001 - no shipped recipes here: nothing to name by them
        pass
    roots.append((registry_dir() / ".versions", lambda rel: "/".join(rel.parts[:2])))  # org/name
    roots.append((registry_dir(), lambda rel: "/".join(rel.parts[:2])))
    roots.append((models_dir(), lambda rel: rel.parts[0] if rel.parts else "model"))  # the alias
    return roots


def _under(path: Path, root: Path) -> Path | None:
    for p, r in ((path, root), (Path(os.path.abspath(path)), Path(os.path.abspath(root)))):
        try:
            return p.relative_to(r)
        except ValueError:
            continue
    try:
        return path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None


def public_path(text: str, run_dir: str | Path | None = None) -> str:
    """One absolute path as a card may show it (a relative one is returned as it is)."""
    if not text.startswith(("/", "~")):
        return text
    path = Path(text).expanduser()
    if run_dir is not None:
        run = Path(run_dir)
        rel = _under(path, run)
        if rel is not None:
            return (Path(run.name) / rel).as_posix().rstrip("/.") or run.name
    for root, name in _roots():
        rel = _under(path, root)
        if rel is not None and rel.parts:
            return name(rel)
    if path.name == MERGED and path.parent.name:  # `hubtool train --merge`'s OUT/merged: "sft/merged", not "merged"
        return f"{path.parent.name}/{MERGED}"
    return path.name or "/"


def scrub(text: str, run_dir: str | Path | None = None) -> str:
    """`text` with every absolute path in it replaced by its public form; a model path in a
    `BACKEND:PATH` spec becomes "a local model"."""

    def public(m: re.Match) -> str:
        if text[: m.start()].endswith(MODEL_BACKENDS):
            return public_model(m.group(0))
        return public_path(m.group(0), run_dir)

    return _ABSOLUTE.sub(public, text) if text else text


def scrub_value(value: Any, run_dir: str | Path | None = None) -> Any:
    """Every string inside a JSON-like value scrubbed (dict keys kept)."""
    if isinstance(value, str):
        return scrub(value, run_dir)
    if isinstance(value, dict):
        return value.__class__({k: scrub_value(v, run_dir) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, run_dir) for v in value]
    return value


def scrub_command(command: str, run_dir: str | Path | None = None) -> str:
    """A command line with its path arguments in public form, still one a shell reads."""
    try:
        words = shlex.split(command)
    except ValueError:
        return scrub(command, run_dir)
    return shlex.join(scrub(w, run_dir) for w in words)


def is_local_path(model: str) -> bool:
    """Whether a model name is an absolute folder or file of this machine (not a Hub id or alias)."""
    return model.startswith(("/", "~"))


def public_model(model: str) -> str:
    """A model as a card names it: a Hub id, alias or relative path as it is; an absolute folder
    as "a local model" (one in hubtool's model cache by its alias)."""
    if not is_local_path(model):
        return model

    if _under(Path(model).expanduser(), models_dir()) is not None:
        return public_path(model)
    return LOCAL_MODEL


def public_spec(spec: str, run_dir: str | Path | None = None) -> str:
    """`BACKEND:MODEL` with MODEL in public form (`transformers:/home/a/student` -> `transformers:a local model`)."""
    head, sep, model = spec.partition(":")
    if sep and is_local_path(model):
        return f"{head}:{public_model(model)}"
    return scrub(spec, run_dir)
