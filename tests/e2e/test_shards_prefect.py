"""The sharded daily run on a real Prefect server: `dunning deploy` registers the parent and the
shard flow, a process worker runs the parent, the parent starts one shard deployment run per
shard, the same worker runs those, and our database holds one parent run adding them up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from dunning.db.engine import create_db_engine
from dunning.db.tables import OUTBOX, RUN
from tests.e2e.test_kill_and_rerun import always_open_program
from tests.e2e.test_prefect_server import (  # noqa: F401  (server is a fixture)
    BIN,
    prefect_client,
    run,
    server,
)

# Shards on several workers share one database server (SQLite is one box's file): this runs in
# the PostgreSQL pass of scripts/test; tests/e2e/test_shards.py covers the rest on both.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("DUNNING_TEST_DATABASE_URL", "").startswith("postgresql"),
        reason="needs PostgreSQL: runs in the PostgreSQL pass of scripts/test",
    ),
]
AS_OF = date(2026, 11, 24)
POOL = "dunning-shards"
SHARDS = 3


def sharded_program(repo: Path, target: Path) -> Path:
    """Always-open packs, three shards, and nothing on a schedule (no run of another flow may
    start while the test runs): the sharded flows are deployed for runs on demand."""
    program = always_open_program(repo, target)
    (program / "config" / "runners.yaml").write_text(
        yaml.safe_dump({"shards": {"count": SHARDS, "poll_seconds": 0.5}})
    )
    (program / "config" / "schedules.yaml").write_text(yaml.safe_dump({"flows": {}}))
    return program


def our_runs(url: str) -> tuple[list[Any], int]:
    engine = create_db_engine(url)
    with engine.connect() as connection:
        runs = list(connection.execute(select(RUN).order_by(RUN.c.id)))
        messages = int(connection.execute(select(func.count()).select_from(OUTBOX)).scalar_one())
    engine.dispose()
    return runs, messages


def test_the_sharded_run_fans_out_to_shard_deployment_runs_on_a_worker(
    server: dict[str, str],  # noqa: F811
    repo_dir: Path,
    tmp_path: Path,
    database_url: str,
) -> None:
    program = sharded_program(repo_dir, tmp_path / "program")
    env = {
        **server,
        "DUNNING_PROJECT_DIR": str(program),
        "DUNNING_DATABASE_URL": database_url,
        "DUNNING_STATE_DIR": str(tmp_path / "state"),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    dunning = str(BIN / "dunning")
    seeded = run(env, dunning, "demo", "seed", "--accounts", "1200", "--as-of", str(AS_OF))
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    deployed = run(env, dunning, "deploy", "--pool", POOL, "--json")
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    by_flow = {d["flow"]: d for d in json.loads(deployed.stdout)["deployments"]}
    assert set(by_flow) == {"daily-outreach-sharded", "daily-outreach-shard"}
    assert {d["status"] for d in by_flow.values()} == {"deployed"}

    with prefect_client(env["PREFECT_API_URL"]) as client:
        parent_deployment = client.read_deployment_by_name("daily-outreach-sharded/demo-lender")
        shard_deployment = client.read_deployment_by_name("daily-outreach-shard/demo-lender")
        assert not parent_deployment.schedules and not shard_deployment.schedules
        assert shard_deployment.concurrency_limit is None
        parent = client.create_flow_run_from_deployment(
            parent_deployment.id, parameters={"as_of": AS_OF.isoformat()}
        )

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--install-policy", "never"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with prefect_client(env["PREFECT_API_URL"]) as client:
            deadline = time.monotonic() + 100
            state = client.read_flow_run(parent.id).state
            while not state.is_final():
                assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
                time.sleep(0.5)
                state = client.read_flow_run(parent.id).state
            assert state.is_completed(), (
                f"{state.type}: {state.message}\n{(tmp_path / 'worker.log').read_text()[-3000:]}"
            )
            from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
            from prefect.client.schemas.sorting import FlowRunSort

            children = client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[shard_deployment.id])
                ),
                sort=FlowRunSort.ID_DESC,
                limit=50,
            )
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        log.close()

    assert len(children) == SHARDS
    assert all(child.state is not None and child.state.is_completed() for child in children)
    assert {child.parent_task_run_id is not None for child in children} == {True}  # subflows

    runs, messages = our_runs(database_url)
    (top,) = [r for r in runs if r.flow == "daily-outreach-sharded"]
    shards = [r for r in runs if r.flow == "daily-outreach-shard"]
    assert (top.as_of, top.status, top.prefect_flow_run_id) == (AS_OF, "completed", str(parent.id))
    assert len(shards) == SHARDS and {r.parent_run_id for r in shards} == {top.id}
    assert {r.status for r in shards} == {"completed"}
    assert {r.prefect_flow_run_id for r in shards} == {str(child.id) for child in children}
    assert sorted(r.summary["shard"]["index"] for r in shards) == list(range(SHARDS))
    summary = top.summary
    assert [s["status"] for s in summary["shards"]] == ["completed"] * SHARDS
    # The default seed's 1,200 accounts, windows always open: the day one unsharded run has.
    new = summary["this_run"]["new_messages"]
    assert new == messages == sum(r.summary["this_run"]["new_messages"] for r in shards) == 169
    assert summary["this_run"]["dispatch"]["sent"] == 141
    assert summary["this_run"]["dispatch"]["sent"] == sum(
        r.summary["this_run"]["dispatch"]["sent"] for r in shards
    )
    assert summary["accounts"]["overdue"] == 1010
    assert summary["accounts"]["overdue"] == sum(r.summary["accounts"]["overdue"] for r in shards)
    assert summary["messages"]["by_status"] == {"sent": 141, "held": 28}
