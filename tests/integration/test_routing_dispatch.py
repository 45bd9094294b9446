"""The dispatcher's routing through fake providers: per jurisdiction, failover of what a provider
certainly did not take, what stays with its provider (a RETRY that is not certain, AMBIGUOUS, a
message in doubt), circuits, the summary per provider, and receipts polled per provider.

The outbox is filled by the daily run's planning (its dispatch left out); each test then
dispatches the SMS with dispatch_due and a Routing over fake adapters, on a clock it moves.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from adapters import (
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusReport,
)
from adapters.base import SentMessage
from dunning.bootstrap import Runtime
from dunning.db.tables import OUTBOX
from dunning.errors import ConfigError, ConfigProblem
from dunning.services.daily import InThisProcess, Outreach
from dunning.services.daily.run import run_daily_outreach
from dunning.services.dispatch.receipts import reconcile_receipts
from dunning.services.dispatch.routing import Circuits, Routing
from dunning.services.dispatch.send import DispatchReport, Scope, dispatch_due
from dunning.services.runs.batches import Batch
from dunning.types import Channel
from tests.factories import OPEN_FOR_ALL, add_account
from tests.helpers import outreach_at

AS_OF = OPEN_FOR_ALL.date()
LEASE = timedelta(seconds=120)
SMS = Scope(channel=Channel.SMS)


class PlanOnly(InThisProcess):
    """The daily run without its dispatch stage: the outbox fills, nothing goes."""

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        return []


@dataclass
class Sent:
    key: str
    in_doubt: bool
    jurisdiction: str | None


@dataclass
class Vendor:
    """One provider's far side: what it was sent, what it took, how it answers."""

    name: str
    answer: SendOutcome = SendOutcome.ACCEPTED
    not_taken: bool = False
    """With a RETRY answer: say that the vendor certainly does not have the message."""
    taken: dict[str, int] = field(default_factory=dict)
    """Key -> times the vendor took it (an AMBIGUOUS answer here: taken, the answer lost)."""
    sends: list[list[Sent]] = field(default_factory=list)
    """Each call of send, with what it was given."""
    polled: list[str] = field(default_factory=list)

    def given(self) -> list[str]:
        return [item.key for call in self.sends for item in call]


class FakeProvider(GatewayAdapter):
    """A GatewayAdapter over a Vendor. A message in doubt is looked up first (the vendor's
    records): found, it is the earlier acceptance; not found, it is answered as any other."""

    name = "fake-sms"
    channel = Channel.SMS
    max_batch = 2

    def __init__(self, vendor: Vendor) -> None:
        self.vendor = vendor

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        vendor = self.vendor
        vendor.sends.append([Sent(m.idempotency_key, m.in_doubt, m.jurisdiction) for m in batch])
        results = []
        for message in batch:
            key = message.idempotency_key
            if message.in_doubt and key in vendor.taken:
                results.append(SendResult(key, SendOutcome.ACCEPTED, f"{vendor.name}-{key}", True))
            elif vendor.answer in (SendOutcome.ACCEPTED, SendOutcome.AMBIGUOUS):
                vendor.taken[key] = vendor.taken.get(key, 0) + 1
                results.append(SendResult(key, vendor.answer, f"{vendor.name}-{key}"))
            else:
                results.append(
                    SendResult(
                        key,
                        vendor.answer,
                        reason=f"{vendor.name} says no",
                        not_taken=vendor.not_taken,
                    )
                )
        return results

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        raise AssertionError("receipts are fetched with fetch_receipts")

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        self.vendor.polled.extend(m.idempotency_key for m in messages)
        return [
            StatusReport(
                gateway_message_id=m.gateway_message_id,
                idempotency_key=m.idempotency_key,
                status=DeliveryStatus.DELIVERED,
                occurred_at=OPEN_FOR_ALL,
            )
            for m in messages
            if m.gateway_message_id.startswith(f"{self.vendor.name}-")
        ]


class World:
    """Vendors by provider name, a routing over them, and the clocks the dispatcher reads."""

    def __init__(self, routes: Mapping[str, tuple[str, ...]], *names: str) -> None:
        self.vendors = {name: Vendor(name) for name in names}
        self.routing = Routing(routes={Channel.SMS: dict(routes)}, build=self.build)
        self.now = OPEN_FOR_ALL
        self.monotonic = 0.0
        self.circuits = Circuits(open_seconds=60, monotonic=lambda: self.monotonic)

    def build(self, name: str) -> FakeProvider:
        return FakeProvider(self.vendors[name])

    def __getitem__(self, name: str) -> Vendor:
        return self.vendors[name]

    def dispatch(self, env: Outreach, *, chunk: int = 2000) -> dict[str, Any]:
        report = dispatch_due(
            env.runtime.engine,
            self.routing,
            env.dispatcher.documents,
            scope=SMS,
            clock=lambda: self.now,
            lease=LEASE,
            chunk=chunk,
            circuits=self.circuits,
        )
        return report.as_dict()


