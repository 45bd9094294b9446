"""Structured logs: one event per line, context fields, and personal data masked whoever logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from dunning.logs import configure_logging, log_context, mask_text


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = configure_logging(level="INFO", fmt="json", stream=buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call +8613812345678 now", "call +86*******5678 now"),
        ("call +86 138 1234 5678 now", "call +86*******5678 now"),
        ("call 138 1234 5678 now", "call *******5678 now"),
        ("US (312) 555-0142 or 312.555.0142", "US ******0142 or ******0142"),
        ("to +13125550142.", "to +1******0142."),
        ("mail ann.lee+x@example.com ok", "mail [email] ok"),
    ],
)
def test_phone_numbers_and_emails_are_masked(text: str, expected: str) -> None:
    assert mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "as_of 2026-11-24 at 2026-11-24T07:30:00+08:00",
        "batch plan-100001-105000 of 1000-20000",
        "run 42 took 12.5 s, 1,234,567 accounts",
        "flow run 918d88a5-8678-4ddc-8d65-04da1bc9a2a6",
    ],
)
def test_dates_ranges_and_ids_survive(text: str) -> None:
    assert mask_text(text) == text


def test_a_log_line_with_a_phone_number_comes_out_masked(stream: io.StringIO) -> None:
    log = logging.getLogger("dunning.test")
    with log_context(run_id=7, flow="daily-outreach", as_of="2026-11-24"):
        log.info(
            "gateway refused %s for %s", "+8613812345678", "ann@example.com", extra={"batch": 3}
        )
    (event,) = lines(stream)
    assert event["event"] == "gateway refused +86*******5678 for [email]"
    assert "13812345678" not in stream.getvalue()
    assert event["run_id"] == 7 and event["flow"] == "daily-outreach"
    assert event["as_of"] == "2026-11-24" and event["batch"] == 3
    assert event["level"] == "info" and event["logger"] == "dunning.test"


def test_foreign_loggers_extras_and_tracebacks_are_masked(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad recipient +13125550142")
    except ValueError:
        logging.getLogger("httpx").error("send failed", exc_info=True, extra={"to": "+13125550142"})
    (event,) = lines(stream)
    assert "3125550142" not in stream.getvalue()
    assert event["to"] == "+1******0142"
    assert "ValueError: bad recipient +1******0142" in str(event["exc"])


def test_key_value_format_is_one_event_per_line() -> None:
    buffer = io.StringIO()
    handler = configure_logging(level="INFO", fmt="kv", stream=buffer)
    try:
        logging.getLogger("dunning.test").info("two\nlines +8613812345678", extra={"flow": "x"})
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = buffer.getvalue().splitlines()
    assert 'event="two\\nlines +86*******5678"' in line and "flow=x" in line


def test_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of json, kv"):
        configure_logging(fmt="xml")
