"""The import graph of posterlite/ has no circle, counting imports inside functions.

Read with `ast` (nothing is imported): every `import` / `from ... import` anywhere in a
module, at the top or in a function, is an edge; imports under `if TYPE_CHECKING:` are
not (they never run). Importing `a.b.c` from outside package `a.b` also runs `a.b`'s
`__init__`, so that is an edge too; `from a.b import name` is an edge to `a.b.name` when
that is a module, else to `a.b`. The top package `posterlite` is left out: every module is
inside it, and its `__init__` imports only `quiet` (and the stage modules lazily).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "posterlite"
ROOT = "posterlite"


def module_names() -> dict[str, Path]:
    """posterlite's modules: dotted name -> file."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        if "node_modules" in path.parts:
            continue
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(sub) for sub in ast.walk(node))
    return skipped


def imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The posterlite modules `name` (at `path`) imports, at any level of the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                targets.add(submodule if submodule in modules else base)
    edges: set[str] = set()
    for target in targets:
        if target not in modules:
            continue
        parts = target.split(".")
        for depth in range(2, len(parts) + 1):  # the packages whose __init__ runs, then it
            step = ".".join(parts[:depth])
            inside = name == step or name.startswith(step + ".")
            if step in modules and (step == target or not inside):
                edges.add(step)
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    """Module -> the posterlite modules it imports."""
    modules = module_names()
    return {name: imported(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_posterlite_has_no_import_circle() -> None:
    assert circles(import_graph()) == []


def test_the_graph_sees_function_level_and_package_imports() -> None:
    """The checker finds what it must: a circle through a function-level import, and the
    parent package an import from outside it runs."""
    graph = {"a": {"b"}, "b": {"a"}, "c": set()}
    assert circles(graph) == [["a", "b"]]
    edges = import_graph()
    # the browser target imports posterlite.browser inside the bench package's layers
    assert "posterlite.browser" in edges["posterlite.bench.targets.browser"]
    # a module outside posterlite.bench importing a bench module runs the package __init__
    outside = {n for n, e in edges.items() if not n.startswith("posterlite.bench")}
    assert all(
        "posterlite.bench" in edges[n]
        for n in outside
        if any(e.startswith("posterlite.bench.") for e in edges[n])
    )
    # function-level imports count: posterlite.bench.cache imports convert inside functions
    assert "posterlite.convert" in edges["posterlite.bench.cache"]


def test_bench_layers_point_down() -> None:
    """The bench's bottom layer (paths, environment, records, timing) imports no other bench
    module above it, and nothing below `run` imports `run`."""
    graph = import_graph()
    order = ["paths", "environment", "records", "timing"]
    for position, layer in enumerate(order):
        above = {f"posterlite.bench.{m}" for m in order[position + 1 :]}
        above |= {
            n for n in graph if n.startswith("posterlite.bench.") and n.split(".")[2] not in order
        }
        assert not (graph[f"posterlite.bench.{layer}"] & above), layer
    assert not [n for n, e in graph.items() if "posterlite.bench.run" in e and n != ROOT + ".bench"]


def test_data_layers_point_down() -> None:
    """posterlite.data's modules import only the ones above them: records, layouts, scan,
    then split and download (which do not import each other)."""
    graph = import_graph()
    order = ["records", "layouts", "scan", "split", "download"]
    for position, layer in enumerate(order):
        allowed = {f"posterlite.data.{m}" for m in order[:position]} - (
            {"posterlite.data.split"} if layer == "download" else set()
        )
        inside = {e for e in graph[f"posterlite.data.{layer}"] if e.startswith("posterlite.data")}
        assert inside <= allowed, layer
    # the rest of posterlite uses the package's names (its __init__), not its modules
    outside = {n: e for n, e in graph.items() if not n.startswith("posterlite.data")}
    assert not [n for n, e in outside.items() if any(m.startswith("posterlite.data.") for m in e)]


def test_cli_command_modules_share_only_common() -> None:
    """Each command group's module imports no other one (only `posterlite.cli.common`), and
    none imports the root package `posterlite.cli`, which loads them by name."""
    graph = import_graph()
    commands = [
        n for n in graph if n.startswith("posterlite.cli.") and n != "posterlite.cli.common"
    ]
    assert "posterlite.cli.train" in commands and "posterlite.cli.predict" in commands
    for name in commands:
        if name == "posterlite.cli.__main__":
            continue
        inside = {
            e for e in graph[name] if e == "posterlite.cli" or e.startswith("posterlite.cli.")
        }
        assert inside <= {"posterlite.cli.common"}, name
