"""The daily outreach as a Prefect flow over a seeded population, on the test harness."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from dunning.bootstrap import bootstrap, outreach
from dunning.db.models import Account, Customer, Instalment, PromiseToPay
from dunning.db.outreach_models import OutboxMessage, Run
from dunning.demo.population import seed_population
from dunning.domain.delinquency import ScheduleLine, dpd
from dunning.project import Project

AS_OF = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
"""17:00 in Shanghai, night in every US zone: the Chinese messages go, the American ones wait."""


def expected_steps(project: Project, database_url: str) -> Counter[tuple[str, str, str]]:
    """(tier, step, locale) of every message due today, from the reference DPD and cadence.

    Besides the cadence, a promise whose date has passed unpaid is broken by this run, and the
    account gets the broken-promise message.
    """
    runtime = bootstrap(project=project, database_url=database_url)
    lines: dict[int, list[ScheduleLine]] = {}
    with runtime.engine.connect() as c:
        for row in c.execute(select(Instalment.__table__)):  # type: ignore[attr-defined]
            lines.setdefault(row.account_id, []).append(
                ScheduleLine(
                    row.seq, row.due_on, row.amount_due_minor, row.amount_paid_minor, row.paid_on
                )
            )
        broken = {
            row.account_id
            for row in c.execute(select(PromiseToPay.__table__))  # type: ignore[attr-defined]
            if row.promised_on < AS_OF
        }
        accounts = c.execute(
            select(Account.__table__.c.id, Customer.__table__.c.locale).join(  # type: ignore[attr-defined]
                Customer.__table__,  # type: ignore[attr-defined]
                Customer.__table__.c.id == Account.__table__.c.customer_id,
            )  # type: ignore[attr-defined]
        ).all()
    runtime.close()
    strategy = project.strategy
    expected: Counter[tuple[str, str, str]] = Counter()
    for account_id, locale in accounts:
        days = dpd(lines.get(account_id, []), AS_OF)
        tier = strategy.tier_for(days)
        if tier is None:
            continue
        for step in tier.cadence:
            if step.is_due(days, tier.dpd) and step.channel is not None:
                expected[(tier.name, step.id, locale)] += 1
        if account_id in broken:  # seeded promises are not kept: broken on this run
            expected[(tier.name, "broken-promise", locale)] += 1
    return expected


def test_daily_outreach_flow_plans_exactly_the_due_steps(
    flows_env: Path, repo_dir: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import _runtime
    from flows.daily_outreach import daily_outreach

    # The flow builds its parts with their clock stopped at NOW: which contact windows are open,
    # and so which messages go now, must not depend on when the test runs.
    monkeypatch.setattr(_runtime, "outreach", partial(outreach, clock=lambda: NOW))

    project = Project(repo_dir)
    runtime = bootstrap(project=project)
    with runtime.unit_of_work() as c:
        seed_population(c, accounts=1500, seed=3, as_of=AS_OF)
    runtime.close()

    summary = daily_outreach(as_of=AS_OF, project_dir=str(repo_dir))

    runtime = bootstrap(project=project)
    with runtime.engine.connect() as c:
        rows = c.execute(select(OutboxMessage.__table__)).all()  # type: ignore[attr-defined]
        run = c.execute(select(Run.__table__)).one()  # type: ignore[attr-defined]
    runtime.close()
    got = Counter((r.tier, r.step_id, r.locale) for r in rows)
    assert got == expected_steps(project, database_url)
    assert sum(got.values()) == 245
    assert run.status == "completed" and run.summary["run_id"] == summary["run_id"]
    assert run.prefect_flow_run_id
    # Push steps go out as push or, without token or consent, as SMS; letters as letters.
    assert Counter((r.step_id, r.channel) for r in rows) == {
        ("early-sms", "sms"): 140,
        ("early-push", "push"): 20,
        ("early-push", "sms"): 6,
        ("middle-sms", "sms"): 42,
        ("middle-letter", "letter"): 6,
        ("late-sms", "sms"): 21,
        ("late-letter", "letter"): 1,
        ("broken-promise", "sms"): 9,
    }
    statuses = Counter(r.status for r in rows)
    assert Counter((r.status, r.suppression) for r in rows) == {
        ("sent", None): 124,
        ("planned", None): 88,  # American SMS and push: their windows open in the morning
        ("held", "promise_to_pay"): 7,
        ("held", "dispute"): 5,
        ("held", "no_consent"): 5,
        ("held", "opted_out"): 5,
        ("held", "hardship_hold"): 4,
        ("held", "bankruptcy"): 2,
        ("held", "no_contact_point"): 2,
        ("held", "attorney"): 1,
        ("held", "cease_request"): 1,
        ("held", "frequency_cap:sms-daily"): 1,  # at send time
    }
    for r in rows:
        if r.status == "sent":
            assert r.gateway_message_id and r.body
        if r.status == "held":  # held when planned (never rendered) or at send time
            assert r.suppression
            assert (r.body is None) == (not r.suppression.startswith("frequency_cap"))
        if r.status == "planned":  # outside its contact window now: waits for the dispatcher
            assert r.not_before is not None
    assert summary["messages"]["by_status"] == dict(statuses)
    assert "name" not in str(summary) and "+86" not in str(summary)
