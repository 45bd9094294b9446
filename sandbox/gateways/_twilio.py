"""Mock Twilio Programmable Messaging: the Messages API of 2010-04-01, as Twilio's SDKs call it.

  POST /2010-04-01/Accounts/{AccountSid}/Messages.json        create (form fields)
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  fetch
  GET  /2010-04-01/Accounts/{AccountSid}/Messages.json        list (To, From, DateSent filters)
  GET  /2010-04-01/Accounts/{AccountSid}.json                 the account (credentials checks)

Field names and status words are those of Twilio's published OpenAPI description
(specs/twilio_api_v2010_messages.json, an excerpt, MIT). HTTP Basic auth with the account SID
and auth token, or an API key SID and secret. Like Twilio, the mock never deduplicates: a
repeated POST is a second message (a second ledger row), which is what an adapter's
exactly-once has to cope with.

Outcomes follow the gateway's receipt simulation (a hash of the message SID against the
configured rates), except for test numbers that fix them, after Twilio's own magic numbers:
synchronous refusals (MAGIC_TO, MAGIC_FROM) and carrier failures (CARRIER_TO). A message with a
StatusCallback gets one signed form POST (X-Twilio-Signature) when it reaches its final status.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.base import DeliveryStatus
from dunning.config.channels import MockTwilioSettings, ReceiptSimulation
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import Fault
from sandbox.gateways._ledger import LedgerRow, VendorMessage
from sandbox.gateways._receipts import receipt_for
from sandbox.gateways._vendor import VENDOR_BODY_LIMIT, VendorContext

log = logging.getLogger("dunning.sandbox")

API = "twilio"
API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"
POOL_SENDER = "+15005550006"
"""The sender a Messaging Service picks from its pool (Twilio's valid test `From`)."""
PRICE_PER_SEGMENT = "0.00790"

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
_MAX_CHARS = 1600

MAGIC_TO: dict[str, tuple[int, str]] = {
    "+15005550001": (21211, "The 'To' number is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
"""Recipients Twilio refuses at once (400), as with its test credentials."""

MAGIC_FROM: dict[str, tuple[int, str]] = {
    "+15005550001": (21212, "The 'From' number is not a valid phone number or shortcode."),
    "+15005550007": (21606, "The 'From' phone number is not a valid, SMS-capable number."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum of queued messages."),
}
"""Senders Twilio refuses at once (400)."""

CARRIER_ERRORS: dict[int, str] = {
    30003: "Unreachable destination handset",
    30004: "Message blocked",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Message filtered",
    30008: "Unknown error",
}

CARRIER_TO: dict[str, int] = {f"+150055503{code - 30000:02d}": code for code in CARRIER_ERRORS}
"""The mock's own test numbers (+15005550303 ... +15005550308): accepted, then the carrier
fails them with error 30003 ... 30008 (30008 `failed`, the others `undelivered`)."""

_STATUS = {
    DeliveryStatus.DELIVERED: "delivered",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.UNDELIVERABLE: "undelivered",
}
_UNDELIVERED_CODES = (30003, 30005, 30006)

# GSM 03.38: the default alphabet, and the extension table whose characters count twice.
_GSM7 = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body`: GSM-7 160 (153 per part), else UCS-2
    70 (67 per part)."""
    if all(ch in _GSM7 or ch in _GSM7_EXTENSION for ch in body):
        units = len(body) + sum(ch in _GSM7_EXTENSION for ch in body)
        single, part = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, part = 70, 67
    return 1 if units <= single else -(-units // part)


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """X-Twilio-Signature: HMAC-SHA1 with the auth token over the full URL followed by each
    POST parameter's name and value, sorted by name; base64."""
    text = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [ConfigProblem("config/channels.yaml", key, f"environment variable {name} is not set")]
        )
    return value


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Twilio's error body. Messages never echo a phone number or body."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers=headers,
    )


def _basic_user(request: Request) -> str:
    """The user name of the request's HTTP Basic credentials ("" without any)."""
    _, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _rfc2822(unix_seconds: float | None) -> str | None:
    if unix_seconds is None:
        return None
    return format_datetime(datetime.fromtimestamp(int(unix_seconds), UTC))


class _Timeline:
    """Where a message is at `now`: queued (or accepted), sent, then its final status."""

    def __init__(self, row: LedgerRow, rates: ReceiptSimulation, now: float) -> None:
        meta = row.metadata
        receipt = receipt_for(row, rates, now)
        sent_at = row.accepted_at + rates.delay_seconds / 2
        self.error_code: int | None = None
        self.date_sent: float | None = None
        self.final = receipt.status is not DeliveryStatus.PENDING
        if not self.final:
            if now < sent_at:
                self.status, self.updated = meta.get("initial_status", "queued"), row.accepted_at
            else:
                self.status, self.updated, self.date_sent = "sent", sent_at, sent_at
            return
        self.status, self.updated = _STATUS[receipt.status], receipt.occurred_at
        if receipt.status is not DeliveryStatus.FAILED:
            self.date_sent = sent_at
        if "error_code" in meta:
            self.error_code = int(meta["error_code"])
        elif receipt.status is DeliveryStatus.FAILED:
            self.error_code = 30008
        elif receipt.status is DeliveryStatus.UNDELIVERABLE:
            draw = hashlib.sha256(row.id.encode()).digest()[0]
            self.error_code = _UNDELIVERED_CODES[draw % len(_UNDELIVERED_CODES)]

    @property
    def sender_known(self) -> bool:
        return self.status not in ("accepted", "queued")


def message_resource(
    row: LedgerRow, rates: ReceiptSimulation, now: float, *, created: bool = False
) -> dict[str, Any]:
    """The Message resource of one ledger row, as Twilio answers it at `now`; `created`: the
    answer to its creation, always `queued` (or `accepted`), whatever the delay."""
    meta = row.metadata
    account = meta["account_sid"]
    uri = f"/{API_VERSION}/Accounts/{account}/Messages/{row.id}"
    at = _Timeline(row, rates, row.accepted_at - 1 if created else now)
    sender = meta.get("from") or (POOL_SENDER if at.sender_known else None)
    billed = at.date_sent is not None and at.status != "failed"
    return {
        "account_sid": account,
        "api_version": API_VERSION,
        "body": row.body,
        "date_created": _rfc2822(row.accepted_at),
        "date_sent": _rfc2822(at.date_sent),
        "date_updated": _rfc2822(at.updated),
        "direction": "outbound-api",
        "error_code": at.error_code,
        "error_message": CARRIER_ERRORS.get(at.error_code) if at.error_code else None,
        "from": sender,
        "messaging_service_sid": meta.get("messaging_service_sid"),
        "num_media": "0",
        "num_segments": meta["num_segments"],
        "price": f"-{float(PRICE_PER_SEGMENT) * int(meta['num_segments']):.5f}" if billed else None,
        "price_unit": "USD",
        "sid": row.id,
        "status": at.status,
        "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
        "to": row.recipient,
        "uri": f"{uri}.json",
    }


def _date_filter(value: str) -> tuple[str, str] | None:
    """A DateSent filter value as (kind, comparable): a GMT day YYYY-MM-DD, or an ISO 8601
    date-time (what the SDKs send)."""
    try:
        if len(value) == 10:
            return "day", datetime.strptime(value, "%Y-%m-%d").date().isoformat()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return "moment", moment.astimezone(UTC).isoformat()


def _matches(resource: dict[str, Any], filters: dict[str, tuple[str, str]]) -> bool:
    sent_at = _sent_at(resource)
    for name, (kind, bound) in filters.items():
        if sent_at is None:
            return False  # Twilio filters on date_sent: a message not sent yet is not listed
        value = sent_at.date().isoformat() if kind == "day" else sent_at.isoformat()
        if name == "DateSent" and value != bound:
            return False
        if name == "DateSent<" and value > bound:
            return False
        if name == "DateSent>" and value < bound:
            return False
    return True


def _sent_at(resource: dict[str, Any]) -> datetime | None:
    text = resource["date_sent"]
    if text is None:
        return None
    return datetime.strptime(text, "%a, %d %b %Y %H:%M:%S %z").astimezone(UTC)


async def push_status_callbacks(
    context: VendorContext, auth_token: str, *, limit: int = 500
) -> int:
    """POST each final status to its message's StatusCallback, signed; return how many went.

    One try per message, as Twilio makes (it does not retry a failed status callback): the
    receiver that misses one learns the status by fetching the message.
    """
    now = context.clock()
    due = await run_in_threadpool(
        context.ledger.unpushed, now - context.rates.delay_seconds, limit, API
    )
    if not due:
        return 0
    tried: list[str] = []
    async with httpx.AsyncClient(transport=context.transport, timeout=10.0) as client:
        for row in due:
            resource = message_resource(row, context.rates, now)
            params = {
                "AccountSid": resource["account_sid"],
                "ApiVersion": API_VERSION,
                "From": resource["from"] or POOL_SENDER,
                "MessageSid": row.id,
                "MessageStatus": resource["status"],
                "SmsSid": row.id,
                "SmsStatus": resource["status"],
                "To": row.recipient,
            }
            if resource["error_code"] is not None:
                params["ErrorCode"] = str(resource["error_code"])
            if resource["messaging_service_sid"]:
                params["MessagingServiceSid"] = resource["messaging_service_sid"]
            url = row.metadata["status_callback"]
            try:
                response = await client.post(
                    url,
                    content=urlencode(params).encode(),
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        SIGNATURE_HEADER: twilio_signature(auth_token, url, params),
                        "User-Agent": "TwilioProxy/1.1",
                    },
                )
                if response.status_code >= 300:
                    log.warning("status callback answered %d", response.status_code)
            except httpx.HTTPError as exc:
                log.warning("status callback not delivered: %s", type(exc).__name__)
            tried.append(row.id)
    await run_in_threadpool(context.ledger.mark_pushed, "sms", tried, now)
    return len(tried)


def mount_twilio(
    app: FastAPI, settings: MockTwilioSettings, context: VendorContext
) -> tuple[str, str]:
    """Add the Messages API to the mock gateway app; return the auth token (which signs the
    status callbacks) and the prefix of the routes.

    Fails closed: an unset auth token or API key secret variable is a ConfigError.
    """
    auth_token = _env(settings.auth_token_env, "mock_gateway.twilio.auth_token_env")
    credentials = {settings.account_sid: auth_token}
    if settings.api_key_sid and settings.api_key_secret_env:
        credentials[settings.api_key_sid] = _env(
            settings.api_key_secret_env, "mock_gateway.twilio.api_key_secret_env"
        )
    prefix = f"/{API_VERSION}/Accounts/{{account_sid}}"
    ledger, rates, clock = context.ledger, context.rates, context.clock

    def refused(request: Request, account_sid: str) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username = password = ""
        expected = credentials.get(username)
        if (
            scheme.lower() == "basic"
            and expected is not None
            and hmac.compare_digest(password.encode(), expected.encode())
            and account_sid == settings.account_sid
        ):
            return None
        return _error(
            401, 20003, "Authenticate", headers={"WWW-Authenticate": 'Basic realm="Twilio API"'}
        )

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return _error(fault.status, 20500, "An internal server error has occurred")
        if fault.kind == "throttle":
            return _error(429, 20429, "Too Many Requests")
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return _error(504, 20504, "Gateway timeout")
        if fault.shape == "invalid-json":
            return Response(b'{"sid": "SM', media_type="application/json")
        return JSONResponse({"data": "unexpected"})

    def check(form: dict[str, str]) -> VendorMessage | Response:
        to = form.get("To", "")
        sender = form.get("From", "")
        service = form.get("MessagingServiceSid", "")
        body = form.get("Body", "")
        callback = form.get("StatusCallback", "")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if service and not _MESSAGING_SERVICE.match(service):
            return _error(400, 21701, "The Messaging Service Sid is invalid.")
        if sender and not (_E164.match(sender) or _ALPHANUMERIC.match(sender)):
            return _error(400, 21212, MAGIC_FROM["+15005550001"][1])
        if sender in MAGIC_FROM:
            code, text = MAGIC_FROM[sender]
            return _error(400, code, text)
        if not _E164.match(to):
            return _error(400, 21211, MAGIC_TO["+15005550001"][1])
        if to in MAGIC_TO:
            code, text = MAGIC_TO[to]
            return _error(400, code, text)
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > _MAX_CHARS:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 limit.")
        if callback and not callback.startswith(("http://", "https://")):
            return _error(400, 21609, "The StatusCallback URL is not a valid URL.")
        sid = f"SM{uuid.uuid4().hex}"
        metadata = {
            "num_segments": str(segments(body)),
            "initial_status": "queued" if sender else "accepted",
        }
        for key, value in (
            ("from", sender),
            ("messaging_service_sid", service),
            ("status_callback", callback),
        ):
            if value:
                metadata[key] = value
        if to in CARRIER_TO:
            code = CARRIER_TO[to]
            metadata["error_code"] = str(code)
            failed = DeliveryStatus.FAILED if code == 30008 else DeliveryStatus.UNDELIVERABLE
            metadata["outcome"] = failed.value
        return VendorMessage(sid, to, body, metadata, receipt_wanted=bool(callback))

    @app.get(prefix + ".json", tags=["twilio"])
    async def fetch_account(account_sid: str, request: Request) -> Response:
        """Twilio's Fetch an Account (what a credentials check reads). Like Twilio, a standard
        API key may not read the Accounts resource: only the account SID and auth token. The
        mock's account is always active, and its answer leaves out the auth token."""
        if (denied := refused(request, account_sid)) is not None:
            return denied
        username = _basic_user(request)
        if username != settings.account_sid:
            return _error(401, 20003, "Authenticate")
        fault = await context.next_fault("sms")
        if fault is not None:
            return await faulty(fault)
        uri = f"/{API_VERSION}/Accounts/{account_sid}"
        return JSONResponse(
            {
                "date_created": _rfc2822(1_577_836_800),
                "date_updated": _rfc2822(1_577_836_800),
                "friendly_name": "Mock Twilio account",
                "owner_account_sid": account_sid,
                "sid": account_sid,
                "status": "active",
                "subresource_uris": {"messages": f"{uri}/Messages.json"},
                "type": "Full",
                "uri": f"{uri}.json",
            }
        )

    @app.post(prefix + "/Messages.json", tags=["twilio"])
    async def create_message(account_sid: str, request: Request) -> Response:
        """Twilio's Create a Message: a new message every time (no deduplication)."""
        if (denied := refused(request, account_sid)) is not None:
            return denied
        fault = await context.next_fault("sms")
        if fault is not None and not fault.commit_first:
            return await faulty(fault)
        raw = await read_body(request, VENDOR_BODY_LIMIT)
        if raw is None:
            return _error(413, 20413, "Request entity too large", {"Connection": "close"})
        try:
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            return _error(400, 20001, "The request body is not form-encoded UTF-8.")
        checked = check(form)
        if isinstance(checked, Response):
            return checked
        message = VendorMessage(
            checked.id,
            checked.recipient,
            checked.body,
            {**checked.metadata, "account_sid": account_sid},
            checked.receipt_wanted,
        )
        now = clock()
        await run_in_threadpool(ledger.record, "sms", API, [message], now)
        if fault is not None:
            return await faulty(fault)
        row = (await run_in_threadpool(ledger.find, "sms", [message.id]))[message.id]
        return JSONResponse(message_resource(row, rates, now, created=True), status_code=201)

    @app.get(prefix + "/Messages/{sid}.json", tags=["twilio"])
    async def fetch_message(account_sid: str, sid: str, request: Request) -> Response:
        """Twilio's Fetch a Message: its status now (queued, sent, then the final one)."""
        if (denied := refused(request, account_sid)) is not None:
            return denied
        fault = await context.next_fault("sms")
        if fault is not None:
            return await faulty(fault)
        row = (await run_in_threadpool(ledger.find, "sms", [sid])).get(sid)
        if row is None or row.api != API or row.metadata.get("account_sid") != account_sid:
            path = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
            return _error(404, 20404, f"The requested resource {path} was not found")
        return JSONResponse(message_resource(row, rates, clock()))

    @app.get(prefix + "/Messages.json", tags=["twilio"])
    async def list_messages(account_sid: str, request: Request) -> Response:
        """Twilio's List Messages, newest first, filtered by To, From and DateSent
        (DateSent< on or before, DateSent> on or after; a day or an ISO 8601 date-time)."""
        if (denied := refused(request, account_sid)) is not None:
            return denied
        fault = await context.next_fault("sms")
        if fault is not None:
            return await faulty(fault)
        query = request.query_params
        try:
            page = int(query.get("Page", "0"))
            size = int(query.get("PageSize", "50"))
        except ValueError:
            return _error(400, 20001, "Page and PageSize must be whole numbers.")
        if page < 0 or not 1 <= size <= 1000:
            return _error(400, 20001, "PageSize must be 1-1000 and Page 0 or more.")
        dates: dict[str, tuple[str, str]] = {}
        for name in ("DateSent", "DateSent<", "DateSent>"):
            if name in query:
                parsed = _date_filter(query[name])
                if parsed is None:
                    return _error(400, 20001, f"{name} must be YYYY-MM-DD or an ISO 8601 time.")
                dates[name] = parsed
        to, sender = query.get("To"), query.get("From")
        now = clock()
        rows = await run_in_threadpool(ledger.vendor_rows, API, to)
        found = []
        for row in reversed(rows):
            if row.metadata.get("account_sid") != account_sid:
                continue
            resource = message_resource(row, rates, now)
            if sender is not None and resource["from"] != sender:
                continue
            if _matches(resource, dates):
                found.append(resource)
        filters = [(k, v) for k, v in query.multi_items() if k in ("To", "From", *dates)]
        base = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"

        def page_uri(number: int, token: bool) -> str:
            params = [*filters, ("PageSize", str(size)), ("Page", str(number))]
            if token:
                params.append(("PageToken", f"PA{number}"))
            return f"{base}?{urlencode(params)}"

        listed = found[page * size : (page + 1) * size]
        more = len(found) > (page + 1) * size
        return JSONResponse(
            {
                "messages": listed,
                "end": page * size + max(len(listed) - 1, 0),
                "first_page_uri": page_uri(0, False),
                "next_page_uri": page_uri(page + 1, True) if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": page_uri(page - 1, True) if page > 0 else None,
                "start": page * size,
                "uri": page_uri(page, page > 0),
            }
        )

    return auth_token, prefix
