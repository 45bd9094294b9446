"""What the daily run's stages need, built once per process by `dunning.bootstrap.outreach()`
and passed in: the planner (outreach), the dispatcher (messages, letters, actions) and the
runtime they share. Tests build them with fakes through the same builder's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from adapters.base import AdapterFactory
from dunning.config import Strategy
from dunning.config.channels import DispatchSettings
from dunning.db.documents import DocumentStore
from dunning.db.models import utcnow
from dunning.services.dispatch.printing import LetterPress, Printing
from dunning.services.dispatch.routing import Circuits, Routing
from dunning.services.dispatch.send import RefusalHook, SendGate
from dunning.services.lifecycle.actions import ActionAdapterFactory
from dunning.services.outreach.planner import Planner
from dunning.services.runtime import Runtime


@dataclass(frozen=True)
class ActionDispatch:
    """The treatments' side of dispatch: which adapter performs each target's actions."""

    adapters: ActionAdapterFactory
    lease: timedelta
    max_attempts: int


@dataclass
class Dispatcher:
    """What sending a batch needs: the gateways, the send-time gate, the letters printed."""

    engine: Engine
    routing: Routing
    """Which provider sends each message (per channel and jurisdiction), with failover."""
    documents: DocumentStore
    gate: SendGate
    settings: DispatchSettings
    printing: Printing
    actions: ActionDispatch | None
    """None: the strategy has no action steps and there is no config/actions.yaml."""
    clock: Callable[[], datetime] = utcnow
    circuits: Circuits = field(default_factory=Circuits)
    """Providers this process found down, and until when it sends past them."""
    refusals: RefusalHook | None = None
    """Records on the customer what a vendor's refusal says: opted out there, or a dead
    device token."""

    @property
    def adapters(self) -> AdapterFactory:
        """Each channel's default provider (receipt tools, tests)."""
        return self.routing.for_channel

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)


@dataclass
class Outreach:
    """The daily run's parts for one process: planner and dispatcher over one runtime."""

    runtime: Runtime
    planner: Planner
    dispatcher: Dispatcher
    press: LetterPress

    @property
    def strategy(self) -> Strategy:
        return self.planner.strategy

    @property
    def engine(self) -> Engine:
        return self.runtime.engine

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.planner.clock

    def close(self) -> None:
        """Stop background printing (the printer processes are shared and stay)."""
        self.dispatcher.printing.close()
        self.press.close()
