"""`dunning deploy`, `dunning scheduler`, `dunning runs ...` and `dunning backfill`: operations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from dunning.cli._common import STATE, JsonOption, console, err_console, print_json
from dunning.config import load_optional
from dunning.config.schedules import Schedules
from dunning.logs import configure_logging
from dunning.ops import deploy as deploying
from dunning.ops.backfill import BackfillFailed, backfill
from dunning.ops.history import get_run, list_runs
from dunning.project import Project
from dunning.services.daily import run_daily_outreach

InProcessOption = typer.Option(
    False, "--in-process", help="Run without Prefect (no flow run is recorded in Prefect)."
)
LogFormatOption = typer.Option(
    None, "--log-format", help="json or kv (default: $DUNNING_LOG_FORMAT, else json)."
)


def load_schedules(project: Project) -> Schedules:
    """config/schedules.yaml, or the defaults when the file is absent."""
    return load_optional(project.config_dir / "schedules.yaml", Schedules, project.root)


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts.items())


def register(app: typer.Typer) -> None:
    runs = typer.Typer(
        help="The run history: every flow execution, from our database.", no_args_is_help=True
    )
    app.add_typer(runs, name="runs")

    @app.command("deploy")
    def deploy(
        pool: str | None = typer.Option(
            None, "--pool", help="Process work pool (default: prefect.work_pool in schedules.yaml)."
        ),
        write_prefect_yaml: bool = typer.Option(
            False,
            "--write-prefect-yaml",
            help="Only write prefect.yaml (for `prefect deploy --all`) beside flows/; no server.",
        ),
        as_json: bool = JsonOption,
    ) -> None:
        """Register a Prefect deployment per scheduled flow on the server at PREFECT_API_URL."""

        configure_logging(level="WARNING")
        project = STATE.project()
        schedules = load_schedules(project)
        pool_name = pool or schedules.prefect.work_pool
        if write_prefect_yaml:
            path = deploying.write_prefect_yaml(
                project, schedules, pool_name, deploying.PREFECT_YAML
            )
            if as_json:
                print_json({"written": str(path)})
            else:
                console.print(f"wrote {path}")
            return
        results = deploying.deploy_flows(project, schedules, pool_name)
        if as_json:
            print_json({"pool": pool_name, "deployments": [r.as_dict() for r in results]})
        else:
            table = Table(title=f"deployments on work pool {pool_name!r}")
            for column in ("deployment", "status", "cron", "time zone", "note"):
                table.add_column(column)
            for r in results:
                table.add_row(r.deployment, r.status, r.cron, r.timezone, r.reason or "")
            console.print(table)
            console.print(f"start a worker: prefect worker start --pool {pool_name}")
        failed = [r for r in results if r.status == "failed"]
        if failed:
            raise deploying.DeployError(
                "; ".join(f"{r.deployment} failed: {r.reason}" for r in failed)
            )

    @app.command("scheduler")
    def scheduler(
        show: bool = typer.Option(
            False, "--show", help="Print the jobs and their next run times, then exit."
        ),
        log_format: str | None = LogFormatOption,
    ) -> None:
        """Run the flows on their schedules in this process (no Prefect) until SIGTERM/SIGINT."""
        # APScheduler loads only for `dunning scheduler`.
        from dunning.ops.scheduler import SingleBoxScheduler

        configure_logging(fmt=log_format)
        runtime = STATE.runtime()
        schedules = load_schedules(runtime.project)
        box = SingleBoxScheduler(runtime, schedules)
        if show:
            jobs = box.plan()
            table = Table(title="schedule (config/schedules.yaml)")
            for column in ("flow", "cron", "time zone", "next run (UTC)", "note"):
                table.add_column(column)
            for flow, entry in schedules.flows.items():
                planned = jobs.get(flow)
                when = ""
                if planned is not None:
                    fire = planned.trigger.get_next_fire_time(None, datetime.now(UTC))
                    when = f"{fire.astimezone(UTC):%Y-%m-%d %H:%M}" if fire else ""
                table.add_row(flow, entry.cron, entry.timezone, when, box.skipped.get(flow, ""))
            console.print(table)
            return
        err_console.print(
            "scheduler running (SIGTERM or Ctrl-C stops it after running flows finish)",
            highlight=False,
        )
        box.run_forever()

    @runs.command("list")
    def runs_list(
        flow: str | None = typer.Option(
            None, "--flow", help="daily-outreach, dispatch-outbox, ..."
        ),
        as_of: datetime | None = typer.Option(
            None, "--as-of", help="Only runs for this business date.", formats=["%Y-%m-%d"]
        ),
        status: str | None = typer.Option(
            None, "--status", help="running, completed, failed or abandoned"
        ),
        limit: int = typer.Option(20, "--limit", min=1, max=10_000),
        as_json: bool = JsonOption,
    ) -> None:
        """List runs, newest first: flow, as-of date, status, counts, duration."""

        runtime = STATE.runtime()
        with runtime.engine.connect() as connection:
            views = list_runs(
                connection,
                flow=flow,
                as_of=_day(as_of),
                status=status,
                limit=limit,
                liveness=runtime.runs.liveness,
            )
        if as_json:
            print_json([view.as_dict(summary=False) for view in views])
            return
        table = Table()
        for column in ("id", "flow", "as of", "status", "started (UTC)", "duration"):
            table.add_column(column, no_wrap=column in {"id", "flow", "as of", "duration"})
        table.add_column("counts")
        for view in views:
            status_text = view.status + (" (dry run)" if view.dry_run else "")
            table.add_row(
                str(view.id),
                view.flow,
                view.as_of.isoformat(),
                status_text,
                view.started_at.strftime("%m-%d %H:%M"),
                _duration(view.duration_seconds),
                _counts(view.counts) if view.status == "completed" else (view.error or "")[:80],
            )
        console.print(table)

    @runs.command("show")
    def runs_show(
        run_id: int = typer.Argument(..., help="Run id (see `dunning runs list`)."),
        as_json: bool = JsonOption,
    ) -> None:
        """Show one run: its status, times, error and whole summary."""

        runtime = STATE.runtime()
        with runtime.engine.connect() as connection:
            view = get_run(connection, run_id, runtime.runs.liveness)
        data = view.as_dict()
        if as_json:
            print_json(data)
            return
        for key in (
            "id",
            "flow",
            "as_of",
            "status",
            "dry_run",
            "started_at",
            "finished_at",
            "prefect_flow_run_id",
        ):
            console.print(f"[bold]{key}[/bold]: {data[key]}", highlight=False)
        console.print(f"[bold]duration[/bold]: {_duration(view.duration_seconds)}", highlight=False)
        if view.error:
            console.print(f"[bold]error[/bold]: {view.error}", highlight=False)
        if view.counts:
            console.print(f"[bold]counts[/bold]: {_counts(view.counts)}", highlight=False)
        if view.summary:
            # Prefect loads only when a flow is run from here (it takes a second to import).
            from flows._artifacts import summary_rows

            table = Table(title="summary")
            for column in ("section", "key", "value"):
                table.add_column(column)
            for row in summary_rows(view.summary):
                table.add_row(str(row["section"]), str(row["key"]), str(row["value"]))
            console.print(table)

    @app.command("backfill")
    def backfill_command(
        start: datetime = typer.Option(
            ..., "--from", help="First business date (YYYY-MM-DD).", formats=["%Y-%m-%d"]
        ),
        end: datetime = typer.Option(
            ..., "--to", help="Last business date, inclusive.", formats=["%Y-%m-%d"]
        ),
        force: bool = typer.Option(
            False, "--force", help="Also rerun dates already completed (still exactly-once)."
        ),
        in_process: bool = InProcessOption,
        as_json: bool = JsonOption,
    ) -> None:
        """Run the daily outreach for each date of a range, in order; skip completed dates."""

        configure_logging(level="WARNING")
        runtime = STATE.runtime()
        run_one = _daily_runner(runtime.project.root, in_process)
        report = backfill(runtime.engine, start.date(), end.date(), run_one, force=force)
        if as_json:
            print_json(report.as_dict())
        else:
            table = Table(title=f"backfill {report.start} .. {report.end}")
            for column in ("as of", "outcome", "run", "new messages", "error"):
                table.add_column(column)
            for d in report.dates:
                table.add_row(
                    d.as_of.isoformat(),
                    d.outcome,
                    "" if d.run_id is None else str(d.run_id),
                    "" if d.new_messages is None else f"{d.new_messages:,}",
                    d.error or "",
                )
            console.print(table)
        if not report.ok:
            stopped = next(d for d in report.dates if d.outcome == "failed")
            raise BackfillFailed(
                f"backfill stopped at {stopped.as_of}: {stopped.error}; later dates were not run "
                "(fix the cause, then run the same backfill again: it resumes there)"
            )


def _daily_runner(project_root: Path, in_process: bool) -> Any:
    if in_process:

        def run_here(as_of: date) -> dict[str, Any]:
            with STATE.outreach() as outreach:
                return run_daily_outreach(outreach, as_of)

        return run_here

    # Prefect loads only when a flow is run from here (it takes a second to import).
    from flows.daily_outreach import daily_outreach

    def run_flow(as_of: date) -> dict[str, Any]:
        result: dict[str, Any] = daily_outreach(as_of=as_of, project_dir=str(project_root))
        return result

    return run_flow
