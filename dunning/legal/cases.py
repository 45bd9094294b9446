"""Legal cases in the database: list, show, move through the lifecycle, and the reviews of a run.

Every transition names its user and note and is written to the case history in the same
transaction as the status change; the UPDATE checks the status it started from, so two people
acting on one case at once cannot both succeed.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select, update

from dunning.db.models import utcnow
from dunning.db.tables import ACCOUNT, CASE, CASE_EVENT, CUSTOMER, REVIEW, RUN
from dunning.domain.money import to_decimal
from dunning.errors import InvalidTransition, NotFound
from dunning.legal._queries import newest_payment_ids
from dunning.legal.lifecycle import OPEN_STATUSES, OUTCOMES, CaseStatus, check_transition
from dunning.masking import mask_name

_DATE_COLUMNS = {
    CaseStatus.APPROVED: "approved_on",
    CaseStatus.FILED: "filed_on",
    CaseStatus.JUDGMENT: "closed_on",
    CaseStatus.SETTLED: "closed_on",
    CaseStatus.WITHDRAWN: "closed_on",
}
_AMOUNTS = (
    "principal_minor",
    "interest_minor",
    "fees_minor",
    "penalty_minor",
    "claim_minor",
    "expected_recovery_minor",
    "court_fee_minor",
    "lawyer_fee_minor",
)


def case_reference(case_id: int) -> str:
    return f"LC-{case_id:06d}"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _case_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    currency = data["currency"]
    for key in _AMOUNTS:
        if key in data:
            data[key.removesuffix("_minor")] = str(to_decimal(data.pop(key), currency))
    if "court_fee" in data and "lawyer_fee" in data:
        data["legal_cost"] = str(Decimal(data["court_fee"]) + Decimal(data["lawyer_fee"]))
    data["reference"] = case_reference(data["id"])
    data.pop("open_account_id", None)
    return {key: _plain(value) for key, value in data.items()}


def list_cases(
    connection: Connection,
    *,
    status: str | None = None,
    needs_review: bool | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Cases, newest first, with the customer's name masked."""
    lc = CASE.c
    query = (
        select(
            lc.id,
            lc.status,
            lc.jurisdiction,
            lc.currency,
            lc.proposed_on,
            lc.dpd,
            lc.claim_minor,
            lc.expected_recovery_minor,
            lc.needs_review,
            lc.review_reason,
            lc.packet_sha256,
            ACCOUNT.c.external_id.label("account"),
            CUSTOMER.c.name,
        )
        .join(ACCOUNT, ACCOUNT.c.id == lc.account_id)
        .join(CUSTOMER, CUSTOMER.c.id == lc.customer_id)
        .order_by(lc.id.desc())
        .limit(limit)
    )
    if status:
        query = query.where(lc.status == CaseStatus(status).value)
    if needs_review is not None:
        query = query.where(lc.needs_review.is_(needs_review))
    cases = []
    for row in connection.execute(query):
        data = _case_dict(row)
        data["customer"] = mask_name(data.pop("name"))
        cases.append(data)
    return cases


def _load(connection: Connection, case_id: int) -> Any:
    row = connection.execute(select(CASE).where(CASE.c.id == case_id)).first()
    if row is None:
        raise NotFound(f"no legal case {case_id}")
    return row


def history(connection: Connection, case_id: int) -> list[dict[str, Any]]:
    e = CASE_EVENT.c
    rows = connection.execute(
        select(e.kind, e.from_status, e.to_status, e.occurred_on, e.user, e.note, e.recorded_at)
        .where(e.case_id == case_id)
        .order_by(e.id)
    )
    return [{key: _plain(value) for key, value in row._mapping.items()} for row in rows]


def identity(connection: Connection, customer_id: int) -> dict[str, Any]:
    """The customer identity block (PII)."""
    c = CUSTOMER.c
    row = connection.execute(
        select(
            c.external_id,
            c.name,
            c.locale,
            c.phone,
            c.email,
            c.address_line1,
            c.address_line2,
            c.city,
            c.region,
            c.postal_code,
            c.country,
        ).where(c.id == customer_id)
    ).one()
    return dict(row._mapping)


