"""The house rules of python/trader that a reader sees in its layout (issue 12): no import cycle among
the trader modules (module-level imports, the ones that run when a module is imported) and no module
over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import PACKAGE_ROOT

TRADER = PACKAGE_ROOT / "trader"
MAX_LINES = 500


def modules(root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: file} of every .py file of the package in folder `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = (package, *path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = modules(TRADER, "trader")


def module_level(body: list[ast.stmt]):
    """The import statements that run on import: in the module body and its if / try / with blocks,
    not inside functions or classes."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                yield from module_level([n for n in getattr(node, field, []) if isinstance(n, ast.AST)])


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The `known` modules that `name` imports at module level: `import a.b` -> a.b; `from a import b`
    -> a.b when that is a module, else a (b comes from a's namespace); relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in module_level(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        for alias in node.names:
            target = f"{base}.{alias.name}"
            out.add(target if target in known else base)
    return {m for m in out if m in known and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [m0, m1, ..., m0], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_graph_sees_the_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("import os\nx = 1\ndef f():\n    from pkg import b\n")  # b: not at module level
    (pkg / "b.py").write_text("try:\n    from pkg.sub import c\nexcept ImportError:\n    pass\n")
    (pkg / "sub" / "__init__.py").write_text("from .. import a\nfrom ..b import *\n")
    (pkg / "sub" / "c.py").write_text("import pkg.sub\nfrom pkg import x\n")
    known = modules(pkg, "pkg")
    graph = {m: imports(m, p, known) for m, p in known.items()}
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": set(), "pkg.b": {"pkg.sub.c"}, "pkg.sub": {"pkg.a", "pkg.b"},
                     "pkg.sub.c": {"pkg.sub", "pkg"}}
    assert find_cycle(graph) == ["pkg.b", "pkg.sub.c", "pkg.sub", "pkg.b"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    graph = {m: imports(m, p, MODULES) for m, p in MODULES.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]}: {lines} lines (at most {MAX_LINES}); split it by concept"
