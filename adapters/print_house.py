"""print-house-letter: letters handed to a print house as batches of files on a directory.

For letters where no mail API is used (CN, or any market whose print house takes files from a
mounted share), each `send` writes one *batch directory* into `drop_dir`:

    <drop_dir>/<house>-<YYYYMMDD>-<digest>/
        <key>.pdf ...        one PDF per letter, named by our idempotency key (no PII in names)
        manifest.csv         one row per letter: key, file, sha256, bytes, pages and the
        manifest.json        envelope's address fields (PII: the house must print them)

The batch appears whole or not at all: it is written into a dot-named temp directory beside it
(`.tmp-...`), every file and the directory fsynced, then renamed into place and the drop
directory fsynced. Exactly once: a key already in an earlier batch (the drop's index file,
`.dunning-index.jsonl`, plus the manifests of batches the index lacks after a crash) is
answered ACCEPTED duplicate=True with that batch's id and never written again, so a rerun
writes nothing new. The gateway id of a letter is `<batch id>/<key>`.

The house drops results files (CSV: key, status, tracking_number, date) in `returns_dir`;
every poll re-reads all of them (receipts are deduplicated by their event id,
`<file name>:<key>:<status>`), and a malformed file is refused whole, naming the file, row and
reason and never a value from it. docs/connect-print-house.md documents the formats.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import hashlib
import io
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import Field

from adapters.base import (
    AdapterOptions,
    DeliveryStatus,
    GatewayAdapter,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    SentMessage,
    StatusReport,
)
from dunning.errors import PermanentGatewayError
from dunning.types import Channel

if TYPE_CHECKING:
    from adapters.registry import AdapterContext

log = logging.getLogger("dunning.adapters")

FORMAT = "dunning-print-drop/1"
"""The manifest's format name (manifest.json `format`): a change to the files changes it."""
MANIFEST_CSV = "manifest.csv"
MANIFEST_JSON = "manifest.json"
INDEX_FILE = ".dunning-index.jsonl"
LOCK_FILE = ".dunning-lock"
TEMP_PREFIX = ".tmp-"
MAX_ADDRESS_LINES = 3
MANIFEST_COLUMNS = (
    "key",
    "file",
    "sha256",
    "bytes",
    "pages",
    "name",
    "address_line1",
    "address_line2",
    "address_line3",
    "city",
    "region",
    "postal_code",
    "country",
    "jurisdiction",
    "template_id",
)
RESULTS_REQUIRED = ("key", "status", "date")
RESULTS_COLUMNS = ("key", "status", "tracking_number", "date")
RESULT_STATUSES = ("mailed", "returned", "failed")

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_BATCH = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}-[0-9]{8}-[0-9a-f]{12}$")
_TRACKING = re.compile(r"^[A-Za-z0-9-]{0,64}$")
# Uncompressed page objects; a PDF whose pages sit in compressed object streams has none, and
# its manifest leaves `pages` empty rather than guess.
_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")


class PrintHouseOptions(AdapterOptions):
    """Options of print-house-letter (config/channels.yaml, providers.<name>.options)."""

    house: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$",
        description="the print house's short name: the batch directories' prefix",
    )
    drop_dir: str | None = Field(
        default=None,
        min_length=1,
        description="where batches are written (the share the house reads); relative paths "
        "are under the state dir; default print-house/<house>/drop",
    )
    returns_dir: str | None = Field(
        default=None,
        min_length=1,
        description="where the house puts its results files; relative paths are under the "
        "state dir; default print-house/<house>/results",
    )
    mailed_status: Literal["pending", "delivered"] = Field(
        default="pending",
        description="what a `mailed` result becomes: pending (the letter stays sent, so a "
        "later `returned` still marks the address) or delivered (handed to the post)",
    )
    max_batch: int | None = Field(default=None, ge=1, le=100_000, description="override")
    fsync: bool = Field(default=True, description="fsync the files and directories")


class ResultsFileError(PermanentGatewayError):
    """A print house's results file that cannot be read: nothing from it is recorded."""


class _NotIndexed(OSError):
    """A batch in the drop whose manifest cannot be read: its keys are unknown."""


