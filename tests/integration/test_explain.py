"""`dunning explain`: what happened to a message already decided, and the zones behind a wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dunning.bootstrap import Runtime
from dunning.cli._common import STATE
from dunning.services.outreach.plan import plan_batch
from tests.helpers import invoke, outreach_at, write_csv

AS_OF = datetime(2026, 11, 24).date()
MORNING = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
"""08:30 in New York, 07:30 in Chicago, 05:30 in Los Angeles, 21:30 in Shanghai, 13:30 in
London."""
CUSTOMERS = {
    # external id: time zone, phone, region (all US addresses)
    "C-paid": ("America/Chicago", "+13125550142", "IL"),
    "C-split": ("", "+12125550142", "CA"),  # a New York number, a California address
    # Shanghai recorded, a London mobile, a California address: no hour is daytime in all three.
    "C-apart": ("Asia/Shanghai", "+447911123456", "CA"),
}


@pytest.fixture
def planned(capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path) -> Runtime:
    """Three accounts 3 days past due, their SMS planned at MORNING; the first one then paid."""
    customers = [
        {
            "external_id": ext,
            "name": "Ann Lee",
            "locale": "en-US",
            "time_zone": zone,
            "phone": phone,
            "address_line1": "9 Elm St",
            "city": "Springfield",
            "region": region,
            "postal_code": "60601",
            "country": "US",
            "sms_consent": "true",
        }
        for ext, (zone, phone, region) in CUSTOMERS.items()
    ]
    accounts = [
        {
            "external_id": f"A{ext[1:]}",
            "customer_external_id": ext,
            "product": "loan",
            "currency": "USD",
            "jurisdiction": "US",
            "principal": "500",
            "opened_on": "2026-01-01",
        }
        for ext in CUSTOMERS
    ]
    due = str(AS_OF - timedelta(days=3))
    instalments = [
        {"account_external_id": f"A{ext[1:]}", "seq": "1", "due_on": due, "amount_due": "120"}
        for ext in CUSTOMERS
    ]
    files = {
        kind: (list(rows[0]), [list(row.values()) for row in rows])
        for kind, rows in (
            ("customers", customers),
            ("accounts", accounts),
            ("instalments", instalments),
        )
    }
    for kind, (header, rows) in files.items():
        result = invoke(capsys, "import", kind, str(write_csv(tmp_path / "f.csv", header, rows)))
        assert result.code == 0, result.err
    env = outreach_at(runtime, MORNING)
    with runtime.runs.run("daily-outreach", AS_OF) as run:
        plan_batch(env.planner, run.id, AS_OF, 0, 2**31 - 1)
    env.close()
    payment = write_csv(
        tmp_path / "p.csv",
        ["external_id", "account_external_id", "amount", "paid_on"],
        [["P1", "A-paid", "120", str(AS_OF + timedelta(days=1))]],
    )
    assert invoke(capsys, "import", "payments", str(payment)).code == 0
    return runtime


def explain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, account: str, *json: str
) -> str:
    monkeypatch.setattr(STATE, "clock", lambda: MORNING)
    result = invoke(capsys, "explain", account, "--as-of", str(AS_OF), *json)
    assert result.code == 0, result.err
    return result.out if json else " ".join(result.out.split())  # as one line, unwrapped


def test_a_message_cancelled_as_paid_is_shown_cancelled_not_deferred(
    planned: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = invoke_json(capsys, monkeypatch, "A-paid")
    (recorded,) = data["recorded"]
    assert (recorded["status"], recorded["rule"]) == ("cancelled", "paid")
    (now,) = data["rules_now"]
    assert (now["verdict"], now["rule"]) == ("cancelled", "paid")
    text = explain(capsys, monkeypatch, "A-paid")
    assert "rules now: early-sms on sms: cancelled by rule paid" in text
    assert "defer" not in text


def test_a_deferral_names_the_zones_that_cause_it_and_no_contact_point(
    planned: Runtime, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = invoke_json(capsys, monkeypatch, "A-split")
    (now,) = data["rules_now"]
    assert (now["verdict"], now["not_before"]) == ("defer", "2026-11-24T16:00:00+00:00")
    assert now["zones"] == ["America/Los_Angeles", "America/New_York"]
    assert now["closed_now"] == ["America/Los_Angeles"]
    text = explain(capsys, monkeypatch, "A-split")
    assert (
        "defer until 2026-11-24T16:00:00+00:00 (window shut now in America/Los_Angeles of the "
        "candidate zones America/Los_Angeles, America/New_York)"
    ) in text
    # Zones, not what they were inferred from.
    assert "2125550142" not in text and "Elm" not in text and "Springfield" not in text

    data = invoke_json(capsys, monkeypatch, "A-apart")
    (now,) = data["rules_now"]
    assert (now["verdict"], now["rule"]) == ("held", "no_contact_window")
    assert {"America/Los_Angeles", "Asia/Shanghai", "Europe/London"} <= set(now["zones"])
    assert now["closed_now"] == ["America/Los_Angeles", "Asia/Shanghai"]


def invoke_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, account: str
) -> dict[str, object]:
    import json

    data: dict[str, object] = json.loads(explain(capsys, monkeypatch, account, "--json"))
    return data
