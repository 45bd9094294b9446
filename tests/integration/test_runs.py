"""`dunning runs list|show`: the history from our run table, filters, counts, masked errors."""

from __future__ import annotations

from datetime import date

import pytest

from dunning.bootstrap import Runtime
from dunning.errors import GatewayError
from dunning.ops.history import headline_counts
from dunning.services.daily.run import run_daily_outreach
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import invoke
from tests.integration.test_scheduler import open_outreach

AS_OF = OPEN_FOR_ALL.date()


@pytest.fixture
def history(runtime: Runtime) -> dict[str, int]:
    with runtime.unit_of_work() as c:
        for dpd in (3, 7, 31):
            add_account(c, dpd=dpd, as_of=AS_OF)
    env = open_outreach(runtime)
    daily = run_daily_outreach(env, AS_OF)["run_id"]
    env.close()
    with runtime.runs.run("dispatch-outbox", AS_OF) as run:
        dispatch = run.id
        run.complete(
            {"run_id": dispatch, "flow": "dispatch-outbox", "claimed": 4, "sent": 3, "failed": 1}
        )
    with (
        pytest.raises(GatewayError),
        runtime.runs.run("daily-outreach", date(2026, 11, 23)) as run,
    ):
        failed = run.id
        raise GatewayError("refused +8613812345678 (ann@example.com)")
    return {"daily": daily, "dispatch": dispatch, "failed": failed}


def test_runs_list_gives_flow_date_status_counts_and_duration(
    capsys: pytest.CaptureFixture[str], history: dict[str, int]
) -> None:
    result = invoke(capsys, "runs", "list", "--json")
    assert result.code == 0, result.err
    rows = result.json()
    assert [r["id"] for r in rows] == [history["failed"], history["dispatch"], history["daily"]]
    daily = rows[2]
    assert (daily["flow"], daily["as_of"], daily["status"]) == (
        "daily-outreach",
        AS_OF.isoformat(),
        "completed",
    )
    assert daily["counts"]["overdue"] == 3 and daily["counts"]["new_messages"] == 3
    assert daily["counts"]["sent"] == 3 and daily["duration_seconds"] >= 0
    assert "summary" not in daily
    assert rows[1]["counts"] == {"claimed": 4, "sent": 3, "failed": 1}
    assert rows[0]["status"] == "failed" and rows[0]["duration_seconds"] is not None


def test_runs_list_filters(capsys: pytest.CaptureFixture[str], history: dict[str, int]) -> None:
    only_daily = invoke(capsys, "runs", "list", "--flow", "daily-outreach", "--json").json()
    assert {r["id"] for r in only_daily} == {history["daily"], history["failed"]}
    one_day = invoke(capsys, "runs", "list", "--as-of", "2026-11-23", "--json").json()
    assert [r["id"] for r in one_day] == [history["failed"]]
    failed = invoke(capsys, "runs", "list", "--status", "failed", "--json").json()
    assert [r["id"] for r in failed] == [history["failed"]]
    assert len(invoke(capsys, "runs", "list", "--limit", "1", "--json").json()) == 1
    table = invoke(capsys, "runs", "list")
    assert table.code == 0 and "daily-outreach" in table.out


def test_runs_show_gives_the_whole_summary_and_masks_errors(
    capsys: pytest.CaptureFixture[str], history: dict[str, int]
) -> None:
    shown = invoke(capsys, "runs", "show", str(history["daily"]), "--json").json()
    assert shown["summary"]["this_run"]["new_messages"] == 3
    assert shown["summary"]["accounts"]["by_tier"] == {"early": 2, "middle": 1}
    failed = invoke(capsys, "runs", "show", str(history["failed"]), "--json").json()
    assert failed["error"] == "GatewayError: refused +86*******5678 ([email])"
    text = invoke(capsys, "runs", "show", str(history["failed"]))
    assert "13812345678" not in text.out and "+86*******5678" in text.out
    assert "new_messages" in invoke(capsys, "runs", "show", str(history["daily"])).out


def test_runs_show_of_an_unknown_run_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], runtime: Runtime
) -> None:
    result = invoke(capsys, "runs", "show", "999")
    assert result.code == 1 and result.err.strip() == "error: no run 999"


def test_headline_counts_of_flows_without_a_known_summary_shape() -> None:
    assert headline_counts("reconcile-receipts", None) == {}
    assert headline_counts(
        "reconcile-receipts", {"run_id": 1, "checked": 5, "recorded": 2, "by_status": {"x": 1}}
    ) == {"checked": 5, "recorded": 2}
