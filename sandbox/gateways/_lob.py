"""Mock Lob Print & Mail: the letters API of Lob's v1, as Lob's clients call it.

  POST /v1/letters        create (multipart/form-data, form fields in Lob's bracket notation,
                          or JSON); Idempotency-Key header or idempotency_key query parameter
  GET  /v1/letters/{id}   fetch, with its tracking events
  GET  /v1/letters        list (newest first; `limit`): what a credentials check reads

Field names, codes and shapes are those of Lob's published OpenAPI description
(specs/lob_letters.json, an excerpt of lob-api-bundled.yml, MIT). HTTP Basic auth with the API
key as the user. Like Lob, the mock deduplicates on the idempotency key: a create with a key it
took within the last 24 hours answers the letter that key made (the same `ltr_` id, one ledger
row whose `submissions` counts the requests), whatever the body; an older key is forgotten and
makes a new letter. A create without a key is always a new letter.

Outcomes follow the gateway's receipt simulation (a hash of the key against the configured
rates), except for test addresses that fix them: a `to` whose ZIP code is MAGIC_ZIP_STRICT is
refused at once (422 failed_deliverability_strictness), and one whose first line is
MAGIC_LINE_RETURNED is accepted and then returned to sender. With a webhook_url, each letter's
events (rendered, mailed, in transit, then delivered or returned to sender) are POSTed there
when the letter reaches its final status, signed as Lob signs them (Lob-Signature: hex
HMAC-SHA256 of "{Lob-Signature-Timestamp}.{body}", the timestamp in milliseconds).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.parser
import email.policy
import hashlib
import hmac
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.base import DeliveryStatus
from dunning.config.channels import MockLobSettings
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import Fault
from sandbox.gateways._ledger import LedgerRow, VendorMessage
from sandbox.gateways._receipts import receipt_for
from sandbox.gateways._vendor import VendorContext

log = logging.getLogger("dunning.sandbox")

API = "lob"
CHANNEL = "letter"
KEY_WINDOW = 24 * 3600.0
"""Lob keeps an idempotency key for 24 hours."""
BODY_LIMIT = 16 * 1024 * 1024
"""The largest create the mock reads (a letter PDF of a few megabytes, with the form)."""
MAGIC_ZIP_STRICT = "00000"
"""A `to` ZIP code the mock refuses as Lob refuses an address that fails the account's US mail
strictness setting: 422 failed_deliverability_strictness."""
MAGIC_LINE_RETURNED = "1 RETURN TO SENDER WAY"
"""A `to` first line (any case) the mock accepts, mails, and then returns to sender."""

_STATE = re.compile(r"^[A-Za-z]{2}$")
_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
_PLACEMENTS = (
    "top_first_page",
    "insert_blank_page",
    "bottom_first_page_center",
    "bottom_first_page",
)
_MAIL_TYPES = ("usps_first_class", "usps_standard")
_USE_TYPES = ("marketing", "operational")
_BRACKETS = re.compile(r"^([^\[\]]+)\[([^\[\]]+)\]$")


def _env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [ConfigProblem("config/channels.yaml", key, f"environment variable {name} is not set")]
        )
    return value


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Lob's error body. Messages never echo an address."""
    return JSONResponse(
        {"error": {"message": message, "status_code": status, "code": code}},
        status_code=status,
        headers=headers,
    )


