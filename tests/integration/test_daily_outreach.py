"""The daily outreach in-process: exact messages, every suppression, reruns, faults, receipts."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from dunning.bootstrap import Runtime
from dunning.db.models import Customer
from dunning.db.outreach_models import Run
from dunning.db.tables import EVENT, OUTBOX
from dunning.errors import TemplateError
from dunning.rendering import RenderedMessage, Renderer, TemplateRef
from dunning.rendering.context import MessageContext
from dunning.services.daily import (
    InThisProcess,
    Outreach,
    dispatch_batch,
    poll_receipts,
    run_daily_outreach,
)
from dunning.services.dispatch.printing import LetterPress, printing_elsewhere
from dunning.services.dispatch.send import DispatchReport
from dunning.services.outreach import PlanReport
from dunning.services.runs.batches import Batch
from sandbox import GatewayLedger, ledger_path, outcome_for
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()


@pytest.fixture
def outreach(runtime: Runtime) -> Iterator[Outreach]:
    parts = outreach_at(runtime)
    yield parts
    parts.close()


def ledger(env: Outreach) -> GatewayLedger:
    project = env.runtime.project
    return GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir))


def outbox(env: Outreach) -> list[dict[str, object]]:
    with env.runtime.engine.connect() as c:
        return [dict(r._mapping) for r in c.execute(select(OUTBOX).order_by(OUTBOX.c.id))]


def test_exact_messages_per_tier_channel_and_locale(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        plan = {
            "push-us": add_account(c, dpd=1, as_of=AS_OF),
            "push-cn": add_account(c, dpd=1, as_of=AS_OF, jurisdiction="CN"),
            "fallback": add_account(c, dpd=1, as_of=AS_OF, push_token=None),
            "sms-3": add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN"),
            "sms-14": add_account(c, dpd=14, as_of=AS_OF),
            "quiet-5": add_account(c, dpd=5, as_of=AS_OF),
            "letter-31": add_account(c, dpd=31, as_of=AS_OF),
            "sms-38": add_account(c, dpd=38, as_of=AS_OF, jurisdiction="CN"),
            "letter-61": add_account(c, dpd=61, as_of=AS_OF, jurisdiction="CN"),
            "sms-75": add_account(c, dpd=75, as_of=AS_OF),
            "quiet-76": add_account(c, dpd=76, as_of=AS_OF),
        }
    summary = run_daily_outreach(outreach, AS_OF)
    rows = {row["account_id"]: row for row in outbox(outreach)}
    got = {
        name: (
            rows[i]["tier"],
            rows[i]["step_id"],
            rows[i]["channel"],
            rows[i]["locale"],
            rows[i]["template_id"],
            rows[i]["status"],
        )
        for name, i in plan.items()
        if i in rows
    }
    assert got == {
        "push-us": ("early", "early-push", "push", "en-US", "push/early/reminder.en-US", "sent"),
        "push-cn": ("early", "early-push", "push", "zh-CN", "push/early/reminder.zh-CN", "sent"),
        "fallback": ("early", "early-push", "sms", "en-US", "sms/early/reminder.en-US", "sent"),
        "sms-3": ("early", "early-sms", "sms", "zh-CN", "sms/early/reminder.zh-CN", "sent"),
        "sms-14": ("early", "early-sms", "sms", "en-US", "sms/early/reminder.en-US", "sent"),
        "letter-31": (
            "middle",
            "middle-letter",
            "letter",
            "en-US",
            "letter/middle/notice.en-US",
            "sent",
        ),
        "sms-38": (
            "middle",
            "middle-sms",
            "sms",
            "zh-CN",
            "sms/middle/firm_reminder.zh-CN",
            "sent",
        ),
        "letter-61": (
            "late",
            "late-letter",
            "letter",
            "zh-CN",
            "letter/late/final_demand.zh-CN",
            "sent",
        ),
        "sms-75": ("late", "late-sms", "sms", "en-US", "sms/late/final_reminder.en-US", "sent"),
    }
    assert summary["accounts"] == {"overdue": 11, "by_tier": {"early": 6, "middle": 2, "late": 3}}
    assert summary["messages"]["by_status"] == {"sent": 9}
    stages = {"select", "decide", "render", "outbox_write", "dispatch", "record", "actions"}
    assert stages <= set(summary["timings_seconds"])
    walls = summary["wall_seconds"]
    assert list(walls) == ["start", "lifecycle", "plan", "dispatch", "summary"]
    before_summary = sum(v for k, v in walls.items() if k != "summary")
    assert 0 < before_summary <= summary["duration_seconds"] + 0.002  # each rounded to 1 ms
    # What the gateways hold is exactly what the outbox says was sent, once each.
    sent = {row["idempotency_key"]: row for row in rows.values()}
    book = ledger(outreach)
    assert set(book.keys()) == set(sent)
    assert all(r.submissions == 1 for r in book.rows())
    letter = next(r for r in book.rows() if r.channel == "letter")
    assert letter.document_sha256 == sent[letter.idempotency_key]["document_sha256"]
    chinese_sms = rows[plan["sms-3"]]["body"]
    assert isinstance(chinese_sms, str) and chinese_sms.startswith("【") and "退订" in chinese_sms
    assert "STOP" in str(rows[plan["sms-14"]]["body"])


class SlowPress(LetterPress):
    """A printer in another process, still at work when the batch comes up for dispatch."""

    def submit(self, rendered: RenderedMessage) -> Future[bytes]:
        time.sleep(1.0)
        return super().submit(rendered)


def test_a_batch_planned_in_one_process_and_dispatched_in_another_waits_for_its_letters(
    runtime: Runtime,
) -> None:
    """On Dask a batch is planned on one worker, which prints its letters in the background,
    and dispatched from another: the dispatch waits for the letters and sends them."""
    with runtime.unit_of_work() as c:
        letter = add_account(c, dpd=31, as_of=AS_OF)
        add_account(c, dpd=3, as_of=AS_OF)
    planner = outreach_at(runtime, press=SlowPress(workers=1))
    dispatcher = outreach_at(runtime)

    class TwoWorkers:
        """Plans on one worker's parts and dispatches on another's."""

        width = 1

        def plan(
            self, run_id: int, as_of: date, batches: Sequence[Batch], dry_run: bool
        ) -> list[PlanReport]:
            reports = InThisProcess(planner).plan(run_id, as_of, batches, dry_run)
            while not printing_elsewhere(runtime.engine, None, None):  # the planner has claimed
                time.sleep(0.01)
            return reports

        def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
            return InThisProcess(dispatcher).dispatch(as_of, batches)

    try:
        summary = run_daily_outreach(planner, AS_OF, executor=TwoWorkers())
    finally:
        planner.close()
        dispatcher.close()
    assert summary["messages"]["by_status"] == {"sent": 2}
    (row,) = [r for r in outbox(dispatcher) if r["account_id"] == letter]
    assert row["channel"] == "letter" and row["status"] == "sent"
    assert row["document_sha256"] and row["claimed_until"] is None
    (sent,) = [r for r in ledger(dispatcher).rows() if r.channel == "letter"]
    assert sent.document_sha256 == row["document_sha256"] and sent.submissions == 1


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"dispute_open": True}, "dispute"),
        ({"bankruptcy": True}, "bankruptcy"),
        ({"deceased": True}, "deceased"),
        ({"attorney_on_file": True}, "attorney"),
        ({"cease_communication": True}, "cease_request"),
        ({"hardship_hold": True}, "hardship_hold"),
        ({"sms_consent": False}, "no_consent"),
        ({"phone": None}, "no_contact_point"),
        ({"promise": True}, "promise_to_pay"),
        (
            {"time_zone": None, "phone": None, "region": None, "country": None, "dpd": 1},
            "time_zone_unknown",
        ),
    ],
)
def test_every_suppression_is_recorded_with_its_reason(
    outreach: Outreach, flags: dict[str, object], reason: str
) -> None:
    with outreach.runtime.unit_of_work() as c:
        add_account(c, as_of=AS_OF, **{"dpd": 3, **flags})  # type: ignore[arg-type]
    summary = run_daily_outreach(outreach, AS_OF)
    (row,) = outbox(outreach)
    assert (row["status"], row["suppression"]) == ("held", reason)
    assert row["body"] is None and row["recipient"] is None
    assert summary["messages"]["held_by_suppression"] == {reason: 1}
    assert ledger(outreach).count() == 0


BROKEN = "Data Thatbreaks"


class BreaksOnOneCustomer(Renderer):
    """Renders as the real renderer does, except for one customer's data, where the template
    fails as a template can on data (a division by zero, a filter given None)."""

    def render(self, ref: TemplateRef, context: MessageContext) -> RenderedMessage:
        if context.customer.name == BROKEN:
            raise TemplateError(f"{ref.id}: line 12: ZeroDivisionError while rendering")
        return super().render(ref, context)


def test_a_message_that_does_not_render_is_held_and_the_run_goes_on(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        broken = add_account(c, dpd=3, as_of=AS_OF, name=BROKEN)
        others = [add_account(c, dpd=dpd, as_of=AS_OF) for dpd in (3, 7, 14)]
    templates = outreach_at(runtime).planner.templates
    outreach = outreach_at(runtime, renderer=BreaksOnOneCustomer(templates))
    summary = run_daily_outreach(outreach, AS_OF)
    rows = {row["account_id"]: row for row in outbox(outreach)}
    held = rows[broken]
    assert (held["status"], held["suppression"]) == ("held", "render_failed")
    assert (
        held["last_error"] == "sms/early/reminder.en-US: line 12: ZeroDivisionError while rendering"
    )
    assert held["body"] is None and held["recipient"] is None
    assert [rows[account]["status"] for account in others] == ["sent"] * 3
    assert summary["this_run"]["held_by_suppression"] == {"render_failed": 1}
    assert summary["messages"]["held_by_suppression"] == {"render_failed": 1}
    assert ledger(outreach).count() == 3
    # Running the date again changes nothing: the held message is not tried twice.
    again = run_daily_outreach(outreach, AS_OF)
    assert again["this_run"]["new_messages"] == 0
    assert {r["account_id"]: r for r in outbox(outreach)} == rows


class FailsOnOneLetter(LetterPress):
    """Prints in this process, but one letter's Typst source does not lay out."""

    def submit(self, rendered: RenderedMessage) -> Future[bytes]:
        if BROKEN in (rendered.typst or ""):
            future: Future[bytes] = Future()
            future.set_exception(TemplateError("letter PDF failed: AssertionError"))
            return future
        return super().submit(rendered)


