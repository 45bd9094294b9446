"""CSV imports: validation of every row, atomic rejection, idempotent upserts."""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from dunning.bootstrap import Runtime
from dunning.db.models import Account, Customer, Instalment, Payment
from dunning.db.sql import bulk_insert
from dunning.errors import ImportRejected
from dunning.services.delinquency import delinquent_accounts
from dunning.services.imports import files as imports
from dunning.services.imports.files import ImportResult, import_file
from tests.helpers import invoke, write_csv

CUSTOMER_HEADER = [
    "external_id",
    "name",
    "locale",
    "time_zone",
    "phone",
    "country",
    "sms_consent",
    "sms_opted_out",
    "dispute_open",
]
ACCOUNT_HEADER = [
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
INSTALMENT_HEADER = ["account_external_id", "seq", "due_on", "amount_due", "amount_paid", "paid_on"]
PAYMENT_HEADER = ["external_id", "account_external_id", "amount", "paid_on", "method"]


def customer_row(n: int, **changes: str) -> list[str]:
    row = {
        "external_id": f"C{n}",
        "name": f"Name {n}",
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "phone": "+13125551234",
        "country": "US",
        "sms_consent": "true",
        "sms_opted_out": "false",
        "dispute_open": "false",
    }
    row.update(changes)
    return [row[h] for h in CUSTOMER_HEADER]


def account_row(n: int, **changes: str) -> list[str]:
    row = {
        "external_id": f"A{n}",
        "customer_external_id": f"C{n}",
        "product": "loan",
        "currency": "USD",
        "jurisdiction": "US",
        "principal": "1000.00",
        "interest": "12.50",
        "fees": "25",
        "penalty": "0",
        "opened_on": "2026-01-15",
    }
    row.update(changes)
    return [row[h] for h in ACCOUNT_HEADER]


def load(runtime: Runtime, kind: str, path: Path) -> ImportResult:
    with runtime.unit_of_work() as connection:
        return import_file(connection, kind, path)


def count(runtime: Runtime, model: type) -> int:
    with runtime.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(model.__table__)).scalar_one())


@pytest.fixture
def loaded(runtime: Runtime, tmp_path: Path) -> Runtime:
    load(
        runtime,
        "customers",
        write_csv(tmp_path / "c.csv", CUSTOMER_HEADER, [customer_row(n) for n in range(1, 4)]),
    )
    load(
        runtime,
        "accounts",
        write_csv(tmp_path / "a.csv", ACCOUNT_HEADER, [account_row(n) for n in range(1, 4)]),
    )
    load(
        runtime,
        "instalments",
        write_csv(
            tmp_path / "i.csv",
            INSTALMENT_HEADER,
            [
                ["A1", "1", "2026-02-15", "350.00", "350.00", "2026-02-14"],
                ["A1", "2", "2026-03-15", "350.00", "0", ""],
                ["A1", "3", "2026-04-15", "350.00", "0", ""],
                ["A2", "1", "2026-02-15", "350.00", "100", ""],
            ],
        ),
    )
    return runtime


def test_good_files_import_and_compute_dpd(loaded: Runtime) -> None:
    assert count(loaded, Customer) == 3
    assert count(loaded, Account) == 3
    assert count(loaded, Instalment) == 4
    with loaded.engine.connect() as c:
        account = c.execute(
            select(Account.__table__).where(  # type: ignore[attr-defined]
                Account.__table__.c.external_id == "A1"
            )
        ).one()  # type: ignore[attr-defined]
        rows = {
            r.id: r
            for r in c.execute(delinquent_accounts(date(2026, 4, 1), loaded.project.strategy))
        }
    assert account.principal_minor == 100000 and account.interest_minor == 1250
    assert account.fees_minor == 2500
    assert rows[account.id].dpd == 17  # oldest unpaid: March 15
    assert rows[account.id].overdue_minor == 35000


def test_reimport_changes_nothing(loaded: Runtime, tmp_path: Path) -> None:
    with loaded.engine.connect() as c:
        before = c.execute(select(Customer.__table__)).all()  # type: ignore[attr-defined]
    result = load(loaded, "customers", tmp_path / "c.csv")
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 3)
    result = load(loaded, "instalments", tmp_path / "i.csv")
    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 4)
    with loaded.engine.connect() as c:
        assert c.execute(select(Customer.__table__)).all() == before  # type: ignore[attr-defined]


