"""Gateway adapters: the contract, the HTTP plumbing and the registry.

Layout: base.py is the contract; _http.py the adapter kit (the HTTP plumbing and the public
hooks a provider writes); auth.py the authentication strategies; registry.py finds message
and action adapters through their entry points (`dunning.adapters`, `dunning.action_adapters`);
actions/ holds the action adapters' contract and the real action adapters. The mock
gateways and the mock-* adapters are in the `sandbox` package, which nothing here imports:
they are found through their entry points like any other adapter.
"""

from __future__ import annotations

from adapters._http import (
    Classified,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    RateLimiter,
    RequestFailure,
    Timing,
    VendorAnswer,
    VendorRequest,
    parse_retry_after,
)
from adapters.auth import (
    AccessToken,
    Auth,
    AuthFailure,
    BasicAuth,
    HeaderAuth,
    NoAuth,
    OAuth2ClientCredentials,
    SignedAuth,
)
from adapters.base import (
    AdapterOptions,
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    RejectCode,
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
    "AccessToken",
    "ActionAdapterContext",
    "AdapterContext",
    "AdapterOptions",
    "Auth",
    "AuthFailure",
    "BasicAuth",
    "Classified",
    "DeliveryStatus",
    "GatewayAdapter",
    "HeaderAuth",
    "HttpAdapterOptions",
    "HttpGatewayAdapter",
    "InvalidAdapter",
    "MalformedResponse",
    "NoAuth",
    "OAuth2ClientCredentials",
    "OutboundMessage",
    "RateLimiter",
    "RejectCode",
    "RequestFailure",
    "SendOutcome",
    "SendResult",
    "SignedAuth",
    "StatusReport",
    "Timing",
    "UnknownAdapter",
    "VendorAnswer",
    "VendorRequest",
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
