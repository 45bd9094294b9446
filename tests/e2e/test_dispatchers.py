"""Four dispatcher processes drain one outbox through one mock gateway served on a port.

Claims are the only coordination between dispatchers: PostgreSQL hands each claim different rows
(FOR UPDATE SKIP LOCKED), SQLite lets one writer claim at a time. Afterwards the gateway's ledger
must hold every planned message exactly once, under the id the outbox recorded: no duplicates,
no losses. Runs on SQLite, and on PostgreSQL in the `postgres` pass of scripts/test.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from dunning.bootstrap import bootstrap, outreach
from dunning.db.engine import create_db_engine
from dunning.db.tables import ACTION, OUTBOX
from dunning.project import Project
from dunning.services.daily import InThisProcess, run_daily_outreach
from dunning.services.dispatch.send import DispatchReport
from dunning.services.runs.batches import Batch
from sandbox import GatewayLedger
from sandbox.actions import AGENCY_LEDGER, CORE_BANKING_LEDGER, ActionLedger
from tests.e2e.test_kill_and_rerun import always_open_program
from tests.helpers import gateway_served

pytestmark = pytest.mark.slow
AS_OF = date(2026, 11, 24)
ACCOUNTS = 4000
DISPATCHERS = 4
CLAIM_SIZE = 20
BIN = Path(sys.executable).parent


def served_program(repo: Path, target: Path, gateway_url: str) -> Path:
    """Always-open packs (the wall clock must not matter), every channel through the served
    gateway, small claims so that the dispatchers share the work, a lease nobody outlives."""
    program = always_open_program(repo, target)
    channels = program / "config" / "channels.yaml"
    data = yaml.safe_load(channels.read_text())
    for channel in data["channels"].values():
        channel["options"] = {"url": gateway_url, "backoff_base": 0.05, "backoff_cap": 0.2}
    data["dispatch"].update({"claim_size": CLAIM_SIZE, "lease_seconds": 300})
    channels.write_text(yaml.safe_dump(data))
    return program


@pytest.fixture
def gateway(tmp_path: Path, repo_dir: Path) -> Iterator[tuple[str, Path]]:
    """`dunning gateway serve` on a free port, with its own state directory (its ledger)."""
    with gateway_served(repo_dir, tmp_path / "gateway-state") as url:
        yield url, tmp_path / "gateway-state"


class PlanOnly(InThisProcess):
    """The daily run's batches with the dispatch stage left out: the outbox fills, nothing goes."""

    def dispatch(self, as_of: date, batches: Sequence[Batch]) -> list[DispatchReport]:
        return []


