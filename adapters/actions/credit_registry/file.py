"""file-registry: credit-registry reports and corrections as files, one per report date.

Each request becomes one line of `<directory>/<prefix>-<report date><suffix>` (by default
`<state dir>/registry/delinquency-YYYY-MM-DD.csv`), exactly once: the line id is the request's
idempotency key, and a key already in the file is answered as a duplicate with the reference
of its line. Writers hold an exclusive lock on the directory (flock) and replace the file
atomically (temp file, fsync, rename, fsync of the directory), so a reader never sees half a
file and a crash leaves either the old file or the new one. docs/registry-format.md documents
the format.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Self

from pydantic import Field, field_validator

from adapters.actions._checks import check_batch
from adapters.actions.base import ActionAdapter, ActionKind, ActionRequest, ActionResult
from adapters.actions.credit_registry._formats import (
    CORRECTION,
    REPORT,
    RegistryFileError,
    RegistryFormat,
    RegistryLine,
    registry_format,
    split_reference,
)
from adapters.actions.fields import (
    Invalid,
    a_date,
    currency,
    days,
    field_error,
    minor,
    optional_date,
    text,
)
from adapters.base import AdapterOptions, SendOutcome

if TYPE_CHECKING:
    from adapters.registry import ActionAdapterContext

log = logging.getLogger("dunning.adapters")

DEFAULT_DIRECTORY = "registry"
REPORT_STATUS = "delinquent"
_STATUS = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"


class FileRegistryOptions(AdapterOptions):
    """Options of file-registry (config/actions.yaml, adapters.registry.options)."""

    directory: str = Field(
        default=DEFAULT_DIRECTORY,
        min_length=1,
        description="where the files go; relative paths are under the state dir",
    )
    format: str = Field(
        default="csv", description='"csv", "jsonl", or a RegistryFormat as "module:Class"'
    )
    file_prefix: str = Field(
        default="delinquency",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
        description="file names are <prefix>-YYYY-MM-DD<suffix>",
    )
    max_batch: int | None = Field(default=None, ge=1, le=100_000, description="override")
    fsync: bool = Field(default=True, description="fsync each file and the directory")

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        registry_format(value)  # ValueError names the formats there are
        return value


class RegistryFiles:
    """The registry files in one directory, in one format: find, read, lock, replace."""

    def __init__(
        self,
        directory: Path,
        format: RegistryFormat | str = "csv",
        *,
        prefix: str = "delinquency",
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.format = registry_format(format) if isinstance(format, str) else format
        self.prefix = prefix
        self.fsync = fsync

    def path(self, report_date: date) -> Path:
        return self.directory / f"{self.prefix}-{report_date.isoformat()}{self.format.suffix}"

    def dates(self) -> list[date]:
        """The report dates that have a file, oldest first."""
        found = []
        start = len(self.prefix) + 1
        for path in self.directory.glob(f"{self.prefix}-{_DATE_GLOB}{self.format.suffix}"):
            try:
                found.append(date.fromisoformat(path.name[start : start + 10]))
            except ValueError:
                continue
        return sorted(found)

    def read(self, report_date: date) -> list[RegistryLine]:
        """The lines of one report date's file ([] if there is none)."""
        path = self.path(report_date)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            return self.format.loads(data)
        except RegistryFileError as exc:
            raise RegistryFileError(f"{path.name}: {exc}") from None

    def lines(self) -> list[RegistryLine]:
        """Every line of every file, by report date and then in file order."""
        return [line for day in self.dates() for line in self.read(day)]

    def find(self, reference: str) -> RegistryLine | None:
        """The line with this reference ("<report date>/<line id>"), if it exists."""
        parts = split_reference(reference)
        if parts is None:
            return None
        report_date, line_id = parts
        return next((line for line in self.read(report_date) if line.line_id == line_id), None)

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive across processes and threads: flock on the directory's lock file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def replace(self, report_date: date, lines: Sequence[RegistryLine]) -> None:
        """Write the whole file atomically; hold lock() around read-then-replace."""
        path = self.path(report_date)
        data = self.format.dumps(lines)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        if self.fsync:
            # The rename is durable only once the directory entry is on disk too.
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _report_line(request: ActionRequest) -> RegistryLine:
    payload = request.payload
    return RegistryLine(
        record_type=REPORT,
        line_id=request.idempotency_key,
        report_date=a_date(payload, "report_date"),
        account_ref=text({"account_ref": request.account_ref}, "account_ref", max_length=64),
        customer_ref=text(payload, "customer_ref", max_length=64),
        customer_name=text(payload, "customer_name"),
        opened_on=optional_date(payload, "opened_on"),
        currency=currency(payload),
        balance_minor=minor(payload, "balance_minor"),
        overdue_minor=minor(payload, "overdue_minor"),
        dpd=days(payload, "dpd"),
        status=REPORT_STATUS,
        corrects=None,
        reason=None,
    )


def _correction_line(request: ActionRequest) -> RegistryLine:
    payload = request.payload
    status = payload.get("status")
    if not isinstance(status, str) or not _STATUS.match(status):
        raise field_error("status", "must be a lowercase word such as current")
    corrects = text(payload, "report_reference", max_length=300)
    if split_reference(corrects) is None:
        raise field_error("report_reference", "must be a line reference, YYYY-MM-DD/<line id>")
    return RegistryLine(
        record_type=CORRECTION,
        line_id=request.idempotency_key,
        report_date=a_date(payload, "report_date"),
        account_ref=text({"account_ref": request.account_ref}, "account_ref", max_length=64),
        customer_ref=text(payload, "customer_ref", max_length=64),
        customer_name=None,
        opened_on=None,
        currency=None,
        balance_minor=None,
        overdue_minor=None,
        dpd=None,
        status=status,
        corrects=corrects,
        reason=text(payload, "reason"),
    )


