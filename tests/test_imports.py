"""No import cycles inside the ``aligner`` package.

Every module is read with :mod:`ast` (nothing is imported). An import at module level (class
bodies, ``try`` blocks included; ``if TYPE_CHECKING:`` blocks left out, as they never run) is a
module-level edge; an import inside a function runs when the function is first called, a
function-level edge. Importing ``a.b.c`` also runs the packages ``a.b`` and ``a`` (their
``__init__``), so those are edges too, except a module's own parent packages, which are always
loading already when it runs.

- A cycle of module-level edges fails: whichever module is imported first sees the other
  half-initialised.
- A cycle closed by a function-level (lazy) edge fails too, unless that edge is listed in
  :data:`LAZY_CYCLES` with the reason it stays lazy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import aligner

ROOT = Path(aligner.__file__).resolve().parent

#: Lazy imports allowed to close a cycle: (importer, imported) -> why the import stays lazy.
LAZY_CYCLES: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("aligner", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_package(name: str, modules: dict[str, Path]) -> bool:
    return modules[name].name == "__init__.py"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """(node, lazy) for every import statement, skipping ``if TYPE_CHECKING:`` blocks."""
    def walk(node: ast.AST, lazy: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    yield from walk(ast.Module(body=[sub], type_ignores=[]), lazy)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy
            yield from walk(child, lazy or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    yield from walk(tree, False)


def _targets(name: str, node: ast.Import | ast.ImportFrom, modules: dict[str, Path]) -> set[str]:
    """The ``aligner`` modules an import statement in module ``name`` runs."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        bases = [alias.name for alias in node.names]
    else:
        if node.level:
            package = name if _is_package(name, modules) else name.rsplit(".", 1)[0]
            parts = package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([node.module] if node.module else []))
        else:
            base = node.module or ""
        bases = [base]
        bases += [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
    for target in bases:
        parts = target.split(".")
        for k in range(1, len(parts) + 1):
            prefix = ".".join(parts[:k])
            if prefix in modules:
                found.add(prefix)
    own_packages = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 1)}
    return found - own_packages - {name}


def _graph() -> dict[str, dict[str, bool]]:
    """importer -> {imported: lazy}; an edge is lazy only if every import of it is."""
    modules = _modules()
    graph: dict[str, dict[str, bool]] = {name: {} for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, lazy in _imports(tree):
            for target in _targets(name, node, modules):
                graph[name][target] = graph[name].get(target, True) and lazy
    return graph


def _cycles(graph: dict[str, dict[str, bool]], *, lazy: bool) -> list[list[str]]:
    """One shortest cycle through each module that is on one (module-level edges only, or all
    edges with ``lazy``), as a list of module names whose last imports the first."""
    edges = {a: sorted(b for b, is_lazy in out.items() if lazy or not is_lazy)
             for a, out in graph.items()}
    cycles, seen = [], set()
    for start in sorted(edges):
        # breadth-first: the shortest way back to ``start``
        back = {start: None}
        queue, found = [start], None
        while queue and found is None:
            nxt = []
            for a in queue:
                for b in edges[a]:
                    if b == start:
                        found = a
                        break
                    if b not in back:
                        back[b] = a
                        nxt.append(b)
                if found is not None:
                    break
            queue = nxt
        if found is None:
            continue
        path, node = [], found
        while node is not None:
            path.append(node)
            node = back[node]
        cycle = path[::-1]
        key = frozenset(cycle)
        if key not in seen:
            seen.add(key)
            cycles.append(cycle)
    return cycles


def _show(cycle: list[str], graph: dict[str, dict[str, bool]]) -> str:
    steps = [f"{a} -{'(lazy)' if graph[a][b] else ''}-> {b}"
             for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True)]
    return "; ".join(steps)


def test_every_module_is_read():
    modules = _modules()
    assert "aligner.speech.alignment" in modules and "aligner.wire.protocol" in modules
    graph = _graph()
    assert "aligner.wire.events" in graph["aligner.wire.protocol"]  # the walk sees imports
    assert graph["aligner.session.session"]["aligner.speech.stream"] is True  # a lazy one


def test_no_module_level_import_cycle():
    graph = _graph()
    cycles = _cycles(graph, lazy=False)
    assert not cycles, "module-level import cycles:\n" + "\n".join(_show(c, graph) for c in cycles)


def test_no_lazy_import_closes_a_cycle():
    graph = _graph()
    bad = []
    for cycle in _cycles(graph, lazy=True):
        pairs = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        if not any(pair in LAZY_CYCLES for pair in pairs if graph[pair[0]][pair[1]]):
            bad.append(_show(cycle, graph))
    assert not bad, "import cycles through lazy imports:\n" + "\n".join(bad)


def test_listed_lazy_cycles_still_exist():
    graph = _graph()
    for a, b in LAZY_CYCLES:
        assert graph.get(a, {}).get(b) is True, f"{a} -> {b} is no longer a lazy import"


def test_a_cycle_is_found():
    graph = {"a": {"b": False}, "b": {"c": True}, "c": {"a": False}, "d": {"a": False}}
    assert _cycles(graph, lazy=False) == []
    assert _cycles(graph, lazy=True) == [["a", "b", "c"]]
