"""Gateway adapters: the contract, the HTTP plumbing and the registry.

Layout: base.py is the contract; _http.py the shared HTTP plumbing; registry.py finds message
and action adapters through their entry points (`dunning.adapters`, `dunning.action_adapters`);
actions/ holds the action adapters' contract and the real action adapters. The mock
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
    TARGETS,
    ActionAdapterContext,
    AdapterContext,
    InvalidAdapter,
    UnknownAdapter,
    action_adapter_class,
    adapter_class,
    available,
    available_action_adapters,
    build_action_adapter,
    build_adapter,
    check_actions,
    check_channels,
)

__all__ = [
    "TARGETS",
    "ActionAdapterContext",
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
    "action_adapter_class",
    "adapter_class",
    "available",
    "available_action_adapters",
    "build_action_adapter",
    "build_adapter",
    "check_actions",
    "check_channels",
    "parse_retry_after",
]
