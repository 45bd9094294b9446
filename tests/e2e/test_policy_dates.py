"""The dates a message states come from its jurisdiction's policy pack, through the CLI: the
pay-by date (`messages.pay_by_days`) and the US validation notice's dispute deadline
(`validation_notice`), counted over business days that leave out the pack's holiday calendar. A
pack without `validation_notice` builds no notice; a bad value is refused by `config check`."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import bootstrap
from dunning.cli._common import STATE
from dunning.compliance import Linter, LintRules
from dunning.db.tables import OUTBOX
from dunning.project import Project
from dunning.rendering import TemplateStore, format_date
from tests.factories import add_account
from tests.helpers import invoke

AS_OF = date(2026, 11, 24)
"""A Tuesday, two days before Thanksgiving (Thursday 26 November 2026, a federal holiday)."""

NOTICE = "Total amount of the debt now"
"""A line of the validation notice in the US letters."""


@pytest.fixture
def program(env: Path, tmp_path: Path, repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's program with no contact windows, caps or no-contact holidays
    (what is tested is the dates messages state, not when they go)."""
    target = tmp_path / "program"
    target.mkdir()
    shutil.copy(repo_dir / "dunning.yaml", target / "dunning.yaml")
    shutil.copytree(repo_dir / "config", target / "config")
    shutil.copytree(repo_dir / "templates", target / "templates")

    def open_all(pack: dict[str, Any]) -> None:
        pack["contact_windows"] = {channel: None for channel in pack["contact_windows"]}
        pack["frequency_caps"] = []
        pack["holidays"] = None

    for jurisdiction in ("US", "CN"):
        edit_pack(target, jurisdiction, open_all)
    monkeypatch.setenv("DUNNING_PROJECT_DIR", str(target))
    # The run is made on its as-of date: a message's dates count from the day it goes out.
    monkeypatch.setattr(STATE, "clock", lambda: datetime.combine(AS_OF, time(15), UTC))
    return target


