"""The legal flow's SQL: candidates set-based per batch, their final demands, review flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Connection, exists, func, select

from dunning.config import LegalConfig, Strategy
from dunning.db.ranges import in_accounts
from dunning.db.tables import ACCOUNT, CASE, CUSTOMER, OUTBOX, PAYMENT, PROMISE
from dunning.legal.eligibility import Candidate, FinalDemandLetter
from dunning.legal.lifecycle import BLOCKING_OUTCOMES, OPEN_STATUSES, PRE_FILING, CaseStatus
from dunning.services.delinquency import account_balances, delinquency
from dunning.types import OutboxStatus, PromiseStatus, Suppression

_STOP_COLUMNS: tuple[tuple[Suppression, str], ...] = (
    (Suppression.DECEASED, "deceased"),
    (Suppression.BANKRUPTCY, "bankruptcy"),
    (Suppression.ATTORNEY, "attorney_on_file"),
    (Suppression.CEASE_REQUEST, "cease_communication"),
    (Suppression.DISPUTE, "dispute_open"),
)
"""Customer flags that bar a lawsuit, in the order eligibility reports them."""


@dataclass(frozen=True)
class CandidateRow:
    """A candidate with what a new case records about its account."""

    candidate: Candidate
    customer_id: int
    principal_minor: int
    interest_minor: int
    fees_minor: int
    penalty_minor: int
    last_payment_id: int


def select_candidates(
    connection: Connection,
    as_of: date,
    strategy: Strategy,
    config: LegalConfig,
    lo: int,
    hi: int,
) -> list[CandidateRow]:
    """Open overdue accounts in the considered tiers, with DPD, balance, stops, promise, cases."""
    d = delinquency(as_of, strategy, lo, hi)
    # The claim as of the run's date: for an earlier date, payments made since are not counted.
    balances = account_balances(as_of, lo, hi)
    a, c, overdue = ACCOUNT.c, CUSTOMER.c, d.overdue.c
    # Every table read is bounded by the batch's range (see in_accounts).
    promise_active = exists().where(
        PROMISE.c.account_id == a.id,
        in_accounts(PROMISE.c.account_id, lo, hi),
        PROMISE.c.status == PromiseStatus.ACTIVE.value,
        PROMISE.c.promised_on >= as_of,
    )
    last_payment_on = (
        select(func.max(PAYMENT.c.paid_on))
        .where(
            PAYMENT.c.account_id == a.id,
            in_accounts(PAYMENT.c.account_id, lo, hi),
            PAYMENT.c.paid_on <= as_of,
        )
        .scalar_subquery()
    )
    # The case's last payment: every payment after it is one the claim does not count (flagged
    # for review, deducted in the packet). For an earlier date those are the payments dated
    # after it, so the line is drawn below the first of them, whatever was recorded since.
    first_later_payment = (
        select(func.min(PAYMENT.c.id))
        .where(
            PAYMENT.c.account_id == a.id,
            in_accounts(PAYMENT.c.account_id, lo, hi),
            PAYMENT.c.paid_on > as_of,
        )
        .scalar_subquery()
    )
    newest_payment = (
        select(func.coalesce(func.max(PAYMENT.c.id), 0))
        .where(PAYMENT.c.account_id == a.id, in_accounts(PAYMENT.c.account_id, lo, hi))
        .scalar_subquery()
    )
    last_payment_id = func.coalesce(first_later_payment - 1, newest_payment)
    blocking = [s.value for s in (*OPEN_STATUSES, *BLOCKING_OUTCOMES)]
    open_case = exists().where(
        CASE.c.account_id == a.id,
        in_accounts(CASE.c.account_id, lo, hi),
        CASE.c.status.in_(blocking),
    )
    withdrawn_on = (
        select(func.max(CASE.c.closed_on))
        .where(
            CASE.c.account_id == a.id,
            in_accounts(CASE.c.account_id, lo, hi),
            CASE.c.status == CaseStatus.WITHDRAWN.value,
        )
        .scalar_subquery()
    )
    claim = balances.total
    query = (
        select(
            a.id,
            a.customer_id,
            a.jurisdiction,
            c.region,
            a.currency,
            a.product,
            d.tier,
            d.dpd,
            overdue.oldest_due_on,
            claim,
            balances.principal,
            balances.interest,
            balances.fees,
            balances.penalty,
            last_payment_on,
            last_payment_id,
            promise_active,
            open_case,
            withdrawn_on,
            c.hardship_hold,
            *(c[column] for _, column in _STOP_COLUMNS),
        )
        .select_from(
            balances.join(
                d.overdue.join(ACCOUNT, a.id == overdue.account_id).join(
                    CUSTOMER, c.id == a.customer_id
                )
            )
        )
        .where(a.status == "open", in_accounts(a.id, lo, hi), d.tier.in_(config.consider_tiers))
        .order_by(a.id)
    )
    rows = []
    for row in connection.execute(query):
        (
            account_id,
            customer_id,
            jurisdiction,
            region,
            currency,
            product,
            tier,
            dpd,
            oldest_due_on,
            claim_minor,
            principal,
            interest,
            fees,
            penalty,
            paid_on,
            payment_id,
            promise,
            has_case,
            withdrawn,
            hardship,
            *flags,
        ) = row
        stops = frozenset(
            stop for (stop, _), flag in zip(_STOP_COLUMNS, flags, strict=True) if flag
        )
        candidate = Candidate(
            account_id=account_id,
            jurisdiction=jurisdiction,
            region=region,
            currency=currency,
            product=product,
            tier=tier,
            dpd=int(dpd),
            oldest_due_on=oldest_due_on,
            claim_minor=int(claim_minor),
            last_payment_on=paid_on,
            stops=stops,
            promise_active=bool(promise),
            hardship_hold=bool(hardship),
            open_case=bool(has_case),
            withdrawn_on=withdrawn,
        )
        rows.append(
            CandidateRow(
                candidate, customer_id, principal, interest, fees, penalty, int(payment_id or 0)
            )
        )
    return rows


def template_name(template_id: str | None) -> str | None:
    """ "letter/late/final_demand.zh-CN" -> "final_demand"."""
    if not template_id:
        return None
    return template_id.rsplit("/", 1)[-1].split(".", 1)[0]


def final_demands(
    connection: Connection, config: LegalConfig, as_of: date, lo: int, hi: int
) -> dict[int, FinalDemandLetter]:
    """The latest delivered final demand letter of each account in [lo, hi], dated by as_of."""
    o = OUTBOX.c
    rule = config.final_demand
    query = (
        select(o.id, o.account_id, o.as_of, o.final_at, o.step_id, o.template_id)
        .where(
            o.account_id.between(lo, hi),
            o.channel == "letter",
            o.status == OutboxStatus.DELIVERED.value,
            o.as_of <= as_of,
            o.document_path.is_not(None),
        )
        .order_by(o.account_id, o.as_of, o.id)
    )
    steps, templates = set(rule.steps), set(rule.templates)
    found: dict[int, FinalDemandLetter] = {}
    for outbox_id, account_id, letter_date, final_at, step_id, template_id in connection.execute(
        query
    ):
        if step_id not in steps and template_name(template_id) not in templates:
            continue
        # Ordered by date: the last one seen is the latest.
        found[account_id] = FinalDemandLetter(
            outbox_id=outbox_id,
            letter_date=letter_date,
            receipt_date=final_at.date() if final_at is not None else None,
        )
    return found


@dataclass(frozen=True)
class ReviewFlag:
    case_id: int
    reasons: tuple[str, ...]
    existing: tuple[str, ...]


def review_flags(connection: Connection, lo: int, hi: int) -> list[ReviewFlag]:
    """Pre-filing cases in [lo, hi] with a payment since they were proposed or a stop now."""
    lc, c = CASE.c, CUSTOMER.c
    newer_payment = exists().where(
        PAYMENT.c.account_id == lc.account_id, PAYMENT.c.id > lc.last_payment_id
    )
    query = (
        select(
            lc.id,
            lc.review_reason,
            newer_payment,
            *(c[column] for _, column in _STOP_COLUMNS),
        )
        .join(CUSTOMER, c.id == lc.customer_id)
        .where(
            lc.account_id.between(lo, hi),
            lc.status.in_([s.value for s in PRE_FILING]),
        )
        .order_by(lc.id)
    )
    flags = []
    for case_id, existing, paid, *stops in connection.execute(query):
        reasons = (["payment_received"] if paid else []) + [
            f"stop.{stop.value}"
            for (stop, _), flag in zip(_STOP_COLUMNS, stops, strict=True)
            if flag
        ]
        if reasons:
            known = tuple(existing.split(",")) if existing else ()
            flags.append(ReviewFlag(case_id, tuple(reasons), known))
    return flags


def newest_payment_ids(connection: Connection, account_ids: Sequence[int]) -> dict[int, int]:
    if not account_ids:
        return {}
    query = (
        select(PAYMENT.c.account_id, func.max(PAYMENT.c.id))
        .where(PAYMENT.c.account_id.in_(list(account_ids)))
        .group_by(PAYMENT.c.account_id)
    )
    return {account_id: int(pid) for account_id, pid in connection.execute(query)}
