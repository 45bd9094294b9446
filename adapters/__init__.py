"""Gateway adapters: the contract, the HTTP plumbing, the registry, and the mock gateways.

Layout: base.py is the contract; _http.py the shared HTTP plumbing; registry.py finds adapters
through the `dunning.adapters` entry points; sms/, push/, letter/ hold one module per vendor;
mock/ is the mock gateway app, its ledger and the client side of its API.
"""

from __future__ import annotations

from adapters._http import (
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    RateLimiter,
    Timing,
    parse_retry_after,
)
from adapters.base import (
    AdapterOptions,
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    SendOutcome,
    SendResult,
    StatusReport,
)
from adapters.letter.mock import MockLetterAdapter
from adapters.mock import (
    GatewayLedger,
    LedgerRow,
    MockAdapterOptions,
    ScriptedFault,
    create_mock_gateway_app,
    ledger_path,
    outcome_for,
)
from adapters.push.mock import MockPushAdapter
from adapters.registry import (
    AdapterContext,
    InvalidAdapter,
    UnknownAdapter,
    adapter_class,
    available,
    build_adapter,
)
from adapters.sms.mock import MockSmsAdapter

__all__ = [
    "AdapterContext",
    "AdapterOptions",
    "DeliveryStatus",
    "GatewayAdapter",
    "GatewayLedger",
    "HttpAdapterOptions",
    "HttpGatewayAdapter",
    "InvalidAdapter",
    "LedgerRow",
    "MalformedResponse",
    "MockAdapterOptions",
    "MockLetterAdapter",
    "MockPushAdapter",
    "MockSmsAdapter",
    "OutboundMessage",
    "RateLimiter",
    "ScriptedFault",
    "SendOutcome",
    "SendResult",
    "StatusReport",
    "Timing",
    "UnknownAdapter",
    "adapter_class",
    "available",
    "build_adapter",
    "create_mock_gateway_app",
    "ledger_path",
    "outcome_for",
    "parse_retry_after",
]
