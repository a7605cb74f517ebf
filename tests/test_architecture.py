"""The package's shape: imports point one way, functions stay short, the seam with Anomalib stays public."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "anomalib_glocalclip"
MAX_FUNCTION_LINES = 80
MAX_NOQA = 40
MAX_ANY_LINES = 50
"""Issue 28: ``Any`` stays only where the Lightning or Anomalib signature being implemented has it."""


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(module: str, path: Path, node: ast.AST, modules: dict[str, Path]) -> list[str]:
    """Package modules named by one import statement (``from . import x`` names the submodule ``x``)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            stem = ".".join([*base, *([node.module] if node.module else [])])
        else:
            stem = node.module or ""
        names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
    else:
        return []
    found = []
    for name in names:
        target = name
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != module:
            found.append(target)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, counting every import statement at any depth."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[module] = {target for node in ast.walk(tree) for target in _imported(module, path, node, modules)}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles: the strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_circle_finder_finds_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve_to_package_modules() -> None:
    graph = import_graph()
    assert "anomalib_glocalclip.backbone.loading" in graph["anomalib_glocalclip.backbone"]
    assert "anomalib_glocalclip.components" in graph["anomalib_glocalclip.glocalclip.lightning_model"]
    assert "anomalib_glocalclip.glocalclip.prompt_file" in graph["anomalib_glocalclip.glocalclip.lightning_model"]


def test_no_import_circles() -> None:
    assert circles(import_graph()) == []


def test_no_module_imports_cli_but_cli() -> None:
    graph = import_graph()
    users = {module for module, targets in graph.items() if any(t.startswith(f"{PACKAGE}.cli") for t in targets)}
    assert {module for module in users if not module.startswith(f"{PACKAGE}.cli")} == set()


def test_no_function_longer_than_80_lines() -> None:
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_no_call_stack_reading_private_loop_attributes_or_excepthook() -> None:
    pattern = re.compile(r"_getframe|f_locals|_data_source|excepthook|_initializing")
    hits = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_noqa_comments_are_few() -> None:
    count = sum(path.read_text().count("# noqa") for path in SRC.rglob("*.py"))
    assert count <= MAX_NOQA


def _lines_naming_any(root: Path = SRC) -> list[str]:
    """``path:line`` of each source line outside import statements with the word ``Any`` (as ``grep -w`` finds)."""
    word, import_line = re.compile(r"\bAny\b"), re.compile(r"^\s*(from|import) ")
    return [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if word.search(line) and not import_line.match(line)
    ]


def test_any_line_counter_skips_imports_and_names_the_lines(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "m.py").write_text(
        "from typing import Any\nimport typing\n\ndef f(x: Any) -> int:\n    return 1  # Anything goes\n"
        "y: dict[str, Any] = {}\n"
    )
    assert _lines_naming_any(tmp_path) == [f"{PACKAGE}/m.py:4", f"{PACKAGE}/m.py:6"]


@pytest.mark.xfail(reason="until the other branches merge", strict=False)
def test_any_is_rare_and_ann401_is_on_without_exceptions() -> None:
    lines = _lines_naming_any()
    assert len(lines) <= MAX_ANY_LINES, lines
    silenced = [
        f"{path.relative_to(SRC)}:{number}"
        for path in SRC.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"#\s*noqa:.*\bANN401\b", line)
    ]
    assert silenced == []
    assert '"ANN401"' not in (SRC.parent / "pyproject.toml").read_text(), "ruff's ANN401 is still ignored"
