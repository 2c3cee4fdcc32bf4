"""House rules of the source tree, read statically with ``ast`` (nothing is imported): no
import cycles between our modules, short modules, the dependency direction of the README
("Layout"), and pure modules that import no IO library.

Every import counts: module level, under ``if TYPE_CHECKING:`` and inside functions.
``from pkg import name`` is an edge to ``pkg.name`` when that is one of our modules, else to
``pkg`` (its ``__init__``); relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "events", "projections")
MAX_LINES = 350
PURE_MODULES = (
    "events/catalogue.py",
    "actors/login/_state.py",
    "actors/login/_inputs.py",
    "actors/login/_decide.py",
    "actors/supervision/_backoff.py",
)
IO_LIBRARIES = frozenset({"anyio", "nats", "duckdb", "telethon"})
# What each package may not import (README, "Layout": events depends on nothing of ours,
# projections only on events).
FORBIDDEN = {"events": ("actors", "projections"), "projections": ("actors",)}


@dataclass(frozen=True)
class Import:
    """One imported name as written, resolved to an absolute dotted target."""

    source: str  # importing module
    target: str  # absolute dotted name: a module, or `package.attribute`
    line: int

    @property
    def top(self) -> str:
        return self.target.partition(".")[0]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found = {
        module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert found, f"no modules found under {ROOT}"
    return found


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import statement anywhere in the module, with relative imports resolved."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # `from . import x` in a package's __init__ is relative to the package itself,
                # in a plain module to the package that contains it.
                base = name.split(".") if is_package else name.split(".")[:-1]
                up = node.level - 1
                assert up < len(base), f"{path}:{node.lineno}: relative import beyond the top"
                anchor = ".".join(base[: len(base) - up])
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            for alias in node.names:
                target = module if alias.name == "*" else f"{module}.{alias.name}"
                yield Import(name, target, node.lineno)


def all_imports() -> list[Import]:
    return [imp for name, path in our_modules().items() for imp in imports_of(name, path)]


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The most specific of our modules a target names (`pkg.attr` resolves to `pkg`)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], int]]:
    """Edges between our modules, and the first line of each edge's import."""
    modules = our_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    lines: dict[tuple[str, str], int] = {}
    for imp in all_imports():
        target = resolve(imp.target, modules)
        if target is None or target == imp.source:
            continue
        graph[imp.source].add(target)
        lines.setdefault((imp.source, target), imp.line)
    return graph, lines


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative): components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the component's first module (BFS inside the component)."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle in component {component}")


def describe_cycles(graph: dict[str, set[str]], lines: dict[tuple[str, str], int]) -> list[str]:
    modules = our_modules()
    found = []
    for component in strongly_connected(graph):
        cycle = shortest_cycle(graph, component)
        steps = [
            f"    {a} -> {b}  ({modules[a].relative_to(ROOT)}:{lines[a, b]})"
            for a, b in pairwise(cycle)
        ]
        found.append(
            f"cycle {' -> '.join(cycle)}\n"
            + "\n".join(steps)
            + (f"\n    (component: {', '.join(component)})" if len(component) > 2 else "")
        )
    return found


# --- the rules -----------------------------------------------------------------------------


def test_no_import_cycles() -> None:
    """No module of ours imports itself back through any chain of imports."""
    graph, lines = import_graph()
    cycles = describe_cycles(graph, lines)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cycle_finder_finds_a_planted_cycle() -> None:
    """The checker itself: a three-module cycle and a two-module one are reported."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_relative_imports_resolve() -> None:
    """`from . import x`, `from .m import y` and `from .. import z` name absolute modules."""
    modules = our_modules()
    targets = {imp.target for imp in imports_of("actors.login", modules["actors.login"])}
    assert any(t.startswith("actors.login._") for t in targets), targets
    for imp in all_imports():
        assert not imp.target.startswith("."), imp


def test_modules_are_short() -> None:
    """Every module has at most MAX_LINES lines."""
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in our_modules().values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not too_long, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({n})" for name, n in sorted(too_long.items(), key=lambda kv: -kv[1])
    )


def test_dependency_direction() -> None:
    """`events` imports nothing of `actors` or `projections`; `projections` nothing of `actors`."""
    wrong = [
        f"{imp.source} imports {imp.target} (line {imp.line})"
        for imp in all_imports()
        if imp.top in FORBIDDEN.get(imp.source.partition(".")[0], ())
    ]
    assert not wrong, "imports against the dependency direction:\n" + "\n".join(wrong)


def test_pure_modules_import_no_io() -> None:
    """The catalogue, the login aggregate and the backoff policy import no IO library."""
    wrong = []
    for relative in PURE_MODULES:
        path = ROOT / relative
        assert path.is_file(), f"pure module {relative} is gone: update PURE_MODULES"
        wrong += [
            f"{relative}:{imp.line} imports {imp.target}"
            for imp in imports_of(module_name(path), path)
            if imp.top in IO_LIBRARIES
        ]
    assert not wrong, "pure modules importing IO libraries:\n" + "\n".join(wrong)
