"""YAML that a hostile file cannot turn into a hang: every config, recipe and experiment file is read here.

`yaml.safe_load` builds no objects from tags, but it still expands aliases: a 1 KB "billion laughs"
file (`a: &a [x, x]`, `b: &b [*a, *a]`, ...) is a few nodes that every later walk (a hash, a
`str()`, an error message) visits a billion times, and `a: &a [*a]` is a list that contains itself.
So the node graph is checked before anything is built from it:
- no alias may refer to a node that contains it (a recursive document);
- aliases may add at most ALIAS_BUDGET nodes to what the file spells out (real files reuse a block
  a few times: tens of nodes);
- nesting deeper than the parser can follow is refused, as is a mapping that repeats a key
  (safe_load keeps the last one silently).
"""

from __future__ import annotations

from typing import Any

import yaml

from toolkit.errors import UserError

ALIAS_BUDGET = 10_000  # nodes that aliases may add to the document, all together


class _Refused(Exception):
    pass


class _CheckedLoader(yaml.SafeLoader):
    def compose_document(self):  # noqa: ANN201 - PyYAML's hook
        node = super().compose_document()
        _check(node)
        return node


def _check(root: yaml.Node) -> None:
    """Count the document as fully expanded (memoised per node, so the count itself is cheap)."""
    sizes: dict[int, int] = {}
    distinct = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused(f"an alias refers to a node that contains it (line {node.start_mark.line + 1}); "
                          "a recursive document cannot be read")
        distinct += 1
        open_nodes.add(key)
        _refuse_duplicate_keys(node)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    if sizes[id(root)] - distinct > ALIAS_BUDGET:
        raise _Refused(f"its aliases expand it by more than {ALIAS_BUDGET} values (a YAML bomb?); "
                      "write the values out instead of nesting aliases")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _refuse_duplicate_keys(node: yaml.Node) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: set[str] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                raise _Refused(f"key {key.value!r} appears twice in one mapping (line {key.start_mark.line + 1}); "
                              "keep one")
            seen.add(key.value)


def safe_load(text: str, what: str) -> Any:
    """`yaml.safe_load` with the checks above; any problem is a one-line UserError naming `what`."""
    try:
        return yaml.load(text, Loader=_CheckedLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as e:
        raise UserError(f"{what} is refused: {e}") from None
    except RecursionError:
        raise UserError(f"{what} is nested too deeply to read; flatten it") from None
    except yaml.YAMLError as e:
        raise UserError(f"{what} is not valid YAML ({' '.join(str(e).split())[:200]}); fix the syntax") from None