def test_changed_row_is_updated(loaded: Runtime, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "c2.csv",
        CUSTOMER_HEADER,
        [customer_row(1, dispute_open="true", sms_opted_out="true"), customer_row(2)],
    )
    result = load(loaded, "customers", path)
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    with loaded.engine.connect() as c:
        row = c.execute(
            select(Customer.__table__).where(  # type: ignore[attr-defined]
                Customer.__table__.c.external_id == "C1"
            )
        ).one()  # type: ignore[attr-defined]
    assert row.dispute_open is True and row.sms_opted_out_at is not None
    # The opt-out time is kept on re-import, so the same file is unchanged the second time.
    assert load(loaded, "customers", path).unchanged == 2


@pytest.mark.parametrize(
    ("kind", "row", "column", "reason"),
    [
        ("customers", customer_row(9, phone="+1555"), "phone", "not a valid number"),
        ("customers", customer_row(9, phone="13125551234"), "phone", "E.164"),
        ("customers", customer_row(9, time_zone="Mars/Olympus"), "time_zone", "not an IANA"),
        ("customers", customer_row(9, locale="xx-QQ"), "locale", "not a known locale"),
        ("customers", customer_row(9, name=""), "name", "is required"),
        ("customers", customer_row(9, sms_consent="maybe"), "sms_consent", "not a boolean"),
        ("accounts", account_row(1, currency="XYZ"), "currency", "ISO 4217"),
        ("accounts", account_row(1, principal="-5"), "principal", "negative"),
        ("accounts", account_row(1, principal="1.001"), "principal", "decimal places"),
        ("accounts", account_row(1, opened_on="2026-13-01"), "opened_on", "not a date"),
        (
            "accounts",
            account_row(1, customer_external_id="NOPE"),
            "customer_external_id",
            "unknown customer",
        ),
        (
            "instalments",
            ["NOPE", "1", "2026-01-01", "1", "0", ""],
            "account_external_id",
            "unknown account",
        ),
        ("instalments", ["A1", "0", "2026-01-01", "1", "0", ""], "seq", "1 or more"),
        # Values the database's columns cannot hold are refused here, not by the database
        # (whose error would repeat them).
        ("instalments", ["A1", "13125551234", "2026-01-01", "1", "0", ""], "seq", "at most"),
        ("accounts", account_row(1, principal="1e30"), "principal", "too large"),
        ("instalments", ["A1", "1", "2026-01-01", "10", "10", ""], "paid_on", "is required"),
        (
            "instalments",
            ["A1", "1", "2026-01-01", "10", "11", "2026-01-01"],
            "amount_paid",
            "more than amount_due",
        ),
        ("payments", ["P1", "A1", "-3", "2026-01-01", ""], "amount", "negative"),
        ("payments", ["P1", "A1", "0", "2026-01-01", ""], "amount", "more than zero"),
        ("payments", ["P1", "A9", "3", "2026-01-01", ""], "account_external_id", "unknown account"),
    ],
)
def test_each_bad_row_rejects_the_file(
    loaded: Runtime, tmp_path: Path, kind: str, row: list[str], column: str, reason: str
) -> None:
    header = {
        "customers": CUSTOMER_HEADER,
        "accounts": ACCOUNT_HEADER,
        "instalments": INSTALMENT_HEADER,
        "payments": PAYMENT_HEADER,
    }[kind]
    path = write_csv(tmp_path / "bad.csv", header, [row])
    with pytest.raises(ImportRejected) as caught:
        load(loaded, kind, path)
    problem = caught.value.problems[0]
    assert (problem.row, problem.column) == (2, column)
    assert reason in problem.reason
    assert "bad.csv" in str(caught.value) and "row 2" in str(caught.value)
    assert "555" not in str(caught.value)  # the phone number is never echoed


