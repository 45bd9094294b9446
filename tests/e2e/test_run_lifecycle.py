"""The run lifecycle through every entry point: a run that raises ends `failed`, a run whose
process is killed shows `abandoned` once its heartbeat is past, and the next run of the same
flow and date takes over from it."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from dunning.bootstrap import Runtime, outreach
from dunning.crashpoints import InjectedFault
from dunning.db.tables import RUN
from dunning.ops import engines
from dunning.services.daily.shards import ShardsIncomplete
from dunning.services.runs.book import Liveness, RunBook
from tests.factories import add_account
from tests.helpers import invoke

AS_OF = "2026-11-24"
DUNNING = str(Path(sys.executable).parent / "dunning")

IN_PROCESS = [
    pytest.param("daily-outreach", ["run", "daily", "--in-process", "--as-of", AS_OF], id="daily"),
    pytest.param("dispatch-outbox", ["run", "dispatch", "--in-process"], id="dispatch"),
    pytest.param("reconcile-receipts", ["run", "receipts", "--in-process"], id="receipts"),
    pytest.param(
        "legal-escalation", ["legal", "run", "--in-process", "--as-of", AS_OF], id="legal"
    ),
]


def run_rows(runtime: Runtime) -> list[Any]:
    with runtime.engine.connect() as connection:
        return list(connection.execute(select(RUN).order_by(RUN.c.id)))


def inject(monkeypatch: pytest.MonkeyPatch, flow: str) -> None:
    monkeypatch.setenv("DUNNING_CRASH_POINT", f"run.{flow}")
    monkeypatch.setenv("DUNNING_CRASH_MODE", "raise")


def assert_failed(row: Any, flow: str) -> None:
    assert (row.flow, row.status) == (flow, "failed")
    assert row.error == f"InjectedFault: injected fault at crash point run.{flow}"
    assert row.finished_at is not None and row.finished_at >= row.started_at


@pytest.mark.parametrize(("flow", "argv"), IN_PROCESS)
def test_a_command_whose_run_raises_ends_it_failed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
    flow: str,
    argv: list[str],
) -> None:
    inject(monkeypatch, flow)
    result = invoke(capsys, *argv)
    assert result.code != 0
    assert "injected fault" in result.err
    [row] = run_rows(runtime)
    assert_failed(row, flow)


@pytest.mark.parametrize(
    "flow", ["daily-outreach", "dispatch-outbox", "reconcile-receipts", "legal-escalation"]
)
def test_a_scheduler_engine_whose_run_raises_ends_it_failed(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, flow: str
) -> None:
    inject(monkeypatch, flow)
    engine = getattr(engines, flow.replace("-", "_"))
    env = outreach(runtime)
    with pytest.raises(InjectedFault):
        engine(env, date.fromisoformat(AS_OF), None)
    env.close()
    [row] = run_rows(runtime)
    assert_failed(row, flow)


def test_a_shard_that_raises_ends_failed_and_so_does_its_parent(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    as_of = date.fromisoformat(AS_OF)
    with runtime.unit_of_work() as connection:
        for dpd in (3, 12, 40):
            add_account(connection, dpd=dpd, as_of=as_of)
    inject(monkeypatch, "daily-outreach-shard")
    env = outreach(runtime)
    with pytest.raises(ShardsIncomplete):
        engines.daily_outreach_sharded(env, as_of, None)
    env.close()
    parent, *shards = run_rows(runtime)
    assert (parent.flow, parent.status) == ("daily-outreach-sharded", "failed")
    assert parent.error.startswith("ShardsIncomplete: run ")
    assert parent.summary["shards"] and parent.finished_at is not None
    assert shards and all(s.parent_run_id == parent.id for s in shards)
    for shard in shards:
        assert_failed(shard, "daily-outreach-shard")


def test_the_sharded_parent_that_raises_ends_failed(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime
) -> None:
    inject(monkeypatch, "daily-outreach-sharded")
    env = outreach(runtime)
    with pytest.raises(InjectedFault):
        engines.daily_outreach_sharded(env, date.fromisoformat(AS_OF), None)
    env.close()
    [row] = run_rows(runtime)
    assert_failed(row, "daily-outreach-sharded")


def test_a_failed_run_keeps_no_personal_data(runtime: Runtime) -> None:
    with pytest.raises(ValueError), runtime.runs.run("dispatch-outbox", date(2026, 11, 24)):
        raise ValueError("gateway refused +8613812345678 for ann@example.com")
    [row] = run_rows(runtime)
    assert row.error == "ValueError: gateway refused +86*******5678 for [email]"


@pytest.mark.parametrize(
    ("flow", "module", "function", "kwargs"),
    [
        ("daily-outreach", "flows.daily_outreach", "daily_outreach", {"as_of": AS_OF}),
        ("dispatch-outbox", "flows.dispatch_outbox", "dispatch_outbox", {}),
        ("reconcile-receipts", "flows.reconcile_receipts", "reconcile_receipts", {}),
        ("legal-escalation", "flows.legal_escalation", "legal_escalation", {"as_of": AS_OF}),
    ],
)
def test_a_prefect_flow_whose_run_raises_ends_it_failed(
    flows_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    repo_dir: Path,
    runtime: Runtime,
    flow: str,
    module: str,
    function: str,
    kwargs: dict[str, Any],
) -> None:
    inject(monkeypatch, flow)
    prefect_flow = getattr(importlib.import_module(module), function)
    arguments = dict(kwargs)
    if "as_of" in arguments:
        arguments["as_of"] = date.fromisoformat(arguments["as_of"])
    with pytest.raises(InjectedFault):
        prefect_flow(project_dir=str(repo_dir), **arguments)
    [row] = run_rows(runtime)
    assert_failed(row, flow)
    assert row.prefect_flow_run_id  # the row names the Prefect flow run it belongs to


# -- killed runs --------------------------------------------------------------------------

HEARTBEAT = 0.2
ABANDONED_AFTER = 1.0


def quick_heartbeat_program(repo: Path, target: Path) -> Path:
    """The repository's program with a heartbeat of 0.2 s, abandoned after 1 s."""
    target.mkdir()
    shutil.copy(repo / "dunning.yaml", target / "dunning.yaml")
    shutil.copytree(repo / "config", target / "config")
    shutil.copytree(repo / "templates", target / "templates")
    runs = {"heartbeat_seconds": HEARTBEAT, "abandoned_after_seconds": ABANDONED_AFTER}
    (target / "config" / "runners.yaml").write_text(yaml.safe_dump({"runs": runs}))
    return target


