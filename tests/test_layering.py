"""The import graph of the project's packages: no cycles, imports inside functions included, and one direction.

Read from the source with `ast`, so an import hidden in a function body counts
as much as one at the top. Importing `a.b.c` also runs the `__init__` of `a.b`,
so that package counts as imported too (unless it encloses the importer).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGES = ("surgery", "far_modules", "hwmodel")
PIPELINE = ("recipe", "data", "graph", "detect", "rewrite", "measure", "train", "deploy", "runs", "search", "analyze", "cli")
"""`surgery`'s subpackages in the order of the data flow; each imports only those before it."""

Edge = tuple[str, str, str]  # importer, imported, "file:line"


def modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of `packages` under `root`."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def edges(root: Path, packages: tuple[str, ...]) -> list[Edge]:
    """Every import between the modules of `packages`, wherever in a file it is written."""
    known = modules(root, packages)
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, package, known):
                for imported in _with_packages(target, name, known):
                    found.append((name, imported, f"{path.relative_to(root)}:{node.lineno}"))
    return found


def _targets(node: ast.AST, package: str, known: dict[str, Path]) -> list[str]:
    if isinstance(node, ast.Import):
        return [_known_prefix(alias.name, known) for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
        base = f"{anchor}.{base}" if base else anchor
    return [_known_prefix(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base, known) for alias in node.names]


def _known_prefix(name: str, known: dict[str, Path]) -> str:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def _with_packages(target: str, importer: str, known: dict[str, Path]) -> list[str]:
    """`target` and the packages whose `__init__` importing it runs, less those that enclose the importer."""
    if not target:
        return []
    parts = target.split(".")
    enclosing = {".".join(parts[:i]) for i in range(1, len(parts))} - _ancestors(importer)
    return [name for name in (*sorted(enclosing), target) if name in known and name != importer]


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def find_cycle(graph_edges: list[Edge]) -> list[Edge] | None:
    """One import cycle as its edges, or None; depth-first, in a fixed order so the report is stable."""
    outgoing: dict[str, list[Edge]] = {}
    for edge in sorted(graph_edges):
        outgoing.setdefault(edge[0], []).append(edge)
    state: dict[str, str] = {}
    path: list[Edge] = []

    def visit(node: str) -> list[Edge] | None:
        state[node] = "open"
        for edge in outgoing.get(node, []):
            path.append(edge)
            target = edge[1]
            if state.get(target) == "open":
                start = next(i for i, e in enumerate(path) if e[0] == target)
                return path[start:]
            if target not in state and (cycle := visit(target)):
                return cycle
            path.pop()
        state[node] = "done"
        return None

    for node in sorted(outgoing):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def describe(cycle: list[Edge]) -> str:
    return "import cycle:\n" + "\n".join(f"  {importer} -> {imported}  ({where})" for importer, imported, where in cycle)


def test_the_projects_modules_import_each_other_without_cycles():
    cycle = find_cycle(edges(ROOT, PACKAGES))
    assert cycle is None, describe(cycle)


def test_surgerys_subpackages_import_only_earlier_steps_of_the_pipeline():
    rank = {step: index for index, step in enumerate(PIPELINE)}
    upward = []
    for importer, imported, where in edges(ROOT, ("surgery",)):
        source, target = (name.split(".")[1] if name.count(".") else None for name in (importer, imported))
        if source in rank and target in rank and rank[target] > rank[source]:
            upward.append(f"{where}: {importer} imports {imported}")
    assert not upward, "imports against the data flow:\n" + "\n".join(upward)


def test_every_subpackage_of_surgery_has_its_place_in_the_pipeline():
    subpackages = {path.parent.name for path in (ROOT / "surgery").glob("*/__init__.py")}
    assert subpackages == set(PIPELINE)


def test_surgery_keeps_few_modules_at_its_top_level():
    top = {path.stem for path in (ROOT / "surgery").glob("*.py")} - {"__init__", "__main__"}
    assert len(top) <= 8, sorted(top)


def test_far_modules_and_hwmodel_never_import_surgery():
    inward = [f"{where}: {importer} imports {imported}" for importer, imported, where in edges(ROOT, PACKAGES)
              if not importer.startswith("surgery") and imported.startswith("surgery")]
    assert not inward, "\n".join(inward)


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_cycle_through_an_import_inside_a_function_is_found_with_its_lines(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    from pkg import a\n    return a\n",
    })
    cycle = find_cycle(edges(tmp_path, ("pkg",)))
    assert cycle is not None
    assert [(importer, imported) for importer, imported, _ in cycle] == [("pkg.a", "pkg.b"), ("pkg.b", "pkg.a")]
    assert "pkg/b.py:2" in describe(cycle)


def test_a_cycle_through_a_relative_import_is_found(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "from .b import x\n", "pkg/b.py": "from . import a\nx = 1\n"})
    assert find_cycle(edges(tmp_path, ("pkg",))) is not None


def test_importing_a_module_runs_its_packages_init(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/sub/__init__.py": "from pkg.sub.a import x\n",
        "pkg/sub/a.py": "from pkg.other import y\nx = 1\n",
        "pkg/other.py": "import pkg.sub.b\ny = 2\n",
        "pkg/sub/b.py": "from pkg.sub.a import x\n",  # inside its own package: no edge to pkg.sub
    }
    _write(tmp_path, files)
    cycle = find_cycle(edges(tmp_path, ("pkg",)))
    assert cycle is not None and ("pkg.other", "pkg.sub") in [(importer, imported) for importer, imported, _ in cycle]
    (tmp_path / "pkg/other.py").write_text("y = 2\n")
    assert find_cycle(edges(tmp_path, ("pkg",))) is None
