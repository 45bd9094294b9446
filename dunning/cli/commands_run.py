"""`dunning run ...` (flows) and `dunning outbox ...` (what went out)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from dunning.bootstrap import outreach_in_worker
from dunning.cli._common import STATE, JsonOption, as_of_option, console, print_json
from dunning.db.tables import EVENT, OUTBOX
from dunning.errors import NotFound
from dunning.masking import mask_recipient
from dunning.services.daily import (
    local_executor,
    run_daily_outreach,
    run_dispatch_outbox,
    run_reconcile_receipts,
)
from dunning.services.explain import explain_account

InProcessOption = typer.Option(
    False, "--in-process", help="Run without Prefect (no flow run is recorded in Prefect)."
)


def _day(value: datetime | None) -> date:
    return value.date() if value is not None else date.today()


def run_daily(as_of: date, *, dry_run: bool, in_process: bool) -> dict[str, Any]:
    project = STATE.project()
    if in_process:
        with STATE.outreach() as outreach, local_executor(outreach, outreach_in_worker) as batches:
            return run_daily_outreach(outreach, as_of, dry_run=dry_run, executor=batches)
    # Prefect loads only when a flow is run from here (it takes a second to import).
    from flows.daily_outreach import daily_outreach

    STATE.runtime()  # migrate and validate before handing over to Prefect
    result: dict[str, Any] = daily_outreach(
        as_of=as_of, dry_run=dry_run, project_dir=str(project.root)
    )
    return result


def print_summary(summary: dict[str, Any]) -> None:
    this_run = summary["this_run"]
    dispatch = this_run["dispatch"]
    head = "dry run (nothing written or sent)" if summary["dry_run"] else f"run {summary['run_id']}"
    console.print(
        f"[bold]daily outreach {summary['as_of']}[/bold]: {head}, "
        f"{summary['accounts']['overdue']:,} overdue accounts in {summary['batches']} batches, "
        f"{summary['duration_seconds']:.1f} s"
    )
    console.print(
        f"this run: {this_run['new_messages']:,} new messages "
        f"({this_run['already_planned']:,} already planned by an earlier run), "
        f"{dispatch['sent']:,} sent ({dispatch['duplicates']:,} the gateway already had), "
        f"{dispatch['failed']:,} failed, {dispatch['retry']:,} to retry, "
        f"{dispatch['deferred']:,} deferred"
    )
    table = Table(title="accounts by tier")
    table.add_column("tier")
    table.add_column("overdue accounts", justify="right")
    for tier, count in summary["accounts"]["by_tier"].items():
        table.add_row(tier, f"{count:,}")
    console.print(table)
    messages = summary.get("messages")
    if messages is None:
        decisions = Table(title="decisions (dry run)")
        decisions.add_column("channel")
        decisions.add_column("messages", justify="right")
        for channel, count in this_run["decisions_by_channel"].items():
            decisions.add_row(channel, f"{count:,}")
        console.print(decisions)
        messages = {"held_by_suppression": this_run["held_by_suppression"]}
    else:
        grid = Table(title=f"all messages for {summary['as_of']}")
        grid.add_column("by")
        grid.add_column("value")
        grid.add_column("messages", justify="right")
        for section in ("by_tier", "by_channel", "by_status"):
            for key, count in sorted(messages[section].items()):
                grid.add_row(section[3:], key, f"{count:,}")
        console.print(grid)
        if messages.get("by_provider"):
            providers = Table(title="through each provider (channel: provider)")
            providers.add_column("provider")
            providers.add_column("messages", justify="right")
            for key, count in sorted(messages["by_provider"].items()):
                providers.add_row(key, f"{count:,}")
            console.print(providers)
    if messages["held_by_suppression"]:
        held = Table(title="held, by suppression")
        held.add_column("suppression")
        held.add_column("messages", justify="right")
        for reason, count in sorted(messages["held_by_suppression"].items(), key=lambda kv: -kv[1]):
            held.add_row(reason, f"{count:,}")
        console.print(held)


def _outbox_row(row: Any, unmask: bool) -> dict[str, Any]:
    data = dict(row._mapping)
    if not unmask:
        data["recipient"] = mask_recipient(data["channel"], data["recipient"])
        if data.get("body"):
            data["body"] = f"[hidden: {len(data['body'])} characters; --unmask to show]"
        if data.get("subject"):
            data["subject"] = "[hidden]"
    for key, value in list(data.items()):
        if isinstance(value, (date, datetime)):
            data[key] = value.isoformat()
    return data


def register(app: typer.Typer) -> None:
    run = typer.Typer(help="Run flows: the daily outreach, receipts.", no_args_is_help=True)
    outbox = typer.Typer(
        help="The outbox: every planned, sent and held message.", no_args_is_help=True
    )
    app.add_typer(run, name="run")
    app.add_typer(outbox, name="outbox")

    @run.command("daily")
    def run_daily_command(
        as_of: datetime | None = as_of_option(),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Decide and render, but write and send nothing."
        ),
        in_process: bool = InProcessOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Run the daily outreach for a date. Safe to rerun: nothing is sent twice."""
        summary = run_daily(_day(as_of), dry_run=dry_run, in_process=in_process)
        if as_json:
            print_json(summary)
        else:
            print_summary(summary)

    @run.command("dispatch")
    def run_dispatch(in_process: bool = InProcessOption, as_json: bool = JsonOption) -> None:
        """Send every message that has become due: deferred to a contact window, or retries."""
        if in_process:
            with STATE.outreach() as outreach:
                result = run_dispatch_outbox(outreach)
        else:
            # Prefect loads only when a flow is run from here (it takes a second to import).
            from flows.dispatch_outbox import dispatch_outbox

            STATE.runtime()
            result = dispatch_outbox(project_dir=str(STATE.project().root))
        if as_json:
            print_json(result)
        else:
            held = result["held_by_suppression"]
            console.print(
                f"claimed {result['claimed']:,}: sent {result['sent']:,}, "
                f"deferred {result['deferred']:,}, failed {result['failed']:,}, "
                f"to retry {result['retry']:,}, held {sum(held.values()):,}"
                + (f" {held}" if held else "")
            )

    @run.command("receipts")
    def run_receipts(in_process: bool = InProcessOption, as_json: bool = JsonOption) -> None:
        """Poll the gateways for delivery receipts of sent messages and record them."""
        if in_process:
            with STATE.outreach() as outreach:
                result = run_reconcile_receipts(outreach)
        else:
            # Prefect loads only when a flow is run from here (it takes a second to import).
            from flows.reconcile_receipts import reconcile_receipts as receipts_flow

            STATE.runtime()
            result = receipts_flow(project_dir=str(STATE.project().root))
        if as_json:
            print_json(result)
        else:
            console.print(
                f"checked {result['checked']:,} sent messages, recorded {result['recorded']:,} "
                f"receipts: {result['by_status']}"
            )

    @app.command("explain")
    def explain(
        account: str = typer.Argument(..., help="Account external id (or internal id)"),
        as_of: datetime | None = as_of_option(),
        as_json: bool = JsonOption,
    ) -> None:
        """What was or was not sent to one account on a date, and the rule behind each."""
        with STATE.outreach() as outreach:
            data = explain_account(outreach.planner, account, _day(as_of))
        if as_json:
            print_json(data)
            return
        tier = data["tier"] or "none"
        console.print(
            f"[bold]{data['account']}[/bold] ({data['jurisdiction']}, {data['status']})"
            f" on {data['as_of']}: DPD {data['dpd']}, tier {tier}",
            highlight=False,
        )
        if "why" in data:
            console.print(f"  {data['why']}", highlight=False)
            for step, days in data.get("cadence", {}).items():
                console.print(
                    f"    {step} is due at DPD {', '.join(map(str, days))}", highlight=False
                )
        for message in data["recorded"]:
            rule = f" (rule {message['rule']})" if message["rule"] else ""
            wait = f", not before {message['not_before']}" if message["not_before"] else ""
            console.print(
                f"  recorded: {message['step']} on {message['channel']} with "
                f"{message['template'] or 'no template'}: {message['status']}"
                f"{rule}{wait}",
                highlight=False,
            )
            for event in message["events"]:
                console.print(
                    f"    {event['occurred_at']} {event['source']}: {event['status']}"
                    + (f" ({event['reason']})" if event["reason"] else ""),
                    highlight=False,
                )
        for entry in data.get("rules_now", []):
            rule = f" by rule {entry['rule']}" if entry["rule"] else ""
            wait = f" until {entry['not_before']}" if entry.get("not_before") else ""
            zones = (
                f" (window shut now in {', '.join(entry['closed_now']) or 'none'}"
                f" of the candidate zones {', '.join(entry['zones']) or '(none)'})"
                if "zones" in entry
                else ""
            )
            console.print(
                f"  rules now: {entry['step']} on {entry['channel']}: "
                f"{entry['verdict']}{rule}{wait}{zones}",
                highlight=False,
            )

    @outbox.command("list")
    def outbox_list(
        as_of: datetime | None = as_of_option("Only messages of this business date."),
        status: str | None = typer.Option(None, help="planned, sending, sent, delivered, ..."),
        channel: str | None = typer.Option(None, help="sms, push or letter"),
        limit: int = typer.Option(50, min=1, max=100_000),
        unmask: bool = typer.Option(False, "--unmask", help="Show recipients and text (PII)."),
        as_json: bool = JsonOption,
    ) -> None:
        """List outbox messages, newest first. Personal data is masked unless --unmask."""
        o = OUTBOX.c
        query = (
            select(
                o.id,
                o.as_of,
                o.tier,
                o.step_id,
                o.channel,
                o.status,
                o.suppression,
                o.template_id,
                o.recipient,
                o.attempts,
                o.idempotency_key,
                *([o.subject, o.body] if as_json else []),
            )
            .order_by(o.id.desc())
            .limit(limit)
        )
        if as_of is not None:
            query = query.where(o.as_of == as_of.date())
        if status:
            query = query.where(o.status == status)
        if channel:
            query = query.where(o.channel == channel)
        with STATE.runtime().engine.connect() as connection:
            rows = [_outbox_row(row, unmask) for row in connection.execute(query)]
        if as_json:
            print_json(rows)
            return
        table = Table()
        for column in (
            "id",
            "as_of",
            "tier",
            "step",
            "channel",
            "status",
            "suppression",
            "recipient",
        ):
            table.add_column(column)
        for row in rows:
            table.add_row(
                str(row["id"]),
                row["as_of"],
                row["tier"],
                row["step_id"],
                row["channel"],
                row["status"],
                row["suppression"] or "",
                row["recipient"] or "",
            )
        console.print(table)

    @outbox.command("show")
    def outbox_show(
        message: str = typer.Argument(..., help="Outbox id or idempotency key"),
        unmask: bool = typer.Option(False, "--unmask", help="Show recipient and text (PII)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Show one message with its delivery events."""
        o = OUTBOX.c
        condition = o.id == int(message) if message.isdigit() else o.idempotency_key == message
        with STATE.runtime().engine.connect() as connection:
            row = connection.execute(select(OUTBOX).where(condition)).first()
            if row is None:
                raise NotFound(f"no outbox message {message}")
            events = connection.execute(
                select(EVENT.c.status, EVENT.c.source, EVENT.c.occurred_at, EVENT.c.reason)
                .where(EVENT.c.outbox_id == row.id)
                .order_by(EVENT.c.id)
            ).all()
        data = _outbox_row(row, unmask)
        data.pop("claim_token", None)
        data["events"] = [
            {
                "status": e.status,
                "source": e.source,
                "occurred_at": e.occurred_at.isoformat(),
                "reason": e.reason,
            }
            for e in events
        ]
        if as_json:
            print_json(data)
            return
        for key, value in data.items():
            if key != "events":
                console.print(f"[bold]{key}[/bold]: {value}", highlight=False)
        for event in data["events"]:
            console.print(
                f"  {event['occurred_at']}  {event['source']:8} {event['status']}"
                f"{'  ' + event['reason'] if event['reason'] else ''}",
                highlight=False,
            )
