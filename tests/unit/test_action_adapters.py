"""Action adapters against httpx.MockTransport: exact payloads, PAYLOADS, retries, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters import Timing
from adapters.actions import PAYLOADS, ActionKind, ActionRequest, ActionResult, InvalidActionRequest
from adapters.base import SendOutcome
from dunning.errors import ConfigError
from sandbox import MockActionOptions, MockAgencyAdapter, MockCoreBankingAdapter

EPOCH = 1_800_000_000.0
AS_OF = date(2026, 11, 23)


@dataclass
class FakeTime:
    """Clocks that only move when the code under test sleeps."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def timing(self) -> Timing:
        return Timing(self.monotonic, self.wall, self.sleep, lambda: 0.5)


Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


def answer_all(request: httpx.Request) -> httpx.Response:
    """What the mock vendors say when everything is fine."""
    body = json.loads(request.content)
    if "holds" in body or "releases" in body:
        items = body.get("holds") or body.get("releases")
        results = [
            {"request_id": i["request_id"], "status": "applied", "change_id": f"clc-{n}"}
            for n, i in enumerate(items)
        ]
    elif "placements" in body:
        results = [
            {"client_reference": i["client_reference"], "status": "placed", "placement_id": "plc"}
            for i in body["placements"]
        ]
    else:
        results = [
            {"client_reference": i["client_reference"], "status": "recalled", "recall_id": "rcl"}
            for i in body["recalls"]
        ]
    return httpx.Response(200, json={"results": results})


@dataclass
class Service:
    """A scripted service: answers requests in order with the given handlers, then answer_all."""

    script: list[Handler] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def transport(self) -> httpx.MockTransport:
        async def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            handler = self.script.pop(0) if self.script else answer_all
            answer = handler(request)
            return answer if isinstance(answer, httpx.Response) else await answer

        return httpx.MockTransport(handle)

    def bodies(self) -> list[Any]:
        return [json.loads(request.content) for request in self.requests]


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    def answer(_: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "oops", "message": f"status {code}"}}
        return httpx.Response(code, json=body, headers=headers)

    return answer


FAST = {"backoff_base": 0.1, "backoff_cap": 1.0, "max_attempts": 4, "timeout": 1.0}

AdapterClass = type[MockCoreBankingAdapter] | type[MockAgencyAdapter]


def adapter(
    service: Service,
    cls: AdapterClass = MockCoreBankingAdapter,
    clock: FakeTime | None = None,
    **options: Any,
) -> MockCoreBankingAdapter | MockAgencyAdapter:
    return cls(
        MockActionOptions(**{**FAST, **options}),
        transport=service.transport(),
        timing=(clock or FakeTime()).timing(),
    )


def perform(
    target: MockCoreBankingAdapter | MockAgencyAdapter, batch: Sequence[ActionRequest]
) -> list[ActionResult]:
    async def go() -> list[ActionResult]:
        async with target:
            return await target.perform(batch)

    return asyncio.run(go())


def freeze(key: str = "f1", account: str = "ACC-1", **change: Any) -> ActionRequest:
    payload = {
        "mode": "freeze",
        "credit_limit_minor": 500_000,
        "new_limit_minor": 0,
        "currency": "CNY",
        "tier": "middle",
        **change,
    }
    return ActionRequest(key, ActionKind.CREDIT_FREEZE, account, AS_OF, payload)


def restore(key: str = "r1", account: str = "ACC-1") -> ActionRequest:
    payload = {"restore_limit_minor": 500_000, "currency": "CNY", "reason": "cured"}
    return ActionRequest(key, ActionKind.CREDIT_RESTORE, account, AS_OF, payload)


PLACEMENT = {
    "agency": "huaxin",
    "customer_name": "张伟",
    "phone": "+8613800138000",
    "address_lines": ["北京市朝阳区建国路88号", "100022"],
    "locale": "zh-CN",
    "currency": "CNY",
    "principal_minor": 1_800_000,
    "interest_minor": 54_000,
    "fees_minor": 5_000,
    "penalty_minor": 12_000,
    "overdue_minor": 310_000,
    "dpd": 42,
    "commission_rate": Decimal("0.15"),
}


def placement(key: str = "p1", account: str = "ACC-1", **change: Any) -> ActionRequest:
    return ActionRequest(key, ActionKind.AGENCY_PLACEMENT, account, AS_OF, {**PLACEMENT, **change})


def recall(key: str = "c1", reference: str = "plc_1", account: str = "ACC-1") -> ActionRequest:
    payload = {"agency": "huaxin", "placement_reference": reference, "reason": "cured"}
    return ActionRequest(key, ActionKind.AGENCY_RECALL, account, AS_OF, payload)


# -- exact payloads, one test per provider ------------------------------------------------------