@dataclass(frozen=True)
class _Written:
    """What one send wrote: the batch id, and whether its rename is known to be durable."""

    batch_id: str
    durable: bool


@dataclass(frozen=True)
class PrintResult:
    """One row of a results file, as read."""

    file: str
    row: int
    key: str
    status: str
    tracking_number: str
    occurred_at: datetime


class PrintHouseLetterAdapter(GatewayAdapter):
    """Batches of PDFs and a manifest on a directory; results files back (module docstring)."""

    name = "print-house-letter"
    channel = Channel.LETTER
    options_model = PrintHouseOptions
    max_batch = 2000
    rate_per_second = 100_000.0
    deduplicates = True

    def __init__(
        self,
        drop_dir: Path,
        returns_dir: Path,
        options: PrintHouseOptions,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.options = options
        self.drop_dir = Path(drop_dir)
        self.returns_dir = Path(returns_dir)
        self._clock = clock or (lambda: datetime.now(UTC))
        if options.max_batch is not None:
            self.max_batch = options.max_batch  # type: ignore[misc]

    @classmethod
    def from_config(cls, options: PrintHouseOptions, context: AdapterContext) -> Self:
        def under_state(value: str | None, default: str) -> Path:
            path = Path(value or default)
            return path if path.is_absolute() else context.state_dir / path

        base = f"print-house/{options.house}"
        return cls(
            under_state(options.drop_dir, f"{base}/drop"),
            under_state(options.returns_dir, f"{base}/results"),
            options,
        )

    # -- send ---------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        return await asyncio.to_thread(self._send, batch)

    def _send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        results: dict[str, SendResult] = {}
        letters: dict[str, OutboundMessage] = {}
        for message in batch:
            key = message.idempotency_key
            if key in letters or key in results:
                continue  # the same letter twice in one batch: one file, one answer
            refused = _unsendable(message)
            if refused is not None:
                results[key] = refused
            else:
                letters[key] = message
        if letters:
            results.update(self._drop(letters))
        return [results[m.idempotency_key] for m in batch]

    def _drop(self, letters: Mapping[str, OutboundMessage]) -> dict[str, SendResult]:
        answers: dict[str, SendResult] = {}
        new: list[OutboundMessage] = []
        try:
            with self._lock():
                self._sweep_temps()
                known = self._known()
                for key, message in letters.items():
                    earlier = known.get(key)
                    if earlier is not None:
                        answers[key] = SendResult(
                            key, SendOutcome.ACCEPTED, f"{earlier}/{key}", duplicate=True
                        )
                    else:
                        new.append(message)
                if not new:
                    return answers
                written = self._write_batch(new)
                try:
                    self._index(written.batch_id, [m.idempotency_key for m in new])
                except OSError as exc:
                    # The batch is in place; the next send finds it by its manifest.
                    log.warning("%s: index not updated: %s", self.name, type(exc).__name__)
        except OSError as exc:
            # Nothing was renamed into place: the house has none of these letters.
            reason = f"{self.name}: the drop cannot be written: {_short(exc)}"
            log.warning("%s: batch not written: %s", self.name, type(exc).__name__)
            for key in letters:
                answers.setdefault(key, SendResult(key, SendOutcome.RETRY, reason=reason))
            return answers
        log.info("%s: %d letter(s) in batch %s", self.name, len(new), written.batch_id)
        for message in new:
            key = message.idempotency_key
            gateway_id = f"{written.batch_id}/{key}"
            if written.durable:
                answers[key] = SendResult(key, SendOutcome.ACCEPTED, gateway_id)
            else:
                # Renamed, but the rename may not survive a crash: the next claim of the letter
                # finds it in the drop (a duplicate) or writes it then.
                answers[key] = SendResult(
                    key,
                    SendOutcome.AMBIGUOUS,
                    gateway_id,
                    reason=f"{self.name}: batch {written.batch_id} written, not yet durable",
                )
        return answers

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """One writer at a time per drop directory (flock on its lock file)."""
        self.drop_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.drop_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _sweep_temps(self) -> None:
        """Temp directories left by a writer that died before its rename (we hold the lock,
        so no live writer owns one): never seen by the house, removed."""
        for path in self.drop_dir.glob(f"{TEMP_PREFIX}*"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)

    def batches(self) -> list[str]:
        """The batch directories in the drop, by name."""
        return sorted(
            p.name for p in self.drop_dir.iterdir() if p.is_dir() and _BATCH.match(p.name)
        )

    def _known(self) -> dict[str, str]:
        """Every key already in the drop -> its batch id: the index, plus the manifest of any
        batch the index lacks (a crash between a rename and the index's append), which is
        then added to the index."""
        known: dict[str, str] = {}
        indexed: set[str] = set()
        path = self.drop_dir / INDEX_FILE
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    batch_id, keys = entry["batch"], entry["keys"]
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash: that batch's manifest is read below
                if isinstance(batch_id, str) and isinstance(keys, list):
                    indexed.add(batch_id)
                    known.update({str(k): batch_id for k in keys})
        for batch_id in self.batches():
            if batch_id in indexed:
                continue
            keys = self._manifest_keys(batch_id)
            known.update({k: batch_id for k in keys})
            self._index(batch_id, keys)
        return known

    def _manifest_keys(self, batch_id: str) -> list[str]:
        try:
            manifest = json.loads((self.drop_dir / batch_id / MANIFEST_JSON).read_bytes())
            keys = [str(letter["key"]) for letter in manifest["letters"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Fail closed: writing on without knowing its keys could print a letter twice.
            raise _NotIndexed(
                f"batch {batch_id} is not in the index and its {MANIFEST_JSON} cannot be read"
            ) from exc
        return keys

    def _index(self, batch_id: str, keys: Sequence[str]) -> None:
        """Append one line per batch (a torn line is ignored and rebuilt from the manifest)."""
        path = self.drop_dir / INDEX_FILE
        line = json.dumps({"batch": batch_id, "keys": list(keys)}, separators=(",", ":"))
        with open(path, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    handle.write(b"\n")  # end a torn line so this one stands alone
            handle.write(line.encode("utf-8") + b"\n")
            handle.flush()
            if self.options.fsync:
                os.fsync(handle.fileno())

    def _write_batch(self, letters: Sequence[OutboundMessage]) -> _Written:
        keys = sorted(m.idempotency_key for m in letters)
        digest = hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()[:12]
        day = self._clock().astimezone(UTC).strftime("%Y%m%d")
        batch_id = f"{self.options.house}-{day}-{digest}"
        final = self.drop_dir / batch_id
        if final.exists():
            raise FileExistsError(f"batch {batch_id} exists but its keys are not indexed")
        temp = self.drop_dir / f"{TEMP_PREFIX}{batch_id}-{uuid.uuid4().hex[:8]}"
        temp.mkdir()
        try:
            entries = []
            for message in sorted(letters, key=lambda m: m.idempotency_key):
                assert message.document is not None
                file_name = f"{message.idempotency_key}.pdf"
                self._write_file(temp / file_name, message.document)
                entries.append(_entry(message, file_name))
            created = self._clock().astimezone(UTC).isoformat()
            self._write_file(temp / MANIFEST_CSV, _manifest_csv(entries))
            self._write_file(
                temp / MANIFEST_JSON, _manifest_json(self.options.house, batch_id, created, entries)
            )
            self._fsync_dir(temp)
            self._rename(temp, final)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        try:
            self._fsync_dir(self.drop_dir)
        except OSError:
            log.warning("%s: batch %s renamed, the drop not fsynced", self.name, batch_id)
            return _Written(batch_id, durable=False)
        return _Written(batch_id, durable=True)

    def _rename(self, temp: Path, final: Path) -> None:
        """The step that makes a batch visible (a seam for the crash tests)."""
        os.rename(temp, final)

    def _write_file(self, path: Path, data: bytes) -> None:
        with open(path, "xb") as handle:
            handle.write(data)
            handle.flush()
            if self.options.fsync:
                os.fsync(handle.fileno())

    def _fsync_dir(self, path: Path) -> None:
        if not self.options.fsync:
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- results ------------------------------------------------------------------------------

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        wanted = {gid.rpartition("/")[2]: gid for gid in gateway_message_ids}
        return await asyncio.to_thread(self._reports, wanted)

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        wanted = {m.idempotency_key: m.gateway_message_id for m in messages}
        return await asyncio.to_thread(self._reports, wanted)

    def _reports(self, wanted: Mapping[str, str]) -> list[StatusReport]:
        reports = []
        for result in self.read_results():
            gateway_id = wanted.get(result.key)
            if gateway_id is None:
                continue  # not asked about (final already, or not ours)
            reports.append(self._report(result, gateway_id))
        return reports

    def _report(self, result: PrintResult, gateway_id: str) -> StatusReport:
        status = {
            "mailed": DeliveryStatus(self.options.mailed_status),
            "returned": DeliveryStatus.UNDELIVERABLE,
            "failed": DeliveryStatus.FAILED,
        }[result.status]
        words = {
            "mailed": "handed to the post",
            "returned": "returned to sender",
            "failed": "not printed or mailed",
        }[result.status]
        tracking = f", tracking {result.tracking_number}" if result.tracking_number else ""
        return StatusReport(
            gateway_message_id=gateway_id,
            idempotency_key=result.key,
            status=status,
            occurred_at=result.occurred_at,
            reason=f"print house {self.options.house}: {words}{tracking}",
            event_id=f"{result.file}:{result.key}:{result.status}",
            vendor_code=result.status,
        )

    def results_files(self) -> list[Path]:
        """The results files the house has dropped (`*.csv`, not dot-named), by name."""
        if not self.returns_dir.is_dir():
            return []
        return sorted(
            p for p in self.returns_dir.glob("*.csv") if p.is_file() and not p.name.startswith(".")
        )

    def read_results(self) -> list[PrintResult]:
        """Every row of every results file; ResultsFileError for a malformed one."""
        found: list[PrintResult] = []
        for path in self.results_files():
            found.extend(read_results_file(path))
        found.sort(key=lambda r: (r.occurred_at, r.file, r.row))
        return found

    # -- check --------------------------------------------------------------------------------

    async def check(self) -> str | None:
        return await asyncio.to_thread(self._check)

    def _check(self) -> str | None:
        if not self.drop_dir.is_dir():
            return f"{self.name}: drop_dir {self.drop_dir} does not exist"
        probe = self.drop_dir / f"{TEMP_PREFIX}probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            return f"{self.name}: drop_dir {self.drop_dir} is not writable ({_short(exc)})"
        if not self.returns_dir.is_dir():
            return f"{self.name}: returns_dir {self.returns_dir} does not exist"
        try:
            for _ in self.returns_dir.iterdir():
                break
        except OSError as exc:
            return f"{self.name}: returns_dir {self.returns_dir} is not readable ({_short(exc)})"
        return None


def read_results_file(path: Path) -> list[PrintResult]:
    """The rows of one results file, all or none: ResultsFileError names the file, the row
    (the header is row 1) and the reason, and never a value from the file."""
    name = path.name

    def refused(row: int | None, reason: str) -> ResultsFileError:
        where = f"results file {name}" + (f" row {row}" if row is not None else "")
        return ResultsFileError(f"{where}: {reason}; nothing from this file was recorded")

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refused(None, "not UTF-8") from None
    except OSError as exc:
        raise refused(None, f"cannot be read ({_short(exc)})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[PrintResult] = []
    try:
        header = next(reader, None)
        if header is None:
            raise refused(None, "empty (a header row is required)")
        columns = [c.strip().lower() for c in header]
        unknown = [c for c in columns if c not in RESULTS_COLUMNS]
        if unknown:
            raise refused(1, f"unknown column(s); the columns are {', '.join(RESULTS_COLUMNS)}")
        if len(set(columns)) != len(columns):
            raise refused(1, "a column is named twice")
        missing = [c for c in RESULTS_REQUIRED if c not in columns]
        if missing:
            raise refused(1, f"missing column(s): {', '.join(missing)}")
        for number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue  # a blank line
            if len(values) != len(columns):
                raise refused(number, f"{len(values)} fields, the header has {len(columns)}")
            row = {c: v.strip() for c, v in zip(columns, values, strict=True)}
            if not _KEY.match(row["key"]):
                raise refused(number, "key is not an idempotency key")
            status = row["status"].lower()
            if status not in RESULT_STATUSES:
                raise refused(number, f"status is not one of {', '.join(RESULT_STATUSES)}")
            tracking = row.get("tracking_number", "")
            if not _TRACKING.match(tracking):
                raise refused(number, "tracking_number is not letters, digits and dashes")
            occurred = _when(row["date"])
            if occurred is None:
                raise refused(number, "date is not YYYY-MM-DD or an ISO 8601 time with offset")
            rows.append(PrintResult(name, number, row["key"], status, tracking, occurred))
    except csv.Error:
        raise refused(reader.line_num, "not well-formed CSV") from None
    return rows


def _when(value: str) -> datetime | None:
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _unsendable(message: OutboundMessage) -> SendResult | None:
    key = message.idempotency_key

    def refuse(reason: str, code: RejectCode = RejectCode.OTHER) -> SendResult:
        return SendResult(
            key, SendOutcome.REJECTED, reason=f"print-house-letter: {reason}", code=code.value
        )

    if not _KEY.match(key):
        return refuse("the idempotency key cannot name a file")
    address = message.address
    if not address or not [line for line in address.get("lines") or [] if line]:
        return refuse("the letter has no postal address fields (name, lines, city...)")
    if len([line for line in address.get("lines") or [] if line]) > MAX_ADDRESS_LINES:
        return refuse(f"the address has more than {MAX_ADDRESS_LINES} lines")
    if not message.document:
        return refuse("the letter has no rendered PDF", RejectCode.TEMPLATE_INVALID)
    if (
        message.document_sha256 is not None
        and hashlib.sha256(message.document).hexdigest() != message.document_sha256
    ):
        return refuse("the PDF does not match its SHA-256", RejectCode.TEMPLATE_INVALID)
    return None


def _entry(message: OutboundMessage, file_name: str) -> dict[str, Any]:
    document = message.document or b""
    address = message.address or {}
    lines = [str(line) for line in address.get("lines") or [] if line]
    pages = len(_PAGE.findall(document))
    return {
        "key": message.idempotency_key,
        "file": file_name,
        "sha256": hashlib.sha256(document).hexdigest(),
        "bytes": len(document),
        "pages": pages or None,
        "address": {
            "name": str(address.get("name") or ""),
            "lines": lines,
            "city": str(address.get("city") or ""),
            "region": str(address.get("region") or ""),
            "postal_code": str(address.get("postal_code") or ""),
            "country": str(address.get("country") or ""),
        },
        "jurisdiction": message.jurisdiction or "",
        "template_id": message.template_id or "",
    }


def _manifest_csv(entries: Sequence[Mapping[str, Any]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    for entry in entries:
        address = entry["address"]
        lines = [*address["lines"], "", "", ""][:MAX_ADDRESS_LINES]
        writer.writerow(
            [
                entry["key"],
                entry["file"],
                entry["sha256"],
                entry["bytes"],
                "" if entry["pages"] is None else entry["pages"],
                address["name"],
                *lines,
                address["city"],
                address["region"],
                address["postal_code"],
                address["country"],
                entry["jurisdiction"],
                entry["template_id"],
            ]
        )
    return out.getvalue().encode("utf-8")


def _manifest_json(
    house: str, batch_id: str, created_at: str, entries: Sequence[Mapping[str, Any]]
) -> bytes:
    manifest = {
        "format": FORMAT,
        "house": house,
        "batch": batch_id,
        "created_at": created_at,
        "count": len(entries),
        "letters": list(entries),
    }
    return (json.dumps(manifest, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _short(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return text or type(exc).__name__


__all__: list[str] = [
    "FORMAT",
    "PrintHouseLetterAdapter",
    "PrintHouseOptions",
    "PrintResult",
    "ResultsFileError",
    "read_results_file",
]
