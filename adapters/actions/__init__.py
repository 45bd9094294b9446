"""Action adapters: the credit-line freeze, agency placement and registry report, and reversals.

Layout: base.py is the contract (ActionKind, PAYLOADS, ActionRequest, ActionResult,
ActionAdapter); _http.py the HTTP base (the gateways' plumbing); fields.py the per-field checks
of request items; credit_registry/ the file-based registry adapter. Action adapters are found
and built by the one adapter registry (adapters.registry, entry points
`dunning.action_adapters`). The mock core banking system and collection agency, and their
mock-* adapters, are in the `sandbox` package.
"""

from __future__ import annotations

from adapters.actions._checks import InvalidActionRequest, check_batch, wire_payload
from adapters.actions._http import HttpActionAdapter
from adapters.actions.base import (
    PAYLOADS,
    REVERSAL,
    TARGET,
    ActionAdapter,
    ActionKind,
    ActionRequest,
    ActionResult,
)
from adapters.actions.credit_registry import (
    FileRegistryAdapter,
    FileRegistryOptions,
    RegistryFiles,
    RegistryFormat,
    RegistryLine,
    read_registry,
    register_registry_format,
    registry_format,
)

__all__ = [
    "PAYLOADS",
    "REVERSAL",
    "TARGET",
    "ActionAdapter",
    "ActionKind",
    "ActionRequest",
    "ActionResult",
    "FileRegistryAdapter",
    "FileRegistryOptions",
    "HttpActionAdapter",
    "InvalidActionRequest",
    "RegistryFiles",
    "RegistryFormat",
    "RegistryLine",
    "check_batch",
    "read_registry",
    "register_registry_format",
    "registry_format",
    "wire_payload",
]
