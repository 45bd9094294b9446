"""What an action tells its target: the fields each action kind sends (core banking, agency, credit
registry).
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from dunning.types import ActionKind

if TYPE_CHECKING:
    from dunning.config.actions import Agency, CreditFreeze
    from dunning.services.outreach.select import BatchRow


def action_payload(
    kind: ActionKind,
    row: BatchRow,
    as_of: date,
    *,
    freeze: CreditFreeze,
    agency: Agency | None,
) -> tuple[dict[str, Any], int | None]:
    """The payload for a forward action (only what the other side needs), and its cost."""
    if kind == ActionKind.CREDIT_FREEZE:
        return {
            "mode": freeze.mode,
            "credit_limit_minor": row.credit_limit_minor,
            "new_limit_minor": freeze.new_limit_minor(row.credit_limit_minor),
            "currency": row.currency,
            "tier": row.tier,
        }, None
    if kind == ActionKind.AGENCY_PLACEMENT:
        assert agency is not None
        commission = agency.expected_commission_minor(row.overdue_minor)
        return {
            "agency": agency.id,
            "customer_name": row.name,
            "phone": row.phone,
            "address_lines": row.address_lines(),
            "locale": row.locale,
            "currency": row.currency,
            "principal_minor": row.principal_minor,
            "interest_minor": row.interest_minor,
            "fees_minor": row.fees_minor,
            "penalty_minor": row.penalty_minor,
            "overdue_minor": row.overdue_minor,
            "dpd": row.dpd,
            "commission_rate": str(agency.commission_rate),
        }, commission
    if kind == ActionKind.REGISTRY_REPORT:
        balance = row.principal_minor + row.interest_minor + row.fees_minor + row.penalty_minor
        return {
            "report_date": as_of.isoformat(),
            "customer_ref": row.customer_external_id,
            "customer_name": row.name,
            "currency": row.currency,
            "balance_minor": balance,
            "overdue_minor": row.overdue_minor,
            "dpd": row.dpd,
            "opened_on": row.opened_on.isoformat(),
        }, None
    raise ValueError(f"{kind} is not planned by cadence")