@pytest.fixture
def env(runtime: Runtime) -> Iterator[Outreach]:
    parts = outreach_at(runtime)
    yield parts
    parts.close()


def plan(env: Outreach, **jurisdictions: int) -> dict[str, str]:
    """Accounts per jurisdiction, each due one SMS today; planned (not sent). Returns the SMS
    keys with their account's jurisdiction."""
    with env.runtime.unit_of_work() as c:
        for jurisdiction, count in jurisdictions.items():
            for _ in range(count):
                add_account(c, dpd=3, as_of=AS_OF, jurisdiction=jurisdiction)
    run_daily_outreach(env, AS_OF, executor=PlanOnly(env))
    found = {key: j for key, (j, _, status, _) in sms_rows(env).items() if status == "planned"}
    assert len(found) == sum(jurisdictions.values()), sms_rows(env)
    return found


def sms_rows(env: Outreach) -> dict[str, tuple[str, str | None, str, str | None]]:
    """Key -> (jurisdiction, provider, status, gateway id) of each SMS."""
    from dunning.db.tables import ACCOUNT

    o, a = OUTBOX.c, ACCOUNT.c
    with env.runtime.engine.connect() as c:
        rows = c.execute(
            select(o.idempotency_key, a.jurisdiction, o.provider, o.status, o.gateway_message_id)
            .join(ACCOUNT, a.id == o.account_id)
            .where(o.channel == Channel.SMS.value)
        ).all()
    return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}


def providers(env: Outreach) -> dict[str, str | None]:
    return {key: row[1] for key, row in sms_rows(env).items()}


def statuses(env: Outreach) -> dict[str, str]:
    return {key: row[2] for key, row in sms_rows(env).items()}


def test_each_jurisdiction_goes_to_its_own_provider(env: Outreach) -> None:
    world = World(
        {"CN": ("sms-a",), "US": ("sms-b",), "default": ("sms-c",)}, "sms-a", "sms-b", "sms-c"
    )
    keys = plan(env, CN=3, US=2)
    summary = world.dispatch(env)
    assert summary["sent_by_provider"] == {"sms-a": 3, "sms-b": 2}
    assert (summary["sent"], summary["failed_over"]) == (5, 0)
    assert {item.jurisdiction for call in world["sms-a"].sends for item in call} == {"CN"}
    assert {item.jurisdiction for call in world["sms-b"].sends for item in call} == {"US"}
    assert world["sms-c"].sends == []
    rows = sms_rows(env)
    for key, jurisdiction in keys.items():
        provider = "sms-a" if jurisdiction == "CN" else "sms-b"
        assert rows[key][1:] == (provider, "sent", f"{provider}-{key}")
    # Requests of the adapter's max_batch at most.
    assert all(len(call) <= 2 for call in world["sms-a"].sends)


def test_what_a_provider_certainly_did_not_take_goes_to_the_next_one(env: Outreach) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    world["sms-a"].answer, world["sms-a"].not_taken = SendOutcome.RETRY, True
    keys = plan(env, US=3, CN=2)
    summary = world.dispatch(env)
    # Each message: first to sms-a, which did not take it, then in the same dispatch to sms-b.
    assert sorted(world["sms-a"].given()) == sorted(keys)
    assert sorted(world["sms-b"].given()) == sorted(keys)
    assert world["sms-b"].taken == dict.fromkeys(keys, 1)
    assert summary["sent_by_provider"] == {"sms-b": 5}
    assert (summary["sent"], summary["failed_over"], summary["retry"]) == (5, 5, 0)
    assert providers(env) == dict.fromkeys(keys, "sms-b")
    assert set(statuses(env).values()) == {"sent"}


