"""The receipts webhook: gateways push delivery receipts here, signed with a shared secret.

    POST /webhooks/receipts/{channel}
    Dunning-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>
    Content-Type: application/json

    [{"event_id": "evt_1", "gateway_message_id": "sms_9f..", "idempotency_key": "...",
      "status": "delivered", "occurred_at": "2026-11-23T10:00:00+00:00", "reason": null}, ...]

The signature covers the timestamp and the exact bytes of the body, so neither can be changed;
several `v1=` entries may be given (the request is good if one matches), which lets a sender
rotate secrets. Answers:

    200  {"recorded": n, "duplicates": m}   at least one event was new
    400  no or malformed signature header, malformed body, unknown status, no events
    401  bad signature, or a timestamp further than `tolerance_seconds` from now (either way)
    404  unknown channel
    409  a replay: this signed request was seen before, or no event was new (each was already
         recorded, or the sink knows no message it is about)
    409  a conflict: an event's gateway_message_id and idempotency_key name two different
         messages (nothing in the request is recorded)
    413  body over 1 MiB (a chunked body is read only until it passes 1 MiB)

A rejected request changes nothing: the body is fully validated before anything is
remembered. Anyone can send one, so the checks that need no body (channel, header, timestamp)
come before it is read, and it is read only up to MAX_BODY_BYTES. The secret comes from
DUNNING_WEBHOOK_SECRET; without one the app does not start.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Protocol
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.base import (
    DeliveryStatus,
    GatewayAdapter,
    StatusReport,
    WebhookAnswer,
    WebhookRefused,
    WebhookRequest,
)
from dunning.errors import DunningError, ReceiptConflict
from dunning.types import Channel

log = logging.getLogger("dunning.webhooks")

SECRET_ENV = "DUNNING_WEBHOOK_SECRET"
PUBLIC_URL_ENV = "DUNNING_PUBLIC_URL"
"""Where vendors reach this app (https://hooks.example.com): the vendors' webhook URLs are
rebuilt from it, as they signed them; proxy headers (X-Forwarded-*) are never believed."""
VENDOR_KINDS = ("status", "inbound")
SIGNATURE_HEADER = "Dunning-Signature"
MIN_SECRET_LENGTH = 16
MAX_BODY_BYTES = 1024 * 1024
MAX_EVENTS = 1000

_HEADER = re.compile(r"^t=(?P<t>\d{1,12})(?P<sigs>(,v1=[0-9a-f]{64})+)$")


class WebhookSecretMissing(DunningError):
    pass


class BadPublicUrl(DunningError):
    pass


def check_public_url(url: str) -> str:
    """The public URL without a trailing slash; BadPublicUrl unless it is http(s)://host[:port]
    with an optional path prefix, and no query, fragment or credentials."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise BadPublicUrl(
            f"{PUBLIC_URL_ENV} must be http(s)://host[:port][/prefix], the address vendors "
            "call this app at, without a query or fragment"
        )
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError as exc:
        raise BadPublicUrl(f"{PUBLIC_URL_ENV} has a port that is not a number") from exc
    return url.strip().rstrip("/")


@dataclass(frozen=True)
class VendorHooks:
    """How the app reaches the configured providers for their webhooks
    (POST /webhooks/providers/{provider}/{kind})."""

    providers: Collection[str]
    """The providers' names (config/channels.yaml); any other name is 404."""
    build: Callable[[str], GatewayAdapter]
    """The provider's adapter (adapters.registry.build_provider); ConfigError when it cannot be
    built (a secret's variable unset)."""
    record: Callable[[str, WebhookAnswer], object]
    """Record what the adapter read (receipts, replies) in one transaction; idempotent: a call
    the vendor repeats changes nothing."""


class ReceiptSink(Protocol):
    """Where verified receipts go. The engine's sink writes them to the Dunning database."""

    def record(self, reports: Sequence[StatusReport]) -> int:
        """Store the receipts; return how many were new (an already-recorded event is not).

        Raise ReceiptConflict, storing none of them, when a receipt's gateway message id and
        idempotency key name two different messages.
        """
        ...

    def seen(self, nonce: str) -> bool:
        """Remember the nonce; True if it had been seen before."""
        ...


