"""Production on Prefect: a real `prefect server start` on a loopback port, `dunning deploy`, a
process worker that runs the daily outreach deployment, and our database afterwards; Prefect's
own CLI (`prefect deploy`, `prefect deployment ls`, ...) against the same server."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from dunning.db.tables import OUTBOX, RUN
from flows.registry import CODE_ROOT
from tests.helpers import free_port

BIN = Path(sys.executable).parent
AS_OF = date(2026, 11, 24)
POOL = "dunning-test"


def clean_environment(tmp: Path) -> dict[str, str]:
    """This process's environment without any Prefect or Dunning settings, plus tmp state."""
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "DUNNING_"))
    }
    return {
        **base,
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def run(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A Prefect server of our own: its own PREFECT_HOME (database, profiles) in a tmp dir."""
    tmp = tmp_path_factory.mktemp("prefect")
    port = free_port()
    env = clean_environment(tmp)
    env["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    log = (tmp / "server.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def program(
    server: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A program directory with a seeded population, and the environment of a worker box."""
    tmp = tmp_path_factory.mktemp("program")
    root = tmp / "program"
    root.mkdir()
    shutil.copy(CODE_ROOT / "dunning.yaml", root / "dunning.yaml")
    shutil.copytree(CODE_ROOT / "config", root / "config")
    shutil.copytree(CODE_ROOT / "templates", root / "templates")
    env = {
        **server,
        "DUNNING_PROJECT_DIR": str(root),
        "DUNNING_DATABASE_URL": f"sqlite:///{tmp / 'dunning.db'}",
        "DUNNING_STATE_DIR": str(tmp / "state"),
    }
    seeded = run(
        env, str(BIN / "dunning"), "demo", "seed", "--accounts", "300", "--as-of", str(AS_OF)
    )
    assert seeded.returncode == 0, seeded.stderr
    return root, env


def prefect_client(api_url: str) -> Any:
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Client:
        def __enter__(self) -> Any:
            self._settings = temporary_settings({PREFECT_API_URL: api_url})
            self._settings.__enter__()
            self._client = get_client(sync_client=True)
            return self._client.__enter__()

        def __exit__(self, *exc: object) -> None:
            self._client.__exit__(*exc)
            self._settings.__exit__(*exc)

    return _Client()


def our_database(env: dict[str, str]) -> tuple[list[Any], int]:
    engine = create_engine(env["DUNNING_DATABASE_URL"])
    with engine.connect() as c:
        runs = list(c.execute(select(RUN).order_by(RUN.c.id)))
        messages = int(c.execute(select(func.count()).select_from(OUTBOX)).scalar_one())
    engine.dispose()
    return runs, messages


@pytest.mark.slow
def test_deploy_then_a_process_worker_runs_the_daily_outreach(
    program: tuple[Path, dict[str, str]],
) -> None:
    root, env = program
    api_url = env["PREFECT_API_URL"]

    deployed = run(env, str(BIN / "dunning"), "deploy", "--pool", POOL, "--json")
    assert deployed.returncode == 0, deployed.stderr
    result = json.loads(deployed.stdout)
    assert result["pool"] == POOL
    by_flow = {d["flow"]: d for d in result["deployments"]}
    assert {d["status"] for d in by_flow.values()} == {"deployed"}
    assert set(by_flow) == {
        "daily-outreach",
        "dispatch-outbox",
        "reconcile-receipts",
        "legal-escalation",
    }

    expected = {
        "daily-outreach": ("30 7 * * *", "Asia/Shanghai"),
        "dispatch-outbox": ("*/15 * * * *", "UTC"),
        "reconcile-receipts": ("*/30 * * * *", "UTC"),
        "legal-escalation": ("0 10 * * mon", "Asia/Shanghai"),
    }
    with prefect_client(api_url) as client:
        assert client.read_work_pool(POOL).type == "process"
        for flow, (cron, zone) in expected.items():
            deployment = client.read_deployment_by_name(f"{flow}/demo-lender")
            (schedule,) = deployment.schedules
            assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, zone)
            assert schedule.active and not deployment.paused
            assert deployment.work_pool_name == POOL
            assert deployment.parameters == {"project_dir": str(root)}
            assert deployment.entrypoint.startswith(f"flows/{flow.replace('-', '_')}.py:")
            assert deployment.pull_steps == [
                {"prefect.deployments.steps.set_working_directory": {"directory": str(CODE_ROOT)}}
            ]
        daily = client.read_deployment_by_name("daily-outreach/demo-lender")
        assert daily.job_variables == {"env": {"TZ": "Asia/Shanghai"}}
        flow_run = client.create_flow_run_from_deployment(
            daily.id, parameters={"as_of": AS_OF.isoformat()}
        )

    worker = run(
        env,
        str(BIN / "prefect"),
        "worker",
        "start",
        "--pool",
        POOL,
        "--run-once",
        "--install-policy",
        "never",
        timeout=180,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]

    with prefect_client(api_url) as client:
        deadline = time.monotonic() + 60
        state = client.read_flow_run(flow_run.id).state
        while not state.is_final() and time.monotonic() < deadline:
            time.sleep(0.5)
            state = client.read_flow_run(flow_run.id).state
        assert state.is_completed(), f"{state.type}: {state.message}\n{worker.stderr[-3000:]}"
    found = httpx.post(
        f"{api_url}/artifacts/filter",
        json={"artifacts": {"key": {"any_": ["daily-outreach-summary"]}}, "limit": 10},
    ).json()
    assert [a["flow_run_id"] for a in found] == [str(flow_run.id)]
    data = found[0]["data"]
    rows = json.loads(data) if isinstance(data, str) else data
    accounts = {r["key"]: r["value"] for r in rows if r["section"] == "accounts"}
    # The default seed's 300 accounts: 258 overdue, 38 messages due (which of them are sent and
    # which wait for their contact window depends on the hour the worker runs at).
    assert accounts == {
        "overdue": 258,
        "by_tier.early": 133,
        "by_tier.middle": 59,
        "by_tier.late": 66,
    }
    text = json.dumps(rows, ensure_ascii=False)
    assert "+86" not in text and "+1" not in text and "@" not in text  # counts only, no PII

    runs, messages = our_database(env)
    (daily_run,) = [r for r in runs if r.flow == "daily-outreach"]
    assert (daily_run.as_of, daily_run.status) == (AS_OF, "completed")
    assert daily_run.prefect_flow_run_id == str(flow_run.id)
    assert messages == daily_run.summary["this_run"]["new_messages"] == 38

    # Backfill through Prefect flows (not in-process): the completed date is skipped.
    backfilled = run(
        env,
        str(BIN / "dunning"),
        "backfill",
        "--from",
        str(AS_OF - timedelta(days=1)),
        "--to",
        str(AS_OF),
        "--json",
    )
    assert backfilled.returncode == 0, backfilled.stderr[-3000:]
    outcomes = [(d["as_of"], d["outcome"]) for d in json.loads(backfilled.stdout)["dates"]]
    assert outcomes == [(str(AS_OF - timedelta(days=1)), "ran"), (str(AS_OF), "skipped")]
    runs, _ = our_database(env)
    assert runs[-1].prefect_flow_run_id and runs[-1].as_of == AS_OF - timedelta(days=1)

    # Deploying again updates the same deployments.
    again = run(env, str(BIN / "dunning"), "deploy", "--pool", POOL, "--json")
    assert again.returncode == 0, again.stderr
    assert {d["id"] for d in json.loads(again.stdout)["deployments"]} == {
        d["id"] for d in by_flow.values()
    }


def _prefect(env: dict[str, str], *argv: str, cwd: Path | None = None) -> str:
    """Prefect's own CLI, as an operator types it; its output, after asserting it succeeded."""
    result = subprocess.run(
        [str(BIN / "prefect"), *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"prefect {' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_prefects_own_cli_deploys_runs_and_lists_against_our_pinned_server(
    server: dict[str, str], tmp_path: Path
) -> None:
    """The commands docs/operations.md gives operators, with our pins: the server must accept
    the requests of Prefect's own CLI (FastAPI 0.154 refused its `limit: null` with a 422)."""
    root_url = server["PREFECT_API_URL"].removesuffix("/api")
    ui = httpx.get(f"{root_url}/", timeout=10)
    assert ui.status_code == 200 and ui.headers["content-type"].startswith("text/html")
    assert "<html" in ui.text.lower()

    # The worker box of prefect.yaml's header: the checkout, the program, our database.
    env = {
        **server,
        "COLUMNS": "250",  # rich tables: full deployment names and ids
        "PREFECT_LOGGING_LEVEL": "INFO",  # the flow run's logs reach the server
        "DUNNING_CODE_DIR": str(CODE_ROOT),
        "DUNNING_PROJECT_DIR": str(CODE_ROOT),
        "DUNNING_DATABASE_URL": f"sqlite:///{tmp_path / 'dunning.db'}",
        "DUNNING_STATE_DIR": str(tmp_path / "state"),
    }
    flows = ("daily-outreach", "dispatch-outbox", "reconcile-receipts", "legal-escalation")
    prefect_yaml = (CODE_ROOT / "prefect.yaml").read_text(encoding="utf-8")
    _prefect(env, "work-pool", "create", "dunning", "--type", "process")
    deployed = _prefect(env, "--no-prompt", "deploy", "--all", cwd=CODE_ROOT)
    for flow in flows:
        assert f"'{flow}/demo-lender' successfully" in deployed, deployed
    assert (CODE_ROOT / "prefect.yaml").read_text(encoding="utf-8") == prefect_yaml

    listed = _prefect(env, "deployment", "ls")
    for flow in flows:
        assert f"{flow}/demo-lender" in listed, listed
    schedules = _prefect(env, "deployment", "schedule", "ls", "daily-outreach/demo-lender")
    assert "30 7 * * *" in schedules, schedules

    started = _prefect(env, "deployment", "run", "dispatch-outbox/demo-lender")
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started)
    assert flow_run_id, started
    _prefect(env, "worker", "start", "--pool", "dunning", "--run-once", "--install-policy", "never")
    inspected = _prefect(env, "flow-run", "inspect", flow_run_id[1])
    assert "COMPLETED" in inspected, inspected

    logs = _prefect(env, "flow-run", "logs", flow_run_id[1])
    assert "dispatch-outbox" in logs and "finished" in logs, logs
    artifacts = _prefect(env, "artifact", "ls")
    assert "dispatch-outbox-summary" in artifacts, artifacts
    runs, _ = our_database(env)
    assert [(r.flow, r.prefect_flow_run_id) for r in runs] == [("dispatch-outbox", flow_run_id[1])]


def test_deploy_without_a_server_url_is_a_one_line_error(tmp_path: Path) -> None:
    env = {**clean_environment(tmp_path), "DUNNING_PROJECT_DIR": str(CODE_ROOT)}
    env["DUNNING_STATE_DIR"] = str(tmp_path / "state")
    env["DUNNING_DATABASE_URL"] = f"sqlite:///{tmp_path / 'dunning.db'}"
    result = run(env, str(BIN / "dunning"), "deploy")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: PREFECT_API_URL is not set")
    assert len(result.stderr.strip().splitlines()) == 1
