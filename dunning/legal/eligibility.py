"""Which overdue accounts may be proposed for court action, and the reason for every other one.

Pure: the service layer loads each account's state into a Candidate (DPD, balance and stops
set-based in SQL; the final demand letter, payments and promises per batch) and `assess` checks
the rules of config/legal.yaml in a fixed order. The first rule an account fails is its reason;
the order is documented in docs/legal.md, and the reason ids are stable (they are stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from dunning.config.legal import JurisdictionRules, LegalConfig
from dunning.domain.calendar import add_months
from dunning.legal.costs import CostBenefit, cost_benefit, to_minor
from dunning.types import MinorUnits, Suppression


class Refusal(StrEnum):
    """Why an account that was considered was not escalated. Values are stored: never rename."""

    ALREADY_ESCALATED = "already_escalated"
    RECENTLY_WITHDRAWN = "recently_withdrawn"
    NO_LEGAL_RULES = "no_legal_rules"
    CURRENCY_MISMATCH = "currency_mismatch"
    STOP_DECEASED = "stop.deceased"
    STOP_BANKRUPTCY = "stop.bankruptcy"
    STOP_ATTORNEY = "stop.attorney"
    STOP_CEASE_REQUEST = "stop.cease_request"
    STOP_DISPUTE = "stop.dispute"
    HARDSHIP_HOLD = "hardship_hold"
    TIME_BARRED = "time_barred"
    DPD_BELOW_MINIMUM = "dpd_below_minimum"
    BALANCE_BELOW_MINIMUM = "balance_below_minimum"
    PROMISE_ACTIVE = "promise_active"
    PLAN_ACTIVE = "plan_active"
    """An active payment plan (a blocking check, see dunning.legal.service)."""
    GRACE_ACTIVE = "grace_active"
    """A grace period in force (a blocking check)."""
    NO_FINAL_DEMAND = "no_final_demand"
    FINAL_DEMAND_TOO_RECENT = "final_demand_too_recent"
    NOT_WORTH_IT = "not_worth_it"


STOPS: tuple[tuple[Suppression, Refusal], ...] = (
    (Suppression.DECEASED, Refusal.STOP_DECEASED),
    (Suppression.BANKRUPTCY, Refusal.STOP_BANKRUPTCY),
    (Suppression.ATTORNEY, Refusal.STOP_ATTORNEY),
    (Suppression.CEASE_REQUEST, Refusal.STOP_CEASE_REQUEST),
    (Suppression.DISPUTE, Refusal.STOP_DISPUTE),
)
"""Customer stops in the order they are reported. Any one of them bars a lawsuit here: a
deceased customer's estate, a bankruptcy stay (11 USC 362), a represented customer, a cease
request and an unresolved dispute are all for people, not for this flow."""


@dataclass(frozen=True)
class FinalDemandLetter:
    """The delivered final demand letter that counts for an account (its latest one)."""

    outbox_id: int
    letter_date: date
    """The business date the letter was dated and mailed under (outbox_message.as_of)."""
    receipt_date: date | None
    """The date (UTC) of its delivery receipt."""


@dataclass(frozen=True)
class Candidate:
    """One overdue account as the rules see it on the as-of date."""

    account_id: int
    jurisdiction: str
    region: str | None
    currency: str
    product: str
    tier: str | None
    dpd: int
    oldest_due_on: date
    claim_minor: MinorUnits
    """The whole balance: principal + interest + fees + penalty."""
    last_payment_on: date | None
    stops: frozenset[Suppression]
    promise_active: bool
    hardship_hold: bool = False
    blocked_by: tuple[str, ...] = ()
    """Reasons from pluggable blocking checks (e.g. an active payment plan), in order."""
    final_demand: FinalDemandLetter | None = None
    open_case: bool = False
    """A case in proposed, approved or filed; or one that ended in judgment or settlement."""
    withdrawn_on: date | None = None
    """When the account's last case was withdrawn, if it was."""


@dataclass(frozen=True)
class Assessment:
    account_id: int
    eligible: bool
    reason: str | None
    """A Refusal value (or a blocking check's reason); None when eligible."""
    costs: CostBenefit | None
    """None when the jurisdiction has no rules (or another currency)."""
    limitation_ends_on: date | None


def limitation_start(candidate: Candidate) -> date:
    """The date of default (oldest unpaid due date), or the last payment when that is later.

    Interruptions such as a creditor's demand (CN civil code art. 195) are not counted: that can
    only make the period look shorter than it is, never longer.
    """
    if (
        candidate.last_payment_on is not None
        and candidate.last_payment_on > candidate.oldest_due_on
    ):
        return candidate.last_payment_on
    return candidate.oldest_due_on


def limitation_ends(candidate: Candidate, rules: JurisdictionRules) -> date:
    years = rules.limitation_years_for(candidate.region)
    return add_months(limitation_start(candidate), 12 * years)


def final_demand_date(letter: FinalDemandLetter, config: LegalConfig) -> date | None:
    if config.final_demand.count_from == "receipt":
        return letter.receipt_date
    return letter.letter_date


def assess(candidate: Candidate, config: LegalConfig, as_of: date) -> Assessment:
    """Check every rule in order; the first one the account fails is its reason."""
    rules = config.jurisdictions.get(candidate.jurisdiction)
    costs: CostBenefit | None = None
    ends_on: date | None = None
    if rules is not None and rules.currency == candidate.currency:
        costs = cost_benefit(
            candidate.claim_minor, rules, tier=candidate.tier, product=candidate.product
        )
        ends_on = limitation_ends(candidate, rules)

    def refuse(reason: str) -> Assessment:
        return Assessment(candidate.account_id, False, reason, costs, ends_on)

    if candidate.open_case:
        return refuse(Refusal.ALREADY_ESCALATED)
    if candidate.withdrawn_on is not None and as_of < candidate.withdrawn_on + timedelta(
        days=config.withdrawn_cooldown_days
    ):
        return refuse(Refusal.RECENTLY_WITHDRAWN)
    if rules is None:
        return refuse(Refusal.NO_LEGAL_RULES)
    if costs is None or ends_on is None:
        return refuse(Refusal.CURRENCY_MISMATCH)
    for stop, reason in STOPS:
        if stop in candidate.stops:
            return refuse(reason)
    if candidate.hardship_hold:
        return refuse(Refusal.HARDSHIP_HOLD)
    if as_of + timedelta(days=rules.limitation_margin_days) >= ends_on:
        return refuse(Refusal.TIME_BARRED)
    if candidate.dpd < rules.min_dpd:
        return refuse(Refusal.DPD_BELOW_MINIMUM)
    if costs.claim_minor < to_minor(rules.min_balance, rules.currency):
        return refuse(Refusal.BALANCE_BELOW_MINIMUM)
    if candidate.promise_active:
        return refuse(Refusal.PROMISE_ACTIVE)
    if candidate.blocked_by:
        return refuse(candidate.blocked_by[0])
    if candidate.final_demand is None:
        return refuse(Refusal.NO_FINAL_DEMAND)
    counted_from = final_demand_date(candidate.final_demand, config)
    if counted_from is None or as_of < counted_from + timedelta(days=rules.final_demand_wait_days):
        return refuse(Refusal.FINAL_DEMAND_TOO_RECENT)
    if not costs.worth_it:
        return refuse(Refusal.NOT_WORTH_IT)
    return Assessment(candidate.account_id, True, None, costs, ends_on)
