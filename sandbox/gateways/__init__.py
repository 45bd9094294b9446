"""The mock sms/push/letter gateways: a realistic vendor HTTP API over a shared SQLite ledger.

Public surface: create_mock_gateway_app (the ASGI app), GatewayLedger (read the ledger from
tests and tools), ledger_path (where the ledger of some settings lives), ScriptedFault (the
body of POST /_admin/faults), and the receipt simulation (Receipt, outcome_for, receipt_for).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dunning.config.channels import MockGatewaySettings
from sandbox._faults import ScriptedFault
from sandbox.gateways._ledger import GatewayLedger, LedgerRow, ledger_path
from sandbox.gateways._receipts import Receipt, outcome_for, receipt_for

if TYPE_CHECKING:
    import httpx
    from fastapi import FastAPI


def create_mock_gateway_app(
    settings: MockGatewaySettings,
    state_dir: Path,
    *,
    clock: Callable[[], float] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The mock gateways' ASGI app over the ledger of `settings` (see sandbox.gateways._app).

    FastAPI is imported on first use, so loading the mock adapters stays cheap.
    """

    # The mock's web app (FastAPI) loads only when a mock gateway is built.
    from sandbox.gateways._app import create_mock_gateway_app as create

    return create(
        settings, state_dir, clock=clock or time.time, webhook_transport=webhook_transport
    )


__all__ = [
    "GatewayLedger",
    "LedgerRow",
    "Receipt",
    "ScriptedFault",
    "create_mock_gateway_app",
    "ledger_path",
    "outcome_for",
    "receipt_for",
]