def test_a_provider_that_took_some_keeps_them_and_the_rest_move_on(env: Outreach) -> None:
    """sms-a takes the first request, then goes down: each row names the provider that took it."""
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    keys = plan(env, US=5)
    original = FakeProvider.send

    async def first_then_down(
        self: FakeProvider, batch: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        if self.vendor.name == "sms-a" and self.vendor.sends:
            self.vendor.answer, self.vendor.not_taken = SendOutcome.RETRY, True
        return await original(self, batch)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeProvider, "send", first_then_down)
        summary = world.dispatch(env)
    took_a, took_b = set(world["sms-a"].taken), set(world["sms-b"].taken)
    assert len(took_a) == 2 and not took_a & took_b and took_a | took_b == set(keys)
    assert summary["sent_by_provider"] == {"sms-a": 2, "sms-b": 3}
    assert summary["failed_over"] == 3
    rows = sms_rows(env)
    assert all(rows[key][1:] == ("sms-a", "sent", f"sms-a-{key}") for key in took_a)
    assert all(rows[key][1:] == ("sms-b", "sent", f"sms-b-{key}") for key in took_b)


def test_a_retry_that_is_not_certain_stays_with_its_provider(env: Outreach) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    world["sms-a"].answer = SendOutcome.RETRY  # not_taken not said: it may have it
    keys = plan(env, US=2)
    summary = world.dispatch(env)
    assert world["sms-b"].sends == []
    assert (summary["sent"], summary["failed_over"], summary["in_doubt"]) == (0, 0, 2)
    assert providers(env) == dict.fromkeys(keys, "sms-a")
    assert statuses(env) == dict.fromkeys(keys, "sending")


def test_a_retry_on_a_route_of_one_provider_waits_for_the_next_attempt(env: Outreach) -> None:
    world = World({"default": ("sms-a",)}, "sms-a")
    world["sms-a"].answer, world["sms-a"].not_taken = SendOutcome.RETRY, True
    keys = plan(env, US=2)
    summary = world.dispatch(env)
    assert (summary["retry"], summary["failed_over"]) == (2, 0)
    assert statuses(env) == dict.fromkeys(keys, "planned")


def test_an_ambiguous_answer_stays_and_is_settled_by_its_provider(env: Outreach) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    world["sms-a"].answer = SendOutcome.AMBIGUOUS
    keys = plan(env, US=2, CN=1)
    summary = world.dispatch(env)
    assert (summary["in_doubt"], summary["failed_over"], summary["sent"]) == (3, 0, 0)
    assert world["sms-b"].sends == []
    assert statuses(env) == dict.fromkeys(keys, "sending")
    assert providers(env) == dict.fromkeys(keys, "sms-a")

    # Within the lease nobody claims them.
    world.now += LEASE / 2
    assert world.dispatch(env)["claimed"] == 0

    # After it, they come back in doubt to sms-a first (its lookup finds them), even with
    # sms-a's circuit open: only sms-a can say whether it has them.
    world.now += LEASE
    world.circuits.trip("sms-a")
    world["sms-a"].answer = SendOutcome.RETRY
    before = len(world["sms-a"].sends)
    summary = world.dispatch(env)
    settle = [item for call in world["sms-a"].sends[before:] for item in call]
    assert sorted(item.key for item in settle) == sorted(keys)
    assert all(item.in_doubt for item in settle)
    assert world["sms-b"].sends == []
    assert world["sms-a"].taken == dict.fromkeys(keys, 1)  # never sent twice
    assert (summary["sent"], summary["duplicates"]) == (3, 3)
    assert summary["sent_by_provider"] == {"sms-a": 3}
    assert statuses(env) == dict.fromkeys(keys, "sent")
    assert providers(env) == dict.fromkeys(keys, "sms-a")


def test_a_message_in_doubt_moves_on_only_when_its_provider_certainly_lacks_it(
    env: Outreach,
) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    keys = plan(env, US=2)
    first, second = sorted(keys)
    # A dispatcher wrote sms-a on the rows, then died before (or while) sending.
    with env.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX)
            .where(OUTBOX.c.idempotency_key.in_(keys))
            .values(
                status="sending",
                claim_token="dead",
                claimed_until=world.now - timedelta(seconds=1),
                attempts=1,
                provider="sms-a",
            )
        )
    world["sms-a"].taken = {first: 1}  # it had taken one of them
    world["sms-a"].answer, world["sms-a"].not_taken = SendOutcome.RETRY, True
    summary = world.dispatch(env)
    (settle,) = world["sms-a"].sends
    assert sorted((item.key, item.in_doubt) for item in settle) == [(first, True), (second, True)]
    # The one sms-a has is its; the other, which sms-a certainly does not have, went to sms-b,
    # no longer in doubt there (sms-b never had it).
    assert [(item.key, item.in_doubt) for call in world["sms-b"].sends for item in call] == [
        (second, False)
    ]
    assert providers(env) == {first: "sms-a", second: "sms-b"}
    assert statuses(env) == {first: "sent", second: "sent"}
    assert world["sms-a"].taken == {first: 1} and world["sms-b"].taken == {second: 1}
    assert summary["sent_by_provider"] == {"sms-a": 1, "sms-b": 1}
    assert summary["failed_over"] == 1


