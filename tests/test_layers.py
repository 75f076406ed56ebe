"""Imports run one way: the layer table of the README, checked over every `import` in the tree.

Each module of `toolkit/` sits in one layer; it may import its own layer or a lower one, never a
higher one, and no chain of imports may come back to where it started. Imports inside functions
count too: a lazy import that dodges a circle is still a circle. `bench/` and `eval_tasks/` sit
above all of `toolkit/`; `toolkit/` never imports them or `tests/`, and they never import `tests/`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top, the README's order. A module takes the layer of the longest name here that is it
# or a package above it (`toolkit.evaluate.run` is in `toolkit.evaluate`); `toolkit` is only itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0 base: no domain words
    ("toolkit.version", "toolkit.errors", "toolkit.paths", "toolkit.records", "toolkit.registry", "toolkit.redact",
     "toolkit.yamlsafe", "toolkit.resources", "toolkit.public_paths", "toolkit.manifest"),
    # 1 domain: answers, prompts, the sandbox, sources, teachers
    ("toolkit.answer_statements", "toolkit.answer_numbers", "toolkit.answer_reading", "toolkit.answers",
     "toolkit.card_quality", "toolkit.prompts", "toolkit.sandbox", "toolkit.sources", "toolkit.teachers"),
    # 2 storage: a run folder, decontamination, dataset cards, publishing (the local registry, the Hub)
    ("toolkit.rundir", "toolkit.decontaminate", "toolkit.cards", "toolkit.hub"),
    # 3 engine: the build loop every method runs on
    ("toolkit.builders",),
    # 4 methods
    ("toolkit.methods",),
    # 5 consumers of datasets: train, evaluate, inspect
    ("toolkit.training", "toolkit.evaluate", "toolkit.inspect"),
    # 6 experiment files: steps of the above
    ("toolkit.experiments",),
    # 7 the Python API, and `toolkit` itself: the package's face re-exports it (`from toolkit import build`)
    ("toolkit.api", "toolkit"),
    # 8 entry points
    ("toolkit.cli", "toolkit.__main__", "toolkit.train"),
)  # fmt: skip

# Folders beside toolkit/ that import it; each may import toolkit and itself, no other folder here.
OUTSIDE = ("bench", "eval_tasks", "tests")
SCANNED = ("toolkit", "bench", "eval_tasks")

@dataclass(frozen=True, slots=True)
class Import:
    importer: str  # module name, e.g. toolkit.hub.push
    imported: str  # the project module it names (the longest existing prefix)
    path: Path
    line: int
    implicit: bool = False  # the package __init__ above `imported`, which Python runs first

    def where(self, root: Path) -> str:
        return f"{self.path.relative_to(root)}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_file(module: str, root: Path) -> str:
    path = root / module.replace(".", "/")
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(root))


def project_modules(root: Path) -> dict[str, Path]:
    folders = dict.fromkeys((*SCANNED, *OUTSIDE))
    return {module_name(p, root): p for folder in folders for p in sorted((root / folder).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module `name` loads: itself, or the package that holds the attribute."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _named(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: none in the tree today, resolved anyway so one is not missed
        parts = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*parts, base] if base else parts)
    # `from a import b` names the module a.b when there is one, else an attribute of a.
    return [f"{base}.{alias.name}" for alias in node.names]


def imports(root: Path) -> list[Import]:
    """Every import (top-level and inside functions) of the scanned folders of project modules."""
    modules = project_modules(root)
    found = []
    for name, path in modules.items():
        if name.split(".")[0] not in SCANNED:
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in _body_nodes(block)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom) or id(node) in typing_only:
                continue
            for named in _named(node, package):
                target = _resolve(named, modules)
                if target is None or target == name:
                    continue
                found.append(Import(name, target, path, node.lineno))
                # Importing a.b.c runs a/b/__init__.py first, unless the importer is inside a.b
                # (then a.b is already being imported): an __init__ that re-exports closes circles too.
                for parent in _parents(target):
                    if parent in modules and parent != "toolkit" and not (name + ".").startswith(parent + "."):
                        found.append(Import(name, parent, path, node.lineno, implicit=True))
    return found


def _is_type_checking(node: ast.AST) -> bool:
    """`if TYPE_CHECKING:` (or `typing.TYPE_CHECKING`): imports for annotations only, never run, so they
    import nothing at run time (a layer may name a higher layer's type, as cards name the Method)."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _body_nodes(node: ast.If) -> list[ast.AST]:
    return [n for statement in node.body for n in ast.walk(statement)]


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def layer_of(module: str) -> int | None:
    best = None
    for layer, names in enumerate(LAYERS):
        for prefix in names:
            if module == prefix or ("." in prefix and module.startswith(prefix + ".")):
                if best is None or len(prefix) > len(best[1]):
                    best = (layer, prefix)
    return None if best is None else best[0]


def wrong_way(found: list[Import], root: Path) -> list[str]:
    """Each import that goes up a layer or into a folder it may not use, one line each."""
    problems = []
    for imp in (imp for imp in found if not imp.implicit):  # the explicit import says it already
        top, target_top = imp.importer.split(".")[0], imp.imported.split(".")[0]
        where = imp.where(root)
        if top == "toolkit" and target_top != "toolkit":
            problems.append(f"{where}: {imp.importer} imports {imp.imported} (toolkit never imports {target_top}/)")
        elif top != "toolkit" and target_top in OUTSIDE and target_top != top:
            problems.append(f"{where}: {imp.importer} imports {imp.imported} ({top}/ never imports {target_top}/)")
        elif top == "toolkit":
            low, high = layer_of(imp.importer), layer_of(imp.imported)
            for module, layer in ((imp.importer, low), (imp.imported, high)):
                if layer is None:
                    problems.append(f"{where}: {module} is in no layer; add it to LAYERS and the README")
            if low is not None and high is not None and high > low:
                problems.append(f"{where}: {imp.importer} (layer {low}) imports {imp.imported} (layer {high})")
    return sorted(set(problems))


def circles(found: list[Import], root: Path) -> list[str]:
    """Each import circle among toolkit modules as one line: the files around it, and where."""
    graph: dict[str, dict[str, Import]] = {}
    for imp in found:
        if imp.importer.startswith("toolkit") and imp.imported.startswith("toolkit"):
            graph.setdefault(imp.importer, {}).setdefault(imp.imported, imp)
    reported = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        cycle = _cycle_through(min(component), graph, component)
        steps = [graph[a][b] for a, b in zip(cycle, cycle[1:])]
        line = "circle: " + " -> ".join(step.where(root) for step in steps) + f" -> back to {cycle[0]}"
        others = sorted(component - set(cycle))
        if others:  # the component is bigger than this one circle: name every file in it
            line += "; also in it: " + ", ".join(module_file(m, root) for m in others)
        reported.append(line)
    return sorted(reported)


def _strongly_connected(graph: dict[str, dict[str, Import]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative: the sets of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycle_through(start: str, graph: dict[str, dict[str, Import]], within: set[str]) -> list[str]:
    """The shortest import chain from `start` back to itself inside one component (breadth first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, {})):
                if child not in within or child in previous:
                    continue
                previous[child] = node
                if child == start:
                    chain = [start]
                    while chain[-1] != start or len(chain) == 1:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a component without a cycle")


def check(root: Path, allowed: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    found = [imp for imp in imports(root) if (imp.importer, imp.imported) not in allowed]
    return circles(found, root) + wrong_way(found, root)


def test_imports_run_one_way():
    problems = check(ROOT)
    assert not problems, "imports against the layers (see the README, Development, Layers):\n" + "\n".join(problems)


def test_every_module_is_in_a_layer():
    modules = [name for name in project_modules(ROOT) if name.split(".")[0] == "toolkit"]
    assert [name for name in modules if layer_of(name) is None] == []


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_reports_a_circle_and_each_wrong_way(tmp_path):
    _write(tmp_path, {
        "toolkit/__init__.py": "",
        "toolkit/errors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from toolkit.cli import main\n",
        "toolkit/paths.py": "def home():\n    from toolkit.cli import main  # upward, hidden in a function\n",
        "toolkit/cli.py": "from toolkit.errors import UserError\nmain = None\n",
        "toolkit/hub/__init__.py": "",
        "toolkit/hub/push.py": "from toolkit.hub.remote import upload\n",
        "toolkit/hub/remote.py": "def upload():\n    from toolkit.hub import push\n",
        "toolkit/sources/__init__.py": "import eval_tasks.gsm8k.utils\n",
        "eval_tasks/gsm8k/utils.py": "from toolkit.errors import UserError\n",
        "bench/standin.py": "from tests.servers import free_port\nfrom toolkit.hub.push import upload\n",
        "tests/servers.py": "free_port = None\n",
    })  # fmt: skip
    assert check(tmp_path) == [
        "circle: toolkit/hub/push.py:1 -> toolkit/hub/remote.py:2 -> back to toolkit.hub.push",
        "bench/standin.py:1: bench.standin imports tests.servers (bench/ never imports tests/)",
        "toolkit/paths.py:2: toolkit.paths (layer 0) imports toolkit.cli (layer 8)",
        "toolkit/sources/__init__.py:1: toolkit.sources imports eval_tasks.gsm8k.utils"
        " (toolkit never imports eval_tasks/)",
    ]
    # An allowed edge is skipped, and with it the circle it closes.
    assert not any("hub" in line for line in check(tmp_path, frozenset({("toolkit.hub.remote", "toolkit.hub.push")})))


def test_a_module_outside_the_table_is_reported(tmp_path):
    _write(tmp_path, {"toolkit/__init__.py": "", "toolkit/errors.py": "", "toolkit/newthing.py": "import toolkit.errors\n"})
    assert check(tmp_path) == [
        "toolkit/newthing.py:1: toolkit.newthing is in no layer; add it to LAYERS and the README"
    ]