def test_a_letter_that_does_not_print_is_held_and_the_batch_goes_out(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        broken = add_account(c, dpd=31, as_of=AS_OF, name=BROKEN)
        letter = add_account(c, dpd=31, as_of=AS_OF)
        sms = add_account(c, dpd=3, as_of=AS_OF)
    outreach = outreach_at(runtime, press=FailsOnOneLetter(workers=1))
    summary = run_daily_outreach(outreach, AS_OF)
    rows = {row["account_id"]: row for row in outbox(outreach)}
    held = rows[broken]
    assert (held["channel"], held["status"], held["suppression"]) == (
        "letter",
        "held",
        "print_failed",
    )
    assert held["last_error"] == "letter PDF failed: AssertionError"
    assert held["document_sha256"] is None and held["claimed_until"] is None
    assert (rows[letter]["channel"], rows[letter]["status"]) == ("letter", "sent")
    assert rows[sms]["status"] == "sent"
    assert summary["messages"]["by_status"] == {"sent": 2, "held": 1}
    assert summary["this_run"]["dispatch"]["held_by_suppression"] == {"print_failed": 1}
    assert summary["messages"]["held_by_suppression"] == {"print_failed": 1}
    assert sorted(r.channel for r in ledger(outreach).rows()) == ["letter", "sms"]


def test_opt_out_holds(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=AS_OF)
        c.execute(
            update(Customer.__table__).values(  # type: ignore[attr-defined]
                sms_opted_out_at=OPEN_FOR_ALL
            )
        )
    run_daily_outreach(outreach, AS_OF)
    (row,) = outbox(outreach)
    assert (row["account_id"], row["status"], row["suppression"]) == (account, "held", "opted_out")


def test_rerun_of_the_same_date_sends_nothing_new(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        for dpd in (1, 3, 7, 31, 61):
            add_account(c, dpd=dpd, as_of=AS_OF)
    first = run_daily_outreach(outreach, AS_OF)
    before = outbox(outreach)
    second = run_daily_outreach(outreach, AS_OF)
    assert first["this_run"]["new_messages"] == 5
    assert second["this_run"]["new_messages"] == 0
    assert second["this_run"]["already_planned"] == 5
    assert second["this_run"]["dispatch"]["claimed"] == 0
    assert outbox(outreach) == before
    assert ledger(outreach).count() == 5
    assert all(r.submissions == 1 for r in ledger(outreach).rows())
    with outreach.runtime.engine.connect() as c:
        runs = c.execute(select(Run.__table__.c.status)).all()  # type: ignore[attr-defined]
    assert [r[0] for r in runs] == ["completed", "completed"]


def test_quiet_hours_defer_then_the_dispatcher_sends(runtime: Runtime) -> None:
    night_in_chicago = OPEN_FOR_ALL.replace(hour=9)  # 03:00 in Chicago, 17:00 in Shanghai
    env = outreach_at(runtime, night_in_chicago)
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    run_daily_outreach(env, AS_OF)
    (row,) = outbox(env)
    assert row["status"] == "planned"
    opening = row["not_before"]
    assert opening is not None and opening.hour == 14  # 08:00 in Chicago is 14:00 UTC
    assert dispatch_batch(env.dispatcher, None, None, None).claimed == 0  # still night
    env.close()
    morning = outreach_at(runtime, opening + timedelta(minutes=1))
    report = dispatch_batch(morning.dispatcher, None, None, None)
    assert (report.claimed, report.sent) == (1, 1)
    morning.close()


def test_dry_run_writes_and_sends_nothing(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
        add_account(c, dpd=4, as_of=AS_OF)
    summary = run_daily_outreach(outreach, AS_OF, dry_run=True)
    assert summary["dry_run"] is True and "messages" not in summary
    assert summary["this_run"]["decisions_by_channel"] == {"sms": 1}
    assert outbox(outreach) == []
    assert ledger(outreach).count() == 0


def test_receipts_move_sent_messages_to_final_status(outreach: Outreach) -> None:
    with outreach.runtime.unit_of_work() as c:
        for dpd in (3, 7, 14, 21, 28, 38, 45):
            add_account(c, dpd=dpd, as_of=AS_OF)
    run_daily_outreach(outreach, AS_OF)
    report = poll_receipts(outreach)
    assert report.checked == 7 and report.recorded == 7
    # Each message's outcome is fixed by a hash of its key (the accounts' ids come from a
    # counter shared by the tests of a process, so the keys differ from run to run).
    rates = outreach.runtime.project.channels.mock_gateway.receipts
    rows = outbox(outreach)
    expected = [outcome_for(str(row["idempotency_key"]), rates).value for row in rows]
    assert [row["status"] for row in rows] == expected
    again = poll_receipts(outreach)
    assert (again.checked, again.recorded) == (0, 0)
    with outreach.runtime.engine.connect() as c:
        sources = [r[0] for r in c.execute(select(EVENT.c.source))]
    assert sorted(set(sources)) == ["poll", "send"] and len(sources) == 14


def test_gateway_faults_are_retried_and_permanent_errors_recorded(runtime: Runtime) -> None:
    from sandbox import ScriptedFault

    with runtime.unit_of_work() as c:
        ok = add_account(c, dpd=3, as_of=AS_OF)
    book = ledger(outreach_at(runtime))
    for kind in ("server_error", "throttle", "malformed"):
        fault = ScriptedFault(kind=kind, retry_after=0, channel="sms")
        book.queue_fault(fault.spec(), 1, "sms")
    fast = runtime.project.channels.model_copy(deep=True)
    options = fast.channels["sms"].options
    fast.channels["sms"] = fast.channels["sms"].model_copy(
        update={"options": {**options, "backoff_base": 0.01, "backoff_cap": 0.02}}
    )
    quick_retries = Runtime(
        runtime.project.with_config(channels=fast), runtime.engine, runtime.runs
    )
    outreach = outreach_at(quick_retries)
    summary = run_daily_outreach(outreach, AS_OF)
    assert summary["this_run"]["dispatch"]["sent"] == 1
    (row,) = outbox(outreach)
    assert (row["account_id"], row["status"]) == (ok, "sent")
    (entry,) = book.rows()
    assert entry.submissions == 1
