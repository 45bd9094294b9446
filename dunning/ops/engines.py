"""Each flow as a plain function over an `Outreach`, for running without Prefect.

The single-box scheduler (and anything else that wants no Prefect) calls these. Each one records
its `run` row through the same run lifecycle as its Prefect flow, so `dunning runs list` shows
both kinds alike. Signature: `(outreach, as_of, should_stop) -> summary`; `should_stop` is asked
between batches where the flow has batches.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import date
from typing import Any

from dunning.bootstrap import outreach_in_worker
from dunning.config.runners import ShardSettings, load_runners
from dunning.errors import DunningError
from dunning.services.daily import (
    Outreach,
    StopCheck,
    in_process,
    local_executor,
    run_daily_outreach,
    run_dispatch_outbox,
    run_reconcile_receipts,
    run_sharded,
)

Engine = Callable[[Outreach, date, StopCheck | None], dict[str, Any]]

LEGAL_ENGINE = "dunning.legal.service:run_legal_escalation"
"""The legal-escalation engine: `(runtime, as_of, should_stop) -> summary`; it records its run."""


class FlowUnavailable(DunningError):
    """The flow's code is not in this checkout (yet): it is skipped, not failed."""


def daily_outreach(
    outreach: Outreach, as_of: date, should_stop: StopCheck | None = None
) -> dict[str, Any]:
    with local_executor(outreach, outreach_in_worker) as executor:
        return run_daily_outreach(outreach, as_of, executor=executor, should_stop=should_stop)


def daily_outreach_sharded(
    outreach: Outreach, as_of: date, should_stop: StopCheck | None = None
) -> dict[str, Any]:
    """The sharded daily run with its shards run here, one after the other."""
    project = outreach.runtime.project
    settings = load_runners(project.config_dir, project.root).shards or ShardSettings()
    shards = in_process(outreach, as_of, should_stop=should_stop)
    return run_sharded(outreach, as_of, settings.count, shards)


def dispatch_outbox(
    outreach: Outreach, as_of: date, should_stop: StopCheck | None = None
) -> dict[str, Any]:
    """Send what is due now (deferred messages, retries); one pass, allowed to finish."""
    return run_dispatch_outbox(outreach)


def reconcile_receipts(
    outreach: Outreach, as_of: date, should_stop: StopCheck | None = None
) -> dict[str, Any]:
    """Poll the gateways for receipts of sent messages and record them."""
    return run_reconcile_receipts(outreach)


def legal_escalation(
    outreach: Outreach, as_of: date, should_stop: StopCheck | None = None
) -> dict[str, Any]:
    function = load(LEGAL_ENGINE, "legal-escalation")
    return function(outreach.runtime, as_of, should_stop)


def load(reference: str, flow: str) -> Callable[..., dict[str, Any]]:
    """The function at `module:function`, or FlowUnavailable naming what is missing."""
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise FlowUnavailable(
                f"{flow}: its engine {reference} is not in this checkout; skipped"
            ) from None
        raise
    function = getattr(module, attribute, None)
    if not callable(function):
        raise FlowUnavailable(f"{flow}: {module_name} has no {attribute}(); skipped")
    return function  # type: ignore[no-any-return]


def engine_for(reference: str, flow: str) -> Engine:
    """The engine of a registry entry (`module:function`), checked to exist."""
    engine: Engine = load(reference, flow)
    if reference.startswith("dunning.ops.engines:") and flow == "legal-escalation":
        load(LEGAL_ENGINE, flow)  # the wrapper exists; fail early if what it wraps does not
    return engine
