"""Templates that fail on an account's data, through the CLI: lint and forced approval, then the
daily run holds the message `render_failed`, naming the template file's own line, and sends
nothing of it."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import bootstrap
from dunning.db.tables import OUTBOX
from dunning.project import Project
from sandbox import GatewayLedger, ledger_path
from tests.factories import add_account
from tests.helpers import invoke

AS_OF = date(2026, 11, 24)


@pytest.fixture
def program(env: Path, tmp_path: Path, repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's program, its templates approved as shipped, with no contact
    windows or frequency caps (what is tested is rendering, not the clock)."""
    target = tmp_path / "program"
    target.mkdir()
    shutil.copy(repo_dir / "dunning.yaml", target / "dunning.yaml")
    shutil.copytree(repo_dir / "config", target / "config")
    shutil.copytree(repo_dir / "templates", target / "templates")
    for pack in (target / "config" / "compliance").glob("[A-Z]*.yaml"):
        data = yaml.safe_load(pack.read_text())
        data["contact_windows"] = {channel: None for channel in data["contact_windows"]}
        data["frequency_caps"] = []
        data["holidays"] = None
        pack.write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setenv("DUNNING_PROJECT_DIR", str(target))
    return target


def edit(program: Path, template_id: str, old: str, new: str) -> int:
    """Replace `old` (once) in a template file; the file's line (1-based) that holds `new`."""
    ext = ".typ" if template_id.startswith("letter/") else ".txt"
    path = program / "templates/messages" / f"{template_id}{ext}"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return text[: text.index(new)].count("\n") + 1


def force_approve(capsys: pytest.CaptureFixture[str], template_id: str) -> None:
    result = invoke(
        capsys, "templates", "approve", template_id, "--reviewer", "ana.lee", "--force",
        "--note", "approved anyway, to see what the daily run does",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "despite lint errors" in result.out


def run_day(
    capsys: pytest.CaptureFixture[str], program: Path, accounts: dict[str, tuple[int, str]]
) -> tuple[dict[str, dict[str, object]], GatewayLedger]:
    """Add one account per name (DPD, jurisdiction), run the day through the CLI, and return the
    outbox row of each account by name and the mock gateways' ledger."""
    runtime = bootstrap(project=Project(program))
    try:
        with runtime.unit_of_work() as c:
            ids = {
                name: add_account(c, dpd=dpd, as_of=AS_OF, jurisdiction=jurisdiction)
                for name, (dpd, jurisdiction) in accounts.items()
            }
        result = invoke(capsys, "run", "daily", "--as-of", str(AS_OF), "--in-process", "--json")
        assert result.code == 0, result.err
        with runtime.engine.connect() as c:
            rows = {row.account_id: dict(row._mapping) for row in c.execute(select(OUTBOX))}
        project = runtime.project
        book = GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir))
    finally:
        runtime.close()
    return {name: rows[account] for name, account in ids.items()}, book


def test_a_held_message_names_the_line_of_the_template_file(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    # A push template of 12 lines was held naming line 34: a line of the generated Python code.
    push = "push/early/reminder.en-US"
    push_line = edit(
        program, push, "view it.{% endblock %}", "view it. {{ lender.nickname }}{% endblock %}"
    )
    sms = "sms/early/reminder.en-US"
    sms_line = edit(
        program,
        sms,
        "on your account is past due.",
        "on your account {{ 1 // (dpd - dpd) }} is past due.",
    )
    letter = "letter/middle/notice.en-US"
    letter_line = edit(program, letter, "\\ {{ line }}", "\\ {{ line }}{{ lender.nickname }}")
    assert (push_line, sms_line, letter_line) == (12, 11, 46)
    for template_id in (push, sms, letter):
        force_approve(capsys, template_id)

    rows, book = run_day(
        capsys,
        program,
        {"push": (1, "US"), "sms": (3, "US"), "letter": (31, "US"), "other": (3, "CN")},
    )
    errors = {
        name: (row["status"], row["suppression"], row["last_error"]) for name, row in rows.items()
    }
    assert errors == {
        "push": ("held", "render_failed", f"{push}: line 12: undefined variable 'nickname'"),
        "sms": ("held", "render_failed", f"{sms}: line 11: ZeroDivisionError while rendering"),
        "letter": ("held", "render_failed", f"{letter}: line 46: undefined variable 'nickname'"),
        "other": ("sent", None, None),
    }
    assert [row.idempotency_key for row in book.rows()] == [rows["other"]["idempotency_key"]]


def test_a_method_named_without_a_call_is_refused_and_never_sent(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    # `{{ lender.name.upper }}` went out as "<built-in method upper of str object at 0x7f...>".
    sms = "sms/early/reminder.en-US"
    sms_line = edit(program, sms, "this is {{ lender.name }}.", "this is {{ lender.name.upper }}.")
    letter = "letter/middle/notice.en-US"
    letter_line = edit(
        program, letter, "#lender-name[{{ lender.name }}]",
        "#lender-name[{{ lender.name.upper }}]",
    )  # fmt: skip
    push = "push/early/reminder.en-US"
    push_line = edit(
        program, push, "{{ lender.name }}{% endblock %}", "{{ lender.name.title }}{% endblock %}"
    )

    lint = invoke(capsys, "templates", "lint", sms, letter, push, "--json")
    assert lint.code == 1
    found = {(f["template"], f["line"], f["rule"]) for f in lint.json()["findings"]}
    assert found == {
        (sms, sms_line, "template.render"),
        (letter, letter_line, "template.render"),
        (push, push_line, "template.render"),
    }
    assert all(
        f["message"].startswith("with the sample account at DPD ")
        and f["message"].endswith(
            ": prints a method (call it, or print a field): only text, numbers, dates and money "
            "can go into a message"
        )
        for f in lint.json()["findings"]
    )
    refused = invoke(capsys, "templates", "approve", sms, "--reviewer", "ana.lee")
    assert refused.code == 1 and "lint error(s) (template.render)" in refused.err
    for template_id in (sms, letter, push):
        force_approve(capsys, template_id)

    rows, book = run_day(
        capsys,
        program,
        {"sms": (3, "US"), "letter": (31, "US"), "push": (1, "US"), "other": (3, "CN")},
    )
    method = (
        "prints a method (call it, or print a field): only text, numbers, dates and money can go "
        "into a message"
    )
    assert {
        name: (row["status"], row["suppression"], row["last_error"]) for name, row in rows.items()
    } == {
        "sms": ("held", "render_failed", f"{sms}: line {sms_line}: {method}"),
        "letter": ("held", "render_failed", f"{letter}: line {letter_line}: {method}"),
        "push": ("held", "render_failed", f"{push}: line {push_line}: {method}"),
        "other": ("sent", None, None),
    }
    for name in ("sms", "letter", "push"):
        assert rows[name]["body"] is None and rows[name]["recipient"] is None
    assert [row.idempotency_key for row in book.rows()] == [rows["other"]["idempotency_key"]]
    assert not any("object at 0x" in (row.body or "") for row in book.rows())