class WriteBarrier:
    """Holds the outbox's write lock until every dispatcher is waiting for it, so that all four
    start claiming at the same moment (instead of the first one up draining everything)."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_db_engine(url)
        self.sqlite = make_url(url).get_backend_name() == "sqlite"
        self.database = make_url(url).database

    def __enter__(self) -> WriteBarrier:
        if self.sqlite:
            self.lite = sqlite3.connect(str(self.database), isolation_level=None)
            self.lite.execute("BEGIN IMMEDIATE")  # the one write lock; readers go on
        else:
            self.connection = self.engine.connect()
            self.connection.exec_driver_sql("LOCK TABLE outbox_message IN EXCLUSIVE MODE")
        return self

    def wait_for(self, pids: list[int], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self._all_waiting(pids):
            assert time.monotonic() < deadline, "the dispatchers never reached their claims"
            time.sleep(0.1)
        time.sleep(0.3)

    def _all_waiting(self, pids: list[int]) -> bool:
        if self.sqlite:
            # Each dispatcher has the database open once it is past start-up; the only write it
            # can be in is the one our lock holds back.
            target = os.path.realpath(str(self.database))
            return all(_has_open(pid, target) for pid in pids)
        with self.engine.connect() as probe:
            waiting = probe.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query ILIKE '%outbox_message%'"
                )
            ).scalar_one()
        return int(waiting) >= len(pids)

    def __exit__(self, *exc: object) -> None:
        if self.sqlite:
            self.lite.execute("COMMIT")
            self.lite.close()
        else:
            self.connection.commit()
            self.connection.close()
        self.engine.dispose()


def _has_open(pid: int, path: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return True  # already finished
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                return True
        except OSError:
            continue
    return False


def test_four_dispatchers_drain_one_outbox_exactly_once(
    tmp_path: Path,
    repo_dir: Path,
    database_url: str,
    gateway: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway_url, gateway_state = gateway
    program = served_program(repo_dir, tmp_path / "program", gateway_url)
    environment = {
        "DUNNING_PROJECT_DIR": str(program),
        "DUNNING_DATABASE_URL": database_url,
        "DUNNING_STATE_DIR": str(tmp_path / "state"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    seed = ["demo", "seed", "--accounts", str(ACCOUNTS), "--seed", "11", "--as-of", str(AS_OF)]
    seeded = subprocess.run(
        [str(BIN / "dunning"), *seed],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]

    runtime = bootstrap(project=Project(program), database_url=database_url)
    env = outreach(runtime)
    try:
        summary = run_daily_outreach(env, AS_OF, executor=PlanOnly(env))
    finally:
        env.close()
        runtime.close()
    planned = outbox(database_url)
    to_send = {key for key, row in planned.items() if row["status"] == "planned"}
    # Seed 11's 4,000 accounts: 495 messages to share (over six claims each), 91 held.
    assert Counter(row["status"] for row in planned.values()) == {"planned": 495, "held": 91}
    assert summary["this_run"]["new_messages"] == len(planned)
    kinds = actions(database_url)
    actions_to_do = {key for key, (_, status) in kinds.items() if status == "planned"}
    assert len(actions_to_do) == 68

    with WriteBarrier(database_url) as barrier:
        dispatchers = [
            subprocess.Popen(
                [str(BIN / "dunning"), "run", "dispatch", "--in-process", "--json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(DISPATCHERS)
        ]
        barrier.wait_for([p.pid for p in dispatchers])
    reports = []
    for process in dispatchers:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        reports.append(json.loads(out))

    # All four took part, and between them claimed each message once.
    assert all(report["claimed"] > 0 for report in reports), [r["claimed"] for r in reports]
    assert sum(report["claimed"] for report in reports) == len(to_send)
    assert sum(report["sent"] for report in reports) == len(to_send)
    assert sum(report["duplicates"] for report in reports) == 0

    after = outbox(database_url)
    assert set(after) == set(planned), "a message appeared or vanished"
    assert {key for key, row in after.items() if row["status"] == "sent"} == to_send
    assert all(after[key] == planned[key] for key in set(planned) - to_send)  # held stay held

    ledger = {
        row.idempotency_key: row
        for row in GatewayLedger(gateway_state / "gateway-ledger.db").rows()
    }
    assert set(ledger) == to_send, "the gateway's ledger and the outbox disagree"
    assert all(ledger[key].id == after[key]["gateway_message_id"] for key in to_send)
    assert all(ledger[key].submissions == 1 for key in to_send), "a message was sent twice"
    assert all(ledger[key].channel == after[key]["channel"] for key in to_send)

    # The actions they dispatched along the way went once each, too.
    done = actions(database_url)
    assert {key for key in actions_to_do if done[key][1] == "done"} == actions_to_do
    applied: list[str] = []
    for name in (CORE_BANKING_LEDGER, AGENCY_LEDGER):
        path = tmp_path / "state" / name
        if path.exists():
            rows = ActionLedger(path).requests()
            assert all(row.submissions == 1 for row in rows)
            applied.extend(row.idempotency_key for row in rows)
    assert len(applied) == len(set(applied))
    # Freezes go to core banking and placements to the agency (27 and 22); the registry's
    # reports to a file.
    assert set(applied) == {key for key in actions_to_do if kinds[key][0] != "registry_report"}
    assert len(applied) == 49


def outbox(url: str) -> dict[str, dict[str, Any]]:
    engine = create_db_engine(url)
    o = OUTBOX.c
    with engine.connect() as connection:
        rows = connection.execute(
            select(o.idempotency_key, o.status, o.channel, o.gateway_message_id, o.suppression)
        ).all()
    engine.dispose()
    return {row[0]: dict(row._mapping) for row in rows}


def actions(url: str) -> dict[str, tuple[str, str]]:
    """Each action's kind and status, by idempotency key."""
    engine = create_db_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(ACTION.c.idempotency_key, ACTION.c.kind, ACTION.c.status)
        ).all()
    engine.dispose()
    return {key: (kind, status) for key, kind, status in rows}