def test_duplicate_keys_and_header_problems(loaded: Runtime, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dup.csv", CUSTOMER_HEADER, [customer_row(7), customer_row(7)])
    with pytest.raises(
        ImportRejected, match="row 3: external_id: duplicate key, first seen on row 2"
    ):
        load(loaded, "customers", path)
    path = write_csv(tmp_path / "hdr.csv", ["external_id", "nmae"], [["C1", "x"]])
    with pytest.raises(ImportRejected) as caught:
        load(loaded, "customers", path)
    reasons = {(p.column, p.reason) for p in caught.value.problems}
    assert ("nmae", "unknown column (did you mean name?)") in reasons
    assert ("name", "required column is missing") in reasons
    # A header cell that is not shaped like a column name is named by its position.
    path = write_csv(tmp_path / "hdr2.csv", ["external_id", "Name", "locale"], [["C1", "x", "y"]])
    with pytest.raises(ImportRejected) as caught:
        load(loaded, "customers", path)
    assert ("column 2", "unknown column (did you mean name?)") in {
        (p.column, p.reason) for p in caught.value.problems
    }


def test_thousand_rows_with_one_bad_row_change_nothing(runtime: Runtime, tmp_path: Path) -> None:
    rows = [customer_row(n) for n in range(1, 1001)]
    rows[636] = customer_row(637, time_zone="Nowhere/Land")
    path = write_csv(tmp_path / "big.csv", CUSTOMER_HEADER, rows)
    with pytest.raises(ImportRejected) as caught:
        load(runtime, "customers", path)
    assert [(p.row, p.column) for p in caught.value.problems] == [(638, "time_zone")]
    assert count(runtime, Customer) == 0


def test_payments_allocate_oldest_first_and_reimport_is_a_no_op(
    loaded: Runtime, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "p.csv",
        PAYMENT_HEADER,
        [
            ["P1", "A1", "400.00", "2026-04-20", "card"],
            ["P2", "A1", "300.00", "2026-04-21", "card"],
        ],
    )
    assert load(loaded, "payments", path).inserted == 2
    with loaded.engine.connect() as c:
        lines = c.execute(
            select(Instalment.__table__).order_by(  # type: ignore[attr-defined]
                Instalment.__table__.c.id
            )
        ).all()  # type: ignore[attr-defined]
        account = c.execute(
            select(Account.__table__).where(  # type: ignore[attr-defined]
                Account.__table__.c.external_id == "A1"
            )
        ).one()  # type: ignore[attr-defined]
    assert [(r.amount_paid_minor, r.paid_on) for r in lines[:3]] == [
        (35000, date(2026, 2, 14)),
        (35000, date(2026, 4, 20)),
        (35000, date(2026, 4, 21)),
    ]
    # 700.00 paid: fees 25 and interest 12.50 first, then principal.
    assert (account.fees_minor, account.interest_minor, account.principal_minor) == (0, 0, 33750)
    again = load(loaded, "payments", path)
    assert (again.inserted, again.unchanged) == (0, 2)
    assert count(loaded, Payment) == 2
    changed = write_csv(
        tmp_path / "p2.csv", PAYMENT_HEADER, [["P1", "A1", "401.00", "2026-04-20", "card"]]
    )
    with pytest.raises(ImportRejected, match="payments are immutable"):
        load(loaded, "payments", changed)


def test_bulk_insert_writes_what_an_insert_writes(runtime: Runtime) -> None:
    """COPY on PostgreSQL: the columns' types process the values and the columns left out get
    their defaults, exactly as an INSERT of the same rows does."""
    table = Customer.__table__  # type: ignore[attr-defined]
    when = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)

    def rows(prefix: str) -> list[dict[str, object]]:
        return [
            {"external_id": f"{prefix}1", "name": "Ann Lee", "locale": "en-US"},
            {"external_id": f"{prefix}2", "name": "王伟", "locale": "zh-CN"},
        ]

    with runtime.unit_of_work() as c:
        bulk_insert(c, table, [{**row, "sms_opted_out_at": when} for row in rows("B")])
        c.execute(table.insert(), [{**row, "sms_opted_out_at": when} for row in rows("I")])
    varying = {"id", "external_id", "created_at", "updated_at"}
    with runtime.engine.connect() as c:
        written = [
            {k: v for k, v in row._mapping.items() if k not in varying}
            for row in c.execute(select(table).order_by(table.c.external_id))
        ]
        stamps = c.execute(select(table.c.created_at, table.c.updated_at)).all()
    assert written[:2] == written[2:]
    assert written[0]["letter_consent"] is True and written[0]["sms_consent"] is False
    assert written[0]["sms_opted_out_at"] == when
    assert all(created is not None and updated is not None for created, updated in stamps)


def test_a_large_import_refreshes_the_statistics_on_postgresql(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table just loaded looks empty to PostgreSQL's planner until it is analyzed."""
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("planner statistics are PostgreSQL's")
    monkeypatch.setattr(imports, "ANALYZE_AFTER", 5)
    path = write_csv(tmp_path / "c.csv", CUSTOMER_HEADER, [customer_row(n) for n in range(7)])
    load(runtime, "customers", path)
    with runtime.engine.connect() as c:
        estimate = c.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE relname = 'customer'"
        ).scalar_one()
    assert estimate == 7


