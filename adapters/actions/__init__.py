"""Action adapters: the credit-line freeze, agency placement and registry report, and reversals.

Layout: base.py is the contract (ActionKind, PAYLOADS, ActionRequest, ActionResult,
ActionAdapter); _http.py the HTTP base (the gateways' plumbing); registry.py finds adapters
through the `dunning.action_adapters` entry points; fields.py the per-field checks of request
items; credit_registry/ the file-based registry adapter. The mock core banking system and
collection agency, and their mock-* adapters, are in the `sandbox` package.
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
from adapters.actions.registry import (
    TARGETS,
    ActionAdapterContext,
    action_adapter_class,
    action_options_problems,
    available_action_adapters,
    build_action_adapter,
)

__all__ = [
    "PAYLOADS",
    "REVERSAL",
    "TARGET",
    "TARGETS",
    "ActionAdapter",
    "ActionAdapterContext",
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
    "action_adapter_class",
    "action_options_problems",
    "available_action_adapters",
    "build_action_adapter",
    "check_batch",
    "read_registry",
    "register_registry_format",
    "registry_format",
    "wire_payload",
]
