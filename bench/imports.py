"""Benchmark: importing N customers, accounts and their instalments from CSV files.

    .venv/bin/python bench/imports.py --accounts 100000

Writes CSV files for a synthetic book (one customer and one account per number, six monthly
instalments each), imports them into a fresh database as `dunning import` does, and prints the
seconds per file; then imports the accounts file again (nothing changes) and prints that too.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_files(directory: Path, accounts: int) -> dict[str, Path]:
    rng = random.Random(7)
    paths = {kind: directory / f"{kind}.csv" for kind in ("customers", "accounts", "instalments")}
    with paths["customers"].open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "external_id",
                "name",
                "locale",
                "time_zone",
                "phone",
                "country",
                "sms_consent",
                "push_consent",
                "address_line1",
                "city",
                "region",
                "postal_code",
            ]
        )
        for n in range(accounts):
            out.writerow(
                [
                    f"C{n}",
                    f"Customer {n}",
                    "en-US",
                    "America/Chicago",
                    f"+1312{rng.randint(200, 999)}{rng.randint(0, 9999):04d}",
                    "US",
                    "true",
                    "true",
                    f"{n} Main St",
                    "Chicago",
                    "IL",
                    "60601",
                ]
            )
    with paths["accounts"].open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            [
                "external_id",
                "customer_external_id",
                "product",
                "currency",
                "jurisdiction",
                "principal",
                "interest",
                "fees",
                "penalty",
                "opened_on",
            ]
        )
        for n in range(accounts):
            out.writerow(
                [
                    f"A{n}",
                    f"C{n}",
                    "personal-loan",
                    "USD",
                    "US",
                    f"{rng.randint(500, 20000)}.00",
                    "12.50",
                    "25.00",
                    "0",
                    "2026-03-01",
                ]
            )
    with paths["instalments"].open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["account_external_id", "seq", "due_on", "amount_due", "amount_paid", "paid_on"]
        )
        for n in range(accounts):
            for seq in range(1, 7):
                paid = seq <= 3
                out.writerow(
                    [
                        f"A{n}",
                        seq,
                        f"2026-{3 + seq:02d}-01",
                        "350.00",
                        "350.00" if paid else "0",
                        f"2026-{3 + seq:02d}-01" if paid else "",
                    ]
                )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dunning-imports-"))
    os.environ["DUNNING_PROJECT_DIR"] = str(REPO)
    os.environ["DUNNING_STATE_DIR"] = str(workdir)
    os.environ.setdefault("DUNNING_DATABASE_URL", f"sqlite:///{workdir / 'imports.db'}")

    from dunning.bootstrap import bootstrap
    from dunning.services.imports.files import import_file

    paths = write_files(workdir, args.accounts)
    runtime = bootstrap()
    total = 0.0
    for kind, path in paths.items():
        started = time.perf_counter()
        with runtime.unit_of_work() as connection:
            result = import_file(connection, kind, path)
        seconds = time.perf_counter() - started
        total += seconds
        print(
            f"{kind:<12} {result.rows:>9,} rows {seconds:>7.1f} s "
            f"({result.rows / seconds:,.0f} rows/s)"
        )
    print(f"{'all':<12} {'':>14} {total:>7.1f} s")
    started = time.perf_counter()
    with runtime.unit_of_work() as connection:
        again = import_file(connection, "accounts", paths["accounts"])
    print(f"accounts again: {again.unchanged:,} unchanged in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