class InMemoryReceiptSink:
    """A ReceiptSink in a dict, for tests and for trying the webhook out."""

    def __init__(self) -> None:
        self.reports: list[StatusReport] = []
        self._events: set[str] = set()
        self._nonces: set[str] = set()
        self._lock = threading.Lock()

    def record(self, reports: Sequence[StatusReport]) -> int:
        with self._lock:
            new = 0
            for report in reports:
                event = report.event_id or (
                    f"{report.gateway_message_id}:{report.status.value}:"
                    f"{report.occurred_at.isoformat()}"
                )
                if event in self._events:
                    continue
                self._events.add(event)
                self.reports.append(report)
                new += 1
            return new

    def seen(self, nonce: str) -> bool:
        with self._lock:
            if nonce in self._nonces:
                return True
            self._nonces.add(nonce)
            return False


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of f"{timestamp}.{body}" under the secret."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The Dunning-Signature header value for this body sent at this unix time."""
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


class ReceiptEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=200)
    gateway_message_id: str = Field(min_length=1, max_length=200)
    idempotency_key: str = Field(min_length=1, max_length=255)
    status: DeliveryStatus
    occurred_at: AwareDatetime
    reason: str | None = Field(default=None, max_length=500)

    def report(self) -> StatusReport:
        return StatusReport(
            gateway_message_id=self.gateway_message_id,
            idempotency_key=self.idempotency_key,
            status=self.status,
            occurred_at=self.occurred_at,
            reason=self.reason,
            event_id=self.event_id,
        )


_EVENTS = TypeAdapter(
    Annotated[list[ReceiptEvent], Field(min_length=1, max_length=MAX_EVENTS)],
)


