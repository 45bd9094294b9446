"""Gateway adapters: the contract, the HTTP plumbing and the registry.

Layout: base.py is the contract; _http.py the shared HTTP plumbing; registry.py finds adapters
through the `dunning.adapters` entry points; actions/ holds the action adapters. The mock
gateways and the mock-* adapters are in the `sandbox` package, which nothing here imports:
they are found through their entry points like any other adapter.
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
from adapters.registry import (
    AdapterContext,
    InvalidAdapter,
    UnknownAdapter,
    adapter_class,
    available,
    build_adapter,
)

__all__ = [
    "AdapterContext",
    "AdapterOptions",
    "DeliveryStatus",
    "GatewayAdapter",
    "HttpAdapterOptions",
    "HttpGatewayAdapter",
    "InvalidAdapter",
    "MalformedResponse",
    "OutboundMessage",
    "RateLimiter",
    "SendOutcome",
    "SendResult",
    "StatusReport",
    "Timing",
    "UnknownAdapter",
    "adapter_class",
    "available",
    "build_adapter",
    "parse_retry_after",
]
