"""What the vendor-faithful mock APIs (Twilio, Aliyun SMS) share with the mock gateway app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from dunning.config.channels import ReceiptSimulation
from sandbox._faults import Fault
from sandbox.gateways._ledger import GatewayLedger

VENDOR_BODY_LIMIT = 1024 * 1024
"""The largest request body a vendor API reads (an SMS request is a few kilobytes)."""


@dataclass(frozen=True)
class VendorContext:
    """The gateway's ledger, receipt simulation, clock and faults, for a vendor API's routes."""

    ledger: GatewayLedger
    rates: ReceiptSimulation
    clock: Callable[[], float]
    next_fault: Callable[[str], Awaitable[Fault | None]]
    """The next scripted or random fault for a request on this channel, if any."""
    transport: httpx.AsyncBaseTransport | None
    """Where pushes go in-process (tests); None: over the network."""
