"""`dunning demo`: seed a synthetic population, run the day, and show what went out."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

import typer

from dunning.cli._common import STATE, JsonOption, as_of_option, console, print_json, progress_bar
from dunning.cli._sandbox import sandbox_available, sandbox_served
from dunning.cli.commands_data import print_tiers, tiers_as_json
from dunning.cli.commands_run import InProcessOption, print_summary, run_daily
from dunning.demo import population as demo_service
from dunning.demo import story as demo_story
from dunning.legal.cases import list_cases
from dunning.legal.packets import build_case_packet
from dunning.legal.service import run_legal_escalation
from dunning.legal.verify import verify_packet
from dunning.services.daily import poll_receipts
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
    """What the mock gateways hold, by channel, and by vendor API for SMS (sms:twilio, ...)."""
    # The demo's mock gateways are the sandbox's: an optional part, imported only when counted.
    from sandbox import GatewayLedger, ledger_path

    project = STATE.project()
    book = GatewayLedger(ledger_path(project.channels.mock_gateway, project.state_dir))
    counts = {channel: book.count(channel) for channel in ("sms", "push", "letter")}
    apis = Counter(row.api for row in book.rows("sms"))
    if set(apis) - {"mock"}:
        counts.update({f"sms:{api}": n for api, n in sorted(apis.items())})
    return counts


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
        gateways: str = typer.Option(
            "http",
            "--gateways",
            help="http: serve the sandbox's mock gateways on a loopback port and send through "
            "the vendors' wire APIs (config/channels.sandbox.yaml: CN SMS via Aliyun SMS, US SMS "
            "via Twilio); in-process: the program's own config/channels.yaml.",
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Seed the demo population (if absent) and run its month: the history day 30 days
        back, a kept promise, a cure and a payment plan, the demo day's daily outreach, receipts,
        legal escalation and a verified case packet.

        Safe to run again: the population is kept and the rerun sends nothing twice.
        """
        if ctx.invoked_subcommand is not None:
            return
        if gateways not in ("http", "in-process"):
            raise typer.BadParameter("use http or in-process", param_hint="--gateways")
        if gateways == "http" and sandbox_available(STATE.project()):
            with sandbox_served() as served:
                if not as_json:
                    console.print(
                        f"sandbox gateways on {served.url} ({served.channels_file})",
                        highlight=False,
                    )
                _demo(accounts, seed, as_of, in_process, as_json)
        else:
            _demo(accounts, seed, as_of, in_process, as_json)

    def _demo(
        accounts: int, seed: int, as_of: datetime | None, in_process: bool, as_json: bool
    ) -> None:
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
        story = _story_before(day, as_json)
        summary = run_daily(day, dry_run=False, in_process=in_process)
        after = _story_after(day)
        gateway = _gateway_counts()
        if as_json:
            print_json(
                {
                    "seeded": seeded.as_dict(),
                    "tiers": tiers_as_json(counts),
                    "history": story["history"],
                    "events": story["events"],
                    "daily_outreach": summary,
                    "receipts": after["receipts"],
                    "actions": after["actions"],
                    "legal": after["legal"],
                    "packet": after["packet"],
                    "gateway_accepted": gateway,
                }
            )
            return
        print_summary(summary)
        _print_story(summary, story, after)
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


def _story_before(day: date, as_json: bool) -> dict[str, Any]:
    """History (the day 30 days back) and the events between runs; see services.demo_story."""

    with STATE.outreach() as outreach:
        if not as_json:
            console.print(
                f"history: the daily outreach of {demo_story.history_day(day)} "
                "(final demands, freezes, placements, registry reports) ..."
            )
        history = demo_story.run_history(outreach, day)
        events = demo_story.stage_events(outreach, day)
    return {"history": history, "events": events}


def _story_after(day: date) -> dict[str, Any]:
    """Receipts, the actions' state, the legal run, and one case packet built and verified."""

    runtime = STATE.runtime()
    with STATE.outreach() as outreach:
        receipts = poll_receipts(outreach).as_dict()
        legal = run_legal_escalation(runtime, day)
        actions = demo_story.action_counts(outreach)
    packet: dict[str, Any] | None = None

    with runtime.engine.connect() as connection:
        cases = list_cases(connection, limit=1)
    if cases:
        result = build_case_packet(runtime, cases[0]["id"], runtime.project.state_dir / "packets")
        check = verify_packet(result.path)
        packet = {**result.as_dict(), "verified": check.ok}
    return {"receipts": receipts, "legal": legal, "actions": actions, "packet": packet}


def _print_story(summary: dict[str, Any], story: dict[str, Any], after: dict[str, Any]) -> None:
    events = story["events"]
    if "plan" in events:
        console.print(
            f"between the runs: payment plan {events['plan']} agreed (its confirmation "
            "letter went with this run; `dunning plans show` gives its terms)"
        )
    if "cured_account" in events:
        console.print(
            "between the runs: a frozen account paid everything overdue: it left "
            "collections, its waiting messages were cancelled, its line restored"
        )
    lifecycle = summary.get("lifecycle", {})
    promises = lifecycle.get("promises", {})
    plans = lifecycle.get("plans", {})
    console.print(
        f"promises to pay: {promises.get('kept', 0)} kept, {promises.get('broken', 0)} broken "
        f"today; payment plans completed {plans.get('completed', 0)}, "
        f"broken {plans.get('broken', 0)}"
    )
    actions = after["actions"]
    if actions:
        console.print(
            "actions: "
            + "; ".join(
                f"{kind} " + ", ".join(f"{n} {status}" for status, n in sorted(states.items()))
                for kind, states in sorted(actions.items())
            )
        )
    receipts = after["receipts"]
    console.print(f"receipts: {receipts['recorded']:,} recorded {receipts['by_status']}")
    legal = after["legal"]
    outcome = legal["accounts"]["by_outcome"]
    console.print(
        f"legal escalation: {legal['accounts']['considered']:,} accounts considered, "
        f"{outcome['opened']} cases opened, {outcome['refused']:,} refused "
        "(`dunning cases reviews` gives each reason)"
    )
    packet = after["packet"]
    if packet:
        state = "verifies" if packet["verified"] else "DOES NOT VERIFY"
        console.print(f"case packet {packet['path']} ({len(packet['files'])} files) {state}")
    registry = STATE.project().state_dir / "registry"
    files = sorted(registry.glob("delinquency-*")) if registry.exists() else []
    if files:
        console.print(f"credit registry files: {', '.join(str(f) for f in files)}")


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
