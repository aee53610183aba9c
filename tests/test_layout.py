"""The package's structure: no import cycles (imports inside functions included), and the
module table of the README names every module."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "bmes_tagger"


def _module_name(path: Path) -> str:
    return "bmes_tagger" if path.name == "__init__.py" else f"bmes_tagger.{path.stem}"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def package_imports() -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (functions included); imports under
    ``if TYPE_CHECKING:`` are left out, since they never run."""
    modules = {_module_name(p) for p in PACKAGE.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.glob("*.py")):
        name = _module_name(path)
        edges: set[str] = set()

        def visit(node: ast.AST, edges: set[str] = edges) -> None:
            if isinstance(node, ast.If) and _is_type_checking(node):
                for child in node.orelse:
                    visit(child)
                return
            if isinstance(node, ast.ImportFrom):
                base = "bmes_tagger" if node.level else (node.module or "")
                target = f"{base}.{node.module}" if node.level and node.module else base
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:  # `from . import features`
                        edges.add(f"{target}.{alias.name}")
                    elif target in modules:  # a name defined in the module (or __init__)
                        edges.add(target)
            elif isinstance(node, ast.Import):
                edges.update(a.name for a in node.names if a.name in modules)
            for child in ast.iter_child_nodes(node):
                visit(child)

        visit(ast.parse(path.read_text(encoding="utf-8")))
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycles() -> None:
    graph = package_imports()
    assert "bmes_tagger.train" in graph and "bmes_tagger.predict" in graph["bmes_tagger.train"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_readme_module_table_names_every_module() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## How the code is laid out"):]
    section = section[:section.index("\n## ")]
    missing = [p.name for p in PACKAGE.glob("*.py") if f"`{p.name}`" not in section]
    assert not missing, f"add to the README's module table: {missing}"


def test_every_test_the_guarantees_table_names_exists() -> None:
    """The README's Guarantees table names the test behind each promise: a renamed or
    deleted test must not leave a promise that nothing checks."""
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    missing, named = [], 0
    for row in table.splitlines():
        if not row.startswith("| ") or row.startswith("| promise") or row.startswith("|---"):
            continue
        current: Path | None = None
        for path, name in re.findall(r"`(?:(tests/test_\w+\.py))?(?:::(\w+))?", row):
            if path:
                current = REPO / path
                assert current.is_file(), path
            if name:
                assert current is not None, (name, row[:80])
                named += 1
                if not re.search(rf"^def {name}\b", current.read_text(encoding="utf-8"),
                                 flags=re.M):
                    missing.append(f"{current.name}::{name}")
    assert named >= 40
    assert not missing, missing
