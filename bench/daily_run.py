"""Benchmark: the daily outreach over N synthetic overdue accounts, stage by stage.

    .venv/bin/python bench/daily_run.py --accounts 100000 [--database-url URL] [--prefect]

Seeds a population in a fresh database (not timed as part of the run), runs the daily outreach
for one date, and prints seconds and throughput per stage (select, decide, render, outbox
write, dispatch, record), the end-to-end time, and the peak resident memory of the process.
The overdue accounts are about 85% of the population: pass --overdue to size by that instead.
Results go in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def without_letters(strategy: Any) -> Any:
    from dunning.types import Channel

    tiers = [
        tier.model_copy(
            update={"cadence": [s for s in tier.cadence if s.channel != Channel.LETTER]}
        )
        for tier in strategy.tiers
    ]
    fallback = {k: v for k, v in strategy.channel_fallback.items() if v != Channel.LETTER}
    return strategy.model_copy(update={"tiers": tiers, "channel_fallback": fallback})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000, help="population size")
    parser.add_argument(
        "--overdue",
        type=int,
        default=None,
        help="size the population so about this many accounts are overdue",
    )
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--as-of", default="2026-11-23")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument(
        "--prefect",
        action="store_true",
        help="run through the Prefect flow (a temporary server if no API URL)",
    )
    parser.add_argument(
        "--without-letters",
        action="store_true",
        help="take the letter steps (and fallbacks to letters) out of the strategy: the figures "
        "of everything but PDF printing, which is CPU-bound (docs/performance.md)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes for the batches (config/runners.yaml `processes`; default: as "
        "configured there, 1 without it)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a cProfile of the run (this process only) to FILE, for pstats or snakeviz",
    )
    args = parser.parse_args()
    accounts = args.accounts if args.overdue is None else round(args.overdue / 0.85)

    workdir = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    os.environ["DUNNING_PROJECT_DIR"] = str(REPO)
    os.environ["DUNNING_STATE_DIR"] = str(workdir)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if args.database_url:
        os.environ["DUNNING_DATABASE_URL"] = args.database_url
    else:
        os.environ["DUNNING_DATABASE_URL"] = f"sqlite:///{workdir / 'bench.db'}"

    from dunning.bootstrap import bootstrap, outreach, outreach_in_worker
    from dunning.demo.population import seed_population
    from dunning.project import Project
    from dunning.services.daily import local_executor, local_processes, run_daily_outreach

    as_of = date.fromisoformat(args.as_of)
    project = Project.find()
    strategy = project.strategy
    if args.batch_size:
        strategy = strategy.model_copy(update={"batch_size": args.batch_size})
    if args.without_letters:
        strategy = without_letters(strategy)
    runtime = bootstrap(project=project.with_config(strategy=strategy))
    started = time.perf_counter()
    with runtime.unit_of_work() as connection:
        seeded = seed_population(connection, accounts=accounts, seed=args.seed, as_of=as_of)
    seed_seconds = time.perf_counter() - started
    if runtime.engine.dialect.name == "postgresql":
        # As after any bulk load: the run must not be planned on statistics from before it.
        # (In service, autovacuum analyzes the tables within minutes of a large import.)
        with runtime.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    rss_after_seed = peak_rss_mib()

    profiler = None
    if args.profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    processes = args.processes  # the flow takes config/runners.yaml's
    if args.prefect:
        from flows.daily_outreach import daily_outreach

        summary = daily_outreach(as_of=as_of, project_dir=str(REPO))
    else:
        parts = outreach(runtime)
        processes = args.processes if args.processes is not None else local_processes(parts)
        # The workers' start (a second or two each) is part of the run's time.
        with local_executor(parts, outreach_in_worker, processes) as executor:
            summary = run_daily_outreach(parts, as_of, executor=executor)
    total = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    from dunning.services.dispatch.printing import shutdown_printers

    shutdown_printers()  # so the printer and worker processes' peak memory is counted below

    overdue = summary["accounts"]["overdue"]
    messages = summary["this_run"]["new_messages"]
    timings = summary["timings_seconds"]
    result = {
        "population": seeded.accounts,
        "overdue_accounts": overdue,
        "new_messages": messages,
        "sent": summary["this_run"]["dispatch"]["sent"],
        "letters": summary["messages"]["by_channel"].get("letter", 0),
        "batches": summary["batches"],
        "seed_seconds": round(seed_seconds, 2),
        "run_seconds": round(total, 2),
        "accounts_per_second": round(overdue / total),
        "stages": timings,
        "wall": summary["wall_seconds"],
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_after_seed_mib": round(rss_after_seed, 1),
        "processes": processes,
        "peak_rss_children_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        "backend": runtime.engine.url.get_backend_name(),
        "prefect": args.prefect,
        "without_letters": args.without_letters,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"population {seeded.accounts:,} (seeded in {seed_seconds:.1f} s), "
        f"{overdue:,} overdue accounts, {messages:,} messages, {result['letters']:,} letters, "
        f"{summary['batches']} batches, backend {result['backend']}, "
        f"{processes} worker process(es)"
    )
    print(f"{'stage':<16}{'seconds':>10}{'per second':>14}")
    per_stage_count = {
        "select": overdue,
        "decide": overdue,
        "render": messages,
        "print_letters": result["letters"],
        "print_wait": result["letters"],
        "outbox_write": messages,
        "dispatch": result["sent"],
        "record": result["sent"],
        "actions": summary["this_run"]["dispatch"]["actions"].get("done", 0),
    }
    for stage, seconds in timings.items():
        count = per_stage_count.get(stage, 0)
        rate = f"{count / seconds:,.0f}" if seconds else "-"
        print(f"{stage:<16}{seconds:>10.2f}{rate:>14}")
    print(f"{'end to end':<16}{total:>10.2f}{overdue / total:>14,.0f}  accounts/s")
    print("the run's clock: " + ", ".join(f"{k} {v:.1f} s" for k, v in result["wall"].items()))
    print(
        f"peak RSS {result['peak_rss_mib']:.0f} MiB "
        f"(the largest worker or letter printer process: {result['peak_rss_children_mib']:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
