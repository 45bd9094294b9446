"""The house holds its shape: no import cycles anywhere, and imports inside functions only for
optional heavy dependencies, each with a comment saying why. (The layers themselves are the
import-linter contracts in pyproject.toml, checked by scripts/test.)"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("dunning", "flows", "adapters", "sandbox")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of modules larger than one (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_round_a_loop() -> None:
    graph = grimp.build_graph(*PACKAGES, include_external_packages=False)
    assert _cycles(graph) == []


HEAVY = (
    "prefect",
    "prefect_dask",
    "flows",  # imports Prefect
    "weasyprint",
    "typst",  # the Typst compiler: printer processes only
    "dunning.config.packs",  # the renderer reads the program's packs only when not given them
    "uvicorn",
    "fastapi",
    "sandbox",
    "dunning.webhooks",  # FastAPI
    "apscheduler",
    "dunning.ops.scheduler",  # APScheduler
)
"""What may be imported inside a function: optional or slow to import, needed by few paths."""


def _explained(lines: list[str], first: int, end: int) -> bool:
    """A comment on the import's own lines, or just above the block of imports it is in."""
    if any("#" in line for line in lines[first:end]):
        return True
    above = first - 1
    while above >= 0 and lines[above].strip().startswith(("from ", "import ", ")")):
        above -= 1
    return above >= 0 and lines[above].strip().startswith("#")


def _imports_in_functions() -> set[tuple[str, int, str, bool]]:
    found = set()
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            source = path.read_text(encoding="utf-8")
            lines = source.splitlines()
            for node in ast.walk(ast.parse(source)):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        names = (
                            [inner.module or ""]
                            if isinstance(inner, ast.ImportFrom)
                            else [alias.name for alias in inner.names]
                        )
                        said = _explained(lines, inner.lineno - 1, inner.end_lineno or inner.lineno)
                        for name in names:
                            found.add((f"{path.relative_to(REPO)}", inner.lineno, name, said))
    return found


def test_imports_inside_functions_are_heavy_optional_ones_each_with_a_reason() -> None:
    wrong = [
        f"{where}:{line}: {name}" + ("" if said else " (no comment saying why)")
        for where, line, name, said in sorted(_imports_in_functions())
        if not name.startswith(HEAVY) or not said
    ]
    assert wrong == []
