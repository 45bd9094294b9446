"""The action mocks: a core banking system and a collection agency, over SQLite ledgers.

Public surface: create_core_banking_app and create_agency_app (the ASGI apps), the ledgers
(CoreBankingLedger, AgencyLedger) to read from tests and tools, and their default file names.
Scripted faults use the message gateways' ScriptedFault (sandbox.ScriptedFault).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.actions._ledger import (
    ActionLedger,
    ActionLedgerRow,
    AgencyLedger,
    CoreBankingLedger,
    CreditLine,
    Placement,
    QueuedFault,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

    from dunning.config.channels import FaultRates

CORE_BANKING_LEDGER = "core-banking-ledger.db"
AGENCY_LEDGER = "agency-ledger.db"


def create_core_banking_app(
    ledger: Path,
    *,
    api_key: str | None = None,
    faults: FaultRates | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The mock core banking system's ASGI app over the ledger file `ledger`.

    FastAPI is imported on first use, so loading the mock adapters stays cheap.
    """

    # The mock's web app (FastAPI) loads only when a mock gateway is built.
    from sandbox.actions._core_banking import create_core_banking_app as create

    return create(ledger, api_key=api_key, faults=faults, clock=clock or time.time)


def create_agency_app(
    ledger: Path,
    *,
    api_key: str | None = None,
    faults: FaultRates | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The mock collection agency's ASGI app over the ledger file `ledger`."""

    # The mock's web app (FastAPI) loads only when a mock gateway is built.
    from sandbox.actions._agency import create_agency_app as create

    return create(ledger, api_key=api_key, faults=faults, clock=clock or time.time)


__all__ = [
    "AGENCY_LEDGER",
    "CORE_BANKING_LEDGER",
    "ActionLedger",
    "ActionLedgerRow",
    "AgencyLedger",
    "CoreBankingLedger",
    "CreditLine",
    "Placement",
    "QueuedFault",
    "create_agency_app",
    "create_core_banking_app",
]
