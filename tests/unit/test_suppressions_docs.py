"""docs/compliance.md lists every suppression a message or an action can be held or cancelled by."""

from __future__ import annotations

import re
from pathlib import Path

from dunning.services.contact import policy as compliance
from dunning.services.lifecycle.actions import STOP_REASONS
from dunning.types import Suppression


def documented(repo_dir: Path) -> set[str]:
    text = (repo_dir / "docs" / "compliance.md").read_text(encoding="utf-8")
    section = text.split("\n### Suppressions\n")[1].split("\n#")[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE))


def written_in_code(repo_dir: Path) -> set[str]:
    """Suppressions the code writes as literals rather than through the Suppression enum."""
    found = {compliance.NO_POLICY_PACK, compliance.NO_CONTACT_WINDOW}
    found |= {compliance.CHANNEL_NOT_ALLOWED, *STOP_REASONS.values()}
    for path in (repo_dir / "dunning").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assigned = r"\b(?:hold|suppression|rule)\s*=\s*\"([a-z_]+)\""
        found |= set(re.findall(assigned, source))
    return found


def test_every_suppression_is_documented(repo_dir: Path) -> None:
    listed = documented(repo_dir)
    assert {reason.value for reason in Suppression} - listed == set()
    assert written_in_code(repo_dir) - listed == set()
    assert "no_agency" in written_in_code(repo_dir)  # the scan finds the literals


def test_the_docs_list_no_suppression_the_code_does_not_have(repo_dir: Path) -> None:
    known = {reason.value for reason in Suppression} | written_in_code(repo_dir)
    assert documented(repo_dir) - known == set()
