"""Prefect deployments from config/schedules.yaml: one per enabled flow, on a process work pool.

Each deployment runs the flow from this checkout (`flow.from_source(CODE_ROOT, entrypoint)`, no
image, no push): a process worker on the same box sets its working directory to the checkout and
loads `flows/<file>.py:<function>`. The deployment passes `project_dir` (the program directory)
as a parameter; dated flows also get `TZ` set to their schedule's zone, so "today" in the flow is
the business date where the schedule is read. Secrets (DUNNING_DATABASE_URL with a password,
gateway keys) are never put in a deployment: the worker's environment carries them to the flow-run
processes it starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml

from dunning.config.runners import load_runners
from dunning.config.schedules import FlowSchedule, Schedules
from dunning.errors import DunningError
from dunning.project import Project
from flows.registry import CODE_ROOT, SCHEDULABLE, SHARDED, FlowSpec

if TYPE_CHECKING:
    from uuid import UUID

    from prefect import Flow
    from prefect.deployments.runner import RunnerDeployment

TAGS = ["dunning"]
PREFECT_YAML = CODE_ROOT / "prefect.yaml"


class DeployError(DunningError):
    pass


@dataclass(frozen=True)
class DeployedFlow:
    flow: str
    deployment: str  # flow/deployment, as `prefect deployment run` takes it
    status: str  # deployed | paused | skipped | failed
    cron: str
    timezone: str
    id: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def deployment_name(project: Project) -> str:
    """One deployment per flow and program, named after the program (dunning.yaml `name`)."""
    return project.settings.name


def api_url() -> str:
    """PREFECT_API_URL (environment or Prefect profile), or a one-line error."""
    # Prefect loads only for the commands that talk to its server.
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise DeployError(
            "PREFECT_API_URL is not set: start a server (`prefect server start`) and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    return str(url)


def job_variables(spec: FlowSpec, entry: FlowSchedule) -> dict[str, Any]:
    return {"env": {"TZ": entry.timezone}} if spec.dated else {}


def ensure_work_pool(pool: str) -> bool:
    """Create the process work pool if it is missing; True if it was created."""
    # Prefect loads only for the commands that talk to its server.
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=pool,
                    type="process",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                    description="Dunning flows, run as processes from the local checkout",
                )
            )
            return True
    if existing.type != "process":
        raise DeployError(f"work pool {pool!r} is a {existing.type} pool; a process pool is needed")
    return False


def _check_server(url: str) -> None:
    # Prefect loads only for the commands that talk to its server.
    from prefect import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise DeployError(f"cannot reach the Prefect server at {url}: {problem}")


def deploy_flows(project: Project, schedules: Schedules, pool: str) -> list[DeployedFlow]:
    """Register (create or update) a deployment for every enabled flow; pause disabled ones.

    With a `shards` section in config/runners.yaml, the sharded daily run's flows are deployed
    too: its parent with its schedule if config/schedules.yaml has one (else for runs by hand),
    its child (the shard) never scheduled, started by the parent.
    """
    url = api_url()
    _check_server(url)
    ensure_work_pool(pool)
    name = deployment_name(project)
    results: list[DeployedFlow] = []
    for flow, entry in schedules.flows.items():
        spec = SCHEDULABLE[flow]
        full_name = f"{flow}/{name}"
        if not entry.enabled:
            results.append(_pause(full_name, entry))
            continue
        if not spec.available():
            results.append(
                DeployedFlow(
                    flow,
                    full_name,
                    "skipped",
                    entry.cron,
                    entry.timezone,
                    reason=f"{spec.entrypoint.partition(':')[0]} is not in this checkout",
                )
            )
            continue
        results.append(_deploy(spec, project, pool, entry))
    results.extend(_deploy(spec, project, pool, None) for spec in _on_demand(project, schedules))
    return results


def _on_demand(project: Project, schedules: Schedules) -> list[FlowSpec]:
    """Flows deployed without a schedule: with a `shards` section in config/runners.yaml, the
    sharded daily run's flows that config/schedules.yaml does not schedule."""
    if load_runners(project.config_dir, project.root).shards is None:
        return []
    return [spec for flow, spec in SHARDED.items() if flow not in schedules.flows]


def _unscheduled(spec: FlowSpec) -> str:
    if spec.started_by is not None:
        return f"{spec.name}: started by {spec.started_by}, never on a schedule of its own."
    return f"{spec.name}: not scheduled in config/schedules.yaml; runs on demand."


def _concurrency_limit(spec: FlowSpec) -> int | None:
    # A shard flow runs as many at once as its parent starts.
    return None if spec.started_by is not None else 1