def edit_pack(program: Path, jurisdiction: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = program / "config" / "compliance" / f"{jurisdiction}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def run_day(capsys: pytest.CaptureFixture[str], program: Path) -> dict[str, dict[str, Any]]:
    """A US account due an SMS (DPD 3) and a letter (DPD 31) and a CN account due an SMS, run
    through the CLI: the outbox row of each by name."""
    runtime = bootstrap(project=Project(program))
    try:
        with runtime.unit_of_work() as c:
            ids = {
                name: add_account(c, dpd=dpd, as_of=AS_OF, jurisdiction=jurisdiction)
                for name, (dpd, jurisdiction) in {
                    "us_sms": (3, "US"),
                    "us_letter": (31, "US"),
                    "cn_sms": (3, "CN"),
                }.items()
            }
        result = invoke(capsys, "run", "daily", "--as-of", str(AS_OF), "--in-process", "--json")
        assert result.code == 0, result.err
        with runtime.engine.connect() as c:
            rows = {row.account_id: dict(row._mapping) for row in c.execute(select(OUTBOX))}
    finally:
        runtime.close()
    return {name: rows[account] for name, account in ids.items()}


def us_day(day: date) -> str:
    return format_date(day, "long", "en-US")


def test_the_shipped_packs_dates(capsys: pytest.CaptureFixture[str], program: Path) -> None:
    """Pay by a week later everywhere; in the US, receipt is assumed 5 business days after
    sending, Thanksgiving not counted (2 December), and the dispute deadline is 30 days after
    it. Counting weekends only gave 1 December and 31 December: a day less than Reg F allows."""
    rows = run_day(capsys, program)
    assert {row["channel"] for row in rows.values()} == {"sms", "letter"}
    assert all(row["status"] == "sent" for row in rows.values()), rows
    assert "Please pay by Dec 1, 2026" in rows["us_sms"]["body"]
    assert "请于2026年12月1日前" in rows["cn_sms"]["body"]
    letter = rows["us_letter"]["body"]
    assert f"by {us_day(date(2026, 12, 1))}" in letter
    assert NOTICE in letter
    assert f"Call or write to us by {us_day(date(2027, 1, 1))} to dispute" in letter
    assert us_day(date(2026, 12, 31)) not in letter


def test_a_pack_with_other_periods_changes_the_dates(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    def longer(pack: dict[str, Any]) -> None:
        pack["messages"] = {"pay_by_days": 10}
        pack["validation_notice"] = {
            "receipt_business_days": 3,
            "dispute_period_days": 45,
            "holiday_calendar": "US",
        }

    edit_pack(program, "US", longer)
    rows = run_day(capsys, program)
    assert "Please pay by Dec 4, 2026" in rows["us_sms"]["body"]
    letter = rows["us_letter"]["body"]
    assert f"by {us_day(date(2026, 12, 4))}" in letter
    # Three business days: the 25th, the 27th (Thanksgiving is not one), the 30th; then 45 days.
    assert f"Call or write to us by {us_day(date(2027, 1, 14))} to dispute" in letter
    assert "请于2026年12月1日前" in rows["cn_sms"]["body"]  # the CN pack is unchanged


def test_a_pack_without_a_validation_notice_builds_none(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    """As in the CN pack: no `validation_notice` (and no letter field that needs one), so the
    letter goes with its other content and no notice."""

    def without(pack: dict[str, Any]) -> None:
        del pack["validation_notice"]
        pack["letter_required_fields"] = []

    edit_pack(program, "US", without)
    rows = run_day(capsys, program)
    letter = rows["us_letter"]
    assert letter["status"] == "sent"
    assert "attempting to collect a debt" in letter["body"]
    assert f"by {us_day(date(2026, 12, 1))}" in letter["body"]
    assert NOTICE not in letter["body"] and "to dispute" not in letter["body"]


@pytest.mark.parametrize(
    ("change", "key", "reason"),
    [
        (
            lambda p: p.update(messages={"pay_by_days": 0}),
            "messages.pay_by_days",
            "greater than or equal to 1",
        ),
        (
            lambda p: p["validation_notice"].update(dispute_period_days="thirty"),
            "validation_notice.dispute_period_days",
            "valid integer",
        ),
        (
            lambda p: p["validation_notice"].update(receipt_business_days=90),
            "validation_notice.receipt_business_days",
            "less than or equal to 30",
        ),
        (
            lambda p: p["validation_notice"].pop("dispute_period_days"),
            "validation_notice.dispute_period_days",
            "Field required",
        ),
        (
            lambda p: p["validation_notice"].update(holiday_calendar="XX"),
            "validation_notice.holiday_calendar",
            "no holiday calendar for country 'XX'",
        ),
        (
            # Letters must print the notice: without the section they would go without it.
            lambda p: p.pop("validation_notice"),
            "validation_notice",
            "letter_required_fields requires validation.itemization_date",
        ),
    ],
    ids=["pay_by_zero", "not_a_number", "too_many_days", "missing_key", "calendar", "required"],
)
def test_config_check_refuses_a_bad_value_by_file_and_key(
    capsys: pytest.CaptureFixture[str],
    program: Path,
    change: Callable[[dict[str, Any]], None],
    key: str,
    reason: str,
) -> None:
    edit_pack(program, "US", change)
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert result.code == 1
    problems = result.json()["problems"]
    assert {(p["file"], p["key"]) for p in problems} == {("config/compliance/US.yaml", key)}
    assert all(reason in p["reason"] for p in problems)


def test_lint_and_previews_render_with_the_packs_dates(
    capsys: pytest.CaptureFixture[str], program: Path
) -> None:
    """Lint and the preview gallery show a template with the dates its pack gives: the sample
    account's pay-by date moves with `pay_by_days`, and without a `validation_notice` a
    template that prints `validation` unguarded fails lint instead of printing nothing."""
    edit_pack(program, "US", lambda pack: pack.update(messages={"pay_by_days": 10}))
    linter = Linter(TemplateStore(program / "templates/messages"), rules(program))
    (sample, *_) = linter.samples(linter.store.get("sms/early/reminder.en-US"))
    assert "Please pay by Jun 26, 2025" in sample.message.text  # SAMPLE_AS_OF + 10 days
    (sample, *_) = linter.samples(linter.store.get("letter/middle/notice.en-US"))
    notice = sample.context.validation
    assert notice is not None and notice.dispute_by == date(2025, 7, 24)  # Juneteenth skipped
    assert f"Call or write to us by {us_day(notice.dispute_by)} to dispute" in sample.message.text

    path = program / "templates/messages/letter/middle/deadline.en-US.typ"
    path.write_text(
        "{#---\nid: letter/middle/deadline.en-US\nchannel: letter\ntier: middle\n"
        "locale: en-US\njurisdiction: US\npurpose: notice\nvariables: [validation.dispute_by]\n"
        '---#}\n#import "letter.typ": *\n#show: letter.with(lang: "en")\n'
        "Dispute by {{ validation.dispute_by | date }}.\n",
        encoding="utf-8",
    )

    def without(pack: dict[str, Any]) -> None:
        del pack["validation_notice"]
        pack["letter_required_fields"] = []
        pack["disclosures"] = []

    edit_pack(program, "US", without)
    result = invoke(
        capsys, "--project-dir", str(program), "templates", "lint", "--json",
        "letter/middle/deadline.en-US", "letter/middle/notice.en-US",
    )  # fmt: skip
    assert result.code == 1
    findings = [(f["template"], f["rule"]) for f in result.json()["findings"]]
    assert findings == [("letter/middle/deadline.en-US", "template.render")], result.out


def rules(program: Path) -> LintRules:
    return LintRules.from_project(Project(program))
