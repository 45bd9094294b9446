"""CSV imports of customers, accounts, instalments and payments.

Every row is validated before anything is written. Any bad row rejects the whole file (with row
numbers and reasons) and nothing changes. Rows are upserted by their external key, and a row
that matches what is stored is left alone, so importing the same file twice changes nothing.
The column reference is docs/imports.md.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select, tuple_, update

from dunning.db.models import utcnow
from dunning.db.sql import bulk_insert, chunked
from dunning.db.tables import ACCOUNT, CUSTOMER, INSTALMENT, PAYMENT
from dunning.domain.delinquency import ScheduleLine, apply_payment
from dunning.domain.money import minor_digits, parse_amount
from dunning.errors import ImportRejected, RowProblem
from dunning.services.contact import stops as optouts
from dunning.services.imports import validators as v
from dunning.services.lifecycle.treatments import review_treatments
from dunning.types import AccountStatus, Channel

Progress = Callable[[int], None]
"""Called with the number of rows just processed."""


LOOKUP_CHUNK = 900
MAX_MINOR = 2**63 - 1
"""The most minor units a BIGINT column holds."""
BALANCE_ORDER = ("penalty_minor", "fees_minor", "interest_minor", "principal_minor")
"""A payment pays down penalty first, then fees, interest and principal."""


@dataclass(frozen=True)
class Column:
    name: str
    parse: Callable[[str], Any]
    required: bool = False
    doc: str = ""


@dataclass
class ParsedRow:
    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class ImportResult:
    kind: str
    file: str
    rows: int
    inserted: int
    updated: int
    unchanged: int
    held: int = 0
    """Waiting messages held at once because the import recorded a stop or an opt-out."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "held": self.held,
        }


@dataclass
class _Problems:
    items: list[RowProblem] = field(default_factory=list)

    def add(self, line: int, column: str, reason: str) -> None:
        self.items.append(RowProblem(line, column, reason))