def _deploy(
    spec: FlowSpec, project: Project, pool: str, entry: FlowSchedule | None
) -> DeployedFlow:
    """Create or update one deployment: on its schedule, or (entry None) for runs on demand."""
    # Prefect loads only for the commands that talk to its server.
    from prefect import Flow, get_client
    from prefect.schedules import Cron

    flow, name = spec.name, deployment_name(project)
    full_name = f"{flow}/{name}"
    cron, zone = (entry.cron, entry.timezone) if entry is not None else ("", "")
    if entry is not None:
        description = (
            f"{flow} on `{cron}` ({zone}), from config/schedules.yaml via `dunning deploy`."
        )
    else:
        description = _unscheduled(spec)
    try:
        loaded = cast(
            "Flow[..., Any]",
            Flow.from_source(source=str(CODE_ROOT), entrypoint=spec.entrypoint),
        )
        deployment = cast(
            "RunnerDeployment",
            loaded.to_deployment(
                name=name,
                schedules=[Cron(cron, timezone=zone)] if entry is not None else None,
                parameters={"project_dir": str(project.root)},
                job_variables=job_variables(spec, entry) if entry is not None else {},
                concurrency_limit=_concurrency_limit(spec),
                tags=TAGS,
                description=description,
            ),
        )
        deployment_id = cast("UUID", deployment.apply(work_pool_name=pool))
        if entry is not None:
            with get_client(sync_client=True) as client:
                client.resume_deployment(deployment_id)  # `enabled: true` means scheduled
    except Exception as exc:
        return DeployedFlow(
            flow,
            full_name,
            "failed",
            cron,
            zone,
            reason=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        )
    return DeployedFlow(flow, full_name, "deployed", cron, zone, id=str(deployment_id))


def _pause(full_name: str, entry: FlowSchedule) -> DeployedFlow:
    """A disabled flow keeps its deployment (for runs by hand) with its schedule paused."""
    # Prefect loads only for the commands that talk to its server.
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    flow = full_name.partition("/")[0]
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(full_name)
        except ObjectNotFound:
            return DeployedFlow(
                flow,
                full_name,
                "skipped",
                entry.cron,
                entry.timezone,
                reason="disabled in config/schedules.yaml",
            )
        client.pause_deployment(deployment.id)
    return DeployedFlow(
        flow,
        full_name,
        "paused",
        entry.cron,
        entry.timezone,
        id=str(deployment.id),
        reason="disabled in config/schedules.yaml",
    )


def prefect_yaml(project: Project, schedules: Schedules, pool: str) -> str:
    """prefect.yaml for `prefect deploy --all`: the same deployments as `dunning deploy`.

    Nothing in it depends on the machine: the pull step sets the working directory to
    `$DUNNING_CODE_DIR`, resolved on the worker when a run starts, and `project_dir` is left to
    the flow, which finds the program directory from DUNNING_PROJECT_DIR or the working directory.
    """
    deployments = []
    for flow, entry in schedules.flows.items():
        spec = SCHEDULABLE[flow]
        work_pool: dict[str, Any] = {"name": pool}
        variables = job_variables(spec, entry)
        if variables:
            work_pool["job_variables"] = variables
        deployments.append(
            {
                "name": deployment_name(project),
                "entrypoint": spec.entrypoint,
                "description": f"{flow} on `{entry.cron}` ({entry.timezone})",
                "tags": list(TAGS),
                "parameters": {},
                "concurrency_limit": _concurrency_limit(spec),
                "work_pool": work_pool,
                "schedules": [
                    {"cron": entry.cron, "timezone": entry.timezone, "active": entry.enabled}
                ],
            }
        )
    for spec in _on_demand(project, schedules):
        deployments.append(
            {
                "name": deployment_name(project),
                "entrypoint": spec.entrypoint,
                "description": _unscheduled(spec),
                "tags": list(TAGS),
                "parameters": {},
                "concurrency_limit": _concurrency_limit(spec),
                "work_pool": {"name": pool},
                "schedules": [],
            }
        )
    document = {
        "name": "dunning",
        "prefect-version": version("prefect"),
        "build": None,
        "push": None,
        "pull": [
            {
                "prefect.deployments.steps.set_working_directory": {
                    "directory": "{{ $DUNNING_CODE_DIR }}"
                }
            }
        ],
        "deployments": deployments,
    }
    header = (
        "# Generated from config/schedules.yaml by `dunning deploy --write-prefect-yaml`; do not\n"
        "# edit by hand (a test checks that it is in sync). `dunning deploy` registers the same\n"
        "# deployments without this file and is the supported way (see docs/operations.md).\n"
        "# For `prefect deploy --all` from this directory: workers must have DUNNING_CODE_DIR\n"
        "# (this checkout) and DUNNING_PROJECT_DIR (the program directory) in their environment.\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)


def write_prefect_yaml(project: Project, schedules: Schedules, pool: str, path: Path) -> Path:
    path.write_text(prefect_yaml(project, schedules, pool), encoding="utf-8")
    return path