def _iso(unix_seconds: float) -> str:
    moment = datetime.fromtimestamp(unix_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _lob_id(prefix: str, seed: str) -> str:
    return f"{prefix}_{hashlib.sha256(seed.encode()).hexdigest()[:16]}"


def lob_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lob-Signature: hex HMAC-SHA256 with the webhook's secret over "{timestamp}.{body}"."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


# -- reading a create ---------------------------------------------------------------------------


def _nested(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Form fields in Lob's bracket notation (to[name]=...) as nested objects."""
    fields: dict[str, Any] = {}
    for name, value in pairs:
        match = _BRACKETS.match(name)
        if match is None:
            fields[name] = value
            continue
        outer = fields.setdefault(match[1], {})
        if isinstance(outer, dict):
            outer[match[2]] = value
    return fields


def _multipart(content_type: str, raw: bytes) -> dict[str, Any] | None:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    if not message.is_multipart():
        return None
    pairs: list[tuple[str, Any]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            pairs.append((name, data))
        else:
            pairs.append((name, data.decode("utf-8", "replace")))
    return _nested(pairs)


def parse_create(content_type: str, raw: bytes) -> dict[str, Any] | str:
    """The fields of a create, or why they cannot be read."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            payload = json.loads(raw)
        except ValueError:
            return "the body is not JSON"
        return payload if isinstance(payload, dict) else "the body is not an object"
    if kind == "multipart/form-data":
        parsed = _multipart(content_type, raw)
        return parsed if parsed is not None else "the body is not multipart/form-data"
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            return _nested(list(parse_qsl(raw.decode(), keep_blank_values=True)))
        except UnicodeDecodeError:
            return "the body is not form-encoded UTF-8"
    return f"unsupported content type {kind}"


def _flag(fields: Mapping[str, Any], name: str, default: bool | None) -> bool | str | None:
    value = fields.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return f"{name} must be a boolean"


def _address(value: Any, side: str) -> dict[str, str] | tuple[str, str]:
    """An inline address checked as Lob checks one, or (code, message)."""
    if not isinstance(value, dict):
        return "invalid", f"{side} is required and must be an inline address object"
    fields = {k: str(v).strip() for k, v in value.items() if v is not None and str(v).strip()}
    if "name" not in fields and "company" not in fields:
        return "invalid", f"{side} must have a name or a company"
    for name in ("name", "company"):
        if len(fields.get(name, "")) > 40:
            return "invalid", f"{side}.{name} must be at most 40 characters"
    country = fields.setdefault("address_country", "US").upper()
    fields["address_country"] = country
    if "address_line1" not in fields:
        return "invalid", f"{side}.address_line1 is required"
    if len(fields["address_line1"]) > 64 or len(fields.get("address_line2", "")) > 64:
        return "invalid", f"{side}.address_line1 and address_line2 must be at most 64 characters"
    if country == "US":
        for name in ("address_city", "address_state", "address_zip"):
            if name not in fields:
                return "invalid", f"{side}.{name} is required"
        if not _STATE.match(fields["address_state"]):
            return "invalid", f"{side}.address_state must be a 2 letter state code"
        if not _ZIP.match(fields["address_zip"]):
            return "invalid", f"{side}.address_zip must be in the format 12345 or 12345-1234"
    if len(fields["address_line1"]) + len(fields.get("address_line2", "")) > 50 and side == "to":
        return "address_length_exceeds_limit", (
            "the sum of to.address_line1 and to.address_line2 cannot surpass 50 characters"
        )
    return fields


def check_create(fields: Mapping[str, Any]) -> dict[str, Any] | tuple[str, str]:
    """A create's letter (what the ledger keeps), or Lob's (code, message) refusing it."""
    to = _address(fields.get("to"), "to")
    if isinstance(to, tuple):
        return to
    sender = _address(fields.get("from"), "from")
    if isinstance(sender, tuple):
        return sender
    if sender["address_country"] != "US":
        return "foreign_return_address", "the from address must be a US address"
    if to.get("address_zip") == MAGIC_ZIP_STRICT:
        return "failed_deliverability_strictness", (
            "the to address does not meet your account's US mail strictness setting"
        )
    document = fields.get("file")
    if document is None or document == "":
        return "invalid", "file is required"
    if isinstance(document, bytes):
        if not document.startswith(b"%PDF-"):
            return "invalid_file", "file is not a valid PDF"
    elif not isinstance(document, str) or not (
        "<" in document or document.startswith(("https://", "tmpl_"))
    ):
        return "invalid", "file must be HTML, a template id, a URL or a PDF file"
    color = _flag(fields, "color", None)
    if color is None:
        return "invalid", "color is required"
    double_sided = _flag(fields, "double_sided", True)
    for flag in (color, double_sided):
        if isinstance(flag, str):
            return "invalid", flag
    use_type = fields.get("use_type")
    if use_type not in _USE_TYPES:
        return "mail_use_type_can_not_be_null", ("use_type must be one of marketing or operational")
    placement = fields.get("address_placement") or "top_first_page"
    if placement not in _PLACEMENTS:
        return "invalid", f"address_placement must be one of {', '.join(_PLACEMENTS)}"
    mail_type = fields.get("mail_type") or "usps_first_class"
    if mail_type not in _MAIL_TYPES:
        return "invalid", f"mail_type must be one of {', '.join(_MAIL_TYPES)}"
    metadata = fields.get("metadata") or {}
    if not isinstance(metadata, dict) or len(metadata) > 20:
        return "invalid", "metadata must be an object of at most 20 keys"
    for key, value in metadata.items():
        if not isinstance(value, str) or len(key) >= 40 or len(value) >= 500:
            return "invalid", "metadata keys must be under 40 characters, values strings under 500"
        if any(ch in key + value for ch in '"\\'):
            return "invalid", 'metadata cannot contain the characters " and \\'
    description = fields.get("description")
    return {
        "to": to,
        "from": sender,
        "color": color,
        "double_sided": double_sided,
        "address_placement": placement,
        "mail_type": mail_type,
        "use_type": use_type,
        "metadata": metadata,
        "description": description if isinstance(description, str) else None,
        "pdf": isinstance(document, bytes),
    }


# -- the letter resource ------------------------------------------------------------------------


def _address_resource(fields: Mapping[str, str], seed: str, created: str) -> dict[str, Any]:
    upper = {k: v.upper() for k, v in fields.items()}
    country = upper.pop("address_country", "US")
    return {
        "id": _lob_id("adr", seed),
        "description": None,
        "name": upper.get("name"),
        "company": upper.get("company"),
        "phone": None,
        "email": None,
        "address_line1": upper["address_line1"],
        "address_line2": upper.get("address_line2"),
        "address_city": upper.get("address_city", ""),
        "address_state": upper.get("address_state", ""),
        "address_zip": fields.get("address_zip", ""),
        "address_country": "UNITED STATES" if country == "US" else country,
        "metadata": {},
        "date_created": created,
        "date_modified": created,
        "object": "address",
    }


def _events(row: LedgerRow, status: DeliveryStatus, delay: float, now: float) -> list[str]:
    """The tracking events' names the letter has at `now` (USPS scans)."""
    mailed_at = row.accepted_at + delay / 2
    if status is DeliveryStatus.PENDING:
        return ["Mailed"] if delay > 0 and now >= mailed_at else []
    if status is DeliveryStatus.DELIVERED:
        return ["Mailed", "In Transit", "Delivered"]
    if status is DeliveryStatus.UNDELIVERABLE:
        return ["Mailed", "In Transit", "Returned to Sender"]
    return []


def letter_resource(row: LedgerRow, context: VendorContext, now: float) -> dict[str, Any]:
    """The letter of one ledger row, as Lob answers it at `now`."""
    letter = json.loads(row.metadata["letter"])
    to = json.loads(row.recipient)
    created = _iso(row.accepted_at)
    delay = context.rates.delay_seconds
    receipt = receipt_for(row, context.rates, now)
    names = _events(row, receipt.status, delay, now)
    times = [row.accepted_at + delay * f for f in (0.5, 0.75, 1.0)]
    events = [
        {
            "id": _lob_id("evnt", f"{row.id}:{name}"),
            "type": "normal",
            "name": name,
            "details": None,
            "location": None if name == "Mailed" else to.get("address_zip"),
            "time": _iso(at),
            "date_created": _iso(at),
            "date_modified": _iso(at),
            "object": "tracking_event",
        }
        for name, at in zip(names, times, strict=False)
    ]
    resource: dict[str, Any] = {
        "id": row.id,
        "description": letter["description"],
        "metadata": letter["metadata"],
        "to": _address_resource(to, f"{row.id}:to", created),
        "from": _address_resource(letter["from"], f"{row.id}:from", created),
        "color": letter["color"],
        "double_sided": letter["double_sided"],
        "address_placement": letter["address_placement"],
        "return_envelope": False,
        "perforated_page": None,
        "custom_envelope": None,
        "extra_service": None,
        "mail_type": letter["mail_type"],
        "use_type": letter["use_type"],
        "carrier": "USPS",
        "tracking_events": events,
        "expected_delivery_date": (datetime.fromtimestamp(row.accepted_at, UTC) + timedelta(days=5))
        .date()
        .isoformat(),
        "send_date": created,
        "date_created": created,
        "date_modified": _iso(max([row.accepted_at, *(t for t in times[: len(events)])])),
        "object": "letter",
    }
    if receipt.status is DeliveryStatus.FAILED:
        resource["deleted"] = True  # cancelled before it was printed
    return resource


# -- events pushed to the webhook ---------------------------------------------------------------

_EVENT_TYPES = {
    "Mailed": "letter.mailed",
    "In Transit": "letter.in_transit",
    "Delivered": "letter.delivered",
    "Returned to Sender": "letter.returned_to_sender",
}


def letter_events(row: LedgerRow, context: VendorContext, now: float) -> list[dict[str, Any]]:
    """The events Lob sends for one letter that reached its final status, in order."""
    letter = letter_resource(row, context, now)
    types = ["letter.rendered_pdf"]
    if letter.get("deleted"):
        types.append("letter.deleted")
    types += [_EVENT_TYPES[e["name"]] for e in letter["tracking_events"]]
    return [
        {
            "id": _lob_id("evt", f"{row.id}:{kind}"),
            "body": letter,
            "reference_id": row.id,
            "event_type": {
                "id": kind,
                "enabled_for_test": True,
                "resource": "letters",
                "object": "event_type",
            },
            "date_created": letter["date_modified"],
            "object": "event",
        }
        for kind in types
    ]


async def push_letter_events(
    context: VendorContext, settings: MockLobSettings, secret: str, *, limit: int = 200
) -> int:
    """POST the events of each letter that reached its final status, signed; return how many
    letters. One try each (a test pushes again by asking the letter)."""
    assert settings.webhook_url is not None
    now = context.clock()
    due = await run_in_threadpool(
        context.ledger.unpushed, now - context.rates.delay_seconds, limit, API
    )
    if not due:
        return 0
    done: list[str] = []
    async with httpx.AsyncClient(transport=context.transport, timeout=10.0) as client:
        for row in due:
            for event in letter_events(row, context, now):
                body = json.dumps(event, separators=(",", ":")).encode()
                stamp = str(int(context.clock() * 1000))
                try:
                    response = await client.post(
                        settings.webhook_url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            "Lob-Signature": lob_signature(secret, stamp, body),
                            "Lob-Signature-Timestamp": stamp,
                        },
                    )
                    if response.status_code >= 300:
                        log.warning("lob event answered %d", response.status_code)
                except httpx.HTTPError as exc:
                    log.warning("lob event not delivered: %s", type(exc).__name__)
            done.append(row.id)
    await run_in_threadpool(context.ledger.mark_pushed, CHANNEL, done, now)
    return len(done)


# -- the routes ---------------------------------------------------------------------------------


def mount_lob(
    app: FastAPI, settings: MockLobSettings, context: VendorContext
) -> Callable[[], Awaitable[int]] | None:
    """Add the letters API to the mock gateway app; return what pushes the letters' events
    to the webhook (None without a webhook_url).

    Fails closed: an unset API key or webhook secret variable is a ConfigError.
    """
    api_key = _env(settings.api_key_env, "mock_gateway.lob.api_key_env")
    secret = (
        _env(settings.webhook_secret_env, "mock_gateway.lob.webhook_secret_env")
        if settings.webhook_url is not None and settings.webhook_secret_env is not None
        else None
    )
    ledger, clock = context.ledger, context.clock

    def refused(request: Request) -> Response | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        try:
            user = base64.b64decode(encoded, validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            user = ""
        if scheme.lower() == "basic" and hmac.compare_digest(user.encode(), api_key.encode()):
            return None
        return _error(
            401,
            "unauthorized",
            "Your API key is not valid. Please sign up on lob.com to get a valid api key.",
            {"WWW-Authenticate": 'Basic realm="Lob"'},
        )

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return _error(fault.status, "internal_server_error", "An internal error occurred")
        if fault.kind == "throttle":
            return _error(
                429,
                "rate_limit_exceeded",
                "Rate limit exceeded. Please wait and try your request again.",
                {"Retry-After": fault.retry_after_header(clock())},
            )
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return _error(504, "request_timeout", "the request took too long")
        if fault.shape == "invalid-json":
            return Response(b'{"id": "ltr_', media_type="application/json")
        return JSONResponse({"data": "unexpected"})

    @app.post("/v1/letters", tags=["lob"])
    async def create_letter(request: Request) -> Response:
        """Lob's Create a letter: one letter per idempotency key for 24 hours."""
        if (denied := refused(request)) is not None:
            return denied
        header_key = request.headers.get("idempotency-key")
        query_key = request.query_params.get("idempotency_key")
        if header_key is not None and query_key is not None:
            return _error(422, "invalid", "only one idempotency key may be given")
        key = header_key if header_key is not None else query_key
        if key is not None and not 1 <= len(key) <= 256:
            return _error(422, "invalid", "an idempotency key is 1 to 256 characters")
        fault = await context.next_fault(CHANNEL)
        if fault is not None and not fault.commit_first:
            return await faulty(fault)
        raw = await read_body(request, BODY_LIMIT)
        if raw is None:
            return _error(413, "file_size_exceeds_limit", "the request is too large")
        fields = parse_create(request.headers.get("content-type", ""), raw)
        if isinstance(fields, str):
            return _error(422, "bad_request", fields)
        checked = check_create(fields)
        if isinstance(checked, tuple):
            code, text = checked
            return _error(422, code, text)
        document = fields.get("file")
        digest = (
            (hashlib.sha256(document).hexdigest(), len(document))
            if isinstance(document, bytes)
            else None
        )
        to = checked.pop("to")
        checked.pop("pdf")
        metadata = {"letter": json.dumps(checked, sort_keys=True)}
        if to["address_line1"].upper() == MAGIC_LINE_RETURNED:
            metadata["outcome"] = DeliveryStatus.UNDELIVERABLE.value
        message = VendorMessage(
            f"ltr_{uuid.uuid4().hex[:16]}",
            json.dumps(to, sort_keys=True),
            "",
            metadata,
            receipt_wanted=secret is not None,
        )
        now = clock()
        if key is None:
            await run_in_threadpool(ledger.record, CHANNEL, API, [message], now)
            letter_id = message.id
        else:
            letter_id, _ = await run_in_threadpool(
                ledger.record_keyed, CHANNEL, API, key, message, digest, now, KEY_WINDOW
            )
        if fault is not None:
            return await faulty(fault)
        row = (await run_in_threadpool(ledger.find, CHANNEL, [letter_id]))[letter_id]
        return JSONResponse(letter_resource(row, context, now))

    @app.get("/v1/letters/{letter_id}", tags=["lob"])
    async def fetch_letter(letter_id: str, request: Request) -> Response:
        """Lob's Retrieve a letter: its tracking events so far."""
        if (denied := refused(request)) is not None:
            return denied
        fault = await context.next_fault(CHANNEL)
        if fault is not None:
            return await faulty(fault)
        row = (await run_in_threadpool(ledger.find, CHANNEL, [letter_id])).get(letter_id)
        if row is None or row.api != API:
            return _error(404, "not_found", "letter not found")
        return JSONResponse(letter_resource(row, context, clock()))

    @app.get("/v1/letters", tags=["lob"])
    async def list_letters(request: Request) -> Response:
        """Lob's List letters, newest first (`limit`, 10 by default, at most 100)."""
        if (denied := refused(request)) is not None:
            return denied
        try:
            limit = int(request.query_params.get("limit", "10"))
        except ValueError:
            return _error(422, "invalid", "limit must be a whole number")
        if not 1 <= limit <= 100:
            return _error(422, "invalid", "limit must be between 1 and 100")
        now = clock()
        rows = await run_in_threadpool(ledger.vendor_rows, API)
        listed = [letter_resource(row, context, now) for row in reversed(rows)][:limit]
        return JSONResponse(
            {"data": listed, "object": "list", "count": len(listed), "next_url": None}
        )

    if secret is None:
        return None

    async def push() -> int:
        return await push_letter_events(context, settings, secret)

    return push
