"""No code path sends outside a contact window or over a cap: property tests over the dispatcher.

Random customers (zones recorded or not, phones and addresses that agree or not), random
earlier contact histories and random dispatcher run times; the real send gate decides, a fake
gateway records when each message went out, and every send is checked against the rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from adapters.base import GatewayAdapter, OutboundMessage, SendOutcome, SendResult, StatusReport
from dunning.bootstrap import Runtime
from dunning.db.documents import DocumentStore
from dunning.db.models import Account, Customer, Instalment, utcnow
from dunning.db.outreach_models import DeliveryEvent, OutboxMessage, Run
from dunning.domain.contact_time import allowed_at, cap_exceeded
from dunning.domain.zones import candidate_zones
from dunning.services.contact.policy import ContactPolicy, send_gate
from dunning.services.dispatch.send import Scope, dispatch_due
from dunning.types import Channel

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
US_PEOPLE = [  # (recorded zone, phone, region)
    ("America/Chicago", "+13125550142", "IL"),
    (None, "+12125550142", "CA"),  # phone says New York, address says California
    ("America/Los_Angeles", "+14155550142", "CA"),
    (None, "+19075550142", "AK"),
    ("Pacific/Honolulu", "+18085550142", "HI"),
    ("America/New_York", "+13035550142", "NY"),  # a Denver number in New York
]


class RecordingGateway(GatewayAdapter):
    """A fake gateway that accepts everything and notes when it did."""

    name = "recording"
    channel = Channel.SMS
    max_batch = 1000

    def __init__(self, log: list[tuple[str, datetime]], clock: list[datetime]) -> None:
        self.log, self.clock = log, clock

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        self.log.extend((m.idempotency_key, self.clock[0]) for m in batch)
        return [
            SendResult(m.idempotency_key, SendOutcome.ACCEPTED, f"g-{m.idempotency_key}")
            for m in batch
        ]

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        return []


def _reset(runtime: Runtime) -> None:
    with runtime.unit_of_work() as c:
        for model in (DeliveryEvent, OutboxMessage, Run, Instalment, Account, Customer):
            c.execute(delete(model.__table__))  # type: ignore[attr-defined]


people = st.lists(
    st.tuples(
        st.sampled_from(["US", "CN"]),
        st.integers(0, len(US_PEOPLE) - 1),
        st.lists(
            st.tuples(st.sampled_from(["sms", "push"]), st.integers(1, 60 * 24 * 6)), max_size=4
        ),  # earlier contacts: channel, minutes before START
        st.lists(
            st.tuples(st.sampled_from(["sms", "push", "letter"]), st.integers(0, 60 * 36)),
            min_size=1,
            max_size=4,
        ),
        # messages to send: channel, minutes after START they become due
    ),
    min_size=1,
    max_size=6,
)
runs = st.lists(st.integers(0, 60 * 48), min_size=1, max_size=12).map(sorted)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(population=people, run_minutes=runs)
def test_no_send_outside_a_window_or_over_a_cap(
    runtime: Runtime, population: list[Any], run_minutes: list[int]
) -> None:
    _reset(runtime)
    packs = runtime.project.compliance_packs
    policy = ContactPolicy(packs, send_span=timedelta(seconds=120))
    history: dict[int, dict[Channel, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    rows: list[dict[str, Any]] = []
    customer_of: dict[str, tuple[int, str, frozenset[str]]] = {}
    now = utcnow()
    with runtime.unit_of_work() as c:
        run_id = c.execute(
            Run.__table__.insert().values(  # type: ignore[attr-defined]
                flow="t", as_of=START.date(), status="running"
            )
        ).inserted_primary_key[0]
        for n, (jurisdiction, who, before, messages) in enumerate(population):
            if jurisdiction == "US":
                zone, phone, region = US_PEOPLE[who]
                locale, country, currency = "en-US", "US", "USD"
            else:
                zone, phone, region, locale, country, currency = (
                    "Asia/Shanghai",
                    "+8613812345678",
                    None,
                    "zh-CN",
                    "CN",
                    "CNY",
                )
            customer = c.execute(
                Customer.__table__.insert().values(  # type: ignore[attr-defined]
                    external_id=f"C{n}",
                    name="x",
                    locale=locale,
                    time_zone=zone,
                    phone=phone,
                    push_token="t",
                    address_line1="a",
                    city="c",
                    region=region,
                    country=country,
                    sms_consent=True,
                    push_consent=True,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            account = c.execute(
                Account.__table__.insert().values(  # type: ignore[attr-defined]
                    external_id=f"A{n}",
                    customer_id=customer,
                    product="p",
                    currency=currency,
                    jurisdiction=jurisdiction,
                    opened_on=date(2026, 1, 1),
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]
            c.execute(
                Instalment.__table__.insert().values(  # type: ignore[attr-defined]
                    account_id=account, seq=1, due_on=date(2026, 10, 1), amount_due_minor=100
                )
            )
            zones = candidate_zones(zone, phone, country, region)
            for m, (channel, minutes) in enumerate(before):
                at = START - timedelta(minutes=minutes)
                history[customer][Channel(channel)].append(at)
                rows.append(_row(f"h{n}-{m}", run_id, account, customer, channel, "sent", at))
            for m, (channel, minutes) in enumerate(messages):
                key = f"m{n}-{m}"
                rows.append(
                    _row(
                        key,
                        run_id,
                        account,
                        customer,
                        channel,
                        "planned",
                        START + timedelta(minutes=minutes),
                    )
                )
                customer_of[key] = (customer, jurisdiction, zones)
        c.execute(OutboxMessage.__table__.insert(), rows)  # type: ignore[attr-defined]

    sent: list[tuple[str, datetime]] = []
    clock = [START]
    channel_of = {row["idempotency_key"]: Channel(row["channel"]) for row in rows}
    for minutes in run_minutes:
        clock[0] = START + timedelta(minutes=minutes)
        dispatch_due(
            runtime.engine,
            lambda _ch: RecordingGateway(sent, clock),
            DocumentStore(runtime.project.state_dir),
            scope=Scope(),
            clock=lambda: clock[0],
            lease=timedelta(seconds=120),
            gate=send_gate(policy, lambda _i, _h: True),
        )

    assert len({key for key, _ in sent}) == len(sent), "a message went out twice"
    for key, at in sorted(sent, key=lambda item: item[1]):
        customer, jurisdiction, zones = customer_of[key]
        channel = channel_of[key]
        rule = policy.rule(jurisdiction, channel)
        assert rule is not None
        if rule.window is not None:
            assert zones and allowed_at(at, zones, rule), (key, at, zones)
            assert allowed_at(at + timedelta(seconds=120), zones, rule)
        assert cap_exceeded(policy.caps(jurisdiction), channel, history[customer], at) is None
        history[customer][channel].append(at)


def _row(
    key: str, run_id: int, account: int, customer: int, channel: str, status: str, at: datetime
) -> dict[str, Any]:
    return {
        "idempotency_key": key,
        "run_id": run_id,
        "account_id": account,
        "customer_id": customer,
        "as_of": at.date(),
        "tier": "early",
        "step_id": "s",
        "channel": channel,
        "template_id": "t",
        "template_hash": "h",
        "locale": "en-US",
        "recipient": "r",
        "body": "b",
        "status": status,
        "attempts": 0,
        "not_before": at if status == "planned" else None,
        "sent_at": at if status == "sent" else None,
        "created_at": at,
        "updated_at": at,
    }
