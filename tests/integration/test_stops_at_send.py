"""Every stop the daily run applies acts as soon as it is recorded, and again at the last moment.

An account 45 days past due gets an SMS, planned at 03:00 in Chicago and deferred to the contact
window's opening at 08:00, and an agency placement. A promise to pay, a grace period, a hardship
hold or a payment plan recorded before 08:00 holds both at once (`dunning promises add`, `grace
add`, `plans create`, an imported hardship hold), and `dunning run dispatch --in-process` at
08:01 sends and performs nothing. The send-time gate and the action dispatcher refuse them on
their own too, when the record reaches the database without the hold (changed directly).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, select, update

from dunning.bootstrap import Runtime
from dunning.cli._common import STATE
from dunning.db.lifecycle_models import AccountAction, GracePeriod, PaymentPlan
from dunning.db.models import Account, Customer, PromiseToPay, utcnow
from dunning.db.outreach_models import OutboxMessage
from dunning.services.outreach.plan import plan_batch
from sandbox import GatewayLedger, ledger_path
from tests.factories import US_CUSTOMER, add_account
from tests.helpers import invoke, outreach_at, write_csv

TODAY = date.today()
"""The CLI records promises, grace periods and plans as of today, so the test's day is today."""
NIGHT = datetime.combine(TODAY, time(9), tzinfo=UTC)
"""03:00 (04:00 in summer) in Chicago: the SMS is planned, deferred to 08:00."""
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]
ACTION = AccountAction.__table__  # type: ignore[attr-defined]
A = Account.__table__  # type: ignore[attr-defined]
C = Customer.__table__  # type: ignore[attr-defined]
PROMISE = PromiseToPay.__table__  # type: ignore[attr-defined]
GRACE = GracePeriod.__table__  # type: ignore[attr-defined]
PLAN = PaymentPlan.__table__  # type: ignore[attr-defined]


class Waiting:
    """The account whose SMS and placement wait, and when the SMS's window opens."""

    def __init__(self, runtime: Runtime) -> None:
        with runtime.unit_of_work() as connection:
            self.account_id = add_account(connection, dpd=45, as_of=TODAY)
            self.account, self.customer = connection.execute(
                select(A.c.external_id, C.c.external_id)
                .join(C, C.c.id == A.c.customer_id)
                .where(A.c.id == self.account_id)
            ).one()
        env = outreach_at(runtime, NIGHT)
        with runtime.runs.run("daily-outreach", TODAY) as run:
            plan_batch(env.planner, run.id, TODAY, 0, 2**31 - 1)  # DPD 45: an SMS and a placement
        env.close()
        self.runtime = runtime
        message, action = self.state()
        assert (message[:2], action) == (("planned", None), ("planned", None))
        self.opening: datetime = message[2]
        assert self.opening > NIGHT

    def state(self) -> tuple[tuple[str, str | None, Any], tuple[str, str | None]]:
        """(status, rule, not_before) of the SMS; (status, rule) of the placement."""
        with self.runtime.engine.connect() as c:
            message = c.execute(
                select(OUTBOX.c.status, OUTBOX.c.suppression, OUTBOX.c.not_before).where(
                    OUTBOX.c.account_id == self.account_id
                )
            ).one()
            action = c.execute(
                select(ACTION.c.status, ACTION.c.suppression).where(
                    ACTION.c.account_id == self.account_id
                )
            ).one()
        not_before = message.not_before
        if not_before is not None and not_before.tzinfo is None:
            not_before = not_before.replace(tzinfo=UTC)  # SQLite keeps no offset
        return (message.status, message.suppression, not_before), (
            action.status,
            action.suppression,
        )

    def held(self) -> tuple[tuple[str, str | None], tuple[str, str | None]]:
        message, action = self.state()
        return message[:2], action


@pytest.fixture
def waiting(runtime: Runtime) -> Waiting:
    return Waiting(runtime)


def dispatch(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, at: datetime
) -> dict[str, Any]:
    """`dunning run dispatch --in-process --json` with the clock at `at`."""
    monkeypatch.setattr(STATE, "clock", lambda: at)
    result = invoke(capsys, "run", "dispatch", "--in-process", "--json")
    assert result.code == 0, result.err
    data: dict[str, Any] = result.json()
    return data


def sent(runtime: Runtime) -> int:
    project = runtime.project
    return GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir)).count()


def test_without_a_stop_the_deferred_message_goes_when_the_window_opens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    """The control: what every test below prevents."""
    early = dispatch(capsys, monkeypatch, waiting.opening - timedelta(minutes=30))
    assert (early["sent"], early["deferred"]) == (0, 0) and sent(waiting.runtime) == 0
    assert early["actions"]["done"] == 1  # an action has no contact window
    result = dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert result["sent"] == 1
    assert waiting.held() == (("sent", None), ("done", None))
    assert sent(waiting.runtime) == 1


