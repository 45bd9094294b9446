"""Rerun and backfill through the CLI: dates in order, completed ones skipped, --force still
exactly-once, and a run that failed half way resumed by running it again."""

from __future__ import annotations

import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import Runtime, bootstrap
from dunning.db.engine import create_db_engine
from dunning.db.tables import OUTBOX, RUN
from dunning.project import Project
from sandbox import GatewayLedger, ledger_path
from tests.factories import add_account
from tests.helpers import invoke

LAST = date(2026, 11, 24)
DAYS = [LAST - timedelta(days=2), LAST - timedelta(days=1), LAST]


@pytest.fixture
def program(
    env: Path, tmp_path: Path, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Runtime]:
    """The repository's program with batches of 3 accounts and no contact windows, seeded with
    accounts that have steps due on each of the three days."""
    target = tmp_path / "program"
    target.mkdir()
    shutil.copy(repo_dir / "dunning.yaml", target / "dunning.yaml")
    shutil.copytree(repo_dir / "config", target / "config")
    shutil.copytree(repo_dir / "templates", target / "templates")
    for pack in (target / "config" / "compliance").glob("[A-Z]*.yaml"):
        data = yaml.safe_load(pack.read_text())
        data["contact_windows"] = {channel: None for channel in data["contact_windows"]}
        data["frequency_caps"] = []
        data["holidays"] = None
        pack.write_text(yaml.safe_dump(data, allow_unicode=True))
    strategy = target / "config" / "strategy.yaml"
    strategy.write_text(strategy.read_text().replace("batch_size: 5000", "batch_size: 3"))
    monkeypatch.setenv("DUNNING_PROJECT_DIR", str(target))
    runtime = bootstrap(project=Project(target))
    with runtime.unit_of_work() as c:
        # DPD on the last day: 5, 8 and 14 put early-sms (days 3, 7, 14) on each of the days.
        for dpd in (5, 8, 14, 5, 8, 14, 5, 8, 14, 33, 63):
            add_account(c, dpd=dpd, as_of=LAST, jurisdiction="CN" if dpd % 2 else "US")
    yield runtime
    runtime.close()


@contextmanager
def copy_of_database(runtime: Runtime, sqlite_path: Path) -> Iterator[str]:
    """A copy of the runtime's database as it is now: the SQLite file copied, or on PostgreSQL a
    database made from it as a template (dropped afterwards)."""
    if runtime.engine.dialect.name == "sqlite":
        with runtime.engine.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(Path(str(runtime.engine.url.database)), sqlite_path)
        yield f"sqlite:///{sqlite_path}"
        return
    source = runtime.engine.url
    runtime.engine.dispose()  # a template database must have no other session
    name = f"dunning_copy_{uuid.uuid4().hex[:10]}"
    server = create_db_engine(
        source.set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as c:
        c.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{source.database}"')
    try:
        yield source.set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.dispose()


def outbox(runtime: Runtime) -> dict[str, tuple[Any, ...]]:
    with runtime.engine.connect() as c:
        rows = c.execute(
            select(
                OUTBOX.c.idempotency_key,
                OUTBOX.c.as_of,
                OUTBOX.c.status,
                OUTBOX.c.suppression,
                OUTBOX.c.gateway_message_id,
            )
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def ledger(runtime: Runtime) -> GatewayLedger:
    project = runtime.project
    return GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir))


