"""No import cycles between the project's modules (agent/, collector/, dashboards/).

The imports are read with `ast`, not by importing, so every module is seen, also those whose
libraries are missing here. An edge A -> B is any `import B` or `from B import name` in A:

- at module level and inside functions alike. A function-level import only defers the cycle to
  the first call; the two modules still cannot be understood, tested or moved one without the
  other, and an import moved to the top later would break at import time.
- under `if TYPE_CHECKING:` too (there are none now): a type named is a dependency as well.
- `from package import name` is an edge to `package.name` when that is a module, else to the
  package's `__init__`. A parent package's `__init__` is not an edge of its own: Python runs it
  first, but a package file that re-exports its submodules would otherwise be a cycle with each.
- a module loaded by name at run time (the command table of agent/cli.py) is not an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "collector", "dashboards")


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the project's packages."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imported_modules(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports anywhere in it, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:  # a submodule
                    found.add(f"{base}.{alias.name}")
                elif base in modules:  # a name defined in (or re-exported by) that module
                    found.add(base)
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    return {module: imported_modules(path, module, modules) for module, path in modules.items()}


def tied_groups(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The modules that import each other, directly or round a loop: strongly connected groups of two or more (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[frozenset[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return groups


def one_cycle(graph: dict[str, set[str]], group: frozenset[str]) -> list[str]:
    """A shortest loop through the group's first module, as [a, b, ..., a] (breadth-first)."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no loop through {start} in {sorted(group)}")


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert "agent.points" in graph["collector.app"]  # module level
    assert "collector.status.overview" in graph["collector.app"]  # inside a function
    assert "collector.snmp.session" in graph["collector.snmp.cli"]  # relative
    assert "collector.diagnose.analysis" in graph["collector.diagnose"]  # a package re-exporting a submodule


def test_the_search_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert tied_groups(graph) == [frozenset({"a", "b", "c"})]
    assert one_cycle(graph, frozenset({"a", "b", "c"})) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [" -> ".join(one_cycle(graph, group)) for group in tied_groups(graph)]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)
