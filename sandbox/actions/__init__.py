"""The action mocks: a core banking system and a collection agency, over SQLite ledgers.

Public surface: create_core_banking_app and create_agency_app (the ASGI apps), the ledgers
(CoreBankingLedger, AgencyLedger) to read from tests and tools, and MockActionOptions.
Scripted faults use the message gateways' ScriptedFault (adapters.mock).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.actions.mock._client import MockActionAdapter, MockActionOptions, ledger_file
from adapters.actions.mock._ledger import (
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

    FastAPI is imported on first use, so importing the adapters stays cheap.
    """
    import time

    from adapters.actions.mock._core_banking import create_core_banking_app as create

    return create(ledger, api_key=api_key, faults=faults, clock=clock or time.time)


def create_agency_app(
    ledger: Path,
    *,
    api_key: str | None = None,
    faults: FaultRates | None = None,
    clock: Callable[[], float] | None = None,
) -> FastAPI:
    """The mock collection agency's ASGI app over the ledger file `ledger`."""
    import time

    from adapters.actions.mock._agency import create_agency_app as create

    return create(ledger, api_key=api_key, faults=faults, clock=clock or time.time)


def core_banking_ledger(
    state_dir: Path, options: MockActionOptions | None = None
) -> CoreBankingLedger:
    """The in-process core banking mock's ledger for these options (default: its default file)."""
    return CoreBankingLedger(
        ledger_file(options or MockActionOptions(), CORE_BANKING_LEDGER, state_dir)
    )


def agency_ledger(state_dir: Path, options: MockActionOptions | None = None) -> AgencyLedger:
    """The in-process agency mock's ledger for these options (default: its default file)."""
    return AgencyLedger(ledger_file(options or MockActionOptions(), AGENCY_LEDGER, state_dir))


__all__ = [
    "AGENCY_LEDGER",
    "CORE_BANKING_LEDGER",
    "ActionLedger",
    "ActionLedgerRow",
    "AgencyLedger",
    "CoreBankingLedger",
    "CreditLine",
    "MockActionAdapter",
    "MockActionOptions",
    "Placement",
    "QueuedFault",
    "agency_ledger",
    "core_banking_ledger",
    "create_agency_app",
    "create_core_banking_app",
]