def _import_hardship(
    capsys: pytest.CaptureFixture[str], waiting: Waiting, tmp_path: Path
) -> list[str]:
    columns = ["external_id", *US_CUSTOMER, "hardship_hold"]
    values = [
        waiting.customer,
        *(str(v).lower() if isinstance(v, bool) else v for v in US_CUSTOMER.values()),
        "true",
    ]
    return ["import", "customers", str(write_csv(tmp_path / "c.csv", columns, [values]))]


RECORDS: dict[str, tuple[Callable[[Waiting, Path, pytest.CaptureFixture[str]], list[str]], str]] = {
    "promises add": (
        lambda w, _p, _c: [
            *("promises", "add", w.account, "--amount", "100"),
            *("--date", str(TODAY + timedelta(days=3)), "--user", "agent"),
        ],
        "promise_to_pay",
    ),
    "grace add": (
        lambda w, _p, _c: [
            *("grace", "add", w.account, "--until", str(TODAY + timedelta(days=10))),
            *("--reason", "lost job", "--user", "agent"),
        ],
        "grace",
    ),
    "grace add --hardship": (
        lambda w, _p, _c: [
            *("grace", "add", w.account, "--until", str(TODAY + timedelta(days=10))),
            *("--reason", "illness", "--user", "agent", "--hardship"),
        ],
        "hardship_hold",
    ),
    "plans create": (
        lambda w, _p, _c: [
            *("plans", "create", w.account, "--instalments", "3"),
            *("--first-due", str(TODAY + timedelta(days=7)), "--user", "agent"),
        ],
        "payment_plan",
    ),
    "import hardship_hold": (lambda w, p, c: _import_hardship(c, w, p), "hardship_hold"),
}


@pytest.mark.parametrize("record", list(RECORDS))
def test_recording_a_suppression_holds_the_waiting_message_and_action_at_once(
    record: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    waiting: Waiting,
    tmp_path: Path,
) -> None:
    argv, rule = RECORDS[record]
    result = invoke(capsys, *argv(waiting, tmp_path, capsys))
    assert result.code == 0, result.err
    assert waiting.held() == (("held", rule), ("held", rule))  # at once, before any dispatch

    report = dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert report["claimed"] == 0 and report["actions"]["claimed"] == 0
    assert waiting.held() == (("held", rule), ("held", rule))
    assert sent(waiting.runtime) == 0


def _promise(c: Connection, account_id: int) -> None:
    c.execute(
        PROMISE.insert().values(
            account_id=account_id,
            amount_minor=100_00,
            promised_on=TODAY + timedelta(days=3),
            channel="phone",
            created_by="agent",
            created_at=utcnow(),
            status="active",
        )
    )


def _grace(kind: str) -> Callable[[Connection, int], None]:
    def add(c: Connection, account_id: int) -> None:
        c.execute(
            GRACE.insert().values(
                account_id=account_id,
                kind=kind,
                starts_on=TODAY,
                ends_on=TODAY + timedelta(days=10),
                reason="direct",
                granted_by="agent",
                created_at=utcnow(),
            )
        )

    return add


def _plan(c: Connection, account_id: int) -> None:
    c.execute(
        PLAN.insert().values(
            account_id=account_id,
            status="active",
            created_on=TODAY,
            created_by="agent",
            restructured_minor=120_00,
            currency="USD",
            instalments=3,
            every_days=30,
            first_due_on=TODAY + timedelta(days=7),
            missed_allowed=2,
            created_at=utcnow(),
        )
    )


def _flag(flag: str) -> Callable[[Connection, int], None]:
    def set_flag(c: Connection, account_id: int) -> None:
        customer = select(A.c.customer_id).where(A.c.id == account_id).scalar_subquery()
        c.execute(update(C).where(C.c.id == customer).values({flag: True}))

    return set_flag


DIRECT: dict[str, tuple[Callable[[Connection, int], None], str]] = {
    "promise": (_promise, "promise_to_pay"),
    "grace": (_grace("grace"), "grace"),
    "hardship grace": (_grace("hardship"), "hardship_hold"),
    "plan": (_plan, "payment_plan"),
    "hardship_hold": (_flag("hardship_hold"), "hardship_hold"),
    "deceased": (_flag("deceased"), "deceased"),
    "bankruptcy": (_flag("bankruptcy"), "bankruptcy"),
    "attorney_on_file": (_flag("attorney_on_file"), "attorney"),
    "cease_communication": (_flag("cease_communication"), "cease_request"),
    "dispute_open": (_flag("dispute_open"), "dispute"),
}


