"""SIGKILL the daily run at every dangerous point and at random moments, then rerun.

The end state must be the one an uninterrupted run reaches: every message planned once and
accepted by the gateway exactly once, with the outbox and the gateway's ledger agreeing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine, select

from dunning.db.tables import OUTBOX
from sandbox import GatewayLedger

pytestmark = pytest.mark.slow
AS_OF = "2026-11-24"
LEASE = 10
DUNNING = str(Path(sys.executable).parent / "dunning")


def always_open_program(repo: Path, target: Path) -> Path:
    """The repository's program, with no contact windows or caps, small batches, short leases.

    Windows and caps are tested elsewhere; here they would only make the outcome depend on
    the wall clock.
    """
    target.mkdir()
    shutil.copy(repo / "dunning.yaml", target / "dunning.yaml")
    shutil.copytree(repo / "config", target / "config")
    shutil.copytree(repo / "templates", target / "templates")
    for pack in (target / "config" / "compliance").glob("[A-Z]*.yaml"):
        data = yaml.safe_load(pack.read_text())
        data["contact_windows"] = {channel: None for channel in data["contact_windows"]}
        data["frequency_caps"] = []
        data["holidays"] = None
        pack.write_text(yaml.safe_dump(data, allow_unicode=True))
    strategy = target / "config" / "strategy.yaml"
    strategy.write_text(strategy.read_text().replace("batch_size: 5000", "batch_size: 400"))
    channels = target / "config" / "channels.yaml"
    data = yaml.safe_load(channels.read_text())
    data["dispatch"]["lease_seconds"] = LEASE
    channels.write_text(yaml.safe_dump(data))
    return target


def dunning(
    env: dict[str, str],
    *args: str,
    crash: tuple[str, int] | None = None,
    kill_after: float | None = None,
) -> int:
    run_env = dict(env)
    if crash is not None:
        run_env["DUNNING_CRASH_POINT"], run_env["DUNNING_CRASH_AFTER"] = crash[0], str(crash[1])
    process = subprocess.Popen(
        [DUNNING, *args], env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    if kill_after is not None:
        try:
            process.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
    _, err = process.communicate(timeout=300)
    assert process.returncode in (0, -signal.SIGKILL), err.decode()[-2000:]
    return process.returncode


def outbox_state(database: Path) -> dict[str, tuple[Any, ...]]:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as c:
        rows = c.execute(
            select(
                OUTBOX.c.idempotency_key,
                OUTBOX.c.status,
                OUTBOX.c.suppression,
                OUTBOX.c.gateway_message_id,
                OUTBOX.c.document_sha256,
            )
        ).all()
    engine.dispose()
    return {row[0]: tuple(row[1:]) for row in rows}


def test_sigkill_anywhere_then_rerun_sends_each_message_exactly_once(
    tmp_path: Path, repo_dir: Path
) -> None:
    program = always_open_program(repo_dir, tmp_path / "program")
    base = {
        **os.environ,
        "DUNNING_PROJECT_DIR": str(program),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    seeded = tmp_path / "seeded.db"
    setup = {
        **base,
        "DUNNING_DATABASE_URL": f"sqlite:///{seeded}",
        "DUNNING_STATE_DIR": str(tmp_path / "seed-state"),
    }
    assert (
        dunning(setup, "demo", "seed", "--accounts", "2500", "--seed", "11", "--as-of", AS_OF) == 0
    )

    def environment(name: str) -> dict[str, str]:
        database = tmp_path / f"{name}.db"
        shutil.copy(seeded, database)
        return {
            **base,
            "DUNNING_DATABASE_URL": f"sqlite:///{database}",
            "DUNNING_STATE_DIR": str(tmp_path / f"{name}-state"),
        }

    run = ("run", "daily", "--as-of", AS_OF, "--in-process")
    reference = environment("reference")
    assert dunning(reference, *run) == 0

    crashed = environment("crashed")
    points = [
        ("plan.before-outbox-commit", 2),
        ("plan.after-outbox-commit", 3),
        ("dispatch.after-claim", 1),
        ("dispatch.after-send", 1),
        ("dispatch.before-record-commit", 1),
        ("dispatch.after-send", 2),
    ]
    killed = [dunning(crashed, *run, crash=point) == -signal.SIGKILL for point in points]
    assert killed == [True] * len(points), "a crash point was not reached"
    rng = random.Random(20261124)
    for _ in range(3):  # killed, or done before the kill: which depends on the machine's speed
        dunning(crashed, *run, kill_after=rng.uniform(1.0, 6.0))
    time.sleep(LEASE + 1)  # messages claimed by a killed run are free again after the lease
    assert dunning(crashed, *run) == 0

    expected = outbox_state(tmp_path / "reference.db")
    got = outbox_state(tmp_path / "crashed.db")
    assert set(got) == set(expected), "a message was lost or planned twice"
    assert {k: v[:2] for k, v in got.items()} == {k: v[:2] for k, v in expected.items()}
    assert {k: v[3] for k, v in got.items()} == {k: v[3] for k, v in expected.items()}
    sent = {key: row for key, row in got.items() if row[0] == "sent"}
    # Seed 11's 2,500 accounts, windows always open: what the uninterrupted run reached.
    assert Counter(row[0] for row in expected.values()) == {"sent": 302, "held": 58}

    book = GatewayLedger(tmp_path / "crashed-state" / "gateway-ledger.db")
    rows = {row.idempotency_key: row for row in book.rows()}
    assert set(rows) == set(sent), "the gateway accepted something the outbox did not send"
    assert all(rows[key].id == row[2] for key, row in sent.items())
    # The three crashes between sending and recording each left a claim sent but unrecorded,
    # which a later run sent again; the gateway answered with its first acceptance, so each
    # was still accepted exactly once. How many were sent again depends on the random kills
    # and on when the leases ran out: at least one a crash.
    assert sum(row.submissions for row in rows.values()) >= len(rows) + 3
