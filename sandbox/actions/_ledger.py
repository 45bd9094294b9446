"""The action mocks' ledgers: what the core system and the agency did, in SQLite files.

As with the message gateways' ledger, deduplication is the database's job: the idempotency key
is unique, and each request is one IMMEDIATE transaction that looks up its keys, applies the
new ones and stores them, so any number of processes on one file never apply a key twice. A
repeated key gets the original reference back and only bumps `submissions`.

Each file also keeps the state the other side would keep (credit lines; placements) so tests
read what happened, and the scripted faults, so a test in any process can queue one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from sandbox._faults import ScriptedFault

_COMMON_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    operation TEXT NOT NULL,
    account_ref TEXT NOT NULL,
    reference TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at REAL NOT NULL,
    submissions INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS faults (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    operation TEXT,
    remaining INTEGER NOT NULL,
    spec TEXT NOT NULL
);
"""

_ready: set[tuple[str, Path]] = set()
_ready_lock = threading.Lock()


@dataclass(frozen=True)
class ActionLedgerRow:
    """One request the mock applied, as it received it."""

    idempotency_key: str
    operation: str
    """holds, releases (core banking); placements, recalls (agency)."""
    account_ref: str
    reference: str
    """The mock's id for what it did (change id, placement id, recall id)."""
    payload: dict[str, Any]
    """The request item exactly as received."""
    received_at: float
    submissions: int
    """How many requests carried this key (1: applied once, never resubmitted)."""


@dataclass(frozen=True)
class Applied:
    """The mock's answer to one request item: applied (new or duplicate) or rejected."""

    idempotency_key: str
    reference: str | None = None
    duplicate: bool = False
    code: str | None = None
    reason: str | None = None
    extra: Mapping[str, Any] | None = None

    @property
    def rejected(self) -> bool:
        return self.code is not None


@dataclass(frozen=True)
class QueuedFault:
    seq: int
    operation: str | None
    remaining: int
    spec: dict[str, Any]


