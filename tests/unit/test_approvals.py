"""Template approvals fail closed: only the exact approved text is approved."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from dunning.compliance import (
    ApprovalBook,
    Linter,
    LintRules,
    approve_template,
    stale_approvals,
    template_statuses,
)
from dunning.config import BannedPhrases, load_file
from dunning.config.packs import load_packs
from dunning.errors import ConfigError, TemplateError
from dunning.rendering import TemplateStore

REPO = Path(__file__).resolve().parents[2]
AT = datetime(2025, 6, 16, 9, 30, tzinfo=UTC)
SMS = """{{#---
id: sms/early/reminder.en-US
channel: sms
tier: early
locale: en-US
jurisdiction: US
purpose: reminder
variables: []
---#}}
{body}
"""


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A templates/ directory with one SMS template in templates/messages/."""
    root = tmp_path / "templates"
    write_sms(root, "Hello.  \nThis is a message from a debt collector. Reply STOP to opt out")
    return root


def write_sms(root: Path, body: str) -> None:
    path = root / "messages/sms/early/reminder.en-US.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SMS.format(body=body), encoding="utf-8")


def store_of(root: Path) -> TemplateStore:
    return TemplateStore(root / "messages")


@pytest.fixture(scope="module")
def rules() -> LintRules:
    return LintRules(
        packs=load_packs(REPO / "config", REPO),
        banned=load_file(REPO / "config/compliance/banned_phrases.yaml", BannedPhrases, REPO),
    )


def test_no_file_means_nothing_is_approved(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook.load(templates)
    assert not book.is_approved(ref.id, ref.content_hash)
    assert [s.state for s in template_statuses(store_of(templates), book)] == ["never approved"]


def test_approve_save_load(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook.load(templates)
    book.approve(ref, reviewer="ana.lee", note="checked against Reg F", at=AT)
    path = book.save(templates)
    assert path == templates / "approvals.yaml"

    loaded = ApprovalBook.load(templates)
    assert loaded.is_approved(ref.id, ref.content_hash)
    assert not loaded.is_approved(ref.id, "0" * 64)
    assert not loaded.is_approved("sms/early/other.en-US", ref.content_hash)
    approval = loaded.get(ref.id)
    assert approval is not None
    assert approval.source == ref.source  # exactly, trailing spaces included
    assert (approval.reviewer, approval.note, approval.approved_at) == (
        "ana.lee",
        "checked against Reg F",
        AT,
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Compliance approvals")
    assert "approved_at: '2025-06-16T09:30:00Z'" in text
    assert yaml.safe_load(text)["approvals"][ref.id]["content_hash"] == ref.content_hash


def test_the_approved_text_reads_back_exactly(templates: Path) -> None:
    awkward = "【邓宁】 tabs\there, trailing  \n\n  indented\r\nend without newline"
    write_sms(templates, awkward)
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook()
    book.approve(ref, reviewer="ana.lee", at=AT)
    book.save(templates)
    approval = ApprovalBook.load(templates).get(ref.id)
    assert approval is not None and approval.source == ref.source


def test_one_character_changes_the_status_and_shows_a_diff(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook()
    book.approve(ref, reviewer="ana.lee", at=AT)
    book.save(templates)
    write_sms(templates, "Hello!  \nThis is a message from a debt collector. Reply STOP to opt out")
    store = store_of(templates)
    changed = store.get(ref.id)
    book = ApprovalBook.load(templates)
    assert not book.is_approved(changed.id, changed.content_hash)
    (status,) = template_statuses(store, book)
    assert status.state == "changed"
    assert "-Hello.  \n+Hello!  \n" in status.diff
    assert "approved 2025-06-16 09:30Z by ana.lee" in status.diff
    assert status.as_dict()["approved_hash"] == ref.content_hash


def test_approving_again_keeps_the_history(templates: Path) -> None:
    first = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook()
    book.approve(first, reviewer="ana.lee", note="v1", at=AT)
    write_sms(templates, "Hi. This is a message from a debt collector. Reply STOP to opt out")
    second = store_of(templates).get(first.id)
    book.approve(second, reviewer="bo.chen", note="v2", at=AT.replace(hour=11))
    book.save(templates)
    loaded = ApprovalBook.load(templates)
    assert loaded.is_approved(second.id, second.content_hash)
    assert not loaded.is_approved(first.id, first.content_hash)  # the latest approval wins
    approval = loaded.get(first.id)
    assert approval is not None
    assert [(h.reviewer, h.note, h.content_hash) for h in approval.history] == [
        ("ana.lee", "v1", first.content_hash)
    ]


def test_the_letter_layout_is_part_of_the_approved_text(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    shutil.copytree(REPO / "templates/messages", root / "messages")
    shutil.copytree(REPO / "templates/typst", root / "typst")
    store = store_of(root)
    book = ApprovalBook()
    for ref in store.all():
        book.approve(ref, reviewer="ana.lee", at=AT)
    layout = root / "typst/letter.typ"
    layout.write_text(layout.read_text() + "\n#let extra = red\n", encoding="utf-8")
    statuses = {s.template_id: s for s in template_statuses(store_of(root), book)}
    letters = [s for s in statuses.values() if s.template_id.startswith("letter/")]
    assert letters and all(s.state == "changed" for s in letters)
    assert "+#let extra = red" in letters[0].diff and "layout" in letters[0].diff
    assert all(s.state == "approved" for s in statuses.values() if s not in letters)


def test_stale_approvals(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook()
    book.approve(ref, reviewer="ana.lee", at=AT)
    (templates / "messages/sms/early/reminder.en-US.txt").rename(
        templates / "messages/sms/early/hello.en-US.txt"
    )
    (templates / "messages/sms/early/hello.en-US.txt").write_text(
        ref.source.replace("reminder.en-US", "hello.en-US"), encoding="utf-8"
    )
    assert stale_approvals(store_of(templates), book) == [ref.id]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("approvals: [1, 2]\n", "approvals"),
        ("approvals:\n  x: {content_hash: abc}\n", "approvals.x.content_hash"),
        ("- just a list\n", "must be a mapping"),
        ("version: 2\n", "version"),
    ],
)
def test_an_invalid_file_is_a_config_error(templates: Path, content: str, problem: str) -> None:
    (templates / "approvals.yaml").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"templates/approvals\.yaml") as info:
        ApprovalBook.load(templates)
    assert problem in str(info.value)


def test_a_naive_time_is_refused(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    book = ApprovalBook()
    book.approve(ref, reviewer="ana.lee", at=AT)
    book.save(templates)
    path = templates / "approvals.yaml"
    path.write_text(path.read_text().replace("T09:30:00Z", "T09:30:00"), encoding="utf-8")
    with pytest.raises(ConfigError, match="approved_at"):
        ApprovalBook.load(templates)


def test_reviewer_is_required(templates: Path) -> None:
    ref = store_of(templates).get("sms/early/reminder.en-US")
    with pytest.raises(TemplateError, match="reviewer"):
        ApprovalBook().approve(ref, reviewer="  ", at=AT)


# --- the approve workflow --------------------------------------------------------------------


def test_lint_errors_refuse_approval_unless_forced_with_a_note(
    templates: Path, rules: LintRules
) -> None:
    write_sms(templates, "Hello. Reply STOP to opt out")  # no debt-collector disclosure
    linter = Linter(store_of(templates), rules)
    template_id = "sms/early/reminder.en-US"
    with pytest.raises(TemplateError, match=r"1 lint error\(s\) \(disclosure.debt-collector\)"):
        approve_template(templates, linter, template_id, reviewer="ana.lee", at=AT)
    assert not (templates / "approvals.yaml").exists()
    with pytest.raises(TemplateError, match="--force needs a --note"):
        approve_template(templates, linter, template_id, reviewer="ana.lee", force=True, at=AT)

    approval, findings = approve_template(
        templates, linter, template_id, reviewer="ana.lee", force=True, note="first-party", at=AT
    )
    assert approval.forced and approval.lint_errors == ["disclosure.debt-collector"]
    assert [f.rule for f in findings] == ["disclosure.debt-collector"]
    ref = store_of(templates).get(template_id)
    assert ApprovalBook.load(templates).is_approved(template_id, ref.content_hash)


def test_a_clean_template_is_approved(templates: Path, rules: LintRules) -> None:
    linter = Linter(store_of(templates), rules)
    approval, findings = approve_template(
        templates, linter, "sms/early/reminder.en-US", reviewer="ana.lee", note="ok", at=AT
    )
    assert findings == [] and not approval.forced and approval.lint_errors == []


# --- the shipped templates ---------------------------------------------------------------------


def test_every_shipped_template_is_approved_as_it_is_now() -> None:
    """Edit a template and this fails until it is re-approved (`dunning templates approve`)."""
    store = TemplateStore(REPO / "templates/messages")
    statuses = template_statuses(store, ApprovalBook.load(REPO / "templates"))
    assert len(statuses) == len(store.all()) > 0
    not_approved = {s.template_id: s.state for s in statuses if s.state != "approved"}
    assert not_approved == {}
    assert stale_approvals(store, ApprovalBook.load(REPO / "templates")) == []


def test_every_shipped_template_is_lint_clean() -> None:
    from dunning.project import Project

    project = Project(REPO)
    linter = Linter(TemplateStore(project.templates_dir), LintRules.from_project(project))
    assert [str(finding) for finding in linter.lint_all()] == []
