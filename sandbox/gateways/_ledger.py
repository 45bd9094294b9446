"""The mock gateways' ledger: every accepted message, in one SQLite file shared by processes.

Deduplication is the database's job, as at a real gateway: (channel, idempotency_key) is the
primary key and each request is one IMMEDIATE transaction (look up its keys, insert the new
ones), so any number of processes on one file can never store a key twice. A repeated key gets
the original id back and only bumps `submissions`, which tests read to prove nothing was sent
twice.

The same file holds the scripted faults, so a test can queue a fault from its own process and
every gateway instance on that ledger (in-process or `dunning gateway serve`) sees it.
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
from typing import Any

from dunning.config.channels import MockGatewaySettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    channel TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    recipient TEXT NOT NULL,
    subject TEXT,
    body TEXT NOT NULL,
    document_sha256 TEXT,
    document_size INTEGER,
    metadata TEXT NOT NULL,
    accepted_at REAL NOT NULL,
    submissions INTEGER NOT NULL DEFAULT 1,
    receipt_pushed_at REAL,
    api TEXT NOT NULL DEFAULT 'mock',
    PRIMARY KEY (channel, idempotency_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    seen_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS faults (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT,
    remaining INTEGER NOT NULL,
    spec TEXT NOT NULL
);
"""

_COLUMNS = (
    "channel, idempotency_key, id, recipient, subject, body, document_sha256, document_size, "
    "metadata, accepted_at, submissions, receipt_pushed_at, api"
)

API_MOCK = "mock"
"""Rows the mock's own API (/v1/...) accepted; vendor APIs name theirs ("twilio", "aliyun")."""

_ready: set[Path] = set()
_ready_lock = threading.Lock()


@dataclass(frozen=True)
class NewMessage:
    """A validated message the gateway is about to accept."""

    idempotency_key: str
    recipient: str
    body: str
    subject: str | None = None
    document_sha256: str | None = None
    document_size: int | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True)
class VendorMessage:
    """A message a vendor API took: always a new row, under the id the vendor gave it."""

    id: str
    recipient: str
    body: str
    metadata: Mapping[str, str]
    receipt_wanted: bool
    """False when nobody will be told of its receipt (no callback URL): never pushed."""


@dataclass(frozen=True)
class Acceptance:
    idempotency_key: str
    id: str
    duplicate: bool


