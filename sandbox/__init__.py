"""The sandbox: mock vendors to develop, test and demonstrate Dunning without real ones.

Nothing in production needs this package: `adapters` never imports it, and the mock-* adapters
are found like any third-party adapter, through entry points (pyproject.toml).

Layout:
  gateways/   the mock sms/push/letter gateway app, its ledger, faults and receipt simulation
  actions/    the mock core banking system and collection agency, over their ledgers
  adapters/   the mock-* adapters: the client side of those APIs

Each part's public names are re-exported here.
"""

from __future__ import annotations

from sandbox.actions import (
    AGENCY_LEDGER,
    CORE_BANKING_LEDGER,
    ActionLedger,
    ActionLedgerRow,
    AgencyLedger,
    CoreBankingLedger,
    CreditLine,
    Placement,
    create_agency_app,
    create_core_banking_app,
)
from sandbox.adapters import (
    MockActionOptions,
    MockAdapterOptions,
    MockAgencyAdapter,
    MockCoreBankingAdapter,
    MockLetterAdapter,
    MockPushAdapter,
    MockSmsAdapter,
    agency_ledger,
    core_banking_ledger,
)
from sandbox.gateways import (
    GatewayLedger,
    LedgerRow,
    Receipt,
    ScriptedFault,
    create_mock_gateway_app,
    ledger_path,
    outcome_for,
    receipt_for,
)

__all__ = [
    "AGENCY_LEDGER",
    "CORE_BANKING_LEDGER",
    "ActionLedger",
    "ActionLedgerRow",
    "AgencyLedger",
    "CoreBankingLedger",
    "CreditLine",
    "GatewayLedger",
    "LedgerRow",
    "MockActionOptions",
    "MockAdapterOptions",
    "MockAgencyAdapter",
    "MockCoreBankingAdapter",
    "MockLetterAdapter",
    "MockPushAdapter",
    "MockSmsAdapter",
    "Placement",
    "Receipt",
    "ScriptedFault",
    "agency_ledger",
    "core_banking_ledger",
    "create_agency_app",
    "create_core_banking_app",
    "create_mock_gateway_app",
    "ledger_path",
    "outcome_for",
    "receipt_for",
]