@pytest.mark.parametrize("change", list(DIRECT))
def test_the_send_gate_itself_refuses_a_stop_recorded_after_planning(
    change: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    waiting: Waiting,
) -> None:
    """Changed in the database directly, nothing holds the waiting message and action: the
    dispatchers find the stop themselves, with the rule the daily run would record."""
    write, rule = DIRECT[change]
    with waiting.runtime.unit_of_work() as c:
        write(c, waiting.account_id)
    assert waiting.held() == (("planned", None), ("planned", None))

    report = dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert (report["claimed"], report["sent"], report["held_by_suppression"]) == (1, 0, {rule: 1})
    assert report["actions"]["done"] == 0
    assert waiting.held() == (("held", rule), ("held", rule))
    assert sent(waiting.runtime) == 0


def test_the_gate_weighs_stops_in_the_daily_runs_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    """A promise, a plan, a grace period, a dispute and a death all at once: deceased names the
    rule, as AccountState.stop would."""
    with waiting.runtime.unit_of_work() as c:
        for change in ("promise", "plan", "grace", "dispute_open", "deceased"):
            DIRECT[change][0](c, waiting.account_id)
    dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert waiting.held() == (("held", "deceased"), ("held", "deceased"))


def test_a_plans_own_reminder_is_not_stopped_by_the_plan(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, waiting: Waiting
) -> None:
    """The daily run decides a plan's confirmation and reminders as if there were no plan; the
    gate lets them go too, and still holds them for a promise to pay."""
    with waiting.runtime.unit_of_work() as c:
        _plan(c, waiting.account_id)
        plan_id = c.execute(select(PLAN.c.id).where(PLAN.c.account_id == waiting.account_id))
        step = f"plan-{plan_id.scalar_one()}-1-reminder"
        c.execute(
            update(OUTBOX).where(OUTBOX.c.account_id == waiting.account_id).values(step_id=step)
        )
    report = dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert report["sent"] == 1
    assert waiting.held() == (("sent", None), ("held", "payment_plan"))


def test_a_policy_pack_cannot_turn_a_stop_off(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, repo_dir: Path
) -> None:
    """Every stop applies in every jurisdiction (planning and dispatch alike): a pack whose
    `stops` leaves one out is refused by name, rather than read as if the stop were off."""
    project = tmp_path / "program"
    shutil.copytree(repo_dir / "config", project / "config")
    shutil.copytree(repo_dir / "templates", project / "templates")
    shutil.copy(repo_dir / "dunning.yaml", project / "dunning.yaml")
    pack = project / "config" / "compliance" / "US.yaml"
    text = pack.read_text()
    full = "stops: [dispute, cease_request, bankruptcy, deceased, attorney]"
    assert full in text
    pack.write_text(text.replace(full, "stops: [dispute, bankruptcy, deceased, attorney]"))
    result = invoke(capsys, "--project-dir", str(project), "config", "check", "--json")
    assert result.code == 1
    problem = result.json()["problems"][0]
    assert (problem["file"], problem["key"]) == ("config/compliance/US.yaml", "stops")
    assert "cease_request" in problem["reason"]


def _over(write: Callable[[Connection, int], None], table: Any, **values: Any) -> Any:
    """`write`, then the row it wrote changed so that it no longer stops contact."""

    def change(c: Connection, account_id: int) -> None:
        write(c, account_id)
        c.execute(update(table).where(table.c.account_id == account_id).values(**values))

    return change


OVER: dict[str, Callable[[Connection, int], None]] = {
    "promise kept": _over(_promise, PROMISE, status="kept", resolved_on=TODAY),
    "promise dated before the message's date": _over(
        _promise, PROMISE, promised_on=TODAY - timedelta(days=1)
    ),
    "grace revoked": _over(_grace("grace"), GRACE, revoked_at=utcnow()),
    "grace ended before the message's date": _over(
        _grace("grace"), GRACE, starts_on=TODAY - timedelta(days=9), ends_on=TODAY - timedelta(1)
    ),
    "plan completed": _over(_plan, PLAN, status="completed", resolved_on=TODAY),
}


@pytest.mark.parametrize("change", list(OVER))
def test_a_stop_no_longer_in_force_does_not_hold(
    change: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    waiting: Waiting,
) -> None:
    """A promise resolved, a grace period revoked or over, a plan done: the message goes."""
    with waiting.runtime.unit_of_work() as c:
        OVER[change](c, waiting.account_id)
    report = dispatch(capsys, monkeypatch, waiting.opening + timedelta(minutes=1))
    assert (report["sent"], report["held_by_suppression"]) == (1, {})
    assert waiting.held() == (("sent", None), ("done", None))
