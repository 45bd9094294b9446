"""The legal escalation run: review every considered account, propose cases, flag for review.

`run_legal_escalation` is the whole process as plain Python over batches of account ids; the
Prefect flow passes a mapper that runs each batch as a task, tests and the demo call it as is.
Each batch is one transaction: its review rows, its new cases with their first history entry,
and its review flags commit together, so a crash leaves a batch done or not done, and a rerun of
the same date opens nothing new (one open case per account is a unique constraint).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select, update

from dunning.config import LegalConfig, load_optional
from dunning.db.models import utcnow
from dunning.db.sql import chunked, insert_ignoring_conflicts
from dunning.db.tables import CASE, CASE_EVENT, GRACE, PLAN, REVIEW
from dunning.domain.money import to_decimal
from dunning.legal._queries import (
    CandidateRow,
    final_demands,
    review_flags,
    select_candidates,
)
from dunning.legal.eligibility import Assessment, Refusal, assess
from dunning.legal.lifecycle import CaseStatus
from dunning.project import Project
from dunning.services.daily import RunStopped, StopCheck
from dunning.services.runs.batches import Batch, account_batches
from dunning.services.runtime import Runtime

LEGAL_ESCALATION = "legal-escalation"
FLOW_USER = "legal-escalation"
"""The user recorded on what the flow itself does (proposals, review flags)."""

BlockingCheck = Callable[[Connection, date, Sequence[int]], dict[int, str]]
"""(connection, as-of, account ids) -> {account id: reason} for accounts that must not be
escalated for a reason the core rules do not know (an active payment plan, a grace period).
They run after the promise-to-pay rule; the first reason an account gets is recorded."""


def payment_plan_active(
    connection: Connection, as_of: date, account_ids: Sequence[int]
) -> dict[int, str]:
    """Accounts on an active negotiated payment plan (协商分期还款): never sued while it runs."""
    p = PLAN.c
    found: dict[int, str] = {}
    for chunk in chunked(list(account_ids), 900):
        query = select(p.account_id).where(p.account_id.in_(chunk), p.status == "active")
        found.update(
            {account_id: Refusal.PLAN_ACTIVE.value for (account_id,) in connection.execute(query)}
        )
    return found


def grace_period_active(
    connection: Connection, as_of: date, account_ids: Sequence[int]
) -> dict[int, str]:
    """Accounts in a grace period or hardship hold on `as_of` (no escalation until it ends)."""
    g = GRACE.c
    found: dict[int, str] = {}
    for chunk in chunked(list(account_ids), 900):
        query = select(g.account_id, g.kind).where(
            g.account_id.in_(chunk),
            g.starts_on <= as_of,
            g.ends_on >= as_of,
            g.revoked_at.is_(None),
        )
        for account_id, kind in connection.execute(query):
            reason = Refusal.HARDSHIP_HOLD if kind == "hardship" else Refusal.GRACE_ACTIVE
            found.setdefault(account_id, reason.value)
    return found


_BLOCKING_CHECKS: list[BlockingCheck] = [payment_plan_active, grace_period_active]


def register_blocking_check(check: BlockingCheck) -> None:
    """Add a check every legal run applies after the promise-to-pay rule (e.g. payment plans)."""
    if check not in _BLOCKING_CHECKS:
        _BLOCKING_CHECKS.append(check)


def blocking_checks() -> list[BlockingCheck]:
    return list(_BLOCKING_CHECKS)


ReviewBatches = Callable[[int, date, Sequence[Batch]], list["ReviewReport"]]
"""(run id, as-of, batches) -> one ReviewReport dict per batch."""


def legal_config(project: Project) -> LegalConfig:
    """config/legal.yaml of the program directory (the defaults when there is none)."""
    return load_optional(project.config_dir / "legal.yaml", LegalConfig, project.root)


@dataclass
class ReviewReport:
    """What one batch did: counts only (it goes into the run summary and a Prefect artifact)."""

    considered: int = 0
    opened: int = 0
    refused_by_reason: Counter[str] = field(default_factory=Counter)
    considered_by_jurisdiction: Counter[str] = field(default_factory=Counter)
    opened_by_jurisdiction: Counter[str] = field(default_factory=Counter)
    opened_claims_minor: Counter[str] = field(default_factory=Counter)
    """Sum of the claims of opened cases, by currency."""
    flagged_for_review: int = 0
    flagged_by_reason: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def merge(self, other: ReviewReport) -> None:
        self.considered += other.considered
        self.opened += other.opened
        self.refused_by_reason.update(other.refused_by_reason)
        self.considered_by_jurisdiction.update(other.considered_by_jurisdiction)
        self.opened_by_jurisdiction.update(other.opened_by_jurisdiction)
        self.opened_claims_minor.update(other.opened_claims_minor)
        self.flagged_for_review += other.flagged_for_review
        self.flagged_by_reason.update(other.flagged_by_reason)
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "considered": self.considered,
            "opened": self.opened,
            "refused_by_reason": dict(self.refused_by_reason),
            "considered_by_jurisdiction": dict(self.considered_by_jurisdiction),
            "opened_by_jurisdiction": dict(self.opened_by_jurisdiction),
            "opened_claims_minor": dict(self.opened_claims_minor),
            "flagged_for_review": self.flagged_for_review,
            "flagged_by_reason": dict(self.flagged_by_reason),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReviewReport:
        return cls(
            considered=data.get("considered", 0),
            opened=data.get("opened", 0),
            refused_by_reason=Counter[str](data.get("refused_by_reason", {})),
            considered_by_jurisdiction=Counter[str](data.get("considered_by_jurisdiction", {})),
            opened_by_jurisdiction=Counter[str](data.get("opened_by_jurisdiction", {})),
            opened_claims_minor=Counter[str](data.get("opened_claims_minor", {})),
            flagged_for_review=data.get("flagged_for_review", 0),
            flagged_by_reason=Counter[str](data.get("flagged_by_reason", {})),
            seconds=data.get("seconds", 0.0),
        )


def _flag_for_review(connection: Connection, as_of: date, lo: int, hi: int) -> Counter[str]:
    """Flag pre-filing cases with a payment since proposal or a stop; one history entry each
    time the set of reasons grows."""
    flagged: Counter[str] = Counter()
    now = utcnow()
    for flag in review_flags(connection, lo, hi):
        new = [reason for reason in flag.reasons if reason not in flag.existing]
        if not new:
            continue
        reasons = ",".join(sorted({*flag.existing, *flag.reasons}))
        connection.execute(
            update(CASE)
            .where(CASE.c.id == flag.case_id)
            .values(needs_review=True, review_reason=reasons[:200], updated_at=now)
        )
        connection.execute(
            CASE_EVENT.insert().values(
                case_id=flag.case_id,
                kind="review",
                from_status=None,
                to_status=None,
                occurred_on=as_of,
                user=FLOW_USER,
                note="flagged for review: " + ", ".join(new),
                recorded_at=now,
            )
        )
        flagged.update(new)
    return flagged


def _case_record(
    row: CandidateRow, assessment: Assessment, run_id: int, as_of: date, outbox_id: int
) -> dict[str, Any]:
    candidate, costs = row.candidate, assessment.costs
    assert costs is not None and assessment.limitation_ends_on is not None
    now = utcnow()
    return {
        "account_id": candidate.account_id,
        "customer_id": row.customer_id,
        "open_account_id": candidate.account_id,
        "run_id": run_id,
        "status": CaseStatus.PROPOSED.value,
        "jurisdiction": candidate.jurisdiction,
        "currency": candidate.currency,
        "proposed_on": as_of,
        "dpd": candidate.dpd,
        "oldest_due_on": candidate.oldest_due_on,
        "principal_minor": row.principal_minor,
        "interest_minor": row.interest_minor,
        "fees_minor": row.fees_minor,
        "penalty_minor": row.penalty_minor,
        "claim_minor": candidate.claim_minor,
        "recovery_rate": costs.recovery_rate,
        "expected_recovery_minor": costs.expected_recovery_minor,
        "court_fee_minor": costs.court_fee_minor,
        "lawyer_fee_minor": costs.lawyer_fee_minor,
        "limitation_ends_on": assessment.limitation_ends_on,
        "final_demand_outbox_id": outbox_id,
        "last_payment_id": row.last_payment_id,
        "needs_review": False,
        "created_at": now,
        "updated_at": now,
    }


def _proposal_note(run_id: int, row: CandidateRow, assessment: Assessment) -> str:
    costs = assessment.costs
    assert costs is not None
    currency = row.candidate.currency

    def money(minor: int) -> str:
        return f"{to_decimal(minor, currency)} {currency}"

    return (
        f"proposed by legal run {run_id}: DPD {row.candidate.dpd}, claim "
        f"{money(costs.claim_minor)}, expected recovery {money(costs.expected_recovery_minor)} "
        f"(rate {costs.recovery_rate}), legal cost {money(costs.legal_cost_minor)}"
    )


def review_batch(
    runtime: Runtime,
    run_id: int,
    as_of: date,
    lo: int,
    hi: int,
    *,
    config: LegalConfig | None = None,
    checks: Sequence[BlockingCheck] | None = None,
) -> ReviewReport:
    """Review the accounts with ids in [lo, hi]: record every outcome, open eligible cases."""
    started = time.perf_counter()
    config = config or legal_config(runtime.project)
    checks = blocking_checks() if checks is None else checks
    report = ReviewReport()
    with runtime.unit_of_work() as connection:
        report.flagged_by_reason = _flag_for_review(connection, as_of, lo, hi)
        report.flagged_for_review = sum(report.flagged_by_reason.values())
        rows = select_candidates(connection, as_of, runtime.project.strategy, config, lo, hi)
        letters = final_demands(connection, config, as_of, lo, hi)
        ids = [row.candidate.account_id for row in rows]
        blocked: dict[int, list[str]] = {}
        for check in checks:
            for account_id, reason in check(connection, as_of, ids).items():
                blocked.setdefault(account_id, []).append(reason)
        assessed: list[tuple[CandidateRow, Assessment]] = []
        for row in rows:
            candidate = replace(
                row.candidate,
                final_demand=letters.get(row.candidate.account_id),
                blocked_by=tuple(blocked.get(row.candidate.account_id, ())),
            )
            assessed.append((replace(row, candidate=candidate), assess(candidate, config, as_of)))

        proposals = [
            (
                row,
                a,
                _case_record(row, a, run_id, as_of, letters[row.candidate.account_id].outbox_id),
            )
            for row, a in assessed
            if a.eligible
        ]
        insert_ignoring_conflicts(connection, CASE, [p[2] for p in proposals], "open_account_id")
        opened = {
            account_id: case_id
            for case_id, account_id in connection.execute(
                select(CASE.c.id, CASE.c.account_id).where(
                    CASE.c.run_id == run_id, CASE.c.account_id.between(lo, hi)
                )
            )
        }
        now = utcnow()
        events = [
            {
                "case_id": opened[row.candidate.account_id],
                "kind": "transition",
                "from_status": None,
                "to_status": CaseStatus.PROPOSED.value,
                "occurred_on": as_of,
                "user": FLOW_USER,
                "note": _proposal_note(run_id, row, a),
                "recorded_at": now,
            }
            for row, a, _ in proposals
            if row.candidate.account_id in opened
        ]
        if events:
            connection.execute(CASE_EVENT.insert(), events)

        reviews = []
        for row, a in assessed:
            candidate = row.candidate
            case_id = opened.get(candidate.account_id) if a.eligible else None
            refusal = a.reason
            if a.eligible and case_id is None:
                refusal = Refusal.ALREADY_ESCALATED.value  # another run opened it meanwhile
            report.considered += 1
            report.considered_by_jurisdiction[candidate.jurisdiction] += 1
            if case_id is not None:
                report.opened += 1
                report.opened_by_jurisdiction[candidate.jurisdiction] += 1
                report.opened_claims_minor[candidate.currency] += candidate.claim_minor
            else:
                report.refused_by_reason[str(refusal)] += 1
            reviews.append(
                {
                    "run_id": run_id,
                    "account_id": candidate.account_id,
                    "as_of": as_of,
                    "jurisdiction": candidate.jurisdiction,
                    "currency": candidate.currency,
                    "dpd": candidate.dpd,
                    "eligible": case_id is not None,
                    "reason": None if case_id is not None else str(refusal),
                    "claim_minor": candidate.claim_minor,
                    "expected_recovery_minor": a.costs.expected_recovery_minor if a.costs else None,
                    "legal_cost_minor": a.costs.legal_cost_minor if a.costs else None,
                    "case_id": case_id,
                }
            )
        insert_ignoring_conflicts(connection, REVIEW, reviews, "run_id", "account_id")
    report.seconds = time.perf_counter() - started
    return report


def in_this_process(
    runtime: Runtime,
    config: LegalConfig | None = None,
    checks: Sequence[BlockingCheck] | None = None,
) -> ReviewBatches:
    """Review every batch in this process, one after the other (no Prefect)."""

    def run(run_id: int, as_of: date, batches: Sequence[Batch]) -> list[ReviewReport]:
        return [
            review_batch(runtime, run_id, as_of, lo, hi, config=config, checks=checks)
            for lo, hi in batches
        ]

    return run


def cases_by_status(connection: Connection) -> dict[str, int]:
    rows = connection.execute(select(CASE.c.status, func.count()).group_by(CASE.c.status))
    return {status: int(n) for status, n in rows}


def stoppable(review: ReviewBatches, should_stop: StopCheck) -> ReviewBatches:
    """The review, one batch at a time, asking `should_stop` before each batch."""

    def run(run_id: int, as_of: date, batches: Sequence[Batch]) -> list[ReviewReport]:
        reports: list[ReviewReport] = []
        for index, batch in enumerate(batches):
            if should_stop():
                raise RunStopped(
                    f"stop requested: legal review ended after {index} of {len(batches)} "
                    "batches; run the date again to resume"
                )
            reports.extend(review(run_id, as_of, [batch]))
        return reports

    return run


def run_legal_escalation(
    runtime: Runtime,
    as_of: date,
    should_stop: StopCheck | None = None,
    *,
    batches_run: ReviewBatches | None = None,
    prefect_flow_run_id: str | None = None,
) -> dict[str, Any]:
    """Review the considered accounts for `as_of`, propose a case for each eligible one, flag
    pre-filing cases that saw a payment or a stop; record a run; return its summary (no PII).
    `batches_run` reviews the batches (Prefect tasks in the flow); by default here. Safe to
    rerun for the same date.
    """
    config = legal_config(runtime.project)
    review = batches_run or in_this_process(runtime, config)
    if should_stop is not None:
        review = stoppable(review, should_stop)
    started = time.perf_counter()
    with runtime.runs.run(LEGAL_ESCALATION, as_of, prefect_flow_run_id=prefect_flow_run_id) as run:
        with runtime.engine.connect() as connection:
            batches = account_batches(connection, runtime.project.strategy.batch_size)
        total = ReviewReport()
        for report in review(run.id, as_of, batches):
            total.merge(report)
        with runtime.engine.connect() as connection:
            cases = cases_by_status(connection)
        summary = build_summary(
            run.id, as_of, len(batches), total, cases, time.perf_counter() - started
        )
        run.complete(summary)
    return summary


def build_summary(
    run_id: int,
    as_of: date,
    batches: int,
    total: ReviewReport,
    cases_by_status: dict[str, int],
    seconds: float,
) -> dict[str, Any]:
    """The run summary: counts and sums only, never personal data (it becomes an artifact)."""
    refused = sum(total.refused_by_reason.values())
    return {
        "run_id": run_id,
        "flow": LEGAL_ESCALATION,
        "as_of": as_of.isoformat(),
        "batches": batches,
        "accounts": {
            "considered": total.considered,
            "by_outcome": {"opened": total.opened, "refused": refused},
            "by_jurisdiction": {
                code: {"considered": n, "opened": total.opened_by_jurisdiction.get(code, 0)}
                for code, n in sorted(total.considered_by_jurisdiction.items())
            },
        },
        "refused_by_reason": dict(sorted(total.refused_by_reason.items())),
        "opened_claims": {
            currency: str(to_decimal(minor, currency))
            for currency, minor in sorted(total.opened_claims_minor.items())
        },
        "review": {
            "flagged": total.flagged_for_review,
            "by_reason": dict(sorted(total.flagged_by_reason.items())),
        },
        "cases_by_status": dict(sorted(cases_by_status.items())),
        "duration_seconds": round(seconds, 3),
    }