def test_a_message_in_doubt_that_its_provider_cannot_settle_stays_there(env: Outreach) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    keys = plan(env, US=1)
    with env.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX).values(
                status="sending",
                claim_token="dead",
                claimed_until=world.now - timedelta(seconds=1),
                attempts=1,
                provider="sms-a",
            )
        )
    world["sms-a"].answer = SendOutcome.RETRY  # down, and cannot say it lacks the message
    summary = world.dispatch(env)
    assert world["sms-b"].sends == []
    assert summary["in_doubt"] == 1
    assert providers(env) == dict.fromkeys(keys, "sms-a")
    assert statuses(env) == dict.fromkeys(keys, "sending")


def test_a_message_in_doubt_at_a_provider_no_route_names_is_not_sent_again(
    env: Outreach,
) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    keys = plan(env, US=1)
    with env.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX).values(
                status="sending",
                claim_token="dead",
                claimed_until=world.now - timedelta(seconds=1),
                attempts=1,
                provider="retired-gateway",
            )
        )
    summary = world.dispatch(env)
    assert world["sms-a"].sends == [] and world["sms-b"].sends == []
    assert summary["failed"] == 1 and summary["sent"] == 0
    (key,) = keys
    o = OUTBOX.c
    with env.runtime.engine.connect() as c:
        status, provider, error = c.execute(
            select(o.status, o.provider, o.last_error).where(o.idempotency_key == key)
        ).one()
    assert (status, provider) == ("failed", "retired-gateway")
    assert "in doubt at provider 'retired-gateway', which no route names" in error


def test_a_provider_whose_circuit_opened_is_passed_over_until_it_closes(env: Outreach) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    world["sms-a"].answer, world["sms-a"].not_taken = SendOutcome.RETRY, True
    keys = plan(env, US=6)
    # One message per claim: six claims in one dispatch.
    summary = world.dispatch(env, chunk=1)
    assert len(world["sms-a"].sends) == 1  # tried once; then its circuit was open
    assert world["sms-b"].taken == dict.fromkeys(keys, 1)
    assert summary["sent_by_provider"] == {"sms-b": 6}
    assert summary["failed_over"] == 1
    assert world.circuits.is_open("sms-a")

    # Back up, but within circuit_open_seconds: still passed over.
    world["sms-a"].answer = SendOutcome.ACCEPTED
    more = set(plan_more(env, world, 2))
    world.monotonic += 59
    world.dispatch(env, chunk=1)
    assert len(world["sms-a"].sends) == 1
    assert more <= set(world["sms-b"].taken)
    # Once the circuit's time is over it is tried again, and takes them.
    latest = set(plan_more(env, world, 2))
    world.monotonic += 2
    summary = world.dispatch(env, chunk=1)
    assert summary["sent_by_provider"] == {"sms-a": 2}
    assert set(world["sms-a"].taken) == latest
    assert not world.circuits.is_open("sms-a")


def plan_more(env: Outreach, world: World, count: int) -> list[str]:
    """`count` more accounts due an SMS, planned; their keys."""
    before = set(sms_rows(env))
    with env.runtime.unit_of_work() as c:
        for _ in range(count):
            add_account(c, dpd=3, as_of=AS_OF, jurisdiction="US")
    run_daily_outreach(env, AS_OF, executor=PlanOnly(env))
    found = [key for key in sms_rows(env) if key not in before]
    assert len(found) == count
    return found


def test_receipts_are_polled_from_the_provider_on_each_row(env: Outreach) -> None:
    world = World({"CN": ("sms-a", "sms-b"), "default": ("sms-b", "sms-a")}, "sms-a", "sms-b")
    keys = plan(env, CN=2, US=3)
    world.dispatch(env)
    # Now the routes change: receipts still come from where each message went.
    moved = World({"default": ("sms-b", "sms-a")}, "sms-a", "sms-b")
    report = reconcile_receipts(env.runtime.engine, moved.routing)
    assert report.checked == 5
    cn = sorted(key for key, j in keys.items() if j == "CN")
    us = sorted(key for key, j in keys.items() if j == "US")
    assert sorted(moved["sms-a"].polled) == cn
    assert sorted(moved["sms-b"].polled) == us
    assert statuses(env) == dict.fromkeys(keys, "delivered")


