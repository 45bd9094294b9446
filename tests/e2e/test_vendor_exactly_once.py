"""Exactly once through Twilio's wire API, which takes no idempotency key.

The mock Twilio (`dunning gateway serve` with its Twilio API, on loopback) stores every POST as
a new message, as Twilio does: a message sent twice is two ledger rows with two SIDs. So what
its ledger holds is what really went out. Two proofs:

1. A dispatcher (`dunning run dispatch`, in its own process) is SIGKILLed at a crash point
   (the provider recorded and nothing sent; sent and nothing recorded; the record's commit
   lost), and run again once the lease has run out: each planned US SMS is in the ledger
   once, under the SID its outbox row names; what the killed run sent was found by the
   adapter's lookup, not sent again.
2. Of two Twilio providers, the first is killed mid-run with a request in flight: what it
   certainly did not take goes to the second, the message whose fate is unknown stays with
   the first (left `sending`) until the first is back and its lookup settles it. The two
   ledgers are disjoint and hold every planned US SMS once.

Runs on SQLite, and on PostgreSQL in the `postgres` pass of scripts/test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from adapters import GatewayAdapter, OutboundMessage, SendResult
from dunning.bootstrap import bootstrap, outreach
from dunning.cli._common import STATE
from dunning.db.engine import create_db_engine
from dunning.db.tables import ACCOUNT, OUTBOX
from dunning.project import Project
from dunning.services.daily.run import dispatch_due_now
from sandbox import GatewayLedger, LedgerRow, ScriptedFault
from tests.e2e.test_kill_and_rerun import always_open_program
from tests.e2e.test_providers import died, seed_and_plan, set_env
from tests.helpers import dunning_served, invoke

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
ACCOUNTS = 400
"""Seed 11's 400 accounts plan about twenty US SMS (and CN SMS, push, letters beside)."""
ACCOUNT_SID = "AC" + "5e" * 16
SERVICE_SID = "MG" + "5e" * 16
TOKEN_ENV = "VENDOR_TEST_TWILIO_TOKEN"
SECRETS = {TOKEN_ENV: "twilio-exactly-once-test-token"}
"""The mock's auth token, and the providers' (both read it from this variable)."""


def url_env(provider: str) -> str:
    """The environment variable holding a provider's gateway URL (its `url_env`)."""
    return "TEST_" + provider.upper().replace("-", "_") + "_URL"


def twilio_program(repo: Path, target: Path, providers: dict[str, dict[str, Any]]) -> Path:
    """The repository's program, always open, with a 10 s lease, whose US SMS go to these
    twilio-sms providers in order (other SMS, push and letters stay on the in-process mocks),
    and whose served mock gateway speaks Twilio's API for ACCOUNT_SID."""
    program = always_open_program(repo, target)
    path = program / "config" / "channels.yaml"
    data = yaml.safe_load(path.read_text())
    data["providers"] = {
        name: {
            "adapter": "twilio-sms",
            "options": {
                "url_env": url_env(name),
                "account_sid": ACCOUNT_SID,
                "auth_token_env": TOKEN_ENV,
                "messaging_service_sid": SERVICE_SID,
                "max_attempts": 2,
                "backoff_base": 0.01,
                "backoff_cap": 0.05,
                **options,
            },
        }
        for name, options in providers.items()
    }
    data["channels"]["sms"] = {"routes": {"US": list(providers), "default": ["mock-sms"]}}
    data["mock_gateway"]["twilio"] = {"account_sid": ACCOUNT_SID, "auth_token_env": TOKEN_ENV}
    path.write_text(yaml.safe_dump(data))
    return program


def us_sms(database_url: str) -> dict[str, dict[str, Any]]:
    """Every US SMS the day planned or sent, by key (held ones are left out)."""
    engine = create_db_engine(database_url)
    o = OUTBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                o.idempotency_key,
                o.status,
                o.provider,
                o.gateway_message_id,
                o.recipient,
                o.body,
            )
            .join(ACCOUNT, ACCOUNT.c.id == o.account_id)
            .where(o.channel == "sms", ACCOUNT.c.jurisdiction == "US", o.status != "held")
        ).all()
    engine.dispose()
    return {row[0]: dict(row._mapping) for row in rows}


