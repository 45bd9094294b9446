"""Structured logging with personal data masked: one event per line, as JSON or key=value.

Every record, whoever logs it (Dunning, APScheduler, Prefect, httpx), has phone numbers and e-mail
addresses masked in its message and exception text before any handler sees it: `install_masking`
wraps the log record factory, and `PiiFilter` guards handlers as well. Names and addresses cannot
be recognised in free text, so the rule stays: never pass them to a logger. Context fields (run id,
flow, as-of, batch) come from `log_context` or a call's `extra`, never from the message.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime
from typing import Any, TextIO

from dunning.masking import mask_text

CONTEXT_FIELDS = ("run_id", "flow", "as_of", "batch", "stage", "flow_run_id")
FORMATS = ("json", "kv")

_context: ContextVar[dict[str, Any]] = ContextVar("dunning_log_context", default={})  # noqa: B039

_MASKED = "_dunning_masked"
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    _MASKED,
}


def mask_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the record's message, exception text and string extras.

    The record factory masks message and exception as records are made; extras are attached
    after that, so the handler filter and the formatters mask them (masking is idempotent).
    """
    if not getattr(record, _MASKED, False):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the event
            message = f"{record.msg!s} {record.args!r}"
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask_text(
                "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            )
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        setattr(record, _MASKED, True)
    for key, value in list(record.__dict__.items()):
        if key not in _STANDARD and isinstance(value, str):
            setattr(record, key, mask_text(value))
    return record


class PiiFilter(logging.Filter):
    """A handler filter that masks what reaches the handler (records created before masking)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def install_masking() -> None:
    """Mask every log record from now on, in every logger and handler of this process."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, _MASKED, False):
        return

    def masked(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return mask_record(factory(*args, **kwargs))

    setattr(masked, _MASKED, True)
    logging.setLogRecordFactory(masked)
    guard_handlers()


def guard_handlers() -> None:
    """Put a PiiFilter on every handler configured so far (Prefect's console and API too)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers.extend(
        item
        for item in logging.root.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    )
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, PiiFilter) for f in handler.filters):
                handler.addFilter(PiiFilter())


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add context fields (run_id, flow, as_of, batch, ...) to every record logged inside."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return mask_text(str(value))


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record as one flat event: time, level, logger, message, context and extras."""
    mask_record(record)
    fields: dict[str, Any] = {
        "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "event": record.getMessage(),
    }
    for key, value in _context.get().items():
        fields[key] = _plain(value)
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = _plain(value)
    if record.exc_text:
        fields["exc"] = record.exc_text
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(event_fields(record), ensure_ascii=False, default=str)


def _kv(value: Any) -> str:
    text = "" if value is None else str(value)
    if text and not re.search(r'[\s="]', text):
        return text
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_kv(value)}" for key, value in event_fields(record).items())


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (test capture swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_HANDLER_NAME = "dunning-structured"


def configure_logging(
    level: str | int | None = None, fmt: str | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """Structured, masked logs on stderr (or `stream`) for the CLI and the scheduler.

    Level and format default to DUNNING_LOG_LEVEL (INFO) and DUNNING_LOG_FORMAT (json or kv).
    Calling it again replaces the handler it installed before.
    """
    level = level or os.environ.get("DUNNING_LOG_LEVEL", "INFO")
    fmt = (fmt or os.environ.get("DUNNING_LOG_FORMAT", "json")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    install_masking()
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler: logging.Handler = (
        logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    )
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    handler.addFilter(PiiFilter())
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    for name in ("dunning", "apscheduler"):
        logging.getLogger(name).setLevel(level if isinstance(level, int) else level.upper())
    guard_handlers()
    return handler


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("dunning") else f"dunning.{name}")
