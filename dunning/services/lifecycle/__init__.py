"""Beyond messages: promises to pay, grace periods, payment plans, treatments in force and cure,
and the actions that carry treatments out.

Each daily run first brings these up to date for its date (promises kept or broken, plans
completed or broken), and reviews accounts with treatments in force: an account that has
cured gets its credit line restored, its placement recalled and its registry report
corrected; a placed account with a dispute or a payment plan is recalled. Payments recorded
between runs trigger the same cure review at once.
"""

from __future__ import annotations

from dunning.services.lifecycle._common import LifecycleError, account_id_for
from dunning.services.lifecycle.actions import ActionReport, dispatch_actions
from dunning.services.lifecycle.grace import add_grace, grace_in_force
from dunning.services.lifecycle.plans import (
    PlanLine,
    PlanState,
    create_plan,
    evaluate_plans,
    plan_states,
    plan_view,
    reaged_since,
    split_plan,
)
from dunning.services.lifecycle.promises import add_promise, resolve_promises
from dunning.services.lifecycle.treatments import (
    review_treatments,
    treatment_in_force,
    treatments_in_force,
)

__all__ = [
    "ActionReport",
    "LifecycleError",
    "PlanLine",
    "PlanState",
    "account_id_for",
    "add_grace",
    "add_promise",
    "create_plan",
    "dispatch_actions",
    "evaluate_plans",
    "grace_in_force",
    "plan_states",
    "plan_view",
    "reaged_since",
    "resolve_promises",
    "review_treatments",
    "split_plan",
    "treatment_in_force",
    "treatments_in_force",
]
