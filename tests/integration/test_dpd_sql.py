"""DPD, tier and the overdue amount computed set-based in SQL agree with the reference functions,
for any as-of date: today's, or an earlier one with payments made since."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from dunning.bootstrap import Runtime
from dunning.config import Strategy
from dunning.db.models import Account, Customer, Instalment, Payment
from dunning.domain.delinquency import ScheduleLine, apply_payment, dpd, overdue_amount
from dunning.services.delinquency import delinquent_accounts, tier_population

AS_OF = date(2026, 6, 30)


def _insert_account(
    runtime: Runtime, external_id: str, schedule: list[ScheduleLine], jurisdiction: str = "US"
) -> int:
    with runtime.unit_of_work() as c:
        customer_id = c.execute(
            Customer.__table__.insert().values(  # type: ignore[attr-defined]
                external_id=f"C-{external_id}", name="x", locale="en-US"
            )
        ).inserted_primary_key[0]
        account_id = c.execute(
            Account.__table__.insert().values(  # type: ignore[attr-defined]
                external_id=external_id,
                customer_id=customer_id,
                product="p",
                currency="USD",
                jurisdiction=jurisdiction,
                opened_on=date(2025, 1, 1),
            )
        ).inserted_primary_key[0]
        if schedule:
            c.execute(
                Instalment.__table__.insert(),
                [  # type: ignore[attr-defined]
                    {
                        "account_id": account_id,
                        "seq": line.seq,
                        "due_on": line.due_on,
                        "amount_due_minor": line.amount_due,
                        "amount_paid_minor": line.amount_paid,
                        "paid_on": line.paid_on,
                    }
                    for line in schedule
                ],
            )
    return int(account_id)


def _line(seq: int, offset: int, amount: int, paid_pct: int, paid_delay: int) -> ScheduleLine:
    due = AS_OF - timedelta(days=offset)
    paid = amount * paid_pct // 100
    return ScheduleLine(
        seq, due, amount, paid, due + timedelta(days=paid_delay) if paid == amount else None
    )


schedules = st.lists(
    st.tuples(
        st.integers(-30, 200),
        st.integers(1, 10_000),
        st.sampled_from([0, 30, 100]),
        st.integers(0, 60),
    ),
    min_size=0,
    max_size=6,
).map(lambda items: [_line(i + 1, *item) for i, item in enumerate(items)])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=schedules, shift=st.integers(-40, 40))
def test_sql_dpd_matches_reference(
    runtime: Runtime, schedule: list[ScheduleLine], shift: int
) -> None:
    with runtime.unit_of_work() as c:
        for model in (Instalment, Account, Customer):
            c.execute(delete(model.__table__))  # type: ignore[attr-defined]
    account_id = _insert_account(runtime, "A1", schedule)
    as_of = AS_OF + timedelta(days=shift)
    strategy = Strategy()
    with runtime.engine.connect() as c:
        rows = c.execute(delinquent_accounts(as_of, strategy)).all()
    expected = dpd(schedule, as_of)
    if expected == 0:
        assert rows == []
        return
    (row,) = rows
    assert row.id == account_id
    assert row.dpd == expected
    assert row.overdue_minor == overdue_amount(schedule, as_of)
    tier = strategy.tier_for(expected)
    assert tier is not None and row.tier == tier.name


def _payment(day: int, amount: int) -> tuple[date, int]:
    return AS_OF + timedelta(days=day), amount


histories = st.tuples(
    st.lists(st.tuples(st.integers(-120, 90), st.integers(1, 10_000)), min_size=1, max_size=6).map(
        lambda items: [
            ScheduleLine(n + 1, AS_OF + timedelta(days=day), amount)
            for n, (day, amount) in enumerate(sorted(items))
        ]
    ),
    st.lists(st.builds(_payment, st.integers(-100, 60), st.integers(1, 15_000)), max_size=5),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=histories, shift=st.integers(-60, 60))
def test_the_overdue_amount_of_an_earlier_date_leaves_out_payments_made_since(
    runtime: Runtime, history: tuple[list[ScheduleLine], list[tuple[date, int]]], shift: int
) -> None:
    """Payments recorded through the import's allocation; the amount as of any date is what
    replaying only the payments made by then leaves unpaid."""
    schedule, payments = history
    with runtime.unit_of_work() as c:
        for model in (Payment, Instalment, Account, Customer):
            c.execute(delete(model.__table__))  # type: ignore[attr-defined]
    as_of = AS_OF + timedelta(days=shift)
    now, then = list(schedule), list(schedule)
    for day, amount in sorted(payments):
        now, _ = apply_payment(now, amount, day)
        if day <= as_of:
            then, _ = apply_payment(then, amount, day)
    account_id = _insert_account(runtime, "A1", now)
    with runtime.unit_of_work() as c:
        for n, (day, amount) in enumerate(payments):
            c.execute(
                Payment.__table__.insert().values(  # type: ignore[attr-defined]
                    external_id=f"P{n}", account_id=account_id, amount_minor=amount, paid_on=day
                )
            )
    with runtime.engine.connect() as c:
        rows = c.execute(delinquent_accounts(as_of, Strategy())).all()
    truth = overdue_amount(then, as_of)
    assert overdue_amount(now, as_of, payments) == truth
    if dpd(now, as_of) == 0:
        assert rows == [] and truth == 0
        return
    (row,) = rows
    assert (row.dpd, row.overdue_minor) == (dpd(then, as_of), truth)


def test_tier_boundaries_in_sql(runtime: Runtime) -> None:
    for days in (0, 1, 30, 31, 60, 61, 400):
        _insert_account(
            runtime,
            f"D{days}",
            [ScheduleLine(1, AS_OF - timedelta(days=days), 1000)],
            jurisdiction="CN" if days % 2 else "US",
        )
    with runtime.engine.connect() as c:
        rows = c.execute(delinquent_accounts(AS_OF, Strategy())).all()
        counts = tier_population(c, AS_OF, Strategy())
    assert [(r.dpd, r.tier) for r in rows] == [
        (1, "early"),
        (30, "early"),
        (31, "middle"),
        (60, "middle"),
        (61, "late"),
        (400, "late"),
    ]
    assert [(c.tier, c.jurisdiction, c.accounts) for c in counts] == [
        ("early", "CN", 1),
        ("early", "US", 1),
        ("middle", "CN", 1),
        ("middle", "US", 1),
        ("late", "CN", 1),
        ("late", "US", 1),
    ]


def test_closed_accounts_are_not_delinquent(runtime: Runtime) -> None:
    account_id = _insert_account(runtime, "X", [ScheduleLine(1, AS_OF - timedelta(days=5), 10)])
    with runtime.unit_of_work() as c:
        c.execute(
            Account.__table__.update()
            .values(status="closed")  # type: ignore[attr-defined]
            .where(Account.__table__.c.id == account_id)
        )  # type: ignore[attr-defined]
        assert c.execute(delinquent_accounts(AS_OF, Strategy())).all() == []