class FileRegistryAdapter(ActionAdapter):
    """Writes registry_report and registry_correction lines to the registry files."""

    name = "file-registry"
    kinds = frozenset({ActionKind.REGISTRY_REPORT, ActionKind.REGISTRY_CORRECTION})
    options_model = FileRegistryOptions
    max_batch = 1000

    def __init__(self, directory: Path, options: FileRegistryOptions | None = None) -> None:
        self.options = options if options is not None else FileRegistryOptions()
        if self.options.max_batch is not None:
            self.max_batch = self.options.max_batch  # type: ignore[misc]
        self.files = RegistryFiles(
            directory,
            self.options.format,
            prefix=self.options.file_prefix,
            fsync=self.options.fsync,
        )

    @classmethod
    def from_config(cls, options: FileRegistryOptions, context: ActionAdapterContext) -> Self:
        directory = Path(options.directory)
        if not directory.is_absolute():
            directory = context.state_dir / directory
        return cls(directory, options)

    async def perform(self, batch: Sequence[ActionRequest]) -> list[ActionResult]:
        check_batch(self.name, self.kinds, batch)
        return await asyncio.to_thread(self._write, batch)

    def _write(self, batch: Sequence[ActionRequest]) -> list[ActionResult]:
        results: dict[str, ActionResult] = {}
        groups: dict[date, list[RegistryLine]] = {}
        seen: set[str] = set()
        for request in batch:
            key = request.idempotency_key
            if key in seen:
                continue  # the same request twice in one batch: one line, one answer
            seen.add(key)
            try:
                line = (
                    _report_line(request)
                    if request.kind == ActionKind.REGISTRY_REPORT
                    else _correction_line(request)
                )
            except Invalid as invalid:
                results[key] = _rejected(key, invalid.code, invalid.reason)
                continue
            groups.setdefault(line.report_date, []).append(line)
        try:
            with self.files.lock():
                written: dict[date, list[RegistryLine]] = {}
                for report_date, lines in groups.items():
                    results.update(self._write_one(report_date, lines, written))
        except (OSError, RegistryFileError) as exc:
            reason = f"registry file: {_short(exc)}"
            log.warning("%s: cannot write the registry file: %s", self.name, type(exc).__name__)
            for lines in groups.values():
                for line in lines:
                    results.setdefault(
                        line.line_id, ActionResult(line.line_id, SendOutcome.RETRY, reason=reason)
                    )
        return [results[request.idempotency_key] for request in batch]

    def _write_one(
        self,
        report_date: date,
        lines: Sequence[RegistryLine],
        written: dict[date, list[RegistryLine]],
    ) -> dict[str, ActionResult]:
        """Add the new lines to one report date's file; the answers, once it is written."""
        existing = self.files.read(report_date)
        by_id = {line.line_id: line for line in existing}
        answers: dict[str, ActionResult] = {}
        new: list[RegistryLine] = []
        for line in lines:
            key = line.line_id
            found = by_id.get(key)
            if found is not None:
                if found.record_type != line.record_type:
                    answers[key] = _rejected(
                        key, "idempotency_key_reused", f"the key names a {found.record_type} line"
                    )
                else:
                    answers[key] = ActionResult(
                        key, SendOutcome.ACCEPTED, reference=found.reference, duplicate=True
                    )
                continue
            if line.record_type == CORRECTION:
                problem = self._correction_problem(line, report_date, by_id, written)
                if problem is not None:
                    answers[key] = _rejected(key, *problem)
                    continue
            new.append(line)
            by_id[key] = line
            answers[key] = ActionResult(key, SendOutcome.ACCEPTED, reference=line.reference)
        if new:
            self.files.replace(report_date, [*existing, *new])
            written[report_date] = [*existing, *new]
            log.info(
                "%s: %d line(s) added to %s",
                self.name,
                len(new),
                self.files.path(report_date).name,
            )
        return answers

    def _correction_problem(
        self,
        line: RegistryLine,
        report_date: date,
        by_id: dict[str, RegistryLine],
        written: dict[date, list[RegistryLine]],
    ) -> tuple[str, str] | None:
        assert line.corrects is not None
        parts = split_reference(line.corrects)
        assert parts is not None
        corrected_date, corrected_id = parts
        if corrected_date == report_date:
            corrected = by_id.get(corrected_id)
        else:
            others = written.get(corrected_date)
            if others is None:
                others = self.files.read(corrected_date)
            corrected = next((o for o in others if o.line_id == corrected_id), None)
        if corrected is None or corrected.record_type != REPORT:
            return "unknown_report", "report_reference names no report line"
        if corrected.account_ref != line.account_ref:
            return "account_mismatch", "the report line is about another account"
        return None


def _rejected(key: str, code: str, reason: str) -> ActionResult:
    return ActionResult(key, SendOutcome.REJECTED, reason=f"{code}: {reason}")


def _short(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def read_registry(
    directory: Path, format: RegistryFormat | str = "csv", *, prefix: str = "delinquency"
) -> list[RegistryLine]:
    """Every line in the registry files of `directory` (tests, tools, the demo)."""
    return RegistryFiles(directory, format, prefix=prefix).lines()


__all__: list[str] = [
    "DEFAULT_DIRECTORY",
    "FileRegistryAdapter",
    "FileRegistryOptions",
    "RegistryFiles",
    "read_registry",
]