def show_case(connection: Connection, case_id: int, *, unmask: bool = False) -> dict[str, Any]:
    """One case with its account, history and (with unmask) the customer identity block."""
    row = _load(connection, case_id)
    data = _case_dict(row)
    account = connection.execute(
        select(
            ACCOUNT.c.external_id, ACCOUNT.c.agreement_ref, ACCOUNT.c.product, ACCOUNT.c.status
        ).where(ACCOUNT.c.id == row.account_id)
    ).one()
    data["account"] = {key: _plain(value) for key, value in account._mapping.items()}
    person = identity(connection, row.customer_id)
    data["customer"] = person if unmask else {"name": mask_name(person["name"])}
    data["history"] = history(connection, case_id)
    return data


def transition_case(
    connection: Connection,
    case_id: int,
    target: CaseStatus | str,
    *,
    user: str,
    note: str,
    on: date,
    reviewed: bool = False,
) -> dict[str, Any]:
    """Move a case to `target`, recording who, when and why; InvalidTransition when not allowed."""
    target = CaseStatus(target)
    row = _load(connection, case_id)
    current = CaseStatus(row.status)
    check_transition(
        case_id,
        current,
        target,
        needs_review=row.needs_review,
        reviewed=reviewed,
        user=user,
        note=note,
    )
    latest = max(d for d in (row.proposed_on, row.approved_on, row.filed_on) if d is not None)
    if on < latest:
        raise InvalidTransition(
            f"case {case_id}: {on.isoformat()} is before the case's last date "
            f"({latest.isoformat()})"
        )
    now = utcnow()
    values: dict[str, Any] = {"status": target.value, _DATE_COLUMNS[target]: on, "updated_at": now}
    if target not in OPEN_STATUSES:
        values["open_account_id"] = None
    cleared = ""
    if reviewed and row.needs_review:
        # The reviewed payments do not flag the case again; a stop still there will.
        newest = newest_payment_ids(connection, [row.account_id]).get(row.account_id, 0)
        values.update(needs_review=False, review_reason=None, last_payment_id=newest)
        cleared = f" [reviewed: {row.review_reason}]"
    changed = connection.execute(
        update(CASE).where(CASE.c.id == case_id, CASE.c.status == current.value).values(**values)
    ).rowcount
    if changed != 1:
        raise InvalidTransition(f"case {case_id} changed while this was being done; try again")
    connection.execute(
        CASE_EVENT.insert().values(
            case_id=case_id,
            kind="transition",
            from_status=current.value,
            to_status=target.value,
            occurred_on=on,
            user=user.strip(),
            note=note.strip() + cleared,
            recorded_at=now,
        )
    )
    return show_case(connection, case_id)


def close_outcomes() -> list[str]:
    return [outcome.value for outcome in OUTCOMES]


def list_reviews(
    connection: Connection,
    *,
    as_of: date | None = None,
    reason: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """The latest legal run's (or the latest run for `as_of`'s) reviews: counts and rows."""
    runs = select(RUN.c.id, RUN.c.as_of).where(RUN.c.flow == "legal-escalation")
    if as_of is not None:
        runs = runs.where(RUN.c.as_of == as_of)
    run = connection.execute(runs.order_by(RUN.c.id.desc()).limit(1)).first()
    if run is None:
        raise NotFound("no legal run" + (f" for {as_of.isoformat()}" if as_of is not None else ""))
    r = REVIEW.c
    counts = {
        str(key): int(n)
        for key, n in connection.execute(
            select(func.coalesce(r.reason, "opened"), func.count())
            .where(r.run_id == run.id)
            .group_by(r.reason)
        )
    }
    query = (
        select(
            r.account_id,
            ACCOUNT.c.external_id.label("account"),
            r.jurisdiction,
            r.currency,
            r.dpd,
            r.eligible,
            r.reason,
            r.claim_minor,
            r.expected_recovery_minor,
            r.legal_cost_minor,
            r.case_id,
        )
        .join(ACCOUNT, ACCOUNT.c.id == r.account_id)
        .where(r.run_id == run.id)
        .order_by(r.account_id)
        .limit(limit)
    )
    if reason == "opened":
        query = query.where(r.eligible.is_(True))
    elif reason:
        query = query.where(r.reason == reason)
    rows = []
    for row in connection.execute(query):
        data = dict(row._mapping)
        currency = data["currency"]
        for key in ("claim_minor", "expected_recovery_minor", "legal_cost_minor"):
            value = data.pop(key)
            data[key.removesuffix("_minor")] = (
                None if value is None else str(to_decimal(value, currency))
            )
        rows.append(data)
    return {
        "run_id": run.id,
        "as_of": run.as_of.isoformat(),
        "by_reason": dict(sorted(counts.items())),
        "reviews": rows,
    }