# Personal data in every column ----------------------------------------------------------------

PERSONAL = {
    "phone": "+13122863459",
    "name": "Barnaby Quillfeather",
    "address": "17 Larkspur Lane, Springfield",
    "email": "barnaby.quill@example.org",
    "chinese name": "欧阳秀英",
}
"""What a shifted or mislabelled file puts in columns that do not expect it."""


def _fragments(value: str) -> list[str]:
    """The value and the parts of it that would still identify the person if shown."""
    if value.startswith("+"):
        return [value, value[1:], value[1:-4]]  # a masked number keeps only its last 4 digits
    words = [w.strip(",") for w in value.replace("@", " ").split()]
    return [value, *(w for w in words if len(w) >= 4 and not w.isdigit())] + (
        [value[:2], value[2:]] if not value.isascii() else []
    )


VALID = {
    "customers": {
        "external_id": "C9",
        "name": "Ann Lee",
        "locale": "en-US",
        "time_zone": "America/Chicago",
        "phone": "+13125550142",
        "push_token": "tok-1",
        "email": "a@example.com",
        "address_line1": "1 Main St",
        "address_line2": "",
        "city": "Chicago",
        "region": "IL",
        "postal_code": "60601",
        "country": "US",
        **{f"{c}_consent": "true" for c in imports.CONSENT_CHANNELS},
        **{f"{c}_opted_out": "false" for c in imports.CONSENT_CHANNELS},
        "deceased": "false",
        "bankruptcy": "false",
        "attorney_on_file": "false",
        "cease_communication": "false",
        "dispute_open": "false",
        "hardship_hold": "false",
    },
    "accounts": {
        "external_id": "A9",
        "customer_external_id": "C1",
        "product": "loan",
        "currency": "USD",
        "jurisdiction": "US",
        "principal": "100.00",
        "interest": "0",
        "fees": "0",
        "penalty": "0",
        "credit_limit": "500",
        "status": "open",
        "agreement_ref": "AGR-9",
        "opened_on": "2026-01-15",
    },
    "instalments": {
        "account_external_id": "A1",
        "seq": "9",
        "due_on": "2026-09-15",
        "amount_due": "10.00",
        "amount_paid": "0",
        "paid_on": "",
    },
    "payments": {
        "external_id": "P9",
        "account_external_id": "A1",
        "amount": "1.00",
        "paid_on": "2026-04-20",
        "method": "card",
    },
}


def test_valid_rows_cover_every_column() -> None:
    assert {kind: list(row) for kind, row in VALID.items()} == {
        kind: [c.name for c in columns] for kind, columns in imports.SPECS.items()
    }


