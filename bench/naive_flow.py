"""Benchmark: a naive daily flow with one Prefect task per account, for comparison.

    .venv/bin/python bench/naive_flow.py --overdue 1000

Seeds a population with about N overdue accounts, then runs the same engine functions as the
daily outreach, but as one Prefect task per account (plan, then dispatch, for that account
alone) instead of one per batch of thousands. Prints its time and the time scaled to one
million accounts; docs/performance.md compares that with the real flow.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overdue", type=int, default=1000)
    parser.add_argument("--as-of", default="2026-11-23")
    parser.add_argument(
        "--without-letters",
        action="store_true",
        help="take the letter steps out of the strategy, as bench/daily_run.py does",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dunning-naive-"))
    os.environ["DUNNING_PROJECT_DIR"] = str(REPO)
    os.environ["DUNNING_STATE_DIR"] = str(workdir)
    os.environ["DUNNING_DATABASE_URL"] = f"sqlite:///{workdir / 'naive.db'}"
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from prefect import flow, task

    from bench.daily_run import without_letters
    from dunning.bootstrap import bootstrap, outreach
    from dunning.demo.population import seed_population
    from dunning.project import Project
    from dunning.services.daily import DAILY_OUTREACH, dispatch_batch
    from dunning.services.delinquency import delinquent_accounts
    from dunning.services.outreach import plan_batch

    as_of = date.fromisoformat(args.as_of)
    project = Project.find()
    if args.without_letters:
        project = project.with_config(strategy=without_letters(project.strategy))
    runtime = bootstrap(project=project)
    with runtime.unit_of_work() as connection:
        seed_population(connection, accounts=round(args.overdue / 0.85), seed=42, as_of=as_of)
    with runtime.runs.run(DAILY_OUTREACH, as_of) as run:
        run_id = run.id  # the naive flow's messages belong to a run, as the real flow's do
    with runtime.engine.connect() as connection:
        query = delinquent_accounts(as_of, runtime.project.strategy).limit(args.overdue)
        accounts = [row.id for row in connection.execute(query)]
    parts = outreach(runtime)

    @task
    def one_account(account_id: int) -> int:
        report = plan_batch(parts.planner, run_id, as_of, account_id, account_id)
        dispatch_batch(parts.dispatcher, as_of, account_id, account_id)
        return report.planned_new

    @flow(name="naive-daily-outreach")
    def naive() -> int:
        return sum(one_account(account_id) for account_id in accounts)

    @flow(name="warm-up")
    def warm_up() -> int:
        return 0

    warm_up()  # the temporary Prefect server starts on the first flow call: not measured
    started = time.perf_counter()
    messages = naive()
    seconds = time.perf_counter() - started
    result = {
        "accounts": len(accounts),
        "tasks": len(accounts),
        "messages": messages,
        "seconds": round(seconds, 2),
        "per_account_ms": round(seconds / len(accounts) * 1000, 2),
        "scaled_to_1m_seconds": round(seconds / len(accounts) * 1_000_000),
        "without_letters": args.without_letters,
    }
    parts.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"naive flow: {len(accounts):,} accounts as {len(accounts):,} Prefect tasks in "
            f"{seconds:.1f} s ({result['per_account_ms']} ms per account); scaled to 1M "
            f"accounts: {result['scaled_to_1m_seconds']:,} s"
        )


if __name__ == "__main__":
    main()