def test_core_banking_payloads_one_request_per_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CORE_KEY", "core-key")
    service = Service()
    reduce = freeze("f2", "ACC-2", mode="reduce", new_limit_minor=250_000)
    results = perform(
        adapter(service, api_key_env="TEST_CORE_KEY"), [freeze(), restore("r9", "ACC-9"), reduce]
    )
    assert [r.outcome for r in results] == [SendOutcome.ACCEPTED] * 3
    assert [r.reference for r in results] == ["clc-0", "clc-0", "clc-1"]
    holds, releases = service.requests
    assert (holds.method, str(holds.url)) == (
        "POST",
        "http://mock-core-banking/v1/credit-lines/holds",
    )
    assert str(releases.url) == "http://mock-core-banking/v1/credit-lines/releases"
    assert holds.headers["authorization"] == "Bearer core-key"
    assert holds.headers["content-type"] == "application/json"
    assert json.loads(holds.content) == {
        "holds": [
            {
                "request_id": "f1",
                "account_ref": "ACC-1",
                "effective_date": "2026-11-23",
                "mode": "freeze",
                "credit_limit_minor": 500_000,
                "new_limit_minor": 0,
                "currency": "CNY",
                "tier": "middle",
            },
            {
                "request_id": "f2",
                "account_ref": "ACC-2",
                "effective_date": "2026-11-23",
                "mode": "reduce",
                "credit_limit_minor": 500_000,
                "new_limit_minor": 250_000,
                "currency": "CNY",
                "tier": "middle",
            },
        ]
    }
    assert json.loads(releases.content) == {
        "releases": [
            {
                "request_id": "r9",
                "account_ref": "ACC-9",
                "effective_date": "2026-11-23",
                "restore_limit_minor": 500_000,
                "currency": "CNY",
                "reason": "cured",
            }
        ]
    }


def test_agency_payloads_carry_exactly_the_placement_fields() -> None:
    service = Service()
    results = perform(
        adapter(service, MockAgencyAdapter, url="https://agency.example.test/"),
        [placement(), recall("c1", "plc_77", "ACC-5")],
    )
    assert results == [
        ActionResult("p1", SendOutcome.ACCEPTED, reference="plc"),
        ActionResult("c1", SendOutcome.ACCEPTED, reference="rcl"),
    ]
    placed, recalled = service.requests
    assert str(placed.url) == "https://agency.example.test/v1/placements"
    assert "authorization" not in placed.headers
    assert json.loads(placed.content) == {
        "placements": [
            {
                "client_reference": "p1",
                "account_ref": "ACC-1",
                "placed_on": "2026-11-23",
                "agency": "huaxin",
                "customer_name": "张伟",
                "phone": "+8613800138000",
                "address_lines": ["北京市朝阳区建国路88号", "100022"],
                "locale": "zh-CN",
                "currency": "CNY",
                "principal_minor": 1_800_000,
                "interest_minor": 54_000,
                "fees_minor": 5_000,
                "penalty_minor": 12_000,
                "overdue_minor": 310_000,
                "dpd": 42,
                "commission_rate": "0.15",
            }
        ]
    }
    # Non-ASCII goes as UTF-8, not \u escapes.
    assert "张伟".encode() in placed.content
    assert str(recalled.url) == "https://agency.example.test/v1/recalls"
    assert json.loads(recalled.content) == {
        "recalls": [
            {
                "client_reference": "c1",
                "account_ref": "ACC-5",
                "recalled_on": "2026-11-23",
                "agency": "huaxin",
                "placement_reference": "plc_77",
                "reason": "cured",
            }
        ]
    }


def test_answers_are_mapped_per_request() -> None:
    def mixed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "results": [
                    {
                        "client_reference": "c1",
                        "status": "recalled",
                        "recall_id": "rcl_1",
                        "duplicate": True,
                        "placement_id": "plc_1",
                    },
                    {
                        "client_reference": "c2",
                        "status": "rejected",
                        "code": "unknown_placement",
                        "reason": "no placement has this reference",
                    },
                ]
            },
        )

    service = Service([mixed])
    results = perform(adapter(service, MockAgencyAdapter), [recall("c1"), recall("c2", "plc_x")])
    assert results == [
        ActionResult("c1", SendOutcome.ACCEPTED, reference="rcl_1", duplicate=True),
        ActionResult(
            "c2",
            SendOutcome.REJECTED,
            reason="unknown_placement: no placement has this reference",
        ),
    ]
    assert len(service.requests) == 1, "a rejection is permanent: not retried"


def test_batches_split_at_max_batch_and_a_repeated_key_goes_once() -> None:
    service = Service()
    batch = [freeze("k0"), freeze("k1"), freeze("k1"), freeze("k2"), freeze("k3")]
    results = perform(adapter(service, max_batch=3), batch)
    assert [len(body["holds"]) for body in service.bodies()] == [2, 2]
    assert [r.idempotency_key for r in results] == ["k0", "k1", "k1", "k2", "k3"]
    assert MockCoreBankingAdapter(MockActionOptions(max_batch=7)).max_batch == 7


