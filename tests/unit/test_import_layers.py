"""The import graph between tcpstack's packages: no cycles, and the core stays a core.

Every module under ``tcpstack/`` is parsed with ``ast`` (nothing is imported)
and each import becomes an edge between *nodes*: a package directly under
``tcpstack/`` (``tcpstack.core``, ``tcpstack.cli``, ...) or a top-level module
(``tcpstack/api.py`` is ``tcpstack.api``, ``tcpstack/errors.py`` is
``tcpstack.errors``); ``tcpstack/__init__.py`` itself is the node ``tcpstack``.

Counted: ``import``/``from ... import`` anywhere in a module -- at the top,
inside functions and methods, under ``try`` -- relative imports, and
``importlib.import_module("...")``/``__import__("...")`` with a literal name.
Imports under ``if TYPE_CHECKING:`` COUNT as well: they never run, but they
say that one layer's code is written in terms of another's, and a cycle that
exists only for the type checker is still a cycle in the design (and one
annotation evaluated at run time makes it a real one).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import tcpstack

PACKAGE = "tcpstack"
ROOT = Path(tcpstack.__file__).resolve().parent

# The core is sans-IO protocol logic: it may use the sequence-number type and
# the wire format, and nothing else of tcpstack's (in particular not the
# runtime, CLI, API, links, bench or the user-facing tcpstack.errors; it
# raises its own tcpstack.core.errors, which the API turns into UserError).
CORE = "tcpstack.core"
CORE_MAY_IMPORT = frozenset({"tcpstack.seq", "tcpstack.wire"})
CORE_MUST_NOT_IMPORT = ("tcpstack.runtime", "tcpstack.cli", "tcpstack.api", "tcpstack.link",
                        "tcpstack.bench", "tcpstack.errors")

Edge = tuple[str, str]                     # (from node, to node)
Where = list[str]                          # "tcpstack/x/y.py:12: import ..." lines


# -- reading the imports --------------------------------------------------------

def module_name(path: Path, root: Path = ROOT, package: str = PACKAGE) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((package, *parts))


def node_of(module: str, package: str = PACKAGE) -> str | None:
    """``tcpstack.cli.common`` -> ``tcpstack.cli``; None outside the package."""
    parts = module.split(".")
    if parts[0] != package:
        return None
    return ".".join(parts[:2])


def _resolve_relative(module: str, is_package: bool, level: int, name: str | None) -> str:
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def imported_modules(source: str, module: str, is_package: bool,
                     filename: str = "<string>") -> Iterator[tuple[int, str]]:
    """(line, dotted module) for every import in ``source``, wherever it is."""
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            target = (_resolve_relative(module, is_package, node.level, node.module)
                      if node.level else node.module or "")
            yield node.lineno, target
            # "from tcpstack import api" imports the module tcpstack.api; a
            # name that is not a module is harmless here (no such node).
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and \
                isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                yield node.lineno, node.args[0].value


def known_nodes(root: Path = ROOT, package: str = PACKAGE) -> set[str]:
    nodes = {package}
    for child in root.iterdir():
        if child.is_dir() and (child / "__init__.py").exists():
            nodes.add(f"{package}.{child.name}")
        elif child.suffix == ".py" and child.name != "__init__.py":
            nodes.add(f"{package}.{child.stem}")
    return nodes


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[Edge, Where]:
    """Every edge between nodes, with where each import is."""
    nodes = known_nodes(root, package)
    edges: dict[Edge, Where] = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        module = module_name(path, root, package)
        source_node = node_of(module, package)
        assert source_node is not None
        rel = path.relative_to(root.parent)
        for line, target in imported_modules(path.read_text(encoding="utf-8"), module,
                                             path.name == "__init__.py", str(path)):
            # "from tcpstack import api": tcpstack.api; "import tcpstack": tcpstack.
            parts = target.split(".")
            target_node = ".".join(parts[:2]) if ".".join(parts[:2]) in nodes else (
                package if parts[0] == package else None)
            if target_node is None or target_node == source_node:
                continue
            where = edges.setdefault((source_node, target_node), [])
            if not where or not where[-1].startswith(f"{rel}:{line}:"):   # once per statement
                where.append(f"{rel}:{line}: imports {target}")
    return edges


# -- cycles -----------------------------------------------------------------------

def find_cycles(edges: dict[Edge, Where] | set[Edge]) -> list[list[str]]:
    """One cycle (as a path a -> b -> ... -> a) per strongly connected
    component of more than one node (Tarjan), in a stable order."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_cycle_in(graph, component) for component in
            sorted(components, key=lambda c: sorted(c))]


