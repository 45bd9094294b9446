"""Treatments in force and cure: each day, an account that cured or came under a stop has its
freeze, placement and registry report reversed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select, update

from dunning.db.models import utcnow
from dunning.db.ranges import in_accounts
from dunning.db.sql import chunked, insert_ignoring_conflicts
from dunning.db.tables import ACCOUNT, ACTION, CUSTOMER, OUTBOX, PLAN
from dunning.domain.keys import idempotency_key
from dunning.services.delinquency import overdue_by_account
from dunning.services.lifecycle._common import CHUNK
from dunning.types import ActionKind, OutboxStatus, Suppression

FORWARD = (ActionKind.CREDIT_FREEZE, ActionKind.AGENCY_PLACEMENT, ActionKind.REGISTRY_REPORT)


REVERSAL = {
    ActionKind.CREDIT_FREEZE: ActionKind.CREDIT_RESTORE,
    ActionKind.AGENCY_PLACEMENT: ActionKind.AGENCY_RECALL,
    ActionKind.REGISTRY_REPORT: ActionKind.REGISTRY_CORRECTION,
}


IN_FORCE = ("planned", "sending", "done")


def treatment_in_force(kind: ActionKind, lo: int, hi: int) -> Any:
    """SQL condition: the account (ACCOUNT.c.id, one of the batch lo..hi) has a `kind` action
    done and not reversed. A reversal is on its forward action's account."""
    forward = ACTION.alias("forward_in_force")
    return exists().where(
        forward.c.account_id == ACCOUNT.c.id,
        forward.c.kind == kind.value,
        _in_force(forward, lo, hi),
    )


def _in_force(forward: Any, lo: int | None = None, hi: int | None = None) -> Any:
    """SQL condition: the `forward` action row (of an account lo..hi) is done and no reversal
    has undone it yet. A reversal is on its forward action's account."""
    reversal = ACTION.alias("reversal")
    return and_(
        in_accounts(forward.c.account_id, lo, hi),
        forward.c.kind.in_([k.value for k in FORWARD]),
        forward.c.status == "done",
        ~exists().where(
            reversal.c.reverses_id == forward.c.id,
            reversal.c.account_id == forward.c.account_id,
            in_accounts(reversal.c.account_id, lo, hi),
            reversal.c.status.in_(IN_FORCE),
        ),
    )


def treatments_in_force(
    connection: Connection, account_ids: Sequence[int] | None = None
) -> list[Any]:
    """Done forward actions (freeze, placement, report) that no reversal has undone yet."""
    forward = ACTION.alias("forward")
    columns = (
        forward.c.id,
        forward.c.account_id,
        forward.c.kind,
        forward.c.reference,
        forward.c.payload,
    )
    if account_ids is None:
        return list(connection.execute(select(*columns).where(_in_force(forward))))
    ids = sorted(set(account_ids))
    if not ids:
        return []
    query = select(*columns).where(
        _in_force(forward, ids[0], ids[-1]), forward.c.account_id.in_(ids)
    )
    return list(connection.execute(query))


def review_treatments(
    connection: Connection,
    as_of: date,
    run_id: int | None,
    account_ids: Sequence[int] | None = None,
) -> dict[str, int]:
    """Plan reversals: all of them for cured accounts; a recall for disputes and plans.

    Also cancels the cured accounts' messages still waiting to go out. Reviews the given
    accounts, or every account with a treatment in force, CHUNK accounts at a time.
    """
    totals = {"cured": 0, "reversals": 0, "cancelled_messages": 0}
    if account_ids is not None:
        chunks: Iterable[Sequence[int]] = chunked(sorted(set(account_ids)), CHUNK)
    else:
        chunks = _accounts_in_force(connection)
    for chunk in chunks:
        for key, value in _review_accounts(connection, as_of, run_id, chunk).items():
            totals[key] += value
    return totals


def _accounts_in_force(connection: Connection) -> Iterator[Sequence[int]]:
    """Ids of the accounts with a treatment in force, ascending, CHUNK at a time.

    Read a range of account ids at a time, each query bounded by its range (see in_accounts):
    paging by "ids after the last" made every page compute the whole book's treatments."""
    forward = ACTION.alias("forward")
    top = connection.execute(select(func.max(ACTION.c.account_id))).scalar() or 0
    span = CHUNK * 50
    for lo in range(0, top + 1, span):
        ids = connection.execute(
            select(forward.c.account_id)
            .where(_in_force(forward, lo, lo + span - 1))
            .group_by(forward.c.account_id)
            .order_by(forward.c.account_id)
        ).scalars()
        yield from chunked(list(ids), CHUNK)


