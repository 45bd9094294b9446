"""Registry file formats: how report and correction lines are written to and read from a file.

A format turns a whole file's lines into bytes and back; the adapter does the rest (one file per
report date, exactly once per key, atomic replacement). Two are built in: "csv" (the default)
and "jsonl". Another is registered with register_registry_format, or named in the options as
"package.module:ClassName". docs/registry-format.md documents the fields.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, ClassVar, Literal

RecordType = Literal["REPORT", "CORRECTION"]
REPORT: RecordType = "REPORT"
CORRECTION: RecordType = "CORRECTION"


@dataclass(frozen=True)
class RegistryLine:
    """One line of a registry file: a report of a delinquent account, or a correction."""

    record_type: RecordType
    line_id: str
    """The idempotency key of the request that wrote it: unique within its file."""
    report_date: date
    """The report (file) the line belongs to."""
    account_ref: str
    customer_ref: str
    customer_name: str | None
    opened_on: date | None
    currency: str | None
    balance_minor: int | None
    overdue_minor: int | None
    dpd: int | None
    status: str
    """REPORT: "delinquent"; CORRECTION: the account's status now (e.g. "current")."""
    corrects: str | None
    """CORRECTION: the reference of the REPORT line it corrects."""
    reason: str | None

    @property
    def reference(self) -> str:
        """How other lines (and the engine) refer to this one: "<report date>/<line id>"."""
        return f"{self.report_date.isoformat()}/{self.line_id}"


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RegistryLine))
"""The fields of a line, in file order."""

_DATES = frozenset({"report_date", "opened_on"})
_NUMBERS = frozenset({"balance_minor", "overdue_minor", "dpd"})
_REQUIRED = frozenset({"record_type", "line_id", "report_date", "account_ref", "customer_ref"})


class RegistryFileError(ValueError):
    """A registry file that cannot be read in the configured format."""


def split_reference(reference: str) -> tuple[date, str] | None:
    """(report date, line id) of a line reference, or None if it is not one."""
    head, sep, line_id = reference.partition("/")
    if not sep or not line_id:
        return None
    try:
        return date.fromisoformat(head), line_id
    except ValueError:
        return None


def line_from_fields(values: Mapping[str, Any], where: str) -> RegistryLine:
    """A line from field values as text or JSON (missing or empty optional values are None)."""
    if set(values) != set(COLUMNS):
        raise RegistryFileError(f"{where}: the fields are not those of a registry line")
    parsed: dict[str, Any] = {}
    for name in COLUMNS:
        value = values[name]
        if value is None or value == "":
            if name in _REQUIRED or name == "status":
                raise RegistryFileError(f"{where}: {name} is empty")
            parsed[name] = None
            continue
        try:
            if name in _DATES:
                parsed[name] = date.fromisoformat(str(value))
            elif name in _NUMBERS:
                if isinstance(value, bool) or not isinstance(value, int | str):
                    raise ValueError(name)
                parsed[name] = int(value)
            else:
                if not isinstance(value, str):
                    raise ValueError(name)
                parsed[name] = value
        except ValueError:
            raise RegistryFileError(f"{where}: {name} is not valid") from None
    if parsed["record_type"] not in (REPORT, CORRECTION):
        raise RegistryFileError(f"{where}: record_type is neither REPORT nor CORRECTION")
    return RegistryLine(**parsed)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


class RegistryFormat(ABC):
    """How a registry file is written and read; one instance serves any number of files."""

    name: ClassVar[str]
    """What `format:` says in the file-registry's options."""
    suffix: ClassVar[str]
    """The file name's extension, with its dot."""

    @abstractmethod
    def dumps(self, lines: Sequence[RegistryLine]) -> bytes:
        """The whole file holding these lines, in this order."""

    @abstractmethod
    def loads(self, data: bytes) -> list[RegistryLine]:
        """The lines of a whole file; RegistryFileError if it is not in this format."""


class CsvRegistryFormat(RegistryFormat):
    """UTF-8 CSV (RFC 4180 quoting, LF line ends), a header row, then one row per line."""

    name = "csv"
    suffix = ".csv"

    def dumps(self, lines: Sequence[RegistryLine]) -> bytes:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for line in lines:
            writer.writerow(_text(getattr(line, name)) for name in COLUMNS)
        return buffer.getvalue().encode("utf-8")

    def loads(self, data: bytes) -> list[RegistryLine]:
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryFileError("the file is not UTF-8") from None
        rows = csv.reader(io.StringIO(content, newline=""))
        header = next(rows, None)
        if header is None:
            return []
        if tuple(header) != COLUMNS:
            raise RegistryFileError("the header is not that of the csv registry format")
        lines = []
        for number, row in enumerate(rows, start=2):
            if len(row) != len(COLUMNS):
                raise RegistryFileError(f"line {number}: {len(row)} fields, not {len(COLUMNS)}")
            lines.append(line_from_fields(dict(zip(COLUMNS, row, strict=True)), f"line {number}"))
        return lines


class JsonLinesRegistryFormat(RegistryFormat):
    """UTF-8 JSON Lines: one object per line with every field; absent values are null."""

    name = "jsonl"
    suffix = ".jsonl"

    def dumps(self, lines: Sequence[RegistryLine]) -> bytes:
        out = []
        for line in lines:
            record = {name: _json(getattr(line, name)) for name in COLUMNS}
            out.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        return "".join(out).encode("utf-8")

    def loads(self, data: bytes) -> list[RegistryLine]:
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise RegistryFileError("the file is not UTF-8") from None
        lines = []
        for number, text in enumerate(content.splitlines(), start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError:
                raise RegistryFileError(f"line {number}: not JSON") from None
            if not isinstance(record, dict):
                raise RegistryFileError(f"line {number}: not a JSON object")
            lines.append(line_from_fields(record, f"line {number}"))
        return lines


_FORMATS: dict[str, type[RegistryFormat]] = {
    CsvRegistryFormat.name: CsvRegistryFormat,
    JsonLinesRegistryFormat.name: JsonLinesRegistryFormat,
}


def register_registry_format(cls: type[RegistryFormat]) -> type[RegistryFormat]:
    """Make a format available by its name (usable as a class decorator)."""
    _FORMATS[cls.name] = cls
    return cls


def registry_formats() -> list[str]:
    return sorted(_FORMATS)


def registry_format(name: str) -> RegistryFormat:
    """The format registered as `name`, or the class at "package.module:ClassName"."""
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError):
            raise ValueError(f"cannot import {name}") from None
        if not (isinstance(found, type) and issubclass(found, RegistryFormat)):
            raise ValueError(f"{name} is not a RegistryFormat")
        return found()
    cls = _FORMATS.get(name)
    if cls is None:
        raise ValueError(f"no registry format {name!r}; formats: {', '.join(registry_formats())}")
    return cls()
