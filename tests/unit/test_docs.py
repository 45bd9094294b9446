"""The reference docs are generated from, or checked against, the code they describe."""

from __future__ import annotations

from pathlib import Path

from dunning.cli.app import app
from dunning.cli.reference import reference
from dunning.services.imports.files import SPECS


def test_cli_reference_is_current(repo_dir: Path) -> None:
    current = (repo_dir / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == reference(app), (
        "docs/cli.md is stale: run `.venv/bin/python -m dunning.cli.reference > docs/cli.md`"
    )


def test_import_formats_document_every_column(repo_dir: Path) -> None:
    text = (repo_dir / "docs" / "imports.md").read_text(encoding="utf-8")
    for kind, columns in SPECS.items():
        section = text.split(f"`dunning import {kind} FILE`")[1].split("\n## ")[0]
        for column in columns:
            assert f"| `{column.name}` |" in section, (kind, column.name)
