"""The mock-* adapters: Dunning's side of the sandbox's vendor APIs, found through entry points.

mock-sms, mock-push and mock-letter talk to the mock gateways (sandbox.gateways);
mock-core-banking and mock-agency to the action mocks (sandbox.actions). With no `url` in their
options they build the mock app in this process and reach it over httpx.ASGITransport, so the
mock and a real gateway go through the same HTTP code.
"""

from __future__ import annotations

from sandbox.adapters._action_client import (
    MockActionAdapter,
    MockActionOptions,
    agency_ledger,
    core_banking_ledger,
)
from sandbox.adapters._agency import MockAgencyAdapter
from sandbox.adapters._core_banking import MockCoreBankingAdapter
from sandbox.adapters._gateway_client import MockAdapterOptions, MockGatewayAdapter
from sandbox.adapters._letter import MockLetterAdapter
from sandbox.adapters._push import MockPushAdapter
from sandbox.adapters._sms import MockSmsAdapter

__all__ = [
    "MockActionAdapter",
    "MockActionOptions",
    "MockAdapterOptions",
    "MockAgencyAdapter",
    "MockCoreBankingAdapter",
    "MockGatewayAdapter",
    "MockLetterAdapter",
    "MockPushAdapter",
    "MockSmsAdapter",
    "agency_ledger",
    "core_banking_ledger",
]