@dataclass(frozen=True)
class LedgerRow:
    channel: str
    idempotency_key: str
    id: str
    recipient: str
    subject: str | None
    body: str
    document_sha256: str | None
    document_size: int | None
    metadata: dict[str, str]
    accepted_at: float
    """Unix seconds."""
    submissions: int
    """How many requests carried this key (1 = sent once, never resubmitted)."""
    receipt_pushed_at: float | None
    api: str = API_MOCK
    """Which API took the message: the mock's own, or a vendor's ("twilio", "aliyun")."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class QueuedFault:
    seq: int
    channel: str | None
    remaining: int
    spec: dict[str, Any]


class GatewayLedger:
    """Read and write the ledger file. Cheap to create; connects per call, from any thread."""

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
        key = self.path.resolve()
        with _ready_lock:
            if key in _ready and self.path.exists():
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = self._connect()
            try:
                # WAL lets readers (admin, tests) run beside writers from other processes.
                connection.execute("PRAGMA journal_mode=WAL")
                connection.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}COMMIT;")
                # A ledger made before the vendor APIs gets their column (all its rows: "mock").
                columns = {row[1] for row in connection.execute("PRAGMA table_info(messages)")}
                if "api" not in columns:
                    connection.execute(
                        "ALTER TABLE messages ADD COLUMN api TEXT NOT NULL DEFAULT 'mock'"
                    )
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

    # -- messages -----------------------------------------------------------------------------

    def accept(self, channel: str, messages: Sequence[NewMessage], now: float) -> list[Acceptance]:
        """Store new keys, recognise repeated ones; one transaction for the whole request.

        The IMMEDIATE transaction holds the write lock from the first read, so no other
        process can insert a key between our SELECT and INSERT; the primary key would refuse
        it anyway (the request then fails whole and the client retries).
        """
        keys = list(dict.fromkeys(message.idempotency_key for message in messages))
        with self._write() as db:
            known: dict[str, str] = {}
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                known.update(
                    db.execute(
                        "SELECT idempotency_key, id FROM messages "
                        f"WHERE channel = ? AND idempotency_key IN ({marks})",
                        (channel, *part),
                    ).fetchall()
                )
            assigned: dict[str, str] = {}
            fresh: list[tuple[Any, ...]] = []
            repeated: list[str] = []
            answers: list[Acceptance] = []
            for message in messages:
                key = message.idempotency_key
                if key in known or key in assigned:
                    repeated.append(key)
                    answers.append(Acceptance(key, known.get(key) or assigned[key], True))
                    continue
                gateway_id = f"{channel}_{uuid.uuid4().hex}"
                assigned[key] = gateway_id
                answers.append(Acceptance(key, gateway_id, False))
                fresh.append(
                    (
                        channel,
                        key,
                        gateway_id,
                        message.recipient,
                        message.subject,
                        message.body,
                        message.document_sha256,
                        message.document_size,
                        json.dumps(dict(message.metadata or {}), sort_keys=True),
                        now,
                    )
                )
            db.executemany(
                "INSERT INTO messages (channel, idempotency_key, id, recipient, subject, body, "
                "document_sha256, document_size, metadata, accepted_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                fresh,
            )
            db.executemany(
                "UPDATE messages SET submissions = submissions + 1 "
                "WHERE channel = ? AND idempotency_key = ?",
                [(channel, key) for key in repeated],
            )
        return answers

    def record(self, channel: str, api: str, messages: Sequence[VendorMessage], now: float) -> None:
        """Store messages taken by a vendor API, which never deduplicates: each is a new row,
        its gateway id (a Twilio SID, an Aliyun BizId and index) standing in for the key."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO messages (channel, idempotency_key, id, recipient, body, metadata, "
                "accepted_at, receipt_pushed_at, api) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        channel,
                        message.id,
                        message.id,
                        message.recipient,
                        message.body,
                        json.dumps(dict(message.metadata), sort_keys=True),
                        now,
                        None if message.receipt_wanted else now,
                        api,
                    )
                    for message in messages
                ],
            )

    def record_keyed(
        self,
        channel: str,
        api: str,
        key: str,
        message: VendorMessage,
        document: tuple[str, int] | None,
        now: float,
        window: float,
    ) -> tuple[str, bool]:
        """Store a message a vendor API took under the client's idempotency key, as a vendor
        that deduplicates does (Lob): a key seen within `window` seconds returns the row it
        made (id, True) and counts a submission; an older one is forgotten (its row keeps the
        message under a key of its own) and the message is new (id, False). One transaction:
        processes sharing the file never store a key twice. `document`: its SHA-256 and size.
        """
        stored = f"{api}:{key}"
        with self._write() as db:
            found = db.execute(
                "SELECT id, accepted_at FROM messages WHERE channel = ? AND idempotency_key = ?",
                (channel, stored),
            ).fetchone()
            if found is not None and found[1] >= now - window:
                db.execute(
                    "UPDATE messages SET submissions = submissions + 1 "
                    "WHERE channel = ? AND id = ?",
                    (channel, found[0]),
                )
                return str(found[0]), True
            if found is not None:
                db.execute(
                    "UPDATE messages SET idempotency_key = id WHERE channel = ? AND id = ?",
                    (channel, found[0]),
                )
            sha256, size = document if document is not None else (None, None)
            db.execute(
                "INSERT INTO messages (channel, idempotency_key, id, recipient, body, "
                "document_sha256, document_size, metadata, accepted_at, receipt_pushed_at, api) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    channel,
                    stored,
                    message.id,
                    message.recipient,
                    message.body,
                    sha256,
                    size,
                    json.dumps(dict(message.metadata), sort_keys=True),
                    now,
                    None if message.receipt_wanted else now,
                    api,
                ),
            )
            return message.id, False

    def vendor_rows(self, api: str, recipient: str | None = None) -> list[LedgerRow]:
        """The rows a vendor API took, oldest first; only those to `recipient` if given."""
        with self._read() as db:
            if recipient is None:
                found = db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE api = ? ORDER BY accepted_at, id",
                    (api,),
                )
            else:
                found = db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE api = ? AND recipient = ? "
                    "ORDER BY accepted_at, id",
                    (api, recipient),
                )
            return [_row(values) for values in found]

    def count(self, channel: str | None = None) -> int:
        with self._read() as db:
            if channel is None:
                return int(db.execute("SELECT count(*) FROM messages").fetchone()[0])
            query = "SELECT count(*) FROM messages WHERE channel = ?"
            return int(db.execute(query, (channel,)).fetchone()[0])

    def keys(self, channel: str | None = None) -> list[str]:
        return [row.idempotency_key for row in self.rows(channel)]

    def rows(self, channel: str | None = None) -> list[LedgerRow]:
        with self._read() as db:
            if channel is None:
                found = db.execute(f"SELECT {_COLUMNS} FROM messages ORDER BY accepted_at, id")
            else:
                found = db.execute(
                    f"SELECT {_COLUMNS} FROM messages WHERE channel = ? ORDER BY accepted_at, id",
                    (channel,),
                )
            return [_row(values) for values in found]

    def find(self, channel: str, ids: Sequence[str]) -> dict[str, LedgerRow]:
        """The rows of these gateway ids on this channel (unknown ids are left out)."""
        found: dict[str, LedgerRow] = {}
        with self._read() as db:
            for start in range(0, len(ids), 500):
                part = list(ids[start : start + 500])
                marks = ",".join("?" * len(part))
                query = f"SELECT {_COLUMNS} FROM messages WHERE channel = ? AND id IN ({marks})"
                for values in db.execute(query, (channel, *part)):
                    row = _row(values)
                    found[row.id] = row
        return found

    def resubmissions(self, channel: str | None = None) -> int:
        """Requests that repeated a key already accepted (retries, redispatches, reruns)."""
        with self._read() as db:
            query = "SELECT coalesce(sum(submissions - 1), 0) FROM messages"
            if channel is None:
                return int(db.execute(query).fetchone()[0])
            return int(db.execute(query + " WHERE channel = ?", (channel,)).fetchone()[0])

    # -- receipts pushed to a webhook ---------------------------------------------------------

    def unpushed(
        self, accepted_before: float, limit: int = 500, api: str = API_MOCK
    ) -> list[LedgerRow]:
        """Rows of this API whose receipt is not pushed yet (each API pushes its own way)."""
        with self._read() as db:
            found = db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE receipt_pushed_at IS NULL "
                "AND api = ? AND accepted_at <= ? ORDER BY accepted_at LIMIT ?",
                (api, accepted_before, limit),
            )
            return [_row(values) for values in found]

    def mark_pushed(self, channel: str, ids: Sequence[str], now: float) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE messages SET receipt_pushed_at = ? WHERE channel = ? AND id = ?",
                [(now, channel, gateway_id) for gateway_id in ids],
            )

    # -- signature nonces (Aliyun refuses a signed request replayed within its window) -------

    def use_nonce(self, nonce: str, now: float, window: float) -> bool:
        """Record a request's nonce; False if it was seen within `window` seconds."""
        with self._write() as db:
            db.execute("DELETE FROM nonces WHERE seen_at < ?", (now - window,))
            cursor = db.execute(
                "INSERT OR IGNORE INTO nonces (nonce, seen_at) VALUES (?, ?)", (nonce, now)
            )
            return cursor.rowcount == 1

    # -- scripted faults ----------------------------------------------------------------------

    def queue_fault(self, spec: Mapping[str, Any], count: int, channel: str | None) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO faults (channel, remaining, spec) VALUES (?, ?, ?)",
                (channel, count, json.dumps(dict(spec), sort_keys=True)),
            )
            return int(cursor.lastrowid or 0)

    def take_fault(self, channel: str) -> dict[str, Any] | None:
        """The next scripted fault for a request on this channel, used up by one."""
        with self._read() as db:
            # Most requests meet no fault: check without taking the write lock.
            if db.execute("SELECT 1 FROM faults WHERE remaining > 0 LIMIT 1").fetchone() is None:
                return None
        with self._write() as db:
            row = db.execute(
                "SELECT seq, spec FROM faults WHERE remaining > 0 "
                "AND (channel IS NULL OR channel = ?) ORDER BY seq LIMIT 1",
                (channel,),
            ).fetchone()
            if row is None:
                return None
            db.execute("UPDATE faults SET remaining = remaining - 1 WHERE seq = ?", (row[0],))
            spec: dict[str, Any] = json.loads(row[1])
            return spec

    def faults(self) -> list[QueuedFault]:
        with self._read() as db:
            found = db.execute(
                "SELECT seq, channel, remaining, spec FROM faults WHERE remaining > 0 ORDER BY seq"
            )
            return [QueuedFault(r[0], r[1], r[2], json.loads(r[3])) for r in found]

    def reset(self) -> None:
        """Forget every message and fault (tests and demos)."""
        with self._write() as db:
            db.execute("DELETE FROM messages")
            db.execute("DELETE FROM faults")
            db.execute("DELETE FROM nonces")


def _row(values: Sequence[Any]) -> LedgerRow:
    return LedgerRow(
        channel=values[0],
        idempotency_key=values[1],
        id=values[2],
        recipient=values[3],
        subject=values[4],
        body=values[5],
        document_sha256=values[6],
        document_size=values[7],
        metadata=json.loads(values[8]),
        accepted_at=values[9],
        submissions=values[10],
        receipt_pushed_at=values[11],
        api=values[12],
    )


def ledger_path(settings: MockGatewaySettings, state_dir: Path) -> Path:
    """Where the ledger file of these settings lives (relative paths are under state_dir)."""
    path = Path(settings.ledger)
    return path if path.is_absolute() else state_dir / path
