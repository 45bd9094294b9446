"""The table of Dunning's flows by name: where Prefect finds each, and how each runs without it.

Plain data, no Prefect import, so the single-box scheduler can read it cheaply. Adding a flow is
one line in `FLOWS`, and its name in dunning.config.schedules.FLOW_NAMES (config validates
config/schedules.yaml without importing flows; this module refuses to load if the two differ).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dunning.config.schedules import FLOW_NAMES

CODE_ROOT = Path(__file__).resolve().parent.parent
"""The checkout holding flows/: Prefect workers load entrypoints relative to it."""


@dataclass(frozen=True)
class FlowSpec:
    name: str
    """The Prefect flow name, the key in config/schedules.yaml and the `run.flow` column."""
    entrypoint: str
    """`path/to/file.py:function`, relative to CODE_ROOT, for Prefect deployments."""
    engine: str
    """`module:function` running the flow in-process (see dunning.ops.engines)."""
    dated: bool = False
    """The flow takes `as_of`, a business date (the others work on whatever is due now)."""
    started_by: str | None = None
    """The flow that starts this one as deployment runs. Such a flow is never scheduled itself:
    `dunning deploy` registers it along with that flow, whose engine runs it in-process."""

    @property
    def path(self) -> Path:
        return CODE_ROOT / self.entrypoint.partition(":")[0]

    def available(self) -> bool:
        """Whether the flow's module exists in this checkout (legal escalation may not yet)."""
        return self.path.is_file()


def _table(*specs: FlowSpec) -> dict[str, FlowSpec]:
    return {spec.name: spec for spec in specs}


# fmt: off
FLOWS: dict[str, FlowSpec] = _table(
    FlowSpec("daily-outreach", "flows/daily_outreach.py:daily_outreach", "dunning.ops.engines:daily_outreach", dated=True),  # noqa: E501
    FlowSpec("dispatch-outbox", "flows/dispatch_outbox.py:dispatch_outbox", "dunning.ops.engines:dispatch_outbox"),  # noqa: E501
    FlowSpec("reconcile-receipts", "flows/reconcile_receipts.py:reconcile_receipts", "dunning.ops.engines:reconcile_receipts"),  # noqa: E501
    FlowSpec("legal-escalation", "flows/legal_escalation.py:legal_escalation", "dunning.ops.engines:legal_escalation", dated=True),  # noqa: E501
)
# fmt: on

# The sharded daily run (docs/scaling.md): `dunning deploy` registers both when
# config/runners.yaml has a `shards` section; schedule the parent in config/schedules.yaml like
# any flow (instead of daily-outreach).
# fmt: off
SHARDED: dict[str, FlowSpec] = _table(
    FlowSpec("daily-outreach-sharded", "flows/daily_outreach_sharded.py:daily_outreach_sharded", "dunning.ops.engines:daily_outreach_sharded", dated=True),  # noqa: E501
    FlowSpec("daily-outreach-shard", "flows/daily_outreach_sharded.py:daily_outreach_shard", "dunning.ops.engines:daily_outreach_sharded", dated=True, started_by="daily-outreach-sharded"),  # noqa: E501
)
# fmt: on

SCHEDULABLE: dict[str, FlowSpec] = {
    **FLOWS,
    **{name: spec for name, spec in SHARDED.items() if spec.started_by is None},
}
"""Every flow config/schedules.yaml may name: the same names as its FLOW_NAMES."""


def check_flow_names(schedulable: dict[str, FlowSpec], names: tuple[str, ...]) -> None:
    """Refuse a table of schedulable flows that config's FLOW_NAMES does not list exactly.

    config/schedules.yaml is validated against FLOW_NAMES without importing this module, so the
    two must not drift: a flow missing there could not be scheduled, an extra one would be
    accepted and then not found.
    """
    if set(schedulable) != set(names):
        missing = sorted(set(schedulable) - set(names))
        extra = sorted(set(names) - set(schedulable))
        raise RuntimeError(
            "flows.registry.SCHEDULABLE and dunning.config.schedules.FLOW_NAMES differ: "
            f"not in FLOW_NAMES: {', '.join(missing) or 'none'}; "
            f"not in SCHEDULABLE: {', '.join(extra) or 'none'}"
        )


check_flow_names(SCHEDULABLE, FLOW_NAMES)
