"""The composition root: builds what a command or flow needs, in one place, and passes it in.

    runtime = bootstrap()                  # program directory, config checked, database migrated
    outreach = outreach(runtime)           # the daily run's planner and dispatcher

Services never build their own collaborators and never reach for a global: they take what
they use as parameters. Tests swap a part through these builders' parameters (a clock, the
approvals, the gateways' adapters, a renderer, a letter press).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from adapters.actions.base import ActionAdapter
from adapters.base import AdapterFactory, GatewayAdapter
from adapters.registry import (
    build_action_adapter,
    build_provider,
    check_actions,
    check_channels,
)
from dunning.compliance import ApprovalBook
from dunning.config.compliance import letter_formats
from dunning.config.runners import load_runners
from dunning.db.documents import DocumentStore
from dunning.db.engine import create_db_engine, ensure_schema
from dunning.db.models import utcnow
from dunning.errors import ConfigError
from dunning.logs import install_masking
from dunning.project import Project
from dunning.rendering import Renderer, TemplateStore
from dunning.services.contact.policy import ContactPolicy, send_gate
from dunning.services.contact.stops import vendor_refusals
from dunning.services.daily import ActionDispatch, Dispatcher, Outreach, WorkerSpec
from dunning.services.dispatch.printing import LetterPress, Printing, default_workers
from dunning.services.dispatch.routing import Circuits, Routing
from dunning.services.lifecycle.actions import ActionAdapterFactory
from dunning.services.outreach import ApprovalCheck, Planner
from dunning.services.runs import Liveness, RunBook
from dunning.services.runtime import Runtime

__all__ = ["Runtime", "bootstrap", "outreach", "outreach_in_worker"]


def bootstrap(
    project_dir: Path | None = None,
    *,
    project: Project | None = None,
    database_url: str | None = None,
    migrate: bool = True,
) -> Runtime:
    project = project or Project.find(project_dir)
    check_adapters(project)
    engine = create_db_engine(database_url or project.database_url)
    if migrate:
        ensure_schema(engine)
    return Runtime(project=project, engine=engine, runs=run_book(engine, project))


def check_adapters(project: Project) -> None:
    """Refuse to start on adapters config cannot name: unknown ones, or options they refuse.

    The config models do not check adapters (config imports no adapter), so the registry checks
    them here, before anything runs or is written; ConfigError names file, key and reason.
    """
    problems = check_channels(project.channels) + check_actions(project.actions)
    if problems:
        raise ConfigError(problems)


def run_book(engine: Engine, project: Project) -> RunBook:
    """The run lifecycle with the heartbeat of config/runners.yaml."""
    settings = load_runners(project.config_dir, project.root).runs
    return RunBook(
        engine,
        Liveness(
            heartbeat=timedelta(seconds=settings.heartbeat_seconds),
            abandoned_after=timedelta(seconds=settings.abandoned_after_seconds),
        ),
    )


def outreach(
    runtime: Runtime,
    *,
    clock: Callable[[], datetime] = utcnow,
    approvals: ApprovalCheck | None = None,
    adapters: AdapterFactory | None = None,
    action_adapters: ActionAdapterFactory | None = None,
    renderer: Renderer | None = None,
    press: LetterPress | None = None,
) -> Outreach:
    """The daily run's planner and dispatcher over `runtime`, built from its program directory.

    Each keyword replaces one part (tests, benchmarks): `approvals` (id, content hash) ->
    approved; `adapters` channel -> gateway adapter; `action_adapters` target -> action
    adapter; `renderer` for the templates; `press` prints letter PDFs.
    """
    project = runtime.project
    strategy = project.strategy
    channels = project.channels
    lease = timedelta(seconds=channels.dispatch.lease_seconds)
    policy = ContactPolicy(project.compliance_packs, send_span=lease)
    approved = approvals or ApprovalBook.load(project.templates_dir.parent).is_approved
    templates = TemplateStore(project.templates_dir)
    documents = DocumentStore(project.state_dir / "documents")
    press = press or LetterPress(strategy.letter_workers or default_workers())
    printing = Printing(runtime.engine, press, documents, lease)
    planner = Planner(
        engine=runtime.engine,
        strategy=strategy,
        templates=templates,
        renderer=renderer or Renderer(templates, letter_formats(project.compliance_packs)),
        approved=approved,
        policy=policy,
        lender=project.lender,
        actions=project.actions,
        documents=documents,
        start_printing=printing.start,
        clock=clock,
    )
    routing = (
        Routing.by_channel(adapters)
        if adapters is not None
        else Routing.from_config(channels, partial(_provider, project))
    )
    dispatcher = Dispatcher(
        engine=runtime.engine,
        routing=routing,
        documents=documents,
        gate=send_gate(policy, approved),
        settings=channels.dispatch,
        printing=printing,
        actions=_action_dispatch(project, planner.has_actions, action_adapters),
        clock=clock,
        circuits=Circuits(open_seconds=channels.dispatch.circuit_open_seconds),
        refusals=vendor_refusals,
    )
    return Outreach(runtime=runtime, planner=planner, dispatcher=dispatcher, press=press)


def _provider(project: Project, name: str) -> GatewayAdapter:
    return build_provider(name, project.channels, project.state_dir)


def _action_adapter(project: Project, target: str) -> ActionAdapter:
    return build_action_adapter(target, project.actions, project.state_dir)


def _action_dispatch(
    project: Project, has_action_steps: bool, adapters: ActionAdapterFactory | None
) -> ActionDispatch | None:
    """Actions are dispatched when the cadence has action steps or config/actions.yaml exists
    (actions planned by cure, or by an earlier cadence, still need their dispatch)."""
    if not (has_action_steps or (project.config_dir / "actions.yaml").exists()):
        return None
    settings = project.actions.dispatch
    return ActionDispatch(
        adapters=adapters or partial(_action_adapter, project),
        lease=timedelta(seconds=settings.lease_seconds),
        max_attempts=settings.max_attempts,
    )


def outreach_in_worker(spec: WorkerSpec) -> Outreach:
    """A batch worker process's Outreach: the run's program, database and strategy
    (dunning.services.daily.workers hands this to each worker it starts)."""
    os.environ["DUNNING_STATE_DIR"] = str(spec.state_dir)
    install_masking()
    project = Project(spec.project_root).with_config(strategy=spec.strategy)
    return outreach(bootstrap(project=project, database_url=spec.database_url, migrate=False))
