"""`dunning promises|plans|grace|actions ...`: what lenders do besides sending messages."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from dunning.cli._common import STATE, JsonOption, console, print_json
from dunning.db.models import utcnow
from dunning.db.tables import ACCOUNT, ACTION, PROMISE
from dunning.domain.money import to_decimal
from dunning.services import lifecycle
from dunning.services.contact.stops import opt_out_customer
from dunning.types import Channel

UserOption = typer.Option(..., "--user", help="Who records this (kept in the history).")


def _date(value: datetime) -> date:
    return value.date()


def _rows(query: Any) -> list[dict[str, Any]]:
    with STATE.runtime().engine.connect() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    for row in rows:
        for key, value in list(row.items()):
            if isinstance(value, (date, datetime)):
                row[key] = value.isoformat()
    return rows


def _table(rows: list[dict[str, Any]], columns: list[str], title: str) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(str(row.get(column) if row.get(column) is not None else "") for column in columns)
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    promises = typer.Typer(
        help="Promises to pay: reminders pause while one is active.", no_args_is_help=True
    )
    plans = typer.Typer(help="Negotiated instalment plans (协商分期还款).", no_args_is_help=True)
    grace = typer.Typer(help="Grace periods and hardship holds.", no_args_is_help=True)
    actions = typer.Typer(
        help="Actions: credit-line freezes, agency placements, registry "
        "reports, and their reversals.",
        no_args_is_help=True,
    )
    app.add_typer(promises, name="promises")
    app.add_typer(plans, name="plans")
    app.add_typer(grace, name="grace")
    app.add_typer(actions, name="actions")
    customers = typer.Typer(help="Customers: record an opt-out.", no_args_is_help=True)
    app.add_typer(customers, name="customers")

    @customers.command("opt-out")
    def customers_opt_out(
        customer: str = typer.Argument(..., help="Customer external id"),
        channel: Channel = typer.Option(..., help="The channel the customer opted out of"),
        as_json: bool = JsonOption,
    ) -> None:
        """Record an opt-out (e.g. a request by phone); waiting messages on it are held."""

        with STATE.runtime().unit_of_work() as connection:
            held = opt_out_customer(connection, customer, channel, utcnow())
        if as_json:
            print_json({"customer": customer, "channel": channel.value, "held_messages": held})
        else:
            console.print(f"{customer} opted out of {channel.value}; {held} waiting messages held")

    @promises.command("add")
    def promises_add(
        account: str = typer.Argument(..., help="Account external id"),
        amount: str = typer.Option(..., help="Amount promised, e.g. 250.00"),
        promised_on: datetime = typer.Option(
            ..., "--date", formats=["%Y-%m-%d"], help="The date the customer promised to pay by"
        ),
        channel: str = typer.Option("phone", help="Where the promise was made"),
        user: str = UserOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Record a promise to pay (an earlier active promise on the account is cancelled)."""
        with STATE.runtime().unit_of_work() as connection:
            promise_id = lifecycle.add_promise(
                connection, account, amount, _date(promised_on), channel, user, date.today()
            )
        if as_json:
            print_json({"promise": promise_id})
        else:
            console.print(
                f"promise {promise_id} recorded: reminders pause until {_date(promised_on)}"
            )

    @promises.command("list")
    def promises_list(
        account: str | None = typer.Option(None, help="Only this account"),
        status: str | None = typer.Option(None, help="active, kept, broken or cancelled"),
        limit: int = typer.Option(100, min=1),
        as_json: bool = JsonOption,
    ) -> None:
        """List promises to pay, newest first."""
        query = (
            select(
                PROMISE.c.id,
                ACCOUNT.c.external_id.label("account"),
                ACCOUNT.c.currency,
                PROMISE.c.amount_minor,
                PROMISE.c.promised_on,
                PROMISE.c.channel,
                PROMISE.c.created_by,
                PROMISE.c.status,
                PROMISE.c.resolved_on,
            )
            .join(ACCOUNT, ACCOUNT.c.id == PROMISE.c.account_id)
            .order_by(PROMISE.c.id.desc())
            .limit(limit)
        )
        if account:
            query = query.where(ACCOUNT.c.external_id == account)
        if status:
            query = query.where(PROMISE.c.status == status)
        rows = _rows(query)
        for row in rows:
            row["amount"] = str(to_decimal(row.pop("amount_minor"), row["currency"]))
        if as_json:
            print_json(rows)
        else:
            _table(
                rows,
                [
                    "id",
                    "account",
                    "amount",
                    "currency",
                    "promised_on",
                    "status",
                    "resolved_on",
                    "created_by",
                ],
                "promises to pay",
            )

    @plans.command("create")
    def plans_create(
        account: str = typer.Argument(..., help="Account external id"),
        instalments: int = typer.Option(..., min=1, help="Number of plan instalments"),
        first_due: datetime = typer.Option(..., "--first-due", formats=["%Y-%m-%d"]),
        every_days: int = typer.Option(30, "--every-days", min=7, max=92),
        user: str = UserOption,
        note: str | None = typer.Option(None, help="Terms agreed, in words"),
        as_json: bool = JsonOption,
    ) -> None:
        """Restructure the overdue amount into a plan; the cadence then follows the plan."""
        runtime = STATE.runtime()
        with runtime.unit_of_work() as connection:
            plan_id = lifecycle.create_plan(
                connection,
                account,
                instalments=instalments,
                every_days=every_days,
                first_due_on=_date(first_due),
                user=user,
                note=note,
                today=date.today(),
                policy=runtime.project.strategy.plans,
            )
            view = lifecycle.plan_view(connection, plan_id, date.today())
        if as_json:
            print_json(view)
        else:
            console.print(
                f"plan {plan_id}: {view['restructured']} {view['currency']} in "
                f"{instalments} instalments; a confirmation letter goes with the "
                "next daily run"
            )

    @plans.command("show")
    def plans_show(plan_id: int = typer.Argument(...), as_json: bool = JsonOption) -> None:
        """Show a plan, its instalments, and which are missed."""
        with STATE.runtime().engine.connect() as connection:
            view = lifecycle.plan_view(connection, plan_id, date.today())
        if as_json:
            print_json(view)
            return
        console.print(
            f"plan {view['id']} for {view['account']}: {view['status']}, "
            f"{view['restructured']} {view['currency']} restructured, "
            f"{view['paid']} paid; breaks after {view['break_after_missed']} missed"
        )
        _table(view["instalments"], ["seq", "due_on", "amount", "missed"], "instalments")

    @grace.command("add")
    def grace_add(
        account: str = typer.Argument(..., help="Account external id"),
        until: datetime = typer.Option(..., formats=["%Y-%m-%d"], help="Last day it applies"),
        reason: str = typer.Option(..., help="Why it was granted"),
        hardship: bool = typer.Option(False, "--hardship", help="A hardship hold, not grace"),
        user: str = UserOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Grant a grace period (or hardship hold): no messages, no escalation until then."""
        runtime = STATE.runtime()
        with runtime.unit_of_work() as connection:
            grace_id = lifecycle.add_grace(
                connection,
                account,
                "hardship" if hardship else "grace",
                _date(until),
                reason,
                user,
                date.today(),
                runtime.project.strategy.grace.max_days,
            )
        if as_json:
            print_json({"grace": grace_id})
        else:
            console.print(
                f"{'hardship hold' if hardship else 'grace period'} {grace_id} until {_date(until)}"
            )

    @actions.command("list")
    def actions_list(
        account: str | None = typer.Option(None, help="Only this account"),
        kind: str | None = typer.Option(None, help="credit_freeze, agency_placement, ..."),
        status: str | None = typer.Option(None, help="planned, done, held, failed, ..."),
        limit: int = typer.Option(100, min=1),
        as_json: bool = JsonOption,
    ) -> None:
        """List actions with their status, reference and cost, newest first."""
        query = (
            select(
                ACTION.c.id,
                ACCOUNT.c.external_id.label("account"),
                ACTION.c.as_of,
                ACTION.c.kind,
                ACTION.c.step_id,
                ACTION.c.status,
                ACTION.c.suppression,
                ACTION.c.reference,
                ACTION.c.reverses_id,
                ACTION.c.cost_minor,
                ACCOUNT.c.currency,
            )
            .join(ACCOUNT, ACCOUNT.c.id == ACTION.c.account_id)
            .order_by(ACTION.c.id.desc())
            .limit(limit)
        )
        if account:
            query = query.where(ACCOUNT.c.external_id == account)
        if kind:
            query = query.where(ACTION.c.kind == kind)
        if status:
            query = query.where(ACTION.c.status == status)
        rows = _rows(query)
        for row in rows:
            cost = row.pop("cost_minor")
            row["cost"] = str(to_decimal(cost, row["currency"])) if cost is not None else None
        if as_json:
            print_json(rows)
        else:
            _table(
                rows,
                [
                    "id",
                    "account",
                    "as_of",
                    "kind",
                    "status",
                    "suppression",
                    "reference",
                    "reverses_id",
                    "cost",
                ],
                "actions",
            )
