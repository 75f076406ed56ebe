"""The evolution actions: what one edge of the search tree asks the evolver to do.

IDEA-MCTS (Li et al., 2024) names twelve general actions; their exact prompts are the paper's and
are not reproduced here: each directive below is hubtool's wording of the action's name, inserted
into the evolve template (`toolkit/methods/evolve/prompts/evolve.jinja`). The paper adds task-specific actions
that a meta-prompt extracts from a benchmark's instructions; give such a list with `--actions FILE`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import UserError


@dataclass(frozen=True, slots=True)
class Action:
    name: str  # short id, recorded in rows (`actions`) and trees
    directive: str  # what the evolver is told to do to the instruction


DEFAULT_ACTIONS: tuple[Action, ...] = (
    Action("add_goals", "Add a global goal or a local sub-goal that the response must also reach."),
    Action("add_constraints", "Add one or two key constraints the response must respect (a limit, a condition, "
                              "something to include or avoid)."),  # fmt: skip
    Action("add_requirements", "Add a concrete task requirement that makes the expected deliverable more specific."),
    Action("add_skills", "Require a specific problem-solving skill or method to be applied in the response."),
    Action("add_reasoning", "Increase the reasoning complexity: the response should need several explicit steps "
                            "of reasoning instead of one."),  # fmt: skip
    Action("add_domain_knowledge", "Ground the instruction in a specific domain so that answering it needs "
                                   "domain knowledge."),  # fmt: skip
    Action("add_life_topic", "Tie the instruction to an everyday-life topic or situation."),
    Action("add_application", "Set the instruction in a real-world application with a concrete user and purpose."),
    Action("add_emotion", "Add emotional expression: who asks and how they feel, so the response must also "
                          "respond to that."),  # fmt: skip
    Action("format_input", "Change the input style: provide part of the task as structured input (a list, a "
                           "table, a short text or data to work on)."),  # fmt: skip
    Action("format_output", "Specify the output style: a required format, structure or length for the response."),
    Action("create_new", "Create a brand-new instruction in the same domain as the given one, of similar length "
                         "but on a rarer topic."),  # fmt: skip
)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def load_actions(path: str | Path) -> tuple[Action, ...]:
    """Actions from a YAML / JSON mapping {name: directive}, a list of {name, directive}, or jsonl."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--actions {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--actions {path} cannot be read as UTF-8 text ({e})") from None
    try:
        if path.suffix == ".jsonl":
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = yaml.safe_load(text)  # JSON is YAML too
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UserError(f"--actions {path} is not valid {'JSON lines' if path.suffix == '.jsonl' else 'YAML/JSON'} "
                        f"({' '.join(str(e).split())[:160]})") from None  # fmt: skip
    items = list(data.items()) if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise UserError(f"--actions {path}: give a mapping {{name: directive}} or a list of {{name, directive}}")
    actions: list[Action] = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            name, directive = item.get("name"), item.get("directive") or item.get("prompt")
        elif isinstance(item, tuple | list) and len(item) == 2:
            name, directive = item
        else:
            name = directive = None
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserError(f"--actions {path} item {i + 1}: a name of letters, digits, _ . - (got {name!r})")
        if not isinstance(directive, str) or not directive.strip():
            raise UserError(f"--actions {path}: action {name!r} has no directive text")
        actions.append(Action(name, directive.strip()))
    names = [a.name for a in actions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"--actions {path}: action names must be unique; repeated: {', '.join(duplicates)}")
    return tuple(actions)