def twilio_rows(state: Path) -> list[LedgerRow]:
    """What a served mock Twilio took: one row per message it sent (never deduplicated)."""
    path = state / "gateway-ledger.db"
    if not path.exists():
        return []
    return [row for row in GatewayLedger(path).rows("sms") if row.api == "twilio"]


def dispatch(env: dict[str, str], crash: str | None = None) -> dict[str, Any] | None:
    """`dunning run dispatch --in-process --json`: its report, or None when it was killed at
    the crash point."""
    run_env = dict(env)
    if crash is not None:
        run_env.update(DUNNING_CRASH_POINT=crash, DUNNING_CRASH_AFTER="1")
    done = subprocess.run(
        [str(BIN / "dunning"), "run", "dispatch", "--in-process", "--json"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if crash is not None:
        assert done.returncode == -signal.SIGKILL, f"{crash} not reached: {done.stderr[-2000:]}"
        return None
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def planned_us_sms(program: Path, database_url: str) -> dict[str, dict[str, Any]]:
    seed_and_plan(program, database_url, ACCOUNTS)
    planned = us_sms(database_url)
    assert len(planned) >= 10, "too few US SMS to prove anything"
    assert {row["status"] for row in planned.values()} == {"planned"}
    # The ledgers are matched to the outbox by recipient and text where no SID says which
    # message a row is: each planned US SMS must be told apart by them.
    assert len({(r["recipient"], r["body"]) for r in planned.values()}) == len(planned)
    return planned


def assert_sent_once(
    planned: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], rows: list[LedgerRow]
) -> None:
    """Each planned message went out once: one ledger row each, under the SID its outbox row
    names, with its recipient and text; no row that no outbox row names (a second send)."""
    assert set(after) == set(planned), "a US SMS was lost or planned again"
    by_sid = {row.id: row for row in rows}
    assert len(by_sid) == len(rows)
    named = {row["gateway_message_id"] for row in after.values()}
    assert not set(by_sid) - named, "Twilio sent a message no outbox row names: a duplicate"
    assert len(rows) == len(planned)
    for key, row in after.items():
        sid = row["gateway_message_id"]
        assert sid in by_sid, f"{key}: the SID recorded is not in Twilio's ledger"
        assert (by_sid[sid].recipient, by_sid[sid].body) == (row["recipient"], row["body"])


@pytest.mark.parametrize(
    ("point", "sent_before_rerun"),
    [
        ("dispatch.after-route", False),  # the provider recorded, nothing sent
        ("dispatch.after-send", True),  # sent, nothing recorded
        ("dispatch.before-record-commit", True),  # sent, the record's transaction lost
    ],
)
def test_a_dispatcher_killed_at_a_crash_point_sends_each_twilio_sms_once_after_a_rerun(
    point: str,
    sent_before_rerun: bool,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    repo_dir: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = twilio_program(repo_dir, tmp_path / "program", {"twilio-us": {}})
    set_env(monkeypatch, program, database_url, tmp_path / "state")
    gateway = tmp_path / "gateway"
    with dunning_served(program, gateway, "gateway", env=SECRETS) as (url, _):
        env = {**os.environ, **SECRETS, url_env("twilio-us"): url}
        planned = planned_us_sms(program, database_url)

        assert dispatch(env, crash=point) is None
        crashed = us_sms(database_url)
        # Claimed, routed to twilio-us, and not recorded: each is left `sending`.
        assert {row["status"] for row in crashed.values()} == {"sending"}
        assert {row["provider"] for row in crashed.values()} == {"twilio-us"}
        assert len(twilio_rows(gateway)) == (len(planned) if sent_before_rerun else 0)

        # The killed run's claims are free again once their lease has run out: the next
        # dispatcher runs on a clock past it.
        report = dispatch_after_lease(capsys, monkeypatch, env, database_url)

    after = us_sms(database_url)
    assert {row["status"] for row in after.values()} == {"sent"}
    assert {row["provider"] for row in after.values()} == {"twilio-us"}
    rows = twilio_rows(gateway)
    assert_sent_once(planned, after, rows)
    assert report["sent_by_provider"]["twilio-us"] == len(planned)
    assert report["in_doubt"] == 0 and report["failed"] == 0
    if sent_before_rerun:
        # The rerun found each one at Twilio by its lookup and recorded the SID it found,
        # instead of sending it again (the ledger above has one row each).
        assert report["duplicates"] >= len(planned)
    else:
        # Nothing had gone out: the rerun looked each up, found nothing, and sent it.
        assert report["duplicates"] == 0


class KilledWithARequestInFlight:
    """twilio-a's adapter (one message per request, one request at a time). Its gateway
    takes the first message and answers; it then stores the second and holds its answer (a
    commit-first timeout fault), and is SIGKILLed while that request waits: a vendor that goes
    down mid-run, leaving one message whose fate the dispatcher cannot know."""

    calls = 0
    killed = False

    def __init__(self, inner: GatewayAdapter, pid: int, ledger: GatewayLedger) -> None:
        self.inner, self.pid, self.ledger = inner, pid, ledger
        self.max_batch = inner.max_batch
        self.max_concurrency = inner.max_concurrency

    async def __aenter__(self) -> KilledWithARequestInFlight:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.inner.__aexit__(*exc)

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        cls = KilledWithARequestInFlight
        cls.calls += 1
        if cls.calls == 1:
            results = await self.inner.send(batch)
            spec = ScriptedFault(kind="timeout", sleep_seconds=120, commit_first=True).spec()
            self.ledger.queue_fault(spec, 1, "sms")
            return results
        if cls.calls > 2:
            return await self.inner.send(batch)
        in_flight = asyncio.create_task(self.inner.send(batch))
        deadline = time.monotonic() + 30
        while len([r for r in self.ledger.rows("sms") if r.api == "twilio"]) < 2:
            assert time.monotonic() < deadline, "the second message never reached twilio-a"
            assert not in_flight.done(), "the second request was answered"
            await asyncio.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)
        died(self.pid)
        results = await in_flight
        cls.killed = True
        # Its kept-alive connection went with it: the next request meets a refused
        # connection, certainly not taken (see tests/e2e/test_providers.py).
        await self.inner.aclose()
        return results


def test_a_twilio_provider_killed_mid_run_fails_over_and_its_message_in_doubt_stays(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    repo_dir: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = twilio_program(
        repo_dir,
        tmp_path / "program",
        {"twilio-a": {"max_concurrency": 1}, "twilio-b": {}},
    )
    set_env(monkeypatch, program, database_url, tmp_path / "state")
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    state_a, state_b = tmp_path / "gateway-a", tmp_path / "gateway-b"
    with (
        dunning_served(program, state_a, "gateway", env=SECRETS) as (url_a, pid_a),
        dunning_served(program, state_b, "gateway", env=SECRETS) as (url_b, _),
    ):
        monkeypatch.setenv(url_env("twilio-a"), url_a)
        monkeypatch.setenv(url_env("twilio-b"), url_b)
        planned = planned_us_sms(program, database_url)

        runtime = bootstrap(project=Project(program), database_url=database_url)
        parts = outreach(runtime)
        routing = parts.dispatcher.routing
        build = routing.build
        ledger_a = GatewayLedger(state_a / "gateway-ledger.db")

        def wrapped(name: str) -> Any:
            adapter = build(name)
            if name == "twilio-a":
                return KilledWithARequestInFlight(adapter, pid_a, ledger_a)
            return adapter

        KilledWithARequestInFlight.calls, KilledWithARequestInFlight.killed = 0, False
        parts.dispatcher.routing = dataclasses.replace(routing, build=wrapped)
        try:
            summary = dispatch_due_now(parts).as_dict()
        finally:
            parts.close()
            runtime.close()
    assert KilledWithARequestInFlight.killed

    rows_a, rows_b = twilio_rows(state_a), twilio_rows(state_b)
    took_a = {(row.recipient, row.body) for row in rows_a}
    took_b = {(row.recipient, row.body) for row in rows_b}
    every = {(row["recipient"], row["body"]) for row in planned.values()}
    # twilio-a took two (the first answered, the second in flight when it died); twilio-b
    # every other one; none went to both, none twice, none was lost.
    assert len(rows_a) == len(took_a) == 2
    assert len(rows_b) == len(took_b)
    assert not took_a & took_b, "a message went to both gateways"
    assert took_a | took_b == every, "a message was lost"

    after = us_sms(database_url)
    sids_a, sids_b = {r.id: r for r in rows_a}, {r.id: r for r in rows_b}
    unknown = [key for key, row in after.items() if row["status"] == "sending"]
    # The message in flight: its fate unknown, it stays with twilio-a (never sent by B).
    assert len(unknown) == 1
    (doubt,) = unknown
    assert after[doubt]["provider"] == "twilio-a" and after[doubt]["gateway_message_id"] is None
    assert (after[doubt]["recipient"], after[doubt]["body"]) in took_a
    for key, row in after.items():
        if key == doubt:
            continue
        assert row["status"] == "sent"
        sids = sids_a if row["provider"] == "twilio-a" else sids_b
        assert row["gateway_message_id"] in sids, f"{key}: not under the SID its gateway gave"
    assert summary["in_doubt"] == 1
    assert summary["sent_by_provider"]["twilio-a"] == 1
    assert summary["sent_by_provider"]["twilio-b"] == len(planned) - 2
    assert summary["failed_over"] >= len(planned) - 2

    # twilio-a comes back (its own ledger, on a new port); once the lease has run out, the
    # next dispatcher settles the message in doubt there by lookup: the SID it already had.
    with dunning_served(program, state_a, "gateway", env=SECRETS) as (url_again, _):
        env = {**os.environ, url_env("twilio-a"): url_again}
        report = dispatch_after_lease(capsys, monkeypatch, env, database_url)
    assert twilio_rows(state_a) == rows_a, "twilio-a sent the message in doubt again"
    assert twilio_rows(state_b) == rows_b
    assert report["duplicates"] == 1 and report["sent_by_provider"] == {"twilio-a": 1}
    settled = us_sms(database_url)[doubt]
    assert settled["status"] == "sent" and settled["provider"] == "twilio-a"
    by_sid = sids_a[settled["gateway_message_id"]]
    assert (by_sid.recipient, by_sid.body) == (settled["recipient"], settled["body"])


def dispatch_after_lease(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    database_url: str,
) -> dict[str, Any]:
    """`dunning run dispatch --in-process --json` in this process, its clock a second past
    the last lease still held (instead of waiting the lease out)."""
    for name, value in env.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    after = datetime.fromtimestamp(claimed_until(database_url) + 1, UTC)
    monkeypatch.setattr(STATE, "clock", lambda: after)
    result = invoke(capsys, "run", "dispatch", "--in-process", "--json")
    assert result.code == 0, result.err[-3000:]
    report: dict[str, Any] = result.json()
    return report


def claimed_until(database_url: str) -> float:
    """When the last lease still held in the outbox runs out (Unix seconds)."""
    engine = create_db_engine(database_url)
    with engine.connect() as connection:
        until = connection.execute(
            select(OUTBOX.c.claimed_until).where(OUTBOX.c.status == "sending")
        ).scalars()
        latest = max(until)
    engine.dispose()
    if latest.tzinfo is None:  # SQLite keeps UTC without its zone
        latest = latest.replace(tzinfo=UTC)
    return float(latest.timestamp())