def _cycle_in(graph: dict[str, list[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first node (breadth-first)."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in graph[v]:
                if w not in component:
                    continue
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w not in parent:
                    parent[w] = v
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle in component {component}")  # pragma: no cover


def describe(cycle: list[str], edges: dict[Edge, Where]) -> str:
    lines = [" -> ".join(cycle)]
    for a, b in itertools.pairwise(cycle):
        lines.append(f"  {a} -> {b}:")
        lines += [f"    {where}" for where in edges[(a, b)]]
    return "\n".join(lines)


# -- the rules ----------------------------------------------------------------------

def test_no_import_cycle_between_packages() -> None:
    edges = import_graph()
    cycles = find_cycles(edges)
    assert not cycles, "import cycle(s) between tcpstack's packages:\n" + "\n".join(
        describe(cycle, edges) for cycle in cycles)


def test_the_core_imports_only_seq_and_wire() -> None:
    edges = import_graph()
    bad = {edge: where for edge, where in edges.items()
           if edge[0] == CORE and edge[1] not in CORE_MAY_IMPORT}
    assert not bad, "tcpstack.core may import only " + ", ".join(sorted(CORE_MAY_IMPORT)) + \
        ":\n" + "\n".join(f"  {b}:\n" + "\n".join(f"    {w}" for w in where)
                         for (_, b), where in sorted(bad.items()))
    # The named layers above the core are covered by the allow-list too.
    assert not {(CORE, name) for name in CORE_MUST_NOT_IMPORT} & set(edges)


# -- the checker checks what it should ------------------------------------------------

def test_the_graph_sees_imports_everywhere_in_a_module() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import tcpstack.wire.tcp\n"
        "from . import sibling\n"
        "from ..seq import Seq\n"
        "from tcpstack import api\n"
        "if TYPE_CHECKING:\n"
        "    from tcpstack.runtime.driver import StackDriver\n"
        "def f():\n"
        "    from tcpstack.cli.common import port_number\n"
        "    class C:\n"
        "        def g(self):\n"
        "            import tcpstack.bench.main\n"
        "    try:\n"
        "        import tcpstack.ladder\n"
        "    except ImportError:\n"
        "        pass\n"
        "    importlib.import_module('tcpstack.scenarios.run')\n"
    )
    found = {target for _, target in
             imported_modules(source, "tcpstack.core.stack", is_package=False)}
    for expected in ("tcpstack.wire.tcp", "tcpstack.core.sibling", "tcpstack.seq.Seq",
                     "tcpstack.api", "tcpstack.runtime.driver", "tcpstack.cli.common",
                     "tcpstack.bench.main", "tcpstack.ladder", "tcpstack.scenarios.run"):
        assert expected in found, expected


def test_the_graph_has_the_edges_we_know_of() -> None:
    edges = import_graph()
    assert {("tcpstack.api", "tcpstack.core"), ("tcpstack.api", "tcpstack.runtime"),
            ("tcpstack.runtime", "tcpstack.core"), ("tcpstack.core", "tcpstack.wire"),
            ("tcpstack.cli", "tcpstack.bench"), ("tcpstack", "tcpstack.api")} <= set(edges)
    assert {"tcpstack.api", "tcpstack.sim", "tcpstack.seq", "tcpstack.errors", "tcpstack.core",
            "tcpstack.cli", "tcpstack.bench"} <= known_nodes()


def test_a_cycle_is_found_and_shown_as_a_path() -> None:
    edges = {("a", "b"): ["a.py:1"], ("b", "c"): ["b.py:2"], ("c", "a"): ["c.py:3"],
             ("c", "d"): ["c.py:4"], ("x", "y"): ["x.py:5"], ("y", "x"): ["y.py:6"]}
    cycles = find_cycles(edges)
    assert cycles == [["a", "b", "c", "a"], ["x", "y", "x"]]
    assert "a -> b -> c -> a" in describe(cycles[0], edges)
    assert "c.py:3" in describe(cycles[0], edges)
    assert find_cycles({("a", "b"), ("b", "c"), ("a", "c")}) == []
