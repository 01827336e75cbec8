"""The import graph of ci/, read from the source (ast): no package depends on itself through another.

Every import counts, including those inside functions and under TYPE_CHECKING: a deferred import
hides a cycle from the interpreter, not from the reader or the next refactor.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

CI = Path(__file__).resolve().parent.parent / "ci"


def module_files(package: Path = CI) -> dict[str, Path]:
    """Dotted name -> file for every module under ci/ (a package is named by its __init__.py)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The ci modules `name` imports anywhere in its source (`from ci.site import rules` -> ci.site.rules)."""
    known = set(known)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {module for module in found if module in known and module != name}


def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def collapse(graph: Mapping[str, set[str]], unit: int) -> dict[str, set[str]]:
    """The graph between dotted-name prefixes of `unit` parts (2: ci.layer, ci.abi, ci.config...)."""

    def key(name: str) -> str:
        return ".".join(name.split(".")[:unit])

    collapsed: dict[str, set[str]] = {}
    for source, targets in graph.items():
        collapsed.setdefault(key(source), set()).update(key(t) for t in targets if key(t) != key(source))
    return collapsed


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, nodes in sorted order)."""
    state: dict[str, str] = {}  # "active" while on the stack, "done" after
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "active"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "active":
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_deferred_and_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "ci" / "layer"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "build.py").write_text("from ci.layer import state\n")
    (package / "state.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import build\n")
    (package / "bytecode.py").write_text("def late():\n    from ci.layer.build import build_layer\n")
    modules = module_files(tmp_path / "ci")
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph["ci.layer.build"] == {"ci.layer", "ci.layer.state"}
    assert graph["ci.layer.state"] == {"ci.layer", "ci.layer.build"}
    assert graph["ci.layer.bytecode"] == {"ci.layer.build"}
    assert find_cycle(graph) == ["ci.layer.build", "ci.layer.state", "ci.layer.build"]


def test_no_import_cycle_between_the_packages_of_ci() -> None:
    cycle = find_cycle(collapse(import_graph(), unit=2))
    assert cycle is None, "package import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_the_modules_of_ci() -> None:
    """ci/layer's steps included: bytecode.py and build.py share state.py instead of each other."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "module import cycle: " + " -> ".join(cycle or [])