def backfill(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    result = invoke(
        capsys, "backfill", "--from", str(DAYS[0]), "--to", str(DAYS[-1]), "--in-process", *extra
    )
    data: dict[str, Any] = result.json()
    data["code"] = result.code
    return data


def test_backfill_runs_dates_in_order_and_skips_completed_ones(
    capsys: pytest.CaptureFixture[str], program: Runtime
) -> None:
    first = backfill(capsys, "--json")
    assert first["code"] == 0 and first["ok"]
    assert [(d["as_of"], d["outcome"]) for d in first["dates"]] == [
        (str(day), "ran") for day in DAYS
    ]
    run_ids = [d["run_id"] for d in first["dates"]]
    assert run_ids == sorted(run_ids)  # oldest date first
    assert [d["new_messages"] for d in first["dates"]] == [5, 3, 3]
    sent = outbox(program)
    assert {row[0] for row in sent.values()} == set(DAYS)

    again = backfill(capsys, "--json")
    assert [d["outcome"] for d in again["dates"]] == ["skipped"] * 3

    forced = backfill(capsys, "--force", "--json")
    assert [d["outcome"] for d in forced["dates"]] == ["ran"] * 3
    assert [d["new_messages"] for d in forced["dates"]] == [0, 0, 0]
    assert outbox(program) == sent  # a forced rerun is still exactly-once
    book = ledger(program)
    assert len(book.keys()) == len([v for v in sent.values() if v[1] == "sent"])
    assert book.resubmissions() == 0


def test_run_daily_again_for_a_date_already_run_sends_nothing_twice(
    capsys: pytest.CaptureFixture[str], program: Runtime
) -> None:
    argv = ("run", "daily", "--as-of", str(LAST), "--in-process", "--json")
    first = invoke(capsys, *argv)
    assert first.code == 0, first.err
    assert first.json()["this_run"]["new_messages"] == 3  # early-sms at DPD 14
    sent = outbox(program)
    second = invoke(capsys, *argv).json()
    assert second["this_run"]["new_messages"] == 0
    assert second["this_run"]["already_planned"] == first.json()["this_run"]["new_messages"]
    assert second["this_run"]["dispatch"]["sent"] == 0
    assert outbox(program) == sent
    assert ledger(program).resubmissions() == 0
    runs = invoke(capsys, "runs", "list", "--as-of", str(LAST), "--json").json()
    assert [r["status"] for r in runs] == ["completed", "completed"]


@pytest.mark.parametrize("stage", ["plan", "dispatch"])
def test_a_run_that_failed_half_way_is_resumed_by_running_it_again(
    capsys: pytest.CaptureFixture[str],
    program: Runtime,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    stage: str,
) -> None:
    # The reference: the same population, run once without interruption.
    url = program.engine.url.render_as_string(hide_password=False)
    state = program.project.state_dir
    with copy_of_database(program, tmp_path / "reference.db") as reference_url:
        monkeypatch.setenv("DUNNING_DATABASE_URL", reference_url)
        monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "reference-state"))
        assert invoke(capsys, "run", "daily", "--as-of", str(LAST), "--in-process").code == 0
        reference = bootstrap(project=program.project, database_url=reference_url)
        expected = outbox(reference)
        reference.close()
    monkeypatch.setenv("DUNNING_DATABASE_URL", url)
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))

    # The second batch of the stage fails: an error half way through the run.
    monkeypatch.setenv("DUNNING_CRASH_POINT", f"{stage}.batch")
    monkeypatch.setenv("DUNNING_CRASH_AFTER", "2")
    monkeypatch.setenv("DUNNING_CRASH_MODE", "raise")
    failed = invoke(capsys, "backfill", "--from", str(LAST), "--to", str(LAST), "--in-process")
    assert failed.code == 1
    error = f"InjectedFault: injected fault at crash point {stage}.batch"
    assert f"error: backfill stopped at {LAST}: {error}" in failed.err
    with program.engine.connect() as c:
        (run,) = c.execute(select(RUN)).all()
    assert run.status == "failed" and run.error == error
    # Batches of three accounts, the first with one message due: what the first batch did stays.
    partial = Counter(row[1] for row in outbox(program).values())
    assert len(expected) == 3
    if stage == "plan":  # the first batch's message; the other two never planned
        assert partial == {"planned": 1}
    else:  # all three planned, the first batch's sent
        assert partial == {"sent": 1, "planned": 2}

    monkeypatch.delenv("DUNNING_CRASH_POINT")
    # The failed date has no completed run, so the same backfill runs it again: it resumes.
    resumed = invoke(
        capsys, "backfill", "--from", str(LAST), "--to", str(LAST), "--in-process", "--json"
    ).json()
    assert resumed["ok"] and resumed["dates"][0]["outcome"] == "ran"
    got = outbox(program)
    assert set(got) == set(expected)
    assert {k: v[:3] for k, v in got.items()} == {k: v[:3] for k, v in expected.items()}
    assert ledger(program).resubmissions() == 0