@pytest.mark.parametrize("kind", imports.KINDS)
def test_no_import_error_repeats_personal_data(
    kind: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    runtime: Runtime,
    tmp_path: Path,
) -> None:
    """A phone number, a name, an address and an e-mail address in each column of each import
    kind, one at a time, all at once, and in the header row of a file that lost its header: no
    error, no output and no log line shows any of them."""
    monkeypatch.setenv("DUNNING_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)
    for setup, header, rows in (
        ("customers", CUSTOMER_HEADER, [customer_row(1)]),
        ("accounts", ACCOUNT_HEADER, [account_row(1)]),
    ):
        path = write_csv(tmp_path / f"{setup}.csv", header, rows)
        assert invoke(capsys, "import", setup, str(path)).code == 0
    columns = list(VALID[kind])
    files: list[tuple[list[str], list[list[str]]]] = []
    for value in PERSONAL.values():
        for column in columns:
            row = dict(VALID[kind])
            row[column] = value
            files.append((columns, [list(row.values())]))
        files.append((columns, [[value] * len(columns)]))
        files.append(([value, *columns[1:]], [list(VALID[kind].values())]))
        files.append(([value] * len(columns), [list(VALID[kind].values())]))
    shifted = list(VALID[kind].values())
    files.append((columns, [[*shifted[1:], PERSONAL["phone"]], [PERSONAL["name"], *shifted[:-1]]]))
    rejected = 0
    for number, (header, rows) in enumerate(files):
        path = write_csv(tmp_path / f"{kind}-{number}.csv", header, rows)
        caplog.clear()
        result = invoke(capsys, "import", kind, str(path))
        rejected += result.code != 0
        shown = result.out + result.err + caplog.text
        for value in PERSONAL.values():
            for fragment in _fragments(value):
                assert fragment not in shown, (header, rows, shown)
    assert rejected > len(files) / 2  # most of them are refused, with errors to check


def test_an_email_longer_than_its_column_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    row = {**VALID["customers"], "email": f"{'a' * 250}@example.com"}
    path = write_csv(tmp_path / "c.csv", list(row), [list(row.values())])
    with pytest.raises(ImportRejected) as caught:
        load(runtime, "customers", path)
    assert [(p.row, p.column, p.reason) for p in caught.value.problems] == [
        (2, "email", "is longer than 254 characters")
    ]


# Control characters ---------------------------------------------------------------------------

CONTROLS = ["\x00", "\x1b[2J", "\t", "\r\n", "\x7f", "\x85", "\u2028", "\u202e"]
"""NUL, an ANSI escape, tab, a line break inside a quoted cell, DEL, a C1 control, the line
separator and a right-to-left override."""
SHOWN_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What must never reach the terminal (tab and the line end of the output itself aside)."""


def _tables(runtime: Runtime) -> dict[str, list[Any]]:
    with runtime.engine.connect() as c:
        return {
            model.__tablename__: c.execute(
                select(model.__table__).order_by(model.__table__.c.id)  # type: ignore[attr-defined]
            ).all()
            for model in (Customer, Account, Instalment, Payment)
        }


@pytest.mark.parametrize("kind", imports.KINDS)
def test_a_control_character_in_any_field_rejects_the_file(
    kind: str, capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    """Each column of each kind, with each kind of control character: the file is refused,
    the error names row and column and shows no control character, and nothing changes."""
    for setup, header, rows in (
        ("customers", CUSTOMER_HEADER, [customer_row(1)]),
        ("accounts", ACCOUNT_HEADER, [account_row(1)]),
    ):
        assert invoke(capsys, "import", setup, str(write_csv(tmp_path / "s.csv", header, rows)))
    before = _tables(runtime)
    columns = list(VALID[kind])
    for control in CONTROLS:
        for start in range(0, len(columns), 15):  # an error shows its first 20 problems
            rows = [list(VALID[kind].values())]  # a good row: it is not written either
            for column in columns[start : start + 15]:
                row = dict(VALID[kind])
                row[column] = f"{row[column][:3]}{control}{row[column][3:]}"
                rows.append(list(row.values()))
            path = write_csv(tmp_path / f"{kind}.csv", columns, rows)
            result = invoke(capsys, "import", kind, str(path))
            assert result.code == 1, (control, result)
            code = f"U+{ord(control[0]):04X}"
            for number, column in enumerate(columns[start : start + 15], 3):
                if control == "\r\n":
                    number += number - 2  # the line breaks inside the cells before this row
                where = f"row {number}: {column}: contains a control character ({code})"
                assert where in result.err, (control, column, result.err)
            assert not SHOWN_CONTROL.search(result.out + result.err), result.err
    assert _tables(runtime) == before


def test_a_binary_header_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\x00\x01\x1b[2J\x1b]0;owned\x07,name\x00\xc2\x9b,locale\nC1,Ann,en-US\n")
    result = invoke(capsys, "import", "customers", str(path))
    assert result.code == 1
    assert "row 1: column 1: contains a control character (U+0000)" in result.err
    assert "row 1: column 2: contains a control character (U+0000)" in result.err
    assert not SHOWN_CONTROL.search(result.out + result.err), result.err
    assert count(runtime, Customer) == 0


def test_a_file_that_is_not_utf8_is_refused_at_the_line_of_the_bad_bytes(
    capsys: pytest.CaptureFixture[str], runtime: Runtime, tmp_path: Path
) -> None:
    lines = [",".join(CUSTOMER_HEADER).encode()]
    lines += [",".join(customer_row(n)).encode() for n in range(1, 1001)]
    lines[699] = lines[699].replace(b"Name", b"N\xe9me")  # Latin-1, line 700
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    result = invoke(capsys, "import", "customers", str(path))
    assert result.code == 1
    assert "rejected, nothing was written: 1 problem(s): row 700: is not UTF-8 text" in result.err
    assert count(runtime, Customer) == 0
    path.write_bytes(b"\r\n".join(lines[:3]) + b"\r\nC9,Ann \xe4\xb8")  # ends mid-character
    result = invoke(capsys, "import", "customers", str(path))
    assert "row 4: is not UTF-8 text (byte 8 of the line)" in result.err
