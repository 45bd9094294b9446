"""The daily outreach as a Prefect flow over a seeded population, on the test harness."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

from sqlalchemy import select

from dunning.bootstrap import bootstrap
from dunning.db.models import Account, Customer, Instalment, PromiseToPay
from dunning.db.outreach_models import OutboxMessage, Run
from dunning.demo.population import seed_population
from dunning.domain.delinquency import ScheduleLine, dpd
from dunning.project import Project

AS_OF = date(2026, 11, 24)


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
    flows_env: Path, repo_dir: Path, database_url: str
) -> None:
    from flows.daily_outreach import daily_outreach

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
    assert sum(got.values()) > 100
    assert run.status == "completed" and run.summary["run_id"] == summary["run_id"]
    assert run.prefect_flow_run_id
    # Push steps go out as push or, without token or consent, as SMS; nothing else.
    assert {r.channel for r in rows if r.step_id == "early-push"} <= {"push", "sms"}
    assert {r.channel for r in rows if r.step_id.endswith("letter")} == {"letter"}
    statuses = Counter(r.status for r in rows)
    assert set(statuses) <= {"sent", "planned", "held"} and statuses["held"] > 0
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
