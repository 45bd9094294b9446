"""`dunning import ...` and `dunning accounts ...`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer
from babel.numbers import format_currency
from rich.table import Table

from dunning.cli._common import STATE, JsonOption, as_of_option, console, print_json, progress_bar
from dunning.domain.money import to_decimal
from dunning.services.delinquency import TierCount, tier_population
from dunning.services.imports import files as imports


def _format_money(minor: int, currency: str, locale: str = "en_US") -> str:

    return str(format_currency(to_decimal(minor, currency), currency, locale=locale))


def print_tiers(counts: list[TierCount], as_of: date, title: str | None = None) -> None:
    table = Table(title=title or f"Overdue accounts by tier and jurisdiction, as of {as_of}")
    table.add_column("tier")
    table.add_column("jurisdiction")
    table.add_column("accounts", justify="right")
    table.add_column("overdue amount", justify="right")
    for count in counts:
        table.add_row(
            count.tier,
            count.jurisdiction,
            f"{count.accounts:,}",
            _format_money(count.overdue_minor, count.currency),
        )
    total = sum(count.accounts for count in counts)
    table.add_section()
    table.add_row("all", "", f"{total:,}", "")
    console.print(table)


def tiers_as_json(counts: list[TierCount]) -> list[dict[str, object]]:
    return [
        {
            "tier": c.tier,
            "jurisdiction": c.jurisdiction,
            "currency": c.currency,
            "accounts": c.accounts,
            "overdue": str(to_decimal(c.overdue_minor, c.currency)),
        }
        for c in counts
    ]


def _as_date(value: datetime | None) -> date:
    return value.date() if value is not None else date.today()


def register(app: typer.Typer) -> None:
    importer = typer.Typer(
        help="Import CSV files (columns: docs/imports.md). A bad row rejects the whole file.",
        no_args_is_help=True,
    )
    accounts = typer.Typer(help="Accounts: delinquency by tier.", no_args_is_help=True)
    app.add_typer(importer, name="import")
    app.add_typer(accounts, name="accounts")

    def _import(kind: str, file: Path, as_json: bool) -> None:
        runtime = STATE.runtime()
        with (
            progress_bar(f"import {kind}", imports.count_rows(file), not as_json) as advance,
            runtime.unit_of_work() as connection,
        ):
            result = imports.import_file(connection, kind, file, advance)
        if as_json:
            print_json(result.as_dict())
        else:
            held = (
                f"; {result.held:,} waiting message(s) held for a stop or an opt-out"
                if result.held
                else ""
            )
            console.print(
                f"{file}: {result.rows:,} rows: {result.inserted:,} new, "
                f"{result.updated:,} updated, {result.unchanged:,} unchanged{held}"
            )

    for kind in imports.KINDS:

        def command(
            file: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV file"),
            as_json: bool = JsonOption,
            _kind: str = typer.Option(kind, hidden=True),
        ) -> None:
            _import(_kind, file, as_json)

        command.__doc__ = f"Import {kind} from a CSV file (upsert by external key)."
        importer.command(kind)(command)

    @accounts.command("tiers")
    def accounts_tiers(as_of: datetime | None = as_of_option(), as_json: bool = JsonOption) -> None:
        """Count the overdue accounts by tier and jurisdiction (DPD computed in SQL)."""
        runtime = STATE.runtime()
        day = _as_date(as_of)
        with runtime.engine.connect() as connection:
            counts = tier_population(connection, day, runtime.project.strategy)
        if as_json:
            print_json({"as_of": day, "tiers": tiers_as_json(counts)})
        else:
            print_tiers(counts, day)
