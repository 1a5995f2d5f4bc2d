"""The layering of docs/architecture.md, read from the modules' own import statements.

`cli -> demo -> loop/compare -> {synth, report} -> selectors -> train -> {catalog, lm} -> errors/util`:
a module imports only from its own package or from a lower layer, catalog and lm know
nothing of each other, and no two files import each other, directly or in a circle. Every
import counts, wherever it stands (inside a function, under TYPE_CHECKING): an import that
runs late is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "curate"

# Top-level part of `curate` -> its layer. A new part must be placed here (the test says so).
LAYERS = {
    "__init__": 0, "errors": 0, "util": 0,
    "catalog": 1, "lm": 1,
    "train": 2,
    "selectors": 3,
    "synth": 4, "report": 4,  # gap-fill runs selectors on its candidates; a report shows their steps
    "loop": 5, "compare": 5, "integrations": 5,
    "demo": 6,  # runs the loop and the comparison
    "cli": 7, "__main__": 8,
}
SIDEWAYS_FORBIDDEN = {("catalog", "lm"), ("lm", "catalog")}  # the two bottom parts know nothing of each other


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The curate modules `path` imports: a submodule where `from PKG import NAME` names one."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "curate")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "curate":
                continue
            subs = {f"{target}.{a.name}" for a in node.names} & known
            found.update(subs if subs else {target})
    return {m for m in found if m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


def part(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return name


def test_every_part_has_a_layer():
    unplaced = sorted({part(m) for m in modules()} - set(LAYERS))
    assert not unplaced, f"place these parts of curate in LAYERS (and docs/architecture.md): {unplaced}"


def test_no_module_imports_upward_or_across_the_bottom():
    wrong = []
    for module, targets in graph().items():
        here = part(module)
        for target in targets:
            there = part(target)
            if there == here:
                continue
            if LAYERS.get(there, 99) >= LAYERS.get(here, -1) or (here, there) in SIDEWAYS_FORBIDDEN:
                wrong.append(f"{module} ({here}, layer {LAYERS.get(here)}) imports {target} "
                             f"({there}, layer {LAYERS.get(there)})")
    assert not wrong, "imports against the layering:\n  " + "\n  ".join(sorted(wrong))


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (iterative, no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
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
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(sorted(group))
    return groups


def test_no_import_cycles_between_files():
    cycles = [g for g in strongly_connected(graph()) if len(g) > 1]
    assert not cycles, "modules that import each other (directly or in a circle): " + "; ".join(
        " <-> ".join(g) for g in cycles)


def test_the_cycle_finder_finds_cycles():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"], ["d"]]
    assert all(len(g) == 1 for g in strongly_connected({"a": {"b"}, "b": set()}))


def test_relative_imports_are_resolved(tmp_path):
    path = tmp_path / "x.py"
    path.write_text("from . import loading\nfrom .templates import Prompt\nfrom ..catalog import ids\nimport os\n")
    assert imports_of("curate.lm.x", path, {"curate.lm.loading", "curate.lm.templates", "curate.catalog.ids"}) == {
        "curate.lm.loading", "curate.lm.templates", "curate.catalog.ids"}