def dunning(environment: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DUNNING, *argv], env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(("flow", "argv"), IN_PROCESS)
def test_a_killed_run_shows_abandoned_and_the_next_one_takes_over(
    tmp_path: Path, repo_dir: Path, database_url: str, flow: str, argv: list[str]
) -> None:
    program = quick_heartbeat_program(repo_dir, tmp_path / "program")
    environment = {
        **os.environ,
        "DUNNING_PROJECT_DIR": str(program),
        "DUNNING_DATABASE_URL": database_url,
        "DUNNING_STATE_DIR": str(tmp_path / "state"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    killed = dunning({**environment, "DUNNING_CRASH_POINT": f"run.{flow}"}, *argv)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    time.sleep(ABANDONED_AFTER + HEARTBEAT)
    listed = dunning(environment, "runs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [dead] = json.loads(listed.stdout)
    assert (dead["flow"], dead["status"]) == (flow, "abandoned")
    assert dead["error"].startswith("no heartbeat since ")
    only = dunning(environment, "runs", "list", "--status", "abandoned", "--json")
    assert [r["id"] for r in json.loads(only.stdout)] == [dead["id"]]
    running = dunning(environment, "runs", "list", "--status", "running", "--json")
    assert json.loads(running.stdout) == []

    again = dunning(environment, *argv, "--json")
    assert again.returncode == 0, again.stderr
    listed = dunning(environment, "runs", "list", "--json")
    newer, older = json.loads(listed.stdout)
    assert (newer["flow"], newer["status"]) == (flow, "completed")
    assert (older["id"], older["status"]) == (dead["id"], "abandoned")
    assert older["error"] == f"its process stopped beating; taken over by run {newer['id']}"


def test_a_live_run_keeps_beating_and_is_never_called_abandoned(runtime: Runtime) -> None:
    book = RunBook(
        runtime.engine,
        Liveness(heartbeat=timedelta(seconds=0.1), abandoned_after=timedelta(seconds=0.5)),
    )
    with book.run("dispatch-outbox", date(2026, 11, 24)) as run:
        time.sleep(1.0)  # twice the limit: only the heartbeat keeps it alive
        with book.run("dispatch-outbox", date(2026, 11, 24)) as other:
            assert other.took_over == []
        rows = run_rows(runtime)
        assert [r.status for r in rows] == ["running", "completed"]
        assert rows[0].heartbeat_at > rows[0].started_at + timedelta(seconds=0.5)
    assert [r.status for r in run_rows(runtime)] == ["completed", "completed"]
    assert run.took_over == []
