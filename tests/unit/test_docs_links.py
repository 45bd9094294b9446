"""The docs' links lead somewhere, and docs/index.md leads to every page.

A page renamed or split (docs/adapters.md became four pages) must not leave a link, or a
`#section` of one, pointing at nothing; a new page must be given a reader's path in the index.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

POINTER_PAGES = {"adapters.md"}
"""Pages that only point to where their content went; the index need not list them."""

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def pages(repo_dir: Path) -> list[Path]:
    found = [repo_dir / "README.md", repo_dir / "DEVELOPERS.md"]
    found += sorted((repo_dir / "docs").glob("*.md"))
    found.append(repo_dir / "templates" / "messages" / "README.md")
    return [page for page in found if page.exists()]


def prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in prose(page.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match is None:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [
        target
        for line in prose(page.read_text(encoding="utf-8"))
        for target in _LINK.findall(line)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def broken(repo_dir: Path, page: Path) -> list[str]:
    problems = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        where = f"{page.relative_to(repo_dir)}: ({target})"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            problems.append(f"{where}: no heading #{fragment}")
    return problems


def test_every_relative_link_and_anchor_resolves(repo_dir: Path) -> None:
    problems = [problem for page in pages(repo_dir) for problem in broken(repo_dir, page)]
    assert problems == []


def test_the_index_links_every_page(repo_dir: Path) -> None:
    index = repo_dir / "docs" / "index.md"
    linked = {target.partition("#")[0] for target in links(index)}
    listed = {page.name for page in (repo_dir / "docs").glob("*.md")}
    assert listed - linked - POINTER_PAGES - {"index.md"} == set()


def test_the_link_check_finds_a_broken_link_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## The dispatcher: `dispatch`\n")
    page = tmp_path / "docs" / "b.md"
    page.write_text(
        "[ok](a.md#the-dispatcher-dispatch) [gone](c.md) [no](a.md#nowhere)\n"
        "```\n[in code](d.md)\n```\n[web](https://example.com)\n"
    )
    assert broken(tmp_path, page) == [
        "docs/b.md: (c.md): no such file",
        "docs/b.md: (a.md#nowhere): no heading #nowhere",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("1. The schedule: `config/schedules.yaml`", "1-the-schedule-configschedulesyaml"),
        ("Testing with httpx.MockTransport", "testing-with-httpxmocktransport"),
        ("SMS replies: opt-outs by text", "sms-replies-opt-outs-by-text"),
    ],
)
def test_anchors_are_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
