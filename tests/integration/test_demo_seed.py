"""The synthetic population: reproducible, spread over every tier, with the edge cases."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from dunning.bootstrap import Runtime
from dunning.db.models import Account, Customer, Payment, PromiseToPay
from dunning.demo.population import seed_population
from dunning.services.delinquency import tier_population

AS_OF = date(2026, 11, 23)
C = Customer.__table__  # type: ignore[attr-defined]


def test_seed_is_reproducible_and_covers_edge_cases(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        first = seed_population(c, accounts=3000, seed=7, as_of=AS_OF)
    with runtime.unit_of_work() as c:
        again = seed_population(c, accounts=3000, seed=7, as_of=AS_OF)
    assert first.accounts == 3000 and again.accounts == 0 and again.skipped == 3000
    with runtime.engine.connect() as c:
        counts = tier_population(c, AS_OF, runtime.project.strategy)
        flags = {
            name: c.execute(select(func.count()).where(getattr(C.c, name))).scalar_one()
            for name in (
                "dispute_open",
                "bankruptcy",
                "deceased",
                "attorney_on_file",
                "cease_communication",
                "hardship_hold",
            )
        }
        opted_out = c.execute(
            select(func.count()).where(C.c.sms_opted_out_at.is_not(None))
        ).scalar_one()
        no_consent = c.execute(select(func.count()).where(C.c.sms_consent.is_(False))).scalar_one()
        no_token = c.execute(select(func.count()).where(C.c.push_token.is_(None))).scalar_one()
        no_address = c.execute(select(func.count()).where(C.c.address_line1.is_(None))).scalar_one()
        no_zone = c.execute(select(func.count()).where(C.c.time_zone.is_(None))).scalar_one()
        zones = {z for (z,) in c.execute(select(C.c.time_zone).distinct()) if z}
        payments = c.execute(select(func.count()).select_from(Payment.__table__)).scalar_one()
        promises = c.execute(select(func.count()).select_from(PromiseToPay.__table__)).scalar_one()
        total = c.execute(select(func.count()).select_from(Account.__table__)).scalar_one()
        sample = c.execute(
            select(C.c.name, C.c.phone).where(C.c.external_id == "DEMO-C0000042")
        ).one()
    # Seed 7 draws the same book every time, on either backend: these are its exact counts.
    assert [(t.tier, t.jurisdiction, t.accounts) for t in counts] == [
        ("early", "CN", 736),
        ("early", "US", 667),
        ("middle", "CN", 287),
        ("middle", "US", 276),
        ("late", "CN", 300),
        ("late", "US", 284),
    ]
    assert total == 3000 and sum(t.accounts for t in counts) == 2550  # 450 accounts are current
    assert flags == {
        "dispute_open": 60,
        "bankruptcy": 33,
        "deceased": 19,
        "attorney_on_file": 14,
        "cease_communication": 27,
        "hardship_hold": 28,
    }
    assert (opted_out, no_consent, no_token, no_address, no_zone) == (84, 116, 751, 71, 44)
    assert (payments, promises) == (255, 109)
    assert zones == {
        "Asia/Shanghai",
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Anchorage",
        "Pacific/Honolulu",
    }

    # Same seed, same rows, in a different database.
    with runtime.unit_of_work() as c:
        for table in ("promise_to_pay", "payment", "instalment", "account", "customer"):
            c.exec_driver_sql(f"DELETE FROM {table}")
        seed_population(c, accounts=50, seed=7, as_of=AS_OF)
        assert (
            c.execute(select(C.c.name, C.c.phone).where(C.c.external_id == "DEMO-C0000042")).one()
            == sample
        )
