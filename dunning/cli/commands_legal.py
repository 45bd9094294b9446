"""`dunning legal run` (also `dunning run legal`) and `dunning cases ...`: legal escalation."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from dunning.cli._common import STATE, JsonOption, as_of_option, console, print_json
from dunning.errors import DunningError
from dunning.legal.cases import list_cases, list_reviews, show_case, transition_case
from dunning.legal.lifecycle import OUTCOMES, CaseStatus
from dunning.legal.packets import build_case_packet
from dunning.legal.service import run_legal_escalation
from dunning.legal.verify import verify_packet

InProcessOption = typer.Option(
    False, "--in-process", help="Run without Prefect (no flow run is recorded in Prefect)."
)
UserOption = typer.Option(..., "--user", help="Who makes this change (kept in the history).")
NoteOption = typer.Option(..., "--note", help="Why (kept in the case history).")
OnOption = typer.Option(
    None, "--on", help="Business date of the change (YYYY-MM-DD); default today.",
    formats=["%Y-%m-%d"],
)  # fmt: skip
ReviewedOption = typer.Option(
    False, "--reviewed", help="The review flag was checked: clear it and go ahead."
)


class PacketInvalid(DunningError):
    """`cases verify` found a changed, missing, extra or unreadable file."""


class BadChoice(DunningError):
    """An option value outside its choices (a DunningError, so `run` prints one clean line)."""

    def __init__(self, option: str, value: str, choices: list[str]) -> None:
        super().__init__(f"{option} {value!r}: use one of {', '.join(choices)}")


def _day(value: datetime | None) -> date:
    return value.date() if value is not None else date.today()


def run_legal(as_of: date, *, in_process: bool) -> dict[str, Any]:
    if in_process:
        return run_legal_escalation(STATE.runtime(), as_of)
    # Prefect loads only when a flow is run from here (it takes a second to import).
    from flows.legal_escalation import legal_escalation

    STATE.runtime()  # migrate and validate before handing over to Prefect
    result: dict[str, Any] = legal_escalation(as_of=as_of, project_dir=str(STATE.project().root))
    return result


def print_summary(summary: dict[str, Any]) -> None:
    accounts = summary["accounts"]
    console.print(
        f"[bold]legal escalation {summary['as_of']}[/bold]: run {summary['run_id']}, "
        f"{accounts['considered']:,} accounts considered, "
        f"{accounts['by_outcome']['opened']:,} cases opened, "
        f"{accounts['by_outcome']['refused']:,} not escalated, "
        f"{summary['review']['flagged']:,} cases flagged for review, "
        f"{summary['duration_seconds']:.1f} s"
    )
    if summary["opened_claims"]:
        claims = ", ".join(f"{amount} {cur}" for cur, amount in summary["opened_claims"].items())
        console.print(f"claims of the cases opened: {claims}")
    if summary["refused_by_reason"]:
        table = Table(title="not escalated: reasons")
        table.add_column("reason")
        table.add_column("accounts", justify="right")
        for reason, n in sorted(summary["refused_by_reason"].items(), key=lambda kv: -kv[1]):
            table.add_row(reason, f"{n:,}")
        console.print(table)
    if summary["cases_by_status"]:
        states = ", ".join(f"{s} {n:,}" for s, n in summary["cases_by_status"].items())
        console.print(f"all cases: {states}")


def _print_case(data: dict[str, Any]) -> None:
    flag = f"  [red]needs review: {data['review_reason']}[/red]" if data["needs_review"] else ""
    console.print(f"[bold]{data['reference']}[/bold] ({data['status']}){flag}", highlight=False)
    fields = (
        ("account", data["account"]["external_id"]),
        ("agreement", data["account"]["agreement_ref"]),
        ("customer", data["customer"]["name"]),
        ("jurisdiction", data["jurisdiction"]),
        ("proposed / approved / filed / closed",
         " / ".join(str(data[k] or "-") for k in
                    ("proposed_on", "approved_on", "filed_on", "closed_on"))),
        ("DPD at proposal", data["dpd"]),
        ("claim", f"{data['claim']} {data['currency']} (principal {data['principal']}, "
                  f"interest {data['interest']}, fees {data['fees']}, "
                  f"penalties {data['penalty']})"),
        ("expected recovery", f"{data['expected_recovery']} at rate {data['recovery_rate']}"),
        ("legal cost", f"{data['legal_cost']} (court {data['court_fee']}, "
                       f"lawyer {data['lawyer_fee']})"),
        ("limitation ends", data["limitation_ends_on"]),
        ("packet sha256", data["packet_sha256"] or "not built"),
    )  # fmt: skip
    for key, value in fields:
        console.print(f"  [bold]{key}[/bold]: {value}", highlight=False)
    customer = data["customer"]
    if "phone" in customer:
        console.print("  [bold]identity[/bold]:", highlight=False)
        for key in ("external_id", "name", "phone", "email", "address_line1", "address_line2",
                    "city", "region", "postal_code", "country"):  # fmt: skip
            if customer.get(key):
                console.print(f"    {key}: {customer[key]}", highlight=False)
    table = Table(title="history")
    for column in ("date", "event", "by", "note"):
        table.add_column(column)
    for event in data["history"]:
        what = (
            f"{event['from_status'] or '(new)'} -> {event['to_status']}"
            if event["kind"] == "transition"
            else event["kind"]
        )
        table.add_row(event["occurred_on"], what, event["user"], event["note"])
    console.print(table)


def _transition(
    case_id: int,
    target: str,
    *,
    user: str,
    note: str,
    on: datetime | None,
    reviewed: bool,
    as_json: bool,
) -> None:

    with STATE.runtime().unit_of_work() as connection:
        data = transition_case(
            connection, case_id, target, user=user, note=note, on=_day(on), reviewed=reviewed
        )
    if as_json:
        print_json(data)
    else:
        console.print(f"case {data['reference']} is now {data['status']}", highlight=False)


def register(app: typer.Typer) -> None:
    legal = typer.Typer(
        help="Legal escalation: propose cases for court action.", no_args_is_help=True
    )
    cases = typer.Typer(
        help="Legal cases: list, show, approve, file, close; case packets.", no_args_is_help=True
    )
    app.add_typer(legal, name="legal")
    app.add_typer(cases, name="cases")

    def legal_run(
        as_of: datetime | None = as_of_option(),
        in_process: bool = InProcessOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Review the late accounts for a date; propose a case for each eligible one.

        Safe to rerun: an account has at most one open case. Every account considered and not
        escalated is recorded with its reason (see `dunning cases reviews`).
        """
        summary = run_legal(_day(as_of), in_process=in_process)
        if as_json:
            print_json(summary)
        else:
            print_summary(summary)

    legal.command("run")(legal_run)
    # `dunning run legal` as well, on the group commands_run registered (if it did).
    for group in app.registered_groups:
        if group.name == "run" and group.typer_instance is not None:
            group.typer_instance.command("legal")(legal_run)

    @cases.command("list")
    def cases_list(
        status: str | None = typer.Option(
            None, help="proposed, approved, filed, judgment, settled or withdrawn"
        ),
        needs_review: bool = typer.Option(
            False, "--needs-review", help="Only cases flagged for review."
        ),
        limit: int = typer.Option(50, min=1, max=100_000),
        as_json: bool = JsonOption,
    ) -> None:
        """List legal cases, newest first. Customer names are masked."""

        if status is not None and status not in {s.value for s in CaseStatus}:
            raise BadChoice("--status", status, [s.value for s in CaseStatus])

        with STATE.runtime().engine.connect() as connection:
            rows = list_cases(
                connection, status=status, needs_review=True if needs_review else None, limit=limit
            )
        if as_json:
            print_json(rows)
            return
        table = Table()
        for column in ("case", "status", "proposed", "account", "customer", "DPD", "claim",
                       "review"):  # fmt: skip
            table.add_column(
                column,
                justify="right" if column in {"DPD", "claim"} else "left",
                no_wrap=column in {"case", "claim"},
            )
        for row in rows:
            table.add_row(
                row["reference"],
                row["status"],
                row["proposed_on"],
                row["account"],
                row["customer"],
                str(row["dpd"]),
                f"{row['claim']} {row['currency']}",
                row["review_reason"] if row["needs_review"] else "",
            )
        console.print(table)

    @cases.command("show")
    def cases_show(
        case_id: int = typer.Argument(..., help="Case id (the number in LC-000123)."),
        unmask: bool = typer.Option(
            False, "--unmask", help="Show the customer identity block (PII)."
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Show a case: its claim, cost-benefit, dates and history."""

        with STATE.runtime().engine.connect() as connection:
            data = show_case(connection, case_id, unmask=unmask)
        if as_json:
            print_json(data)
        else:
            _print_case(data)

    @cases.command("approve")
    def cases_approve(
        case_id: int = typer.Argument(..., help="Case id."),
        user: str = UserOption,
        note: str = NoteOption,
        on: datetime | None = OnOption,
        reviewed: bool = ReviewedOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Approve a proposed case for filing."""
        _transition(
            case_id, "approved", user=user, note=note, on=on, reviewed=reviewed, as_json=as_json
        )

    @cases.command("file")
    def cases_file(
        case_id: int = typer.Argument(..., help="Case id."),
        user: str = UserOption,
        note: str = NoteOption,
        on: datetime | None = OnOption,
        reviewed: bool = ReviewedOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Record that an approved case was filed with the court."""
        _transition(
            case_id, "filed", user=user, note=note, on=on, reviewed=reviewed, as_json=as_json
        )

    @cases.command("close")
    def cases_close(
        case_id: int = typer.Argument(..., help="Case id."),
        outcome: str = typer.Option(
            ..., "--outcome", help="judgment or settled (filed cases), or withdrawn (any open)"
        ),
        user: str = UserOption,
        note: str = NoteOption,
        on: datetime | None = OnOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Close a case with its outcome."""

        if outcome not in {o.value for o in OUTCOMES}:
            raise BadChoice("--outcome", outcome, [o.value for o in OUTCOMES])
        _transition(case_id, outcome, user=user, note=note, on=on, reviewed=False, as_json=as_json)

    @cases.command("packet")
    def cases_packet(
        case_id: int = typer.Argument(..., help="Case id."),
        out: Path = typer.Option(..., "--out", file_okay=False, help="Directory for the ZIP."),
        as_json: bool = JsonOption,
    ) -> None:
        """Build the case packet (a reproducible ZIP) and record its SHA-256 on the case."""

        result = build_case_packet(STATE.runtime(), case_id, out)
        if as_json:
            print_json(result.as_dict())
        else:
            console.print(f"{result.path}", highlight=False)
            console.print(f"sha256 {result.sha256} ({len(result.files)} files, {result.locale})")

    @cases.command("verify")
    def cases_verify(
        packet: Path = typer.Argument(..., exists=True, dir_okay=False, help="A case packet ZIP."),
        as_json: bool = JsonOption,
    ) -> None:
        """Check a packet against its manifest: changed, missing, extra or unreadable files fail."""

        result = verify_packet(packet)
        if as_json:
            print_json(result.as_dict())
        else:
            console.print(f"{packet}: sha256 {result.packet_sha256}", highlight=False)
            for label, names in (
                ("changed", result.changed),
                ("missing", result.missing),
                ("extra", result.extra),
                ("unreadable", [f"{n}: {why}" for n, why in result.unreadable.items()]),
                ("problem", result.problems),
            ):
                for name in names:
                    # Names come from the packet: rich must not read them as markup.
                    console.print(f"  [red]{label}[/red]: {escape(name)}", highlight=False)
            if result.ok:
                console.print(f"  ok: {result.files} files match the manifest")
        if not result.ok:
            # A DunningError (not typer.Exit, whose code `run` does not see): exit status 1.
            raise PacketInvalid(f"{packet}: the packet does not match its manifest")

    @cases.command("reviews")
    def cases_reviews(
        as_of: datetime | None = as_of_option("The legal run of this date; default the latest."),
        reason: str | None = typer.Option(
            None, help="Only this reason (e.g. not_worth_it), or `opened`."
        ),
        limit: int = typer.Option(50, min=1, max=100_000),
        as_json: bool = JsonOption,
    ) -> None:
        """What a legal run decided for each account it considered, and why."""

        with STATE.runtime().engine.connect() as connection:
            data = list_reviews(
                connection,
                as_of=as_of.date() if as_of is not None else None,
                reason=reason,
                limit=limit,
            )
        if as_json:
            print_json(data)
            return
        console.print(f"[bold]legal run {data['run_id']}[/bold] for {data['as_of']}")
        counts = Table(title="outcomes")
        counts.add_column("reason")
        counts.add_column("accounts", justify="right")
        for key, n in data["by_reason"].items():
            counts.add_row(key, f"{n:,}")
        console.print(counts)
        table = Table()
        for column in ("account", "jurisdiction", "DPD", "claim", "expected", "cost", "outcome"):
            table.add_column(column)
        for row in data["reviews"]:
            table.add_row(
                row["account"],
                row["jurisdiction"],
                str(row["dpd"]),
                f"{row['claim']} {row['currency']}",
                row["expected_recovery"] or "",
                row["legal_cost"] or "",
                f"case {row['case_id']}" if row["eligible"] else row["reason"],
            )
        console.print(table)
