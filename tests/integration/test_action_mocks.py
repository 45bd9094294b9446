"""The mock core banking system and agency over real SQLite ledgers, reached through ASGI."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters import Timing
from adapters.actions import PAYLOADS, ActionAdapter, ActionKind, ActionRequest, ActionResult
from adapters.base import SendOutcome
from adapters.registry import build_action_adapter
from dunning.config.actions import ActionsConfig
from sandbox import (
    AgencyLedger,
    CoreBankingLedger,
    MockActionOptions,
    MockAgencyAdapter,
    MockCoreBankingAdapter,
    agency_ledger,
    core_banking_ledger,
    create_agency_app,
    create_core_banking_app,
)
from sandbox._faults import SCRIPTED_FAULT_MAX_BYTES
from sandbox.actions._common import MAX_BODY_BYTES
from tests.helpers import StreamedBody

AS_OF = date(2026, 11, 23)
FAST = {"backoff_base": 0.01, "backoff_cap": 0.05, "max_attempts": 4, "timeout": 2.0}


@dataclass
class Sleeps:
    """Adapter timing that records backoff instead of sleeping; clocks are real."""

    waits: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def timing(self) -> Timing:
        return Timing(time.monotonic, time.time, self.sleep, lambda: 0.5)


def transport(app: Any) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app, raise_app_exceptions=False)


def core(ledger: Path, sleeps: Sleeps | None = None, **options: Any) -> MockCoreBankingAdapter:
    return MockCoreBankingAdapter(
        MockActionOptions(**{**FAST, **options}),
        transport=transport(create_core_banking_app(ledger)),
        timing=(sleeps or Sleeps()).timing(),
    )


def agency(ledger: Path, sleeps: Sleeps | None = None, **options: Any) -> MockAgencyAdapter:
    return MockAgencyAdapter(
        MockActionOptions(**{**FAST, **options}),
        transport=transport(create_agency_app(ledger)),
        timing=(sleeps or Sleeps()).timing(),
    )


def perform(adapter: ActionAdapter, batch: Sequence[ActionRequest]) -> list[ActionResult]:
    async def go() -> list[ActionResult]:
        async with adapter:
            return await adapter.perform(batch)

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


def restore(key: str = "r1", account: str = "ACC-1", **change: Any) -> ActionRequest:
    payload = {"restore_limit_minor": 500_000, "currency": "CNY", "reason": "cured", **change}
    return ActionRequest(key, ActionKind.CREDIT_RESTORE, account, AS_OF, payload)


PLACEMENT = {
    "agency": "north-star",
    "customer_name": "Ann Lee",
    "phone": "+13125551234",
    "address_lines": ["1 Main St", "Springfield, IL 62701"],
    "locale": "en-US",
    "currency": "USD",
    "principal_minor": 180_000,
    "interest_minor": 5_400,
    "fees_minor": 500,
    "penalty_minor": 1_200,
    "overdue_minor": 31_000,
    "dpd": 45,
    "commission_rate": "0.18",
}


def placement(key: str = "p1", account: str = "ACC-1", **change: Any) -> ActionRequest:
    return ActionRequest(key, ActionKind.AGENCY_PLACEMENT, account, AS_OF, {**PLACEMENT, **change})


def recall(key: str, reference: str, account: str = "ACC-1", **change: Any) -> ActionRequest:
    payload = {"agency": "north-star", "placement_reference": reference, "reason": "cured"}
    return ActionRequest(key, ActionKind.AGENCY_RECALL, account, AS_OF, {**payload, **change})


# -- the core banking system -----------------------------------------------------------------


def test_freeze_then_restore_moves_the_credit_line(tmp_path: Path) -> None:
    ledger_file = tmp_path / "core.db"
    (frozen,) = perform(core(ledger_file), [freeze()])
    assert frozen.outcome == SendOutcome.ACCEPTED and frozen.reference
    ledger = CoreBankingLedger(ledger_file)
    line = ledger.credit_line("ACC-1")
    assert line is not None
    assert (line.state, line.limit_minor, line.original_limit_minor) == ("frozen", 0, 500_000)
    assert line.last_change == frozen.reference

    (restored,) = perform(core(ledger_file), [restore()])
    assert restored.outcome == SendOutcome.ACCEPTED
    line = ledger.credit_line("ACC-1")
    assert line is not None
    assert (line.state, line.limit_minor, line.last_change) == (
        "restored",
        500_000,
        restored.reference,
    )
    assert [(r.operation, r.idempotency_key) for r in ledger.requests()] == [
        ("holds", "f1"),
        ("releases", "r1"),
    ]


def test_reduce_keeps_the_original_limit_for_the_restore(tmp_path: Path) -> None:
    ledger_file = tmp_path / "core.db"
    perform(core(ledger_file), [freeze(mode="reduce", new_limit_minor=250_000)])
    perform(core(ledger_file), [freeze("f2")])  # frozen later: still 500,000 to go back to
    line = CoreBankingLedger(ledger_file).credit_line("ACC-1")
    assert line is not None
    assert (line.state, line.limit_minor, line.original_limit_minor) == ("frozen", 0, 500_000)
    perform(core(ledger_file), [restore(restore_limit_minor=None)])
    line = CoreBankingLedger(ledger_file).credit_line("ACC-1")
    assert line is not None and (line.state, line.limit_minor) == ("restored", 500_000)


def test_same_key_twice_is_one_change_across_two_adapter_instances(tmp_path: Path) -> None:
    ledger_file = tmp_path / "core.db"
    (first,) = perform(core(ledger_file), [freeze()])
    (again,) = perform(core(ledger_file), [freeze()])  # another app instance, same file
    assert again == ActionResult("f1", SendOutcome.ACCEPTED, first.reference, duplicate=True)
    ledger = CoreBankingLedger(ledger_file)
    assert ledger.count() == 1 and ledger.resubmissions() == 1


def test_restoring_a_line_with_nothing_in_force_is_rejected(tmp_path: Path) -> None:
    sleeps = Sleeps()
    (result,) = perform(core(tmp_path / "core.db", sleeps), [restore()])
    assert result.outcome == SendOutcome.REJECTED
    assert result.reason == "not_held: the credit line has no freeze or reduction in force"
    assert sleeps.waits == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mode": "block"}, "invalid_field: mode must be freeze or reduce"),
        ({"new_limit_minor": 100}, "invalid_limit: a freeze sets the limit to 0"),
        (
            {"mode": "reduce", "new_limit_minor": 600_000},
            "invalid_limit: a reduction must set a limit below the current one",
        ),
        ({"currency": "yuan"}, "invalid_field: currency must be an ISO 4217 code"),
        (
            {"credit_limit_minor": -1},
            "invalid_field: credit_limit_minor must be a whole number of minor units, 0 or more",
        ),
    ],
)
def test_invalid_holds_are_rejected_per_item(
    tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    results = perform(core(tmp_path / "core.db"), [freeze("ok", "ACC-2"), freeze(**change)])
    assert results[0].outcome == SendOutcome.ACCEPTED
    assert results[1] == ActionResult("f1", SendOutcome.REJECTED, reason=reason)
    assert CoreBankingLedger(tmp_path / "core.db").keys() == ["ok"]


# -- the agency ------------------------------------------------------------------------------


def test_the_agency_stores_exactly_the_payload_it_received(tmp_path: Path) -> None:
    ledger_file = tmp_path / "agency.db"
    (placed,) = perform(agency(ledger_file), [placement()])
    assert placed.outcome == SendOutcome.ACCEPTED and (placed.reference or "").startswith("plc_")
    (row,) = AgencyLedger(ledger_file).requests("placements")
    envelope = {"client_reference", "account_ref", "placed_on"}
    assert set(row.payload) == envelope | set(PAYLOADS[ActionKind.AGENCY_PLACEMENT])
    assert row.payload == {
        "client_reference": "p1",
        "account_ref": "ACC-1",
        "placed_on": "2026-11-23",
        **PLACEMENT,
    }
    (stored,) = AgencyLedger(ledger_file).placements()
    assert (stored.placement_id, stored.state, stored.agency) == (
        placed.reference,
        "open",
        "north-star",
    )


def test_recall_refers_to_the_placement(tmp_path: Path) -> None:
    ledger_file = tmp_path / "agency.db"
    (placed,) = perform(agency(ledger_file), [placement()])
    assert placed.reference is not None
    (recalled,) = perform(agency(ledger_file), [recall("c1", placed.reference)])
    assert recalled.outcome == SendOutcome.ACCEPTED
    found = AgencyLedger(ledger_file).placement(placed.reference)
    assert found is not None
    assert (found.state, found.recall_id, found.recall_reason) == (
        "recalled",
        recalled.reference,
        "cured",
    )
    # Recalled again under another key (a dispute, then the cure): the first recall's answer.
    (again,) = perform(agency(ledger_file), [recall("c2", placed.reference, reason="dispute")])
    assert again == ActionResult("c2", SendOutcome.ACCEPTED, recalled.reference)
    # A new placement after the recall is a new placement.
    (second,) = perform(agency(ledger_file), [placement("p2")])
    assert second.outcome == SendOutcome.ACCEPTED and second.reference != placed.reference


def test_recalling_an_unknown_placement_is_a_permanent_rejection(tmp_path: Path) -> None:
    sleeps = Sleeps()
    (result,) = perform(agency(tmp_path / "agency.db", sleeps), [recall("c1", "plc_unknown")])
    assert result == ActionResult(
        "c1", SendOutcome.REJECTED, reason="unknown_placement: no placement has this reference"
    )
    assert sleeps.waits == [] and AgencyLedger(tmp_path / "agency.db").count() == 0


def test_a_recall_must_match_agency_and_account(tmp_path: Path) -> None:
    ledger_file = tmp_path / "agency.db"
    (placed,) = perform(agency(ledger_file), [placement()])
    assert placed.reference is not None
    results = perform(
        agency(ledger_file),
        [
            recall("c1", placed.reference, agency="huaxin"),
            recall("c2", placed.reference, account="ACC-2"),
        ],
    )
    assert [r.reason for r in results] == [
        "agency_mismatch: the placement is with another agency",
        "account_mismatch: the placement is for another account",
    ]


def test_a_second_open_placement_of_an_account_is_rejected(tmp_path: Path) -> None:
    ledger_file = tmp_path / "agency.db"
    (placed,) = perform(agency(ledger_file), [placement()])
    (other,) = perform(agency(ledger_file), [placement("p2")])
    assert other.outcome == SendOutcome.REJECTED
    assert other.reason == f"already_placed: the account is already placed as {placed.reference}"


def test_placement_dedupe_across_two_adapter_instances(tmp_path: Path) -> None:
    ledger_file = tmp_path / "agency.db"
    (first,) = perform(agency(ledger_file), [placement()])
    (again,) = perform(agency(ledger_file), [placement()])
    assert again == ActionResult("p1", SendOutcome.ACCEPTED, first.reference, duplicate=True)
    assert len(AgencyLedger(ledger_file).placements()) == 1


def test_invalid_placements_are_rejected_without_echoing_values(tmp_path: Path) -> None:
    results = perform(
        agency(tmp_path / "agency.db"),
        [
            placement("a", phone="12345"),
            placement("b", phone=None, address_lines=[]),
            placement("c", overdue_minor=0),
            placement("d", commission_rate="1.5"),
        ],
    )
    assert [r.reason for r in results] == [
        "invalid_field: phone must be an E.164 phone number or null",
        "no_contact: a placement needs a phone number or an address",
        "nothing_overdue: the account has nothing overdue",
        "invalid_field: commission_rate must be between 0 and 1",
    ]


# -- scripted faults: retried, then exactly one effect ---------------------------------------


FAULTS = [
    pytest.param({"kind": "server_error"}, id="5xx"),
    pytest.param({"kind": "server_error", "status": 502}, id="502"),
    pytest.param({"kind": "throttle", "retry_after": 0}, id="429"),
    pytest.param(
        {"kind": "throttle", "retry_after": 0, "retry_after_format": "http-date"},
        id="429-http-date",
    ),
    pytest.param({"kind": "timeout", "sleep_seconds": 5}, id="timeout"),
    pytest.param({"kind": "malformed"}, id="malformed"),
    pytest.param({"kind": "malformed", "shape": "wrong-shape"}, id="wrong-shape"),
    pytest.param(
        {"kind": "timeout", "sleep_seconds": 5, "commit_first": True}, id="timeout-after-commit"
    ),
    pytest.param({"kind": "malformed", "commit_first": True}, id="answer-lost"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_is_retried_then_the_freeze_applies_once(
    tmp_path: Path, fault: dict[str, Any]
) -> None:
    ledger_file = tmp_path / "core.db"
    ledger = CoreBankingLedger(ledger_file)
    ledger.queue_fault(fault, count=2)
    sleeps = Sleeps()
    (result,) = perform(core(ledger_file, sleeps, timeout=0.2), [freeze()])
    assert result.outcome == SendOutcome.ACCEPTED
    assert len(sleeps.waits) == 2
    assert ledger.faults() == []
    assert ledger.count() == 1
    committed_first = fault.get("commit_first", False)
    # When the first attempt was applied and only its answer lost, the retry is a duplicate.
    assert result.duplicate is committed_first
    assert ledger.resubmissions() == (2 if committed_first else 0)


@pytest.mark.parametrize("fault", FAULTS[:3])
def test_each_fault_is_retried_then_the_recall_applies_once(
    tmp_path: Path, fault: dict[str, Any]
) -> None:
    ledger_file = tmp_path / "agency.db"
    (placed,) = perform(agency(ledger_file), [placement()])
    assert placed.reference is not None
    AgencyLedger(ledger_file).queue_fault(fault, count=1, operation="recalls")
    sleeps = Sleeps()
    (result,) = perform(agency(ledger_file, sleeps), [recall("c1", placed.reference)])
    assert result.outcome == SendOutcome.ACCEPTED and len(sleeps.waits) == 1
    assert AgencyLedger(ledger_file).count("recalls") == 1


def test_a_fault_for_one_operation_leaves_the_other_alone(tmp_path: Path) -> None:
    ledger_file = tmp_path / "core.db"
    CoreBankingLedger(ledger_file).queue_fault({"kind": "server_error"}, operation="releases")
    sleeps = Sleeps()
    perform(core(ledger_file, sleeps), [freeze()])
    assert sleeps.waits == []
    perform(core(ledger_file, sleeps), [restore()])
    assert len(sleeps.waits) == 1


def test_faults_beyond_the_attempts_leave_the_action_for_the_next_dispatch(tmp_path: Path) -> None:
    ledger_file = tmp_path / "core.db"
    CoreBankingLedger(ledger_file).queue_fault({"kind": "server_error"}, count=10)
    (result,) = perform(core(ledger_file, max_attempts=3), [freeze()])
    assert result.outcome == SendOutcome.RETRY
    assert result.reason == "HTTP 503 unavailable: the service is temporarily unavailable"
    assert CoreBankingLedger(ledger_file).count() == 0


def test_random_faults_from_the_options_still_apply_each_key_once(tmp_path: Path) -> None:
    from dunning.config.channels import FaultRates

    rates = FaultRates(server_error=0.3, malformed=0.2, seed=7)
    app = create_core_banking_app(tmp_path / "core.db", faults=rates)
    adapter = MockCoreBankingAdapter(
        MockActionOptions(**{**FAST, "max_attempts": 20, "max_batch": 5}),
        transport=transport(app),
        timing=Sleeps().timing(),
    )
    batch = [freeze(f"k{i}", f"ACC-{i}") for i in range(40)]
    results = perform(adapter, batch)
    assert {r.outcome for r in results} == {SendOutcome.ACCEPTED}
    assert sorted(CoreBankingLedger(tmp_path / "core.db").keys()) == sorted(
        f"k{i}" for i in range(40)
    )


# -- the admin API and configuration ---------------------------------------------------------


def test_admin_endpoints(tmp_path: Path) -> None:
    app = create_agency_app(tmp_path / "agency.db")

    async def go() -> None:
        async with httpx.AsyncClient(transport=transport(app), base_url="http://agency") as client:
            queued = await client.post(
                "/_admin/faults?operation=placements", json={"kind": "throttle"}
            )
            assert queued.status_code == 201
            faults = (await client.get("/_admin/faults")).json()
            assert [(f["operation"], f["kind"], f["remaining"]) for f in faults] == [
                ("placements", "throttle", 1)
            ]
            wrong = await client.post("/_admin/faults", json={"kind": "throttle", "channel": "sms"})
            assert wrong.status_code == 400
            meteor = await client.post("/_admin/faults", json={"kind": "meteor"})
            assert meteor.status_code == 422 and "meteor" not in meteor.text
            assert (await client.post("/_admin/reset")).json() == {"ok": True}
            assert (await client.get("/_admin/faults")).json() == []
            summary = (await client.get("/_admin/ledger")).json()
            assert summary == {"total": 0, "resubmissions": 0, "by_operation": {}, "placements": {}}
            assert (await client.get("/v1/placements/plc_none")).status_code == 404
            assert (await client.get("/healthz")).json() == {"ok": True}

    asyncio.run(go())


MiB = 1024 * 1024


def post_streamed(app: Any, path: str, body: StreamedBody, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport(app), base_url="http://mock") as client:
            return await client.post(path, content=body, headers=headers)

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("make", "path", "limit"),
    [
        (create_agency_app, "/v1/placements", MAX_BODY_BYTES),
        (create_core_banking_app, "/v1/credit-lines/holds", MAX_BODY_BYTES),
        (create_agency_app, "/_admin/faults", SCRIPTED_FAULT_MAX_BYTES),
    ],
)
def test_a_body_over_the_limit_is_413_and_read_no_further(
    tmp_path: Path, make: Any, path: str, limit: int
) -> None:
    app = make(tmp_path / "ledger.db")
    body = StreamedBody(limit + 8 * MiB, chunk=MiB)
    answer = post_streamed(app, path, body)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert answer.headers["connection"] == "close"
    assert body.read <= limit + body.chunk


def test_without_the_api_key_the_body_is_not_read(tmp_path: Path) -> None:
    app = create_agency_app(tmp_path / "agency.db", api_key="agency-secret")
    for path in ("/v1/placements", "/_admin/faults"):
        body = StreamedBody(8 * MiB)
        assert post_streamed(app, path, body).status_code == 401
        assert body.read == 0
    body = StreamedBody(8 * MiB)
    keyed = post_streamed(app, "/_admin/faults", body, authorization="Bearer agency-secret")
    assert keyed.status_code == 413


def test_built_from_config_the_mocks_run_in_process_over_the_state_dir(tmp_path: Path) -> None:
    config = ActionsConfig()
    perform(build_action_adapter("credit_line", config, tmp_path), [freeze()])
    perform(build_action_adapter("agency", config, tmp_path), [placement()])
    assert (tmp_path / "core-banking-ledger.db").exists()
    assert core_banking_ledger(tmp_path).keys() == ["f1"]
    assert agency_ledger(tmp_path).keys() == ["p1"]


def test_an_api_key_env_makes_the_in_process_mock_require_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_AGENCY_KEY", "agency-secret")
    config = ActionsConfig.model_validate(
        {
            "adapters": {
                "agency": {"adapter": "mock-agency", "options": {"api_key_env": "TEST_AGENCY_KEY"}}
            }
        }
    )
    (result,) = perform(build_action_adapter("agency", config, tmp_path), [placement()])
    assert result.outcome == SendOutcome.ACCEPTED
    app = create_agency_app(tmp_path / "agency-ledger.db", api_key="agency-secret")

    async def without_key() -> int:
        async with httpx.AsyncClient(transport=transport(app), base_url="http://agency") as client:
            return (await client.get("/_admin/faults")).status_code

    assert asyncio.run(without_key()) == 401
