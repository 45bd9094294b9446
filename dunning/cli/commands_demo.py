"""`dunning demo`: seed a synthetic population, run the day, and show what went out."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import typer

from dunning.cli._common import STATE, JsonOption, as_of_option, console, print_json, progress_bar
from dunning.cli.commands_data import print_tiers, tiers_as_json
from dunning.cli.commands_run import InProcessOption, print_summary, run_daily
from dunning.services import demo as demo_service
from dunning.services.delinquency import tier_population


def _day(value: datetime | None) -> date:
    return value.date() if value is not None else date.today()


def _seed(accounts: int, seed: int, as_of: date, as_json: bool) -> demo_service.SeedResult:
    runtime = STATE.runtime()
    with (
        progress_bar("seed accounts", accounts, not as_json) as advance,
        runtime.unit_of_work() as connection,
    ):
        return demo_service.seed_population(
            connection, accounts=accounts, seed=seed, as_of=as_of, progress=advance
        )


def _gateway_counts() -> dict[str, int]:
    from adapters import GatewayLedger, ledger_path

    project = STATE.project()
    book = GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir))
    return {channel: book.count(channel) for channel in ("sms", "push", "letter")}


def register(app: typer.Typer) -> None:
    demo = typer.Typer(
        help="The demo: seed a synthetic population, then run the day on it.",
        invoke_without_command=True,
    )
    app.add_typer(demo, name="demo")

    @demo.callback()
    def demo_main(
        ctx: typer.Context,
        accounts: int = typer.Option(10_000, "--accounts", min=1, help="Population size."),
        seed: int = typer.Option(42, "--seed", help="Random seed: same seed, same population."),
        as_of: datetime | None = as_of_option(),
        in_process: bool = InProcessOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Seed the demo population (if absent), run the daily outreach, print the summary.

        Safe to run again: the population is kept and the rerun sends nothing twice.
        """
        if ctx.invoked_subcommand is not None:
            return
        day = _day(as_of)
        seeded = _seed(accounts, seed, day, as_json)
        runtime = STATE.runtime()
        with runtime.engine.connect() as connection:
            counts = tier_population(connection, day, runtime.project.strategy)
        if not as_json:
            console.print(
                f"demo population: {seeded.accounts + seeded.skipped:,} accounts "
                f"({seeded.accounts:,} new), seed {seed}, "
                f"database {runtime.engine.url.get_backend_name()}"
            )
            print_tiers(counts, day)
        summary = run_daily(day, dry_run=False, in_process=in_process)
        gateway = _gateway_counts()
        if as_json:
            print_json(
                {
                    "seeded": seeded.as_dict(),
                    "tiers": tiers_as_json(counts),
                    "daily_outreach": summary,
                    "gateway_accepted": gateway,
                }
            )
            return
        print_summary(summary)
        _print_epilogue(summary, gateway)

    @demo.command("seed")
    def demo_seed(
        accounts: int = typer.Option(10_000, "--accounts", min=1, help="Population size."),
        seed: int = typer.Option(42, "--seed", help="Random seed: same seed, same population."),
        as_of: datetime | None = as_of_option("Date the population is built around."),
        as_json: bool = JsonOption,
    ) -> None:
        """Build a reproducible synthetic population in CN and US (existing rows are kept)."""
        day = _day(as_of)
        result = _seed(accounts, seed, day, as_json)
        if as_json:
            print_json(result.as_dict())
        else:
            console.print(
                f"seeded {result.accounts:,} accounts ({result.skipped:,} already there), "
                f"{result.instalments:,} instalments, {result.payments:,} payments, "
                f"{result.promises:,} promises to pay, around {day}"
            )


def _print_epilogue(summary: dict[str, Any], gateway: dict[str, int]) -> None:
    waiting = summary["messages"]["by_status"].get("planned", 0)
    console.print(
        "mock gateways hold "
        + ", ".join(f"{count:,} {channel}" for channel, count in gateway.items())
        + " (each accepted once; see `dunning outbox list`)"
    )
    if waiting:
        console.print(
            f"{waiting:,} messages wait for their customer's contact window (local quiet hours "
            "or a holiday); `dunning run dispatch` sends them once it opens."
        )
    console.print("rerun `dunning demo` or `dunning run daily`: the same day sends nothing twice.")
