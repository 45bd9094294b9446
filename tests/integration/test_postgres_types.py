"""What PostgreSQL enforces and SQLite does not: column lengths, and the Python types of sums.

SQLite stores a 40-character string in a VARCHAR(32) and sums integers to integers; PostgreSQL
refuses the first and sums BIGINT to NUMERIC (a Decimal in Python, which JSON columns refuse).
These run on both backends: what passes here cannot fail only in production.
"""

from __future__ import annotations

import json
from datetime import date

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from dunning.bootstrap import Runtime
from dunning.config import Strategy
from dunning.config.compliance import FrequencyCap
from dunning.config.loader import validate
from dunning.config.strategy import Step, Tier
from dunning.db.models import utcnow
from dunning.db.tables import ACCOUNT, ACTION, OUTBOX
from dunning.errors import ConfigError
from dunning.services.delinquency import delinquent_accounts, tier_population
from dunning.services.outreach.select import select_batch
from dunning.types import Suppression
from tests.factories import add_account

AS_OF = date(2026, 11, 24)
CAP_PREFIX = f"{Suppression.FREQUENCY_CAP.value}:"


def max_length(model: type, field: str) -> int:
    for item in model.model_fields[field].metadata:  # type: ignore[attr-defined]
        if getattr(item, "max_length", None) is not None:
            return int(item.max_length)
    raise AssertionError(f"{model.__name__}.{field} has no max_length")


def test_config_values_fit_the_columns_they_are_written_to() -> None:
    assert max_length(Tier, "name") <= OUTBOX.c.tier.type.length
    assert max_length(Step, "id") <= min(OUTBOX.c.step_id.type.length, ACTION.c.step_id.type.length)
    assert len(CAP_PREFIX) + max_length(FrequencyCap, "id") <= OUTBOX.c.suppression.type.length


def test_config_refuses_what_would_not_fit() -> None:
    with pytest.raises(ConfigError, match=r"tiers\.0\.name"):
        validate(Strategy, {"tiers": [{"name": "t" * 33, "dpd": {"min": 1}}]}, "strategy.yaml")
    cap = {"id": "c" * 35, "channels": ["sms"], "max": 1, "per_days": 1}
    with pytest.raises(ValidationError, match="at most 34 characters"):
        FrequencyCap.model_validate(cap)


def test_the_longest_values_the_config_allows_round_trip(runtime: Runtime) -> None:
    tier = "t" * max_length(Tier, "name")
    step = "s" * max_length(Step, "id")
    hold = CAP_PREFIX + "c" * max_length(FrequencyCap, "id")
    # A rendered push title is the gateway's to limit, as the body is (a template's words and
    # the lender's name): 255 characters would fail the batch on PostgreSQL only.
    subject = "标题" * 300
    with runtime.runs.run("daily-outreach", AS_OF) as run:
        run_id = run.id
    with runtime.unit_of_work() as connection:
        account = add_account(connection, dpd=5, as_of=AS_OF)
        customer = connection.execute(
            select(ACCOUNT.c.customer_id).where(ACCOUNT.c.id == account)
        ).scalar_one()
        now = utcnow()
        connection.execute(
            OUTBOX.insert().values(
                idempotency_key="dn1-" + "k" * 40,
                run_id=run_id,
                account_id=account,
                customer_id=customer,
                as_of=AS_OF,
                tier=tier,
                step_id=step,
                channel="sms",
                locale="en-US",
                status="held",
                suppression=hold,
                subject=subject,
                attempts=0,
                created_at=now,
                updated_at=now,
            )
        )
    with runtime.engine.connect() as connection:
        row = connection.execute(
            select(OUTBOX.c.tier, OUTBOX.c.step_id, OUTBOX.c.suppression, OUTBOX.c.subject)
        ).one()
    assert tuple(row) == (tier, step, hold, subject)


def test_money_sums_are_integers_that_json_can_hold(runtime: Runtime) -> None:
    with runtime.unit_of_work() as connection:
        for dpd in (3, 35, 70):
            add_account(connection, dpd=dpd, as_of=AS_OF, amount_minor=123_45)
    strategy = runtime.project.strategy
    with runtime.engine.connect() as connection:
        rows = select_batch(connection, AS_OF, strategy, 0, 10**9)
        delinquent = connection.execute(delinquent_accounts(AS_OF, strategy)).all()
        population = tier_population(connection, AS_OF, strategy)
    amounts = [r.overdue_minor for r in rows] + [r.payments_since_minor for r in rows]
    amounts += [r.overdue_minor for r in delinquent] + [c.overdue_minor for c in population]
    # The one account with a step due (DPD 3) twice, the three delinquent ones, three tiers.
    assert len(amounts) == 2 + 3 + 3
    assert all(type(a) is int for a in amounts), {type(a) for a in amounts}
    json.dumps(amounts)  # what goes into account_action.payload and run.summary