def test_receipts_of_a_provider_no_route_names_go_to_the_channels_default(env: Outreach) -> None:
    world = World({"default": ("sms-a",)}, "sms-a", "sms-b")
    keys = plan(env, US=2)
    world.dispatch(env)
    with env.runtime.engine.begin() as c:
        c.execute(update(OUTBOX).values(provider=None))  # sent before providers were recorded
    report = reconcile_receipts(env.runtime.engine, world.routing)
    assert report.checked == 2
    assert sorted(world["sms-a"].polled) == sorted(keys)


def test_a_message_no_provider_took_waits_for_its_next_attempt(env: Outreach) -> None:
    """Every provider of the route certainly did not take it: planned again for later (not
    left `sending` as if one of them might have it)."""
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    for name in ("sms-a", "sms-b"):
        world[name].answer, world[name].not_taken = SendOutcome.RETRY, True
    keys = plan(env, US=2)
    summary = world.dispatch(env)
    assert (summary["retry"], summary["in_doubt"], summary["failed_over"]) == (2, 0, 2)
    assert statuses(env) == dict.fromkeys(keys, "planned")
    # Next time it is not in doubt: sent to the first provider like any other message.
    world["sms-a"].answer = SendOutcome.ACCEPTED
    world.now += timedelta(minutes=6)
    world.monotonic += 61
    summary = world.dispatch(env)
    assert summary["sent_by_provider"] == {"sms-a": 2}
    assert all(not item.in_doubt for call in world["sms-a"].sends for item in call)


def test_a_provider_that_cannot_be_built_is_passed_over(
    env: Outreach, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sms-a is down and the route's next provider lacks its secret: the dispatch goes on,
    nothing is lost, and the messages wait naming what is wrong."""
    world = World({"default": ("sms-a", "sms-b", "sms-c")}, "sms-a", "sms-b", "sms-c")
    world["sms-a"].answer, world["sms-a"].not_taken = SendOutcome.RETRY, True
    build = world.build

    def broken_b(name: str) -> FakeProvider:
        if name == "sms-b":
            raise ConfigError(
                [
                    ConfigProblem(
                        "config/channels.yaml",
                        "providers.sms-b.options.auth_token_env",
                        "environment variable SMS_B_TOKEN is not set",
                    )
                ]
            )
        return build(name)

    monkeypatch.setattr(world, "routing", replace(world.routing, build=broken_b))
    keys = plan(env, US=2)
    summary = world.dispatch(env)
    assert summary["sent_by_provider"] == {"sms-c": 2}
    assert summary["failed_over"] == 4
    assert providers(env) == dict.fromkeys(keys, "sms-c")
    assert world.circuits.is_open("sms-b")

    # Without a third provider, they wait for the next attempt with the reason.
    world = World({"default": ("sms-b",)}, "sms-b")
    monkeypatch.setattr(world, "routing", replace(world.routing, build=broken_b))
    more = plan_more(env, world, 1)
    summary = world.dispatch(env)
    assert summary["retry"] == 1
    o = OUTBOX.c
    with env.runtime.engine.connect() as c:
        status, error = c.execute(
            select(o.status, o.last_error).where(o.idempotency_key == more[0])
        ).one()
    assert status == "planned"
    assert "SMS_B_TOKEN is not set" in error


def test_a_message_in_doubt_at_a_provider_that_cannot_be_built_stays_in_doubt(
    env: Outreach,
) -> None:
    world = World({"default": ("sms-a", "sms-b")}, "sms-a", "sms-b")
    keys = plan(env, US=1)
    with env.runtime.engine.begin() as c:
        c.execute(
            update(OUTBOX).values(
                status="sending",
                claim_token="dead",
                claimed_until=world.now - timedelta(seconds=1),
                attempts=1,
                provider="sms-a",
            )
        )
    build = world.build

    def broken_a(name: str) -> FakeProvider:
        if name == "sms-a":
            raise ConfigError([ConfigProblem("config/channels.yaml", "providers.sms-a", "bad")])
        return build(name)

    world.routing = replace(world.routing, build=broken_a)
    summary = world.dispatch(env)
    assert world["sms-b"].sends == []
    assert summary["in_doubt"] == 1
    assert statuses(env) == dict.fromkeys(keys, "sending")
    assert providers(env) == dict.fromkeys(keys, "sms-a")