# -- payloads restricted to PAYLOADS: a programming error, nothing is sent -----------------------


def test_an_extra_payload_key_is_refused_before_anything_is_sent() -> None:
    service = Service()
    leaky = placement(email="zhang.wei@example.com", employer="ACME")
    with pytest.raises(InvalidActionRequest) as caught:
        perform(adapter(service, MockAgencyAdapter), [placement("p0"), leaky])
    message = str(caught.value)
    assert "unexpected key(s) email, employer" in message
    assert "PAYLOADS" in message
    assert "zhang.wei" not in message, "errors name keys, never values"
    assert service.requests == []


def test_a_missing_payload_key_is_refused() -> None:
    request = freeze()
    partial = ActionRequest(
        "f1",
        request.kind,
        "ACC-1",
        AS_OF,
        {k: v for k, v in request.payload.items() if k != "tier"},
    )
    with pytest.raises(InvalidActionRequest, match="missing key"):
        perform(adapter(Service()), [partial])


def test_a_kind_of_another_target_is_refused() -> None:
    with pytest.raises(InvalidActionRequest, match="performs credit_freeze, credit_restore"):
        perform(adapter(Service()), [placement()])


def test_every_kind_has_its_payload_keys() -> None:
    assert set(PAYLOADS) == set(ActionKind)
    assert set(freeze().payload) == set(PAYLOADS[ActionKind.CREDIT_FREEZE])
    assert set(restore().payload) == set(PAYLOADS[ActionKind.CREDIT_RESTORE])
    assert set(placement().payload) == set(PAYLOADS[ActionKind.AGENCY_PLACEMENT])
    assert set(recall().payload) == set(PAYLOADS[ActionKind.AGENCY_RECALL])


def test_missing_api_key_env_names_the_actions_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(ConfigError) as caught:
        MockAgencyAdapter(MockActionOptions(api_key_env="NO_SUCH_KEY_VAR"))
    assert "config/actions.yaml: adapters.agency.options.api_key_env" in str(caught.value)


# -- transient faults: retried, then success -----------------------------------------------------


def test_5xx_then_success_with_the_same_keys() -> None:
    service = Service([status(503), status(502)])
    clock = FakeTime()
    results = perform(adapter(service, clock=clock), [freeze()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(service.requests) == 3
    assert clock.sleeps == pytest.approx([0.075, 0.15])
    assert service.bodies()[0] == service.bodies()[2]


def test_429_retry_after_is_honoured() -> None:
    service = Service([status(429, {"Retry-After": "3"})])
    clock = FakeTime()
    results = perform(adapter(service, MockAgencyAdapter, clock, max_retry_after=10), [placement()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert clock.sleeps == [3.0]


def test_timeout_then_success() -> None:
    async def hang(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    service = Service([hang])
    results = perform(adapter(service, timeout=0.05), [restore()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(service.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"results": [{"request_id',
        b'{"data": "unexpected"}',
        b'{"results": [{"request_id": "f1", "status": "applied"}]}',
    ],
    ids=["invalid-json", "wrong-shape", "applied-without-id"],
)
def test_malformed_answer_then_success(body: bytes) -> None:
    service = Service([lambda _: httpx.Response(200, content=body)])
    results = perform(adapter(service), [freeze()])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert len(service.requests) == 2


def test_retries_exhausted_leave_the_action_for_the_next_dispatch() -> None:
    service = Service([status(503)] * 10)
    clock = FakeTime()
    results = perform(adapter(service, clock=clock, max_attempts=3), [freeze(), restore()])
    assert {r.outcome for r in results} == {SendOutcome.RETRY}
    assert results[0].reason == "HTTP 503 oops: status 503"
    assert len(service.requests) == 6  # three tries for the holds, three for the releases


# -- permanent errors: never retried -------------------------------------------------------------


@pytest.mark.parametrize("code", [400, 409, 422])
def test_permanent_4xx_is_never_retried(code: int) -> None:
    service = Service([status(code)])
    clock = FakeTime()
    results = perform(adapter(service, MockAgencyAdapter, clock), [placement()])
    assert results[0].outcome == SendOutcome.REJECTED
    assert results[0].reason == f"HTTP {code} oops: status {code}"
    assert len(service.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("code", [401, 403, 404])
def test_refused_request_is_not_retried_and_not_rejected(code: int) -> None:
    service = Service([status(code)])
    results = perform(adapter(service), [freeze()])
    assert results[0].outcome == SendOutcome.RETRY
    assert "adapters.credit_line in config/actions.yaml" in (results[0].reason or "")
    assert len(service.requests) == 1