class ActionLedger:
    """The parts every action mock's ledger shares. Cheap to create; connects per call."""

    schema: ClassVar[str] = ""
    prefix: ClassVar[str] = "act"

    def __init__(self, path: Path, *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout

    # -- connections --------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _ensure_schema(self) -> None:
        key = (type(self).__name__, self.path.resolve())
        with _ready_lock:
            if key in _ready and self.path.exists():
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(f"BEGIN IMMEDIATE;{_COMMON_SCHEMA}{self.schema}COMMIT;")
            finally:
                connection.close()
            _ready.add(key)

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        self._ensure_schema()
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the write lock up front, so no upgrade deadlocks."""
        self._ensure_schema()
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        finally:
            connection.close()

    def _new_reference(self) -> str:
        return f"{self.prefix}_{uuid.uuid4().hex[:24]}"

    # -- requests -------------------------------------------------------------------------------

    @staticmethod
    def _known(
        db: sqlite3.Connection, operation: str, key: str
    ) -> tuple[str, str] | Applied | None:
        """(reference, account_ref) of a key applied before; a rejection if it was another
        operation's key; None if new. Counts the resubmission."""
        row = db.execute(
            "SELECT operation, reference, account_ref FROM requests WHERE idempotency_key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        if row[0] != operation:
            return Applied(
                key,
                code="idempotency_key_reused",
                reason=f"this idempotency key was used for {row[0]}",
            )
        db.execute(
            "UPDATE requests SET submissions = submissions + 1 WHERE idempotency_key = ?", (key,)
        )
        return row[1], row[2]

    @staticmethod
    def _store(
        db: sqlite3.Connection,
        operation: str,
        key: str,
        account_ref: str,
        reference: str,
        payload: Mapping[str, Any],
        now: float,
    ) -> None:
        db.execute(
            "INSERT INTO requests (idempotency_key, operation, account_ref, reference, payload, "
            "received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key, operation, account_ref, reference, json.dumps(dict(payload)), now),
        )

    def requests(self, operation: str | None = None) -> list[ActionLedgerRow]:
        """Every applied request, oldest first (one row per idempotency key)."""
        query = (
            "SELECT idempotency_key, operation, account_ref, reference, payload, received_at, "
            "submissions FROM requests"
        )
        with self._read() as db:
            found = (
                db.execute(query + " ORDER BY seq")
                if operation is None
                else db.execute(query + " WHERE operation = ? ORDER BY seq", (operation,))
            )
            return [
                ActionLedgerRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in found
            ]

    def count(self, operation: str | None = None) -> int:
        """How many keys were applied (each once, however often it was sent)."""
        return int(self._aggregate("count(*)", operation))

    def keys(self, operation: str | None = None) -> list[str]:
        return [row.idempotency_key for row in self.requests(operation)]

    def resubmissions(self, operation: str | None = None) -> int:
        """Requests that repeated a key already applied (retries, redispatches, reruns)."""
        return int(self._aggregate("coalesce(sum(submissions - 1), 0)", operation))

    def _aggregate(self, expression: str, operation: str | None) -> Any:
        with self._read() as db:
            query = f"SELECT {expression} FROM requests"
            if operation is None:
                return db.execute(query).fetchone()[0]
            return db.execute(query + " WHERE operation = ?", (operation,)).fetchone()[0]

    # -- scripted faults ----------------------------------------------------------------------

    def queue_fault(
        self, spec: Mapping[str, Any], count: int = 1, operation: str | None = None
    ) -> int:
        """Make the next `count` requests (of one operation, or any) fail as `spec` says.

        `spec` has the fields of sandbox.ScriptedFault (kind, status, retry_after, ...).
        """
        fault = ScriptedFault.model_validate({**spec, "count": count})
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO faults (operation, remaining, spec) VALUES (?, ?, ?)",
                (operation, fault.count, json.dumps(fault.spec(), sort_keys=True)),
            )
            return int(cursor.lastrowid or 0)

    def take_fault(self, operation: str) -> dict[str, Any] | None:
        """The next scripted fault for a request of this operation, used up by one."""
        with self._read() as db:
            if db.execute("SELECT 1 FROM faults WHERE remaining > 0 LIMIT 1").fetchone() is None:
                return None
        with self._write() as db:
            row = db.execute(
                "SELECT seq, spec FROM faults WHERE remaining > 0 "
                "AND (operation IS NULL OR operation = ?) ORDER BY seq LIMIT 1",
                (operation,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE faults SET remaining = remaining - 1 WHERE seq = ?", (row[0],))
            spec: dict[str, Any] = json.loads(row[1])
            return spec

    def faults(self) -> list[QueuedFault]:
        with self._read() as db:
            found = db.execute(
                "SELECT seq, operation, remaining, spec FROM faults WHERE remaining > 0 "
                "ORDER BY seq"
            )
            return [QueuedFault(r[0], r[1], r[2], json.loads(r[3])) for r in found]

    def reset(self) -> None:
        """Forget everything (tests and demos)."""
        with self._write() as db:
            for table in self._tables():
                db.execute(f"DELETE FROM {table}")

    def _tables(self) -> tuple[str, ...]:
        return ("requests", "faults")


# -- the core banking system ------------------------------------------------------------------

CreditLineState = Literal["frozen", "reduced", "restored"]


@dataclass(frozen=True)
class CreditLine:
    """A credit line as the core system holds it after the freezes and restores it applied."""

    account_ref: str
    state: CreditLineState
    limit_minor: int
    """The limit now: 0 when frozen, the reduced limit, or the restored one."""
    original_limit_minor: int
    """The limit before the first freeze or reduction still in force."""
    currency: str
    updated_at: float
    last_change: str
    """The reference of the change that set this state."""


@dataclass(frozen=True)
class Hold:
    """A validated freeze or reduction."""

    idempotency_key: str
    account_ref: str
    mode: Literal["freeze", "reduce"]
    credit_limit_minor: int
    new_limit_minor: int
    currency: str
    received: Mapping[str, Any]


@dataclass(frozen=True)
class Release:
    """A validated restore."""

    idempotency_key: str
    account_ref: str
    restore_limit_minor: int | None
    currency: str
    received: Mapping[str, Any]


_LINE_COLUMNS = (
    "account_ref, state, limit_minor, original_limit_minor, currency, updated_at, last_change"
)


class CoreBankingLedger(ActionLedger):
    """The mock core banking system's file: applied changes and the state of each credit line."""

    schema = """
    CREATE TABLE IF NOT EXISTS credit_lines (
        account_ref TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        limit_minor INTEGER NOT NULL,
        original_limit_minor INTEGER NOT NULL,
        currency TEXT NOT NULL,
        updated_at REAL NOT NULL,
        last_change TEXT NOT NULL
    ) WITHOUT ROWID;
    """
    prefix = "clc"

    def _tables(self) -> tuple[str, ...]:
        return (*super()._tables(), "credit_lines")

    def hold(self, holds: Sequence[Hold], now: float) -> list[Applied]:
        """Freeze or reduce credit lines; one transaction for the whole request."""
        answers: list[Applied] = []
        with self._write() as db:
            for hold in holds:
                known = self._known(db, "holds", hold.idempotency_key)
                if isinstance(known, Applied):
                    answers.append(known)
                    continue
                line = _line(db, hold.account_ref)
                if known is not None:
                    answers.append(_applied(hold.idempotency_key, known[0], True, line))
                    continue
                if line is not None and line.currency != hold.currency:
                    answers.append(_currency_mismatch(hold.idempotency_key))
                    continue
                held = line is not None and line.state != "restored"
                original = line.original_limit_minor if held and line else hold.credit_limit_minor
                reference = self._new_reference()
                state = "frozen" if hold.mode == "freeze" else "reduced"
                db.execute(
                    f"INSERT OR REPLACE INTO credit_lines ({_LINE_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        hold.account_ref,
                        state,
                        hold.new_limit_minor,
                        original,
                        hold.currency,
                        now,
                        reference,
                    ),
                )
                self._store(
                    db,
                    "holds",
                    hold.idempotency_key,
                    hold.account_ref,
                    reference,
                    hold.received,
                    now,
                )
                answers.append(
                    _applied(hold.idempotency_key, reference, False, _line(db, hold.account_ref))
                )
        return answers

    def release(self, releases: Sequence[Release], now: float) -> list[Applied]:
        """Lift freezes and reductions; a line with none in force is a permanent rejection."""
        answers: list[Applied] = []
        with self._write() as db:
            for release in releases:
                known = self._known(db, "releases", release.idempotency_key)
                if isinstance(known, Applied):
                    answers.append(known)
                    continue
                line = _line(db, release.account_ref)
                if known is not None:
                    answers.append(_applied(release.idempotency_key, known[0], True, line))
                    continue
                if line is None or line.state == "restored":
                    answers.append(
                        Applied(
                            release.idempotency_key,
                            code="not_held",
                            reason="the credit line has no freeze or reduction in force",
                        )
                    )
                    continue
                if line.currency != release.currency:
                    answers.append(_currency_mismatch(release.idempotency_key))
                    continue
                limit = (
                    release.restore_limit_minor
                    if release.restore_limit_minor is not None
                    else line.original_limit_minor
                )
                reference = self._new_reference()
                db.execute(
                    "UPDATE credit_lines SET state = 'restored', limit_minor = ?, "
                    "original_limit_minor = ?, updated_at = ?, last_change = ? "
                    "WHERE account_ref = ?",
                    (limit, limit, now, reference, release.account_ref),
                )
                self._store(
                    db,
                    "releases",
                    release.idempotency_key,
                    release.account_ref,
                    reference,
                    release.received,
                    now,
                )
                answers.append(
                    _applied(
                        release.idempotency_key, reference, False, _line(db, release.account_ref)
                    )
                )
        return answers

    def credit_line(self, account_ref: str) -> CreditLine | None:
        with self._read() as db:
            return _line(db, account_ref)

    def credit_lines(self) -> list[CreditLine]:
        with self._read() as db:
            found = db.execute(f"SELECT {_LINE_COLUMNS} FROM credit_lines ORDER BY account_ref")
            return [CreditLine(*row) for row in found]


def _line(db: sqlite3.Connection, account_ref: str) -> CreditLine | None:
    row = db.execute(
        f"SELECT {_LINE_COLUMNS} FROM credit_lines WHERE account_ref = ?", (account_ref,)
    ).fetchone()
    return None if row is None else CreditLine(*row)


def _applied(key: str, reference: str, duplicate: bool, line: CreditLine | None) -> Applied:
    extra = (
        None
        if line is None
        else {"state": line.state, "limit_minor": line.limit_minor, "currency": line.currency}
    )
    return Applied(key, reference=reference, duplicate=duplicate, extra=extra)


def _currency_mismatch(key: str) -> Applied:
    return Applied(key, code="currency_mismatch", reason="the credit line has another currency")


# -- the collection agency --------------------------------------------------------------------

PlacementState = Literal["open", "recalled"]


@dataclass(frozen=True)
class Placement:
    """An account the agency works, from placement to recall."""

    placement_id: str
    idempotency_key: str
    agency: str
    account_ref: str
    placed_on: str
    placed_at: float
    state: PlacementState
    recall_id: str | None
    recalled_on: str | None
    recall_reason: str | None


@dataclass(frozen=True)
class NewPlacement:
    idempotency_key: str
    account_ref: str
    agency: str
    placed_on: str
    received: Mapping[str, Any]


@dataclass(frozen=True)
class Recall:
    idempotency_key: str
    account_ref: str
    agency: str
    placement_reference: str
    recalled_on: str
    reason: str
    received: Mapping[str, Any]


_PLACEMENT_COLUMNS = (
    "placement_id, idempotency_key, agency, account_ref, placed_on, placed_at, state, "
    "recall_id, recalled_on, recall_reason"
)


class AgencyLedger(ActionLedger):
    """The mock agency's file: every placement and recall request as received, and placements."""

    schema = """
    CREATE TABLE IF NOT EXISTS placements (
        placement_id TEXT PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        agency TEXT NOT NULL,
        account_ref TEXT NOT NULL,
        placed_on TEXT NOT NULL,
        placed_at REAL NOT NULL,
        state TEXT NOT NULL,
        recall_id TEXT,
        recalled_on TEXT,
        recall_reason TEXT
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS placements_account ON placements (account_ref, agency, state);
    """
    prefix = "plc"

    def _tables(self) -> tuple[str, ...]:
        return (*super()._tables(), "placements")

    def place(self, placements: Sequence[NewPlacement], now: float) -> list[Applied]:
        """Take accounts on; an account the agency already works is a permanent rejection."""
        answers: list[Applied] = []
        with self._write() as db:
            for new in placements:
                known = self._known(db, "placements", new.idempotency_key)
                if isinstance(known, Applied):
                    answers.append(known)
                    continue
                if known is not None:
                    answers.append(Applied(new.idempotency_key, reference=known[0], duplicate=True))
                    continue
                open_one = db.execute(
                    "SELECT placement_id FROM placements WHERE account_ref = ? AND agency = ? "
                    "AND state = 'open'",
                    (new.account_ref, new.agency),
                ).fetchone()
                if open_one is not None:
                    answers.append(
                        Applied(
                            new.idempotency_key,
                            code="already_placed",
                            reason=f"the account is already placed as {open_one[0]}",
                        )
                    )
                    continue
                reference = self._new_reference()
                db.execute(
                    "INSERT INTO placements (placement_id, idempotency_key, agency, account_ref, "
                    "placed_on, placed_at, state) VALUES (?, ?, ?, ?, ?, ?, 'open')",
                    (
                        reference,
                        new.idempotency_key,
                        new.agency,
                        new.account_ref,
                        new.placed_on,
                        now,
                    ),
                )
                self._store(
                    db,
                    "placements",
                    new.idempotency_key,
                    new.account_ref,
                    reference,
                    new.received,
                    now,
                )
                answers.append(Applied(new.idempotency_key, reference=reference))
        return answers

    def recall(self, recalls: Sequence[Recall], now: float) -> list[Applied]:
        """Hand placements back; an unknown placement is a permanent rejection."""
        answers: list[Applied] = []
        with self._write() as db:
            for recall in recalls:
                key = recall.idempotency_key
                known = self._known(db, "recalls", key)
                if isinstance(known, Applied):
                    answers.append(known)
                    continue
                placement = _placement(db, recall.placement_reference)
                if known is not None:
                    answers.append(
                        Applied(key, reference=known[0], duplicate=True, extra=_recalled(placement))
                    )
                    continue
                problem = _recall_problem(recall, placement)
                if problem is not None:
                    answers.append(Applied(key, code=problem[0], reason=problem[1]))
                    continue
                assert placement is not None
                if placement.state == "recalled" and placement.recall_id is not None:
                    # Recalled before under another key (a dispute, then the cure): same answer.
                    reference = placement.recall_id
                else:
                    reference = f"rcl_{self._new_reference()[4:]}"
                    db.execute(
                        "UPDATE placements SET state = 'recalled', recall_id = ?, recalled_on = ?, "
                        "recall_reason = ? WHERE placement_id = ?",
                        (reference, recall.recalled_on, recall.reason, placement.placement_id),
                    )
                self._store(db, "recalls", key, recall.account_ref, reference, recall.received, now)
                answers.append(
                    Applied(
                        key,
                        reference=reference,
                        extra=_recalled(_placement(db, recall.placement_reference)),
                    )
                )
        return answers

    def placement(self, placement_id: str) -> Placement | None:
        with self._read() as db:
            return _placement(db, placement_id)

    def placements(self, account_ref: str | None = None) -> list[Placement]:
        query = f"SELECT {_PLACEMENT_COLUMNS} FROM placements"
        with self._read() as db:
            found = (
                db.execute(query + " ORDER BY placed_at, placement_id")
                if account_ref is None
                else db.execute(
                    query + " WHERE account_ref = ? ORDER BY placed_at, placement_id",
                    (account_ref,),
                )
            )
            return [Placement(*row) for row in found]


def _placement(db: sqlite3.Connection, placement_id: str) -> Placement | None:
    row = db.execute(
        f"SELECT {_PLACEMENT_COLUMNS} FROM placements WHERE placement_id = ?", (placement_id,)
    ).fetchone()
    return None if row is None else Placement(*row)


def _recalled(placement: Placement | None) -> dict[str, Any] | None:
    if placement is None:
        return None
    return {"placement_id": placement.placement_id, "state": placement.state}


def _recall_problem(recall: Recall, placement: Placement | None) -> tuple[str, str] | None:
    if placement is None:
        return "unknown_placement", "no placement has this reference"
    if placement.agency != recall.agency:
        return "agency_mismatch", "the placement is with another agency"
    if placement.account_ref != recall.account_ref:
        return "account_mismatch", "the placement is for another account"
    return None