class InboundMessage(BaseModel):
    """An SMS reply the gateway received from a customer's phone (POST /webhooks/inbound/sms)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    event_id: str = Field(min_length=1, max_length=128)
    sender: str = Field(alias="from", min_length=1, max_length=32)
    text: str = Field(max_length=2000)
    received_at: AwareDatetime


InboundHandler = Callable[[str, str, datetime], bool]
"""(sender phone, text, received at) -> whether it opted the sender out."""


def _error(status: int, code: str, message: str, *, unread: bool = False) -> JSONResponse:
    """The error answer. `unread`: refused without reading the body, so the connection is
    closed after the answer (reading the rest only to throw it away would let a sender go on
    sending)."""
    headers = {"Connection": "close"} if unread else None
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, or None once it is over `limit` bytes.

    A declared length over the limit is refused before any of the body is read, and a body
    without one (chunked) is read only until it passes the limit: the rest is never taken
    from the connection, so a sender cannot make the server hold more than `limit` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def check_secret(secret: str) -> None:
    """Raise WebhookSecretMissing unless the secret is set and long enough to be one."""
    if not secret:
        raise WebhookSecretMissing(
            f"{SECRET_ENV} is not set: the receipts webhook will not start without a secret"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise WebhookSecretMissing(
            f"{SECRET_ENV} is too short: use at least {MIN_SECRET_LENGTH} characters"
        )


def create_webhook_app(
    secret: str,
    sink: ReceiptSink,
    *,
    tolerance_seconds: int = 300,
    clock: Callable[[], float] = time.time,
    inbound: InboundHandler | None = None,
    vendors: VendorHooks | None = None,
    public_url: str | None = None,
) -> Starlette:
    """The ASGI app; refuses to be built without a secret (fail closed).

    `vendors` serves the providers' own webhooks; they need `public_url` (without it they
    answer 503, so that vendors retry once it is set).
    """
    check_secret(secret)
    base = check_public_url(public_url) if public_url else None
    if tolerance_seconds < 1:
        raise ValueError("tolerance_seconds must be at least 1")
    channels = {channel.value for channel in Channel}

    async def verified(request: Request) -> tuple[bytes, str] | JSONResponse:
        """The body and its signature if the request is signed, fresh and small enough.

        The checks that need no body come first; the body is read last and only up to
        MAX_BODY_BYTES, since anyone can send one without knowing the secret.
        """
        header = request.headers.get(SIGNATURE_HEADER, "")
        match = _HEADER.match(header.strip())
        if match is None:
            return _error(
                400,
                "bad_signature_header",
                f"{SIGNATURE_HEADER} must be t=<unix>,v1=<hex>",
                unread=True,
            )
        timestamp = int(match["t"])
        if abs(clock() - timestamp) > tolerance_seconds:
            return _error(401, "stale", "timestamp outside the tolerance window", unread=True)
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            return _error(413, "too_large", f"body over {MAX_BODY_BYTES} bytes", unread=True)
        expected = signature(secret, body, timestamp)
        given = match["sigs"].split(",v1=")[1:]
        # Compare with every candidate, without short-circuiting: constant time per candidate.
        valid = [hmac.compare_digest(expected, candidate) for candidate in given]
        if not any(valid):
            return _error(401, "bad_signature", "signature does not match")
        return body, f"{timestamp}.{expected}"

    async def receipts(request: Request) -> JSONResponse:
        channel = request.path_params["channel"]
        if channel not in channels:
            return _error(404, "unknown_channel", f"no channel {channel!r}", unread=True)
        checked = await verified(request)
        if isinstance(checked, JSONResponse):
            return checked
        body, nonce = checked
        try:
            events = _EVENTS.validate_json(body)
        except ValidationError as exc:
            return _error(400, "malformed_body", _first_problem(exc))
        # Only now, with everything checked, is anything remembered.
        if sink.seen(nonce):
            return _error(409, "replay", "this signed request was already received")
        try:
            new = sink.record([event.report() for event in events])
        except ReceiptConflict:
            # One message's gateway id with another's idempotency key: believed for neither,
            # and the sink recorded none of the request's receipts.
            return _error(
                409,
                "conflict",
                "an event names one message by gateway_message_id and another by "
                "idempotency_key; nothing was recorded",
            )
        if new == 0:
            # The sink cannot tell a known event from one about a message it does not know.
            return _error(
                409,
                "replay",
                "nothing new: each event was already recorded or is for no known message",
            )
        return JSONResponse({"recorded": new, "duplicates": len(events) - new})

    async def inbound_sms(request: Request) -> JSONResponse:
        if inbound is None:
            return _error(404, "not_enabled", "inbound messages are not handled here", unread=True)
        checked = await verified(request)
        if isinstance(checked, JSONResponse):
            return checked
        body, nonce = checked
        try:
            message = InboundMessage.model_validate_json(body)
        except ValidationError as exc:
            return _error(400, "malformed_body", _first_problem(exc))
        if sink.seen(nonce):
            return _error(409, "replay", "this signed request was already received")
        opted_out = inbound(message.sender, message.text, message.received_at)
        return JSONResponse({"opt_out": opted_out})

    async def vendor(request: Request) -> Response:
        provider, kind = request.path_params["provider"], request.path_params["kind"]
        if vendors is None or kind not in VENDOR_KINDS or provider not in vendors.providers:
            return _error(404, "unknown_webhook", "no such provider webhook", unread=True)
        if base is None:
            return _error(
                503,
                "no_public_url",
                f"{PUBLIC_URL_ENV} is not set: vendors' signatures cannot be checked",
                unread=True,
            )
        body = await read_body(request, MAX_BODY_BYTES)
        if body is None:
            return _error(413, "too_large", f"body over {MAX_BODY_BYTES} bytes", unread=True)
        call = WebhookRequest(
            method=request.method,
            url=base + _path_and_query(request),
            headers={name.lower(): value for name, value in request.headers.items()},
            body=body,
            received_at=datetime.fromtimestamp(clock(), UTC),
        )
        try:
            adapter = vendors.build(provider)
        except DunningError as exc:
            # A ConfigError names keys and variables, never a secret's value.
            log.error("provider %s cannot take webhooks: %s", provider, exc)
            return _error(503, "provider_unavailable", f"provider {provider} is not usable")
        try:
            answer = adapter.read_webhook(call, kind)
        except WebhookRefused as exc:
            return _error(exc.status, "refused", exc.reason)
        except Exception as exc:
            # Not the vendor's fault, and the request may hold a customer's phone: its type only.
            log.error("provider %s: reading a %s webhook failed (%s)", provider, kind, type(exc))
            return _error(500, "unreadable", "the webhook could not be read")
        finally:
            await adapter.aclose()
        try:
            await run_in_threadpool(vendors.record, provider, answer)
        except Exception as exc:
            # A database error's text would carry the phone numbers it was given: its type only.
            log.error("provider %s: recording a %s webhook failed (%s)", provider, kind, type(exc))
            return _error(503, "not_recorded", "nothing was recorded; try again")
        return Response(answer.body, status_code=answer.status_code, media_type=answer.content_type)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/webhooks/receipts/{channel}", receipts, methods=["POST"]),
            Route("/webhooks/inbound/sms", inbound_sms, methods=["POST"]),
            Route("/webhooks/providers/{provider}/{kind}", vendor, methods=["POST"]),
            Route("/healthz", health, methods=["GET"]),
        ]
    )


def _path_and_query(request: Request) -> str:
    """The path and query exactly as the vendor sent them (percent-encoding kept): what it
    signed, after the public URL."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    query = request.scope.get("query_string", b"")
    return path + (f"?{query.decode('latin-1')}" if query else "")


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    # Never echo input values back: they may be receipts for someone's message.
    return f"{where}: {error['msg']}" if where else str(error["msg"])
