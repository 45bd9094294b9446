"""The sandbox (mock gateways, their ledgers and mock-* adapters) is never needed in production.

`adapters`, `flows` and `dunning` import nothing from `sandbox`, except the CLI commands that
serve or count the mock gateways, lazily inside the command; the mock adapters are found
through their entry points like any third-party adapter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Commands whose whole purpose is the sandbox: they import it inside the command function.
LAZY_ONLY = {
    "dunning/cli/commands_gateway.py",
    "dunning/cli/commands_demo.py",
    "dunning/cli/_sandbox.py",
}


def _sandbox_imports(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of each import of sandbox in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, bool]] = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        if any(name == "sandbox" or name.startswith("sandbox.") for name in names):
            found.append((node.lineno, id(node) in top))
    return found


def test_production_packages_do_not_import_the_sandbox() -> None:
    offenders = []
    for package in ("adapters", "flows", "dunning"):
        for path in sorted((REPO / package).rglob("*.py")):
            relative = path.relative_to(REPO).as_posix()
            for line, at_top in _sandbox_imports(path):
                if relative not in LAZY_ONLY or at_top:
                    offenders.append(f"{relative}:{line}")
    assert offenders == []


def test_the_mock_adapters_are_loaded_only_through_their_entry_points() -> None:
    code = (
        "import sys\n"
        "from adapters import adapter_class\n"
        "from adapters.registry import action_adapter_class\n"
        "assert action_adapter_class('file-registry').__module__.startswith('adapters.')\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'sandbox'], 'sandbox loaded'\n"
        "assert adapter_class('mock-sms').__module__.startswith('sandbox.')\n"
        "assert action_adapter_class('mock-agency').__module__.startswith('sandbox.')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