def _text(max_length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if len(value) > max_length:
            raise ValueError(f"is longer than {max_length} characters")
        return value

    return parse


def _status(value: str) -> str:
    text = value.strip().lower() or AccountStatus.OPEN.value
    allowed = [status.value for status in AccountStatus]
    if text not in allowed:
        raise ValueError(f"is not one of {', '.join(allowed)}")
    return text


CONSENT_CHANNELS = tuple(channel.value for channel in Channel)

SPECS: dict[str, list[Column]] = {
    "customers": [
        Column("external_id", _text(64), True, "the lender's customer id; the upsert key"),
        Column("name", _text(200), True, "full name as it goes on letters"),
        Column("locale", v.locale, True, "zh-CN, en-US, ..."),
        Column("time_zone", v.time_zone, False, "IANA name; empty if unknown"),
        Column("phone", v.phone, False, "E.164, e.g. +8613812345678"),
        Column("push_token", _text(255), False, "app push token"),
        Column("email", v.email, False, ""),
        Column("address_line1", _text(200), False, ""),
        Column("address_line2", _text(200), False, ""),
        Column("city", _text(100), False, ""),
        Column("region", _text(100), False, "state or province"),
        Column("postal_code", _text(20), False, ""),
        Column("country", v.country, False, "ISO 3166 alpha-2"),
        *[Column(f"{c}_consent", v.boolean, False, f"consent to {c}") for c in CONSENT_CHANNELS],
        *[
            Column(f"{c}_opted_out", v.boolean, False, f"opted out of {c}")
            for c in CONSENT_CHANNELS
        ],
        Column("deceased", v.boolean, False, ""),
        Column("bankruptcy", v.boolean, False, ""),
        Column("attorney_on_file", v.boolean, False, ""),
        Column("cease_communication", v.boolean, False, "a cease-communication request"),
        Column("dispute_open", v.boolean, False, ""),
        Column("hardship_hold", v.boolean, False, ""),
    ],
    "accounts": [
        Column("external_id", _text(64), True, "the lender's account id; the upsert key"),
        Column("customer_external_id", _text(64), True, "an imported customer"),
        Column("product", _text(64), True, ""),
        Column("currency", v.currency, True, "ISO 4217"),
        Column("jurisdiction", v.jurisdiction, True, "policy pack code: CN, US, ..."),
        Column("principal", v.decimal_text, True, "outstanding principal"),
        Column("interest", v.decimal_text, False, "accrued interest"),
        Column("fees", v.decimal_text, False, "late fees and charges"),
        Column("penalty", v.decimal_text, False, "penalty interest"),
        Column("credit_limit", v.decimal_text, False, ""),
        Column("status", _status, False, "open (default), closed or written_off"),
        Column("agreement_ref", _text(64), False, "loan agreement reference"),
        Column("opened_on", v.iso_date, True, "YYYY-MM-DD"),
    ],
    "instalments": [
        Column("account_external_id", _text(64), True, "an imported account"),
        Column("seq", v.positive_int, True, "1, 2, 3 ... within the account; with it, the key"),
        Column("due_on", v.iso_date, True, "YYYY-MM-DD"),
        Column("amount_due", v.decimal_text, True, ""),
        Column("amount_paid", v.decimal_text, False, "default 0"),
        Column("paid_on", v.iso_date, False, "required when amount_paid covers amount_due"),
    ],
    "payments": [
        Column("external_id", _text(64), True, "the lender's payment id; the key"),
        Column("account_external_id", _text(64), True, "an imported account"),
        Column("amount", v.decimal_text, True, "more than zero"),
        Column("paid_on", v.iso_date, True, "YYYY-MM-DD"),
        Column("method", _text(32), False, "bank transfer, card, app, ..."),
    ],
}
KINDS = tuple(SPECS)
_MONEY_COLUMNS = {
    "accounts": ("principal", "interest", "fees", "penalty", "credit_limit"),
    "instalments": ("amount_due", "amount_paid"),
    "payments": ("amount",),
}


_COLUMN_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""The shape of every column name. A header cell is shown in an error only if it has it."""


def _unknown_column(name: str, position: int, by_name: dict[str, Column]) -> RowProblem:
    """An unknown header cell, named by its text only when that looks like a column name.

    A file without its header row has a customer's name, phone or address there, and an error
    must not repeat it: such a cell is named by its position instead.
    """
    shown = name if _COLUMN_NAME.fullmatch(name) else f"column {position}"
    close = difflib.get_close_matches(name.lower(), list(by_name), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return RowProblem(1, shown, f"unknown column{hint}")


def _read_rows(path: Path, columns: list[Column], problems: _Problems) -> list[ParsedRow]:
    by_name = {column.name: column for column in columns}
    file = _file_label(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImportRejected(file, [RowProblem(0, "", f"cannot read: {exc.strerror}")]) from None
    rows: list[ParsedRow] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise ImportRejected(file, [RowProblem(1, "", "the file is empty")])
            controls = [
                RowProblem(1, f"column {position}", f"contains a control character ({found})")
                for position, name in enumerate(header, 1)
                if (found := v.control_character(name)) is not None
            ]
            if controls:
                # A binary file that happens to be UTF-8: its header is no column name at all.
                raise ImportRejected(file, controls)
            header = [name.strip() for name in header]
            unknown = [
                _unknown_column(name, position, by_name)
                for position, name in enumerate(header, 1)
                if name not in by_name
            ]
            missing = [c.name for c in columns if c.required and c.name not in header]
            repeated = sorted(
                name for name, n in Counter(header).items() if n > 1 and name in by_name
            )
            header_problems = [
                *unknown,
                *(RowProblem(1, name, "required column is missing") for name in missing),
                *(RowProblem(1, name, "column appears twice") for name in repeated),
            ]
            if header_problems:
                raise ImportRejected(file, header_problems)
            for record in reader:
                line = reader.line_num
                if _blank(record):
                    continue
                if len(record) != len(header):
                    problems.add(
                        line, "", f"has {len(record)} fields, the header has {len(header)}"
                    )
                    continue
                values: dict[str, Any] = {}
                for name, raw in zip(header, record, strict=True):
                    column = by_name[name]
                    found = v.control_character(raw)
                    if found is not None:
                        problems.add(line, name, f"contains a control character ({found})")
                        continue
                    if not raw.strip():
                        if column.required:
                            problems.add(line, name, "is required")
                        values[name] = None
                        continue
                    try:
                        values[name] = column.parse(raw)
                    except ValueError as exc:
                        problems.add(line, name, str(exc))
                rows.append(ParsedRow(line, values))
        except UnicodeDecodeError:
            line, offset = _undecodable(path)
            raise ImportRejected(
                file, [RowProblem(line, "", f"is not UTF-8 text (byte {offset} of the line)")]
            ) from None
        except csv.Error as exc:
            # The csv module's messages name no cell, but escape them all the same.
            raise ImportRejected(
                file,
                [
                    RowProblem(
                        max(reader.line_num, 1), "", f"is not valid CSV: {v.printable(str(exc))}"
                    )
                ],
            ) from None
    return rows


def _blank(record: list[str]) -> bool:
    """A row with nothing in it, which is skipped: white space at most, and of the control
    characters only tabs (any other is refused, even alone in a row)."""
    return all(
        not cell.strip() and v.control_character(cell.replace("\t", "")) is None for cell in record
    )


def _file_label(path: Path) -> str:
    """The file's name as an error shows it: a control character in it would reach the terminal."""
    return v.printable(str(path))


def _undecodable(path: Path) -> tuple[int, int]:
    """The line (1-based) holding the first bytes that are not UTF-8, and their offset in it.

    Read again in binary, a line at a time and in pieces: the text reader's position is its
    buffer's, not the line's. A line ending (0x0A) is never part of a multi-byte sequence.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with path.open("rb") as handle:
        while piece := handle.readline(1 << 16):
            ends = piece.endswith(b"\n")
            pending = len(decoder.getstate()[0])  # an unfinished sequence from the last piece
            try:
                decoder.decode(piece, final=ends)
            except UnicodeDecodeError as exc:
                return line, offset - pending + exc.start + 1
            if ends:
                line, offset = line + 1, 0
                decoder.reset()
            else:
                offset += len(piece)
        pending = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, offset - pending + 1  # the file ends inside a sequence
    return line, offset


def _duplicates(
    rows: Sequence[ParsedRow], key: Callable[[ParsedRow], Any], problems: _Problems, label: str
) -> None:
    first_seen: dict[Any, int] = {}
    for row in rows:
        value = key(row)
        if value is None or (isinstance(value, tuple) and None in value):
            continue
        if value in first_seen:
            problems.add(row.line, label, f"duplicate key, first seen on row {first_seen[value]}")
        else:
            first_seen[value] = row.line


def _lookup(
    connection: Connection, table: Table, key: str, values: Iterable[Any], *columns: str
) -> dict[Any, Any]:
    """Map each external key to a row of the requested columns, in chunks."""
    found: dict[Any, Any] = {}
    unique = list(dict.fromkeys(values))
    selected = [table.c[key], *(table.c[name] for name in columns)]
    for chunk in chunked(unique, LOOKUP_CHUNK):
        for row in connection.execute(select(*selected).where(table.c[key].in_(chunk))):
            found[row[0]] = row
    return found


def _money(row: ParsedRow, name: str, currency: str, problems: _Problems) -> int:
    text = row.values.get(name)
    if text is None:
        return 0
    try:
        minor = parse_amount(text, currency)
    except ValueError:
        # The column's parser has checked that it is a non-negative number, so what is left is
        # its precision. parse_amount's own message repeats the value: never shown.
        digits = minor_digits(currency)
        problems.add(row.line, name, f"has more than {digits} decimal places for {currency}")
        return 0
    if minor > MAX_MINOR:
        problems.add(row.line, name, "is too large")
        return 0
    return minor


def _upsert(
    connection: Connection,
    table: Table,
    key_columns: Sequence[str],
    records: list[dict[str, Any]],
    compare: Sequence[str],
    progress: Progress | None,
) -> tuple[int, int, int]:
    """Insert new records, update changed ones, leave identical ones alone."""
    existing: dict[tuple[Any, ...], Any] = {}
    key_cols = [table.c[name] for name in key_columns]
    wanted = [tuple(record[name] for name in key_columns) for record in records]
    for chunk in chunked(wanted, LOOKUP_CHUNK):
        if len(key_columns) == 1:
            condition = key_cols[0].in_([key[0] for key in chunk])
        else:
            condition = tuple_(*key_cols).in_(list(chunk))
        query = select(table.c.id, *key_cols, *(table.c[name] for name in compare)).where(condition)
        for row in connection.execute(query):
            existing[tuple(row[1 : 1 + len(key_columns)])] = row
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, record in zip(wanted, records, strict=True):
        current = existing.get(key)
        if current is None:
            inserts.append(record)
            continue
        stored = current._mapping
        if any(stored[name] != record[name] for name in compare):
            updates.append({"_id": stored["id"], **{name: record[name] for name in compare}})
    now = utcnow()
    has_timestamps = "updated_at" in table.c
    for chunk in chunked(inserts, 5000):
        rows = (
            [{**r, "created_at": now, "updated_at": now} for r in chunk]
            if has_timestamps
            else chunk
        )
        bulk_insert(connection, table, rows)
        if progress:
            progress(len(chunk))
    if updates:
        values: dict[str, Any] = {name: bindparam(name) for name in compare}
        if has_timestamps:
            values["updated_at"] = bindparam("updated_at")
            updates = [{**u, "updated_at": now} for u in updates]
        statement = update(table).where(table.c.id == bindparam("_id")).values(values)
        for chunk in chunked(updates, 5000):
            connection.execute(statement, list(chunk))
            if progress:
                progress(len(chunk))
    if progress:
        progress(len(records) - len(inserts) - len(updates))
    return len(inserts), len(updates), len(records) - len(inserts) - len(updates)


def kept_by_dunning(source: str | None) -> bool:
    """Whether an SMS opt-out of this source stays whatever an import says: one the customer
    made by reply (reply, reply:<provider>) or an operator recorded."""
    return source is not None and (source == "operator" or source.split(":")[0] == "reply")


ADDRESS_FIELDS = ("address_line1", "address_line2", "city", "region", "postal_code", "country")
"""A customer's postal address: a change of any of them is a new address."""


def _customers(
    connection: Connection, rows: list[ParsedRow], problems: _Problems, progress: Progress | None
) -> tuple[int, int, int]:
    _duplicates(rows, lambda r: r.values.get("external_id"), problems, "external_id")
    if problems.items:
        raise _Stop
    existing_opt_outs = _lookup(
        connection,
        CUSTOMER,
        "external_id",
        (r.values["external_id"] for r in rows),
        *(f"{c}_opted_out_at" for c in CONSENT_CHANNELS),
        "sms_opt_out_source",
        "push_token",
        "push_token_invalid_at",
        *ADDRESS_FIELDS,
        "address_invalid_at",
    )
    now = utcnow()
    records = []
    for row in rows:
        values = row.values
        record: dict[str, Any] = {
            name: values.get(name)
            for name in (
                "external_id",
                "name",
                "locale",
                "time_zone",
                "phone",
                "push_token",
                "email",
                "address_line1",
                "address_line2",
                "city",
                "region",
                "postal_code",
                "country",
            )
        }
        for flag in (
            "deceased",
            "bankruptcy",
            "attorney_on_file",
            "cease_communication",
            "dispute_open",
            "hardship_hold",
        ):
            record[flag] = bool(values.get(flag))
        previous = existing_opt_outs.get(values["external_id"])
        for channel in CONSENT_CHANNELS:
            consent = values.get(f"{channel}_consent")
            record[f"{channel}_consent"] = (
                (channel == Channel.LETTER) if consent is None else consent
            )
            opted_out = bool(values.get(f"{channel}_opted_out"))
            kept: datetime | None = (
                previous._mapping[f"{channel}_opted_out_at"] if previous else None
            )
            record[f"{channel}_opted_out_at"] = (kept or now) if opted_out else None
        # An SMS opt-out the customer made by reply, or an operator recorded, is theirs: a file
        # that does not know of it (the lender's next export) does not lift it. Only one an
        # import made (or one from before sources were kept) follows the file.
        source = previous._mapping["sms_opt_out_source"] if previous else None
        held_since = previous._mapping["sms_opted_out_at"] if previous else None
        if kept_by_dunning(source) and held_since is not None:
            record["sms_opted_out_at"] = held_since
            record["sms_opt_out_source"] = source
        elif record["sms_opted_out_at"] is not None:
            record["sms_opt_out_source"] = source or "import"
        else:
            record["sms_opt_out_source"] = None
        # A token or an address a provider called dead stays dead until the file brings
        # another one.
        old = previous._mapping if previous is not None else None
        same_token = old is not None and old["push_token"] == record["push_token"]
        record["push_token_invalid_at"] = (
            previous._mapping["push_token_invalid_at"] if previous and same_token else None
        )
        same_address = previous is not None and all(
            previous._mapping[name] == record[name] for name in ADDRESS_FIELDS
        )
        record["address_invalid_at"] = (
            previous._mapping["address_invalid_at"] if previous and same_address else None
        )
        records.append(record)
    compare = [name for name in records[0] if name != "external_id"] if records else []
    return _upsert(connection, CUSTOMER, ["external_id"], records, compare, progress)


def _accounts(
    connection: Connection, rows: list[ParsedRow], problems: _Problems, progress: Progress | None
) -> tuple[int, int, int]:
    _duplicates(rows, lambda r: r.values.get("external_id"), problems, "external_id")
    customers = _lookup(
        connection,
        CUSTOMER,
        "external_id",
        (r.values["customer_external_id"] for r in rows if r.values.get("customer_external_id")),
        "id",
    )
    records = []
    for row in rows:
        values = row.values
        customer = customers.get(values.get("customer_external_id"))
        if values.get("customer_external_id") and customer is None:
            problems.add(row.line, "customer_external_id", "unknown customer")
        currency = values.get("currency")
        if currency is None:
            continue
        record = {
            "external_id": values.get("external_id"),
            "customer_id": customer[1] if customer is not None else None,
            "product": values.get("product"),
            "currency": currency,
            "jurisdiction": values.get("jurisdiction"),
            "principal_minor": _money(row, "principal", currency, problems),
            "interest_minor": _money(row, "interest", currency, problems),
            "fees_minor": _money(row, "fees", currency, problems),
            "penalty_minor": _money(row, "penalty", currency, problems),
            "credit_limit_minor": _money(row, "credit_limit", currency, problems),
            "status": values.get("status") or AccountStatus.OPEN.value,
            "agreement_ref": values.get("agreement_ref"),
            "opened_on": values.get("opened_on"),
        }
        records.append(record)
    if problems.items:
        raise _Stop
    compare = [name for name in records[0] if name != "external_id"] if records else []
    return _upsert(connection, ACCOUNT, ["external_id"], records, compare, progress)


def _accounts_by_external_id(
    connection: Connection, rows: list[ParsedRow], problems: _Problems
) -> dict[str, Any]:
    accounts = _lookup(
        connection,
        ACCOUNT,
        "external_id",
        (r.values["account_external_id"] for r in rows if r.values.get("account_external_id")),
        "id",
        "currency",
    )
    for row in rows:
        ext = row.values.get("account_external_id")
        if ext and ext not in accounts:
            problems.add(row.line, "account_external_id", "unknown account")
    return accounts


def _instalments(
    connection: Connection, rows: list[ParsedRow], problems: _Problems, progress: Progress | None
) -> tuple[int, int, int]:
    _duplicates(
        rows,
        lambda r: (r.values.get("account_external_id"), r.values.get("seq")),
        problems,
        "account_external_id+seq",
    )
    accounts = _accounts_by_external_id(connection, rows, problems)
    records = []
    for row in rows:
        values = row.values
        account = accounts.get(values.get("account_external_id") or "")
        if account is None:
            continue
        currency = account[2]
        due = _money(row, "amount_due", currency, problems)
        paid = _money(row, "amount_paid", currency, problems)
        paid_on: date | None = values.get("paid_on")
        if paid > due:
            problems.add(row.line, "amount_paid", "is more than amount_due")
        elif paid == due and due > 0 and paid_on is None:
            problems.add(row.line, "paid_on", "is required when amount_paid covers amount_due")
        elif paid < due and paid_on is not None:
            problems.add(row.line, "paid_on", "is set but amount_paid does not cover amount_due")
        records.append(
            {
                "account_id": account[1],
                "seq": values.get("seq"),
                "due_on": values.get("due_on"),
                "amount_due_minor": due,
                "amount_paid_minor": paid,
                "paid_on": paid_on if paid >= due else None,
            }
        )
    if problems.items:
        raise _Stop
    compare = ["due_on", "amount_due_minor", "amount_paid_minor", "paid_on"]
    return _upsert(connection, INSTALMENT, ["account_id", "seq"], records, compare, progress)


def _payments(
    connection: Connection, rows: list[ParsedRow], problems: _Problems, progress: Progress | None
) -> tuple[int, int, int]:
    _duplicates(rows, lambda r: r.values.get("external_id"), problems, "external_id")
    accounts = _accounts_by_external_id(connection, rows, problems)
    already = _lookup(
        connection,
        PAYMENT,
        "external_id",
        (r.values["external_id"] for r in rows if r.values.get("external_id")),
        "account_id",
        "amount_minor",
        "paid_on",
    )
    new: list[dict[str, Any]] = []
    unchanged = 0
    for row in rows:
        values = row.values
        account = accounts.get(values.get("account_external_id") or "")
        if account is None:
            continue
        amount = _money(row, "amount", account[2], problems)
        if values.get("amount") is not None and amount == 0:
            problems.add(row.line, "amount", "must be more than zero")
        record = {
            "external_id": values.get("external_id"),
            "account_id": account[1],
            "amount_minor": amount,
            "paid_on": values.get("paid_on"),
            "method": values.get("method"),
        }
        stored = already.get(record["external_id"])
        if stored is not None:
            if tuple(stored[1:]) != (record["account_id"], amount, record["paid_on"]):
                problems.add(
                    row.line,
                    "external_id",
                    "payment already recorded with other details; payments are immutable",
                )
            unchanged += 1
            continue
        new.append(record)
    if problems.items:
        raise _Stop
    record_payments(connection, new)
    if new:
        # A payment that cures an account takes it out of collections at once: waiting
        # messages are cancelled and treatments in force are reversed.

        review_treatments(
            connection, date.today(), None, account_ids=sorted({p["account_id"] for p in new})
        )
    if progress:
        progress(len(rows))
    return len(new), 0, unchanged


def record_payments(connection: Connection, payments: list[dict[str, Any]]) -> None:
    """Insert payments and allocate them: instalments oldest first, balances penalty first.

    Each payment is stored with what it paid down of each balance (applied_*_minor), which
    the balances as of an earlier date add back (services.delinquency.balances_as_of).
    """
    if not payments:
        return
    now = utcnow()
    by_account: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for payment in payments:
        by_account[payment["account_id"]].append(payment)
    i = INSTALMENT.c
    instalment_updates: list[dict[str, Any]] = []
    balance_updates: list[dict[str, Any]] = []
    for chunk in chunked(list(by_account), LOOKUP_CHUNK):
        schedules: dict[int, list[tuple[int, ScheduleLine]]] = defaultdict(list)
        for row in connection.execute(
            select(
                i.id,
                i.account_id,
                i.seq,
                i.due_on,
                i.amount_due_minor,
                i.amount_paid_minor,
                i.paid_on,
            ).where(i.account_id.in_(chunk))
        ):
            schedules[row.account_id].append(
                (
                    row.id,
                    ScheduleLine(
                        row.seq,
                        row.due_on,
                        row.amount_due_minor,
                        row.amount_paid_minor,
                        row.paid_on,
                    ),
                )
            )
        balances = {
            row.id: dict(row._mapping)
            for row in connection.execute(
                select(ACCOUNT.c.id, *(ACCOUNT.c[name] for name in BALANCE_ORDER)).where(
                    ACCOUNT.c.id.in_(chunk)
                )
            )
        }
        for account_id in chunk:
            lines = schedules.get(account_id, [])
            ids = {line.seq: line_id for line_id, line in lines}
            before = {line.seq: line for _, line in lines}
            schedule = [line for _, line in lines]
            balance = balances[account_id]
            for payment in sorted(by_account[account_id], key=lambda p: p["paid_on"]):
                schedule, _ = apply_payment(schedule, payment["amount_minor"], payment["paid_on"])
                left = payment["amount_minor"]
                for name in BALANCE_ORDER:
                    taken = min(balance[name], left)
                    balance[name] -= taken
                    left -= taken
                    payment[f"applied_{name}"] = taken
            for line in schedule:
                if line != before[line.seq]:
                    instalment_updates.append(
                        {
                            "_id": ids[line.seq],
                            "amount_paid_minor": line.amount_paid,
                            "paid_on": line.paid_on,
                        }
                    )
            balance_updates.append(
                {"_id": account_id, **{n: balance[n] for n in BALANCE_ORDER}, "updated_at": now}
            )
    connection.execute(PAYMENT.insert(), [{**p, "created_at": now} for p in payments])
    if instalment_updates:
        connection.execute(
            update(INSTALMENT)
            .where(i.id == bindparam("_id"))
            .values(amount_paid_minor=bindparam("amount_paid_minor"), paid_on=bindparam("paid_on")),
            instalment_updates,
        )
    connection.execute(
        update(ACCOUNT)
        .where(ACCOUNT.c.id == bindparam("_id"))
        .values(
            {**{n: bindparam(n) for n in BALANCE_ORDER}, "updated_at": bindparam("updated_at")}
        ),
        balance_updates,
    )


class _Stop(Exception):
    """Validation found problems: stop before writing anything."""


_WRITTEN = {
    "customers": (CUSTOMER,),
    "accounts": (ACCOUNT,),
    "instalments": (INSTALMENT,),
    "payments": (PAYMENT, INSTALMENT, ACCOUNT),
}
ANALYZE_AFTER = 10_000
"""Rows an import must insert or change before PostgreSQL's statistics are refreshed."""

_WRITERS = {
    "customers": _customers,
    "accounts": _accounts,
    "instalments": _instalments,
    "payments": _payments,
}


def import_file(
    connection: Connection, kind: str, path: Path, progress: Progress | None = None
) -> ImportResult:
    """Validate then write one CSV file, inside the caller's transaction.

    Raises ImportRejected (and writes nothing) if any row is bad. The caller's unit of work
    rolls back on the exception, so partial writes are impossible.
    """
    if kind not in SPECS:
        raise ValueError(f"unknown import kind {kind!r}; use one of {', '.join(KINDS)}")
    problems = _Problems()
    rows = _read_rows(path, SPECS[kind], problems)
    if problems.items:
        raise ImportRejected(_file_label(path), sorted(problems.items, key=lambda p: p.row))
    try:
        inserted, updated, unchanged = _WRITERS[kind](connection, rows, problems, progress)
    except _Stop:
        inserted = updated = unchanged = 0
    if problems.items:
        raise ImportRejected(_file_label(path), sorted(problems.items, key=lambda p: p.row))
    if inserted + updated >= ANALYZE_AFTER and connection.dialect.name == "postgresql":
        # Fresh statistics now, not when autovacuum gets to it: a table just loaded still
        # looks empty to the planner, which then scans it whole for every lookup (a second
        # import of 100,000 accounts right after the first: 247 s instead of 6 s).
        for table in _WRITTEN[kind]:
            connection.exec_driver_sql(
                f"ANALYZE {connection.dialect.identifier_preparer.quote(table.name)}"
            )
    held = _hold_waiting(connection, rows) if kind == "customers" else 0
    return ImportResult(kind, str(path), len(rows), inserted, updated, unchanged, held)


def _hold_waiting(connection: Connection, rows: list[ParsedRow]) -> int:
    """Hold at once the waiting messages of the customers this file stops or opts out.

    The daily run holds them from now on and the dispatcher would at the last moment, but a
    message already planned (deferred to the morning, say) must not wait for that: a death, a
    bankruptcy, an attorney, a cease request, a dispute or a hardship hold acts as soon as the
    lender records it, as an opt-out does.
    """
    flagged = [
        row.values["external_id"]
        for row in rows
        if any(row.values.get(flag) for flag, _ in optouts.STOPS)
        or any(row.values.get(f"{channel}_opted_out") for channel in CONSENT_CHANNELS)
    ]
    if not flagged:
        return 0
    ids = [
        found[1] for found in _lookup(connection, CUSTOMER, "external_id", flagged, "id").values()
    ]
    now = utcnow()
    return optouts.hold_stopped(connection, ids, now) + optouts.hold_opted_out(connection, ids, now)


def count_rows(path: Path) -> int:
    """Data rows in a CSV file, for progress bars (approximate for multi-line fields)."""
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def column_reference() -> Iterator[tuple[str, Column]]:
    for kind, columns in SPECS.items():
        for column in columns:
            yield kind, column