def _review_accounts(
    connection: Connection, as_of: date, run_id: int | None, account_ids: Sequence[int]
) -> dict[str, int]:
    """review_treatments for one chunk of accounts (ascending ids)."""
    treatments = treatments_in_force(connection, account_ids)
    candidates = sorted(set(account_ids))
    if not candidates:
        return {"cured": 0, "reversals": 0, "cancelled_messages": 0}
    delinquent: set[int] = set()
    dispute: set[int] = set()
    planned: set[int] = set()
    externals: dict[int, str] = {}
    overdue = overdue_by_account(as_of, candidates[0], candidates[-1])
    for chunk in chunked(candidates, 900):
        delinquent.update(
            r[0]
            for r in connection.execute(
                select(overdue.c.account_id).where(overdue.c.account_id.in_(chunk))
            )
        )
        for account_id, external_id, disputed, has_plan in connection.execute(
            select(
                ACCOUNT.c.id,
                ACCOUNT.c.external_id,
                CUSTOMER.c.dispute_open,
                exists().where(PLAN.c.account_id == ACCOUNT.c.id, PLAN.c.status == "active"),
            )
            .join(CUSTOMER, CUSTOMER.c.id == ACCOUNT.c.customer_id)
            .where(ACCOUNT.c.id.in_(chunk))
        ):
            externals[account_id] = external_id
            if disputed:
                dispute.add(account_id)
            if has_plan:
                planned.add(account_id)
    cured = [a for a in candidates if a not in delinquent]
    now = utcnow()

    rows = []
    for treatment in treatments:
        account_id = treatment.account_id
        kind = ActionKind(treatment.kind)
        reason = None
        if account_id not in delinquent:
            reason = "cured"
        elif kind == ActionKind.AGENCY_PLACEMENT and account_id in dispute:
            reason = "dispute"
        elif kind == ActionKind.AGENCY_PLACEMENT and account_id in planned:
            reason = "payment_plan"
        if reason is None:
            continue
        reverse = REVERSAL[kind]
        rows.append(
            {
                "idempotency_key": idempotency_key(
                    externals[account_id], as_of, f"reverse-{treatment.id}", reverse.value
                ),
                "run_id": run_id,
                "account_id": account_id,
                "as_of": as_of,
                "kind": reverse.value,
                "step_id": None,
                "reverses_id": treatment.id,
                "status": "planned",
                "payload": reversal_payload(reverse, treatment, reason, as_of),
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
    insert_ignoring_conflicts(connection, ACTION, rows, "idempotency_key")
    cancelled = 0
    for chunk in chunked(cured, 900):
        cancelled += (
            connection.execute(
                update(OUTBOX)
                .where(
                    OUTBOX.c.account_id.in_(chunk), OUTBOX.c.status == OutboxStatus.PLANNED.value
                )
                .values(
                    status=OutboxStatus.CANCELLED.value,
                    suppression=Suppression.PAID.value,
                    final_at=now,
                    updated_at=now,
                )
            ).rowcount
            or 0
        )
        connection.execute(
            update(ACTION)
            .where(
                ACTION.c.account_id.in_(chunk),
                ACTION.c.status == "planned",
                ACTION.c.kind.in_([k.value for k in FORWARD]),
            )
            .values(status="cancelled", suppression=Suppression.PAID.value, updated_at=now)
        )
    return {"cured": len(cured), "reversals": len(rows), "cancelled_messages": cancelled}


def reversal_payload(kind: ActionKind, treatment: Any, reason: str, as_of: date) -> dict[str, Any]:
    """Only what the other side needs to undo what it did."""
    original = treatment.payload or {}
    if kind == ActionKind.CREDIT_RESTORE:
        return {
            "restore_limit_minor": original.get("credit_limit_minor"),
            "currency": original.get("currency"),
            "reason": reason,
        }
    if kind == ActionKind.AGENCY_RECALL:
        return {
            "agency": original.get("agency"),
            "placement_reference": treatment.reference,
            "reason": reason,
        }
    return {
        "report_date": as_of.isoformat(),
        "customer_ref": original.get("customer_ref"),
        "report_reference": treatment.reference,
        "status": "current" if reason == "cured" else reason,
        "reason": reason,
    }
