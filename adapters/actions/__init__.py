"""Action adapters: the credit-line freeze, agency placement and registry report, and reversals.

Layout: base.py is the contract (ActionKind, PAYLOADS, ActionRequest, ActionResult,
ActionAdapter); _http.py the HTTP base (the gateways' plumbing); registry.py finds adapters
through the `dunning.action_adapters` entry points; credit_line/, agency/, credit_registry/
hold one module per provider; mock/ is the mock core banking system and collection agency.
"""

from __future__ import annotations

from adapters.actions._checks import InvalidActionRequest, check_batch, wire_payload
from adapters.actions._http import HttpActionAdapter
from adapters.actions.agency.mock import MockAgencyAdapter
from adapters.actions.base import (
    PAYLOADS,
    REVERSAL,
    TARGET,
    ActionAdapter,
    ActionKind,
    ActionRequest,
    ActionResult,
)
from adapters.actions.credit_line.mock import MockCoreBankingAdapter
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
from adapters.actions.mock import (
    AgencyLedger,
    CoreBankingLedger,
    CreditLine,
    MockActionOptions,
    Placement,
    agency_ledger,
    core_banking_ledger,
    create_agency_app,
    create_core_banking_app,
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
    "AgencyLedger",
    "CoreBankingLedger",
    "CreditLine",
    "FileRegistryAdapter",
    "FileRegistryOptions",
    "HttpActionAdapter",
    "InvalidActionRequest",
    "MockActionOptions",
    "MockAgencyAdapter",
    "MockCoreBankingAdapter",
    "Placement",
    "RegistryFiles",
    "RegistryFormat",
    "RegistryLine",
    "action_adapter_class",
    "action_options_problems",
    "agency_ledger",
    "available_action_adapters",
    "build_action_adapter",
    "check_batch",
    "core_banking_ledger",
    "create_agency_app",
    "create_core_banking_app",
    "read_registry",
    "register_registry_format",
    "registry_format",
    "wire_payload",
]
