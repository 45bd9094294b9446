"""The mock sms/push/letter gateways as one ASGI app: a realistic vendor HTTP API over the ledger.

Served in-process through httpx.ASGITransport (the adapters' default) or on a port by
`dunning gateway serve`; either way all state is in the ledger file, so any number of app
instances and processes on one file behave as one gateway.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dunning.config.channels import MockGatewaySettings
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import (
    SCRIPTED_FAULT_BODY,
    SCRIPTED_FAULT_MAX_BYTES,
    Fault,
    RandomFaults,
    scripted_fault,
)
from sandbox.gateways._aliyun import mount_aliyun, push_reports
from sandbox.gateways._fcm import mount_fcm
from sandbox.gateways._jpush import mount_jpush
from sandbox.gateways._ledger import GatewayLedger, NewMessage, ledger_path
from sandbox.gateways._lob import mount_lob
from sandbox.gateways._push import push_due_receipts
from sandbox.gateways._receipts import iso, receipt_for
from sandbox.gateways._twilio import mount_twilio, push_status_callbacks
from sandbox.gateways._vendor import VendorContext
from sandbox.gateways._wire import (
    CHANNELS,
    MAX_BODY_BYTES,
    MAX_ITEMS,
    NOT_FOUND,
    VENDOR_STATUS,
    MessageIn,
)

log = logging.getLogger("dunning.sandbox")

CONFIG_FILE = "config/channels.yaml"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PUSH_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{8,4096}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SMS_MAX_CHARS = 1600  # ten concatenated parts at most
_PUSH_MAX_BYTES = 4096  # APNs and FCM payload limit
_LETTER_MAX_BYTES = 10 * 1024 * 1024
_MAX_METADATA = 32


def _secret_from_env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [ConfigProblem(CONFIG_FILE, key, f"environment variable {name} is not set")]
        )
    return value


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def _body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | Response:
    """The request's body, or 413 as soon as it passes `limit`: the rest is not read, and the
    connection is closed so that the sender stops sending it."""
    body = await read_body(request, limit)
    if body is None:
        return _error(413, "too_large", f"body over {limit} bytes", {"Connection": "close"})
    return body


Rejection = tuple[str, str]


def _check(channel: str, item: MessageIn) -> NewMessage | Rejection:
    """The vendor's per-message rules; a rejection is permanent. Never echo field values."""
    body = item.body
    if not isinstance(body, str) or not body.strip():
        return "empty_body", "body is empty"
    metadata = item.metadata if item.metadata is not None else {}
    if (
        not isinstance(metadata, dict)
        or len(metadata) > _MAX_METADATA
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        return "invalid_metadata", f"metadata must map at most {_MAX_METADATA} strings to strings"
    to = item.to
    if not isinstance(to, str):
        return "invalid_recipient", "to is missing"
    subject: str | None = None
    document_sha256: str | None = None
    document_size: int | None = None
    if channel == "sms":
        if not _E164.match(to):
            return "invalid_recipient", "to is not an E.164 phone number"
        if len(body) > _SMS_MAX_CHARS:
            return "body_too_long", f"body is over {_SMS_MAX_CHARS} characters"
    elif channel == "push":
        if not _PUSH_TOKEN.match(to):
            return "invalid_recipient", "to is not a device token"
        if item.title is not None and not isinstance(item.title, str):
            return "invalid_field", "title must be a string"
        subject = item.title
        size = len(json.dumps({"title": subject, "body": body, "data": metadata}).encode())
        if size > _PUSH_MAX_BYTES:
            return "payload_too_large", f"push payload is {size} bytes, over {_PUSH_MAX_BYTES}"
    else:
        if len([line for line in to.splitlines() if line.strip()]) < 2:
            return "invalid_recipient", "the address needs at least two lines"
        if not isinstance(item.document, str) or not item.document:
            return "missing_document", "a letter needs its PDF in `document` (base64)"
        try:
            pdf = base64.b64decode(item.document, validate=True)
        except (binascii.Error, ValueError):
            return "invalid_document", "document is not valid base64"
        if not pdf.startswith(b"%PDF-"):
            return "invalid_document", "document is not a PDF"
        if len(pdf) > _LETTER_MAX_BYTES:
            return "invalid_document", f"document is over {_LETTER_MAX_BYTES} bytes"
        actual = hashlib.sha256(pdf).hexdigest()
        declared = item.document_sha256
        if declared is not None and (not isinstance(declared, str) or declared != actual):
            return "document_checksum_mismatch", "document does not match document_sha256"
        document_sha256, document_size = actual, len(pdf)
    return NewMessage(
        idempotency_key=item.idempotency_key,
        recipient=to,
        body=body,
        subject=subject,
        document_sha256=document_sha256,
        document_size=document_size,
        metadata=metadata,
    )


def _parse_messages(raw: bytes) -> list[MessageIn] | Response:
    try:
        payload = json.loads(raw)
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("messages"), list):
        return _error(400, "bad_request", 'expected {"messages": [...]}')
    items = payload["messages"]
    if not items:
        return _error(400, "bad_request", "no messages")
    if len(items) > MAX_ITEMS:
        return _error(413, "batch_too_large", f"at most {MAX_ITEMS} messages per request")
    parsed = []
    for index, item in enumerate(items):
        key = item.get("idempotency_key") if isinstance(item, dict) else None
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            return _error(
                400, "bad_request", f"messages[{index}]: idempotency_key (1-255 chars) is required"
            )
        parsed.append(MessageIn.model_validate(item))
    return parsed


def _parse_ids(raw: bytes) -> list[str] | Response:
    try:
        payload = json.loads(raw)
    except ValueError:
        return _error(400, "invalid_json", "the body is not JSON")
    ids = payload.get("ids") if isinstance(payload, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return _error(400, "bad_request", 'expected {"ids": ["...", ...]}')
    if len(ids) > MAX_ITEMS:
        return _error(413, "batch_too_large", f"at most {MAX_ITEMS} ids per request")
    return ids


def create_mock_gateway_app(
    settings: MockGatewaySettings,
    state_dir: Path,
    *,
    clock: Callable[[], float] = time.time,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The mock gateways' ASGI app over the ledger at settings.ledger (under state_dir).

    Fails closed: an api_key_env (or, with a webhook_url, a webhook_secret_env) that names an
    unset environment variable is a ConfigError, not an open gateway.
    """
    ledger = GatewayLedger(ledger_path(settings, state_dir))
    api_key = (
        _secret_from_env(settings.api_key_env, "mock_gateway.api_key_env")
        if settings.api_key_env
        else None
    )
    rates = settings.receipts
    webhook_secret = (
        _secret_from_env(rates.webhook_secret_env, "mock_gateway.receipts.webhook_secret_env")
        if rates.webhook_url
        else None
    )
    random_faults = RandomFaults(settings.faults)

    async def next_fault(channel: str) -> Fault | None:
        scripted = await run_in_threadpool(ledger.take_fault, channel)
        if scripted is not None:
            return Fault.model_validate(scripted)
        return random_faults.draw()

    # The vendor APIs (Twilio, Aliyun SMS) write the same ledger: one book of every SMS.
    vendors = VendorContext(ledger, rates, clock, next_fault, webhook_transport)
    twilio_token: str | None = None
    pushes_vendor = False
    lob_push: Callable[[], Awaitable[int]] | None = None

    async def push_now() -> int:
        pushed = 0
        if twilio_token is not None:
            pushed += await push_status_callbacks(vendors, twilio_token)
        if settings.aliyun is not None:
            pushed += await push_reports(vendors, settings.aliyun)
        if lob_push is not None:
            pushed += await lob_push()
        if webhook_secret is None:
            return pushed
        async with httpx.AsyncClient(transport=webhook_transport, timeout=10.0) as client:
            return pushed + await push_due_receipts(
                ledger, rates, secret=webhook_secret, client=client, now=clock()
            )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Only a served gateway has a lifespan (ASGITransport does not run it): in-process,
        # tests push receipts with POST /_admin/receipts/push.
        task = asyncio.create_task(_push_forever()) if webhook_secret or pushes_vendor else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()

    async def _push_forever() -> None:
        while True:
            try:
                await push_now()
            except Exception as exc:  # keep pushing: the webhook may come back
                log.warning("receipt push failed: %s", type(exc).__name__)
            await asyncio.sleep(rates.push_interval_seconds)

    app = FastAPI(
        title="Dunning mock gateways",
        summary="SMS, push and letter gateways for tests and demos; the ledger is a SQLite file.",
        version="1",
        lifespan=lifespan,
    )
    app.state.ledger = ledger
    app.state.settings = settings

    def refused(request: Request) -> Response | None:
        if api_key is None:
            return None
        given = request.headers.get("authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            return None
        return _error(401, "unauthorized", "missing or wrong API key")

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return _error(fault.status, "unavailable", "the gateway is temporarily unavailable")
        if fault.kind == "throttle":
            header = {"Retry-After": fault.retry_after_header(clock())}
            return _error(429, "rate_limited", "too many requests", header)
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return _error(504, "timeout", "the gateway timed out")
        if fault.shape == "invalid-json":
            return Response(b'{"results": [{"idempot', media_type="application/json")
        return JSONResponse({"data": "unexpected", "results": "none"})

    if settings.twilio is not None:
        twilio_token, _ = mount_twilio(app, settings.twilio, vendors)
        pushes_vendor = True
    if settings.aliyun is not None:
        mount_aliyun(app, settings.aliyun, vendors)
        pushes_vendor = pushes_vendor or settings.aliyun.report_url is not None
    if settings.lob is not None:
        lob_push = mount_lob(app, settings.lob, vendors)
        pushes_vendor = pushes_vendor or lob_push is not None
    if settings.fcm is not None:
        mount_fcm(app, settings.fcm, vendors)
    if settings.jpush is not None:
        mount_jpush(app, settings.jpush, vendors)

    @app.get("/healthz")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/v1/{channel}/messages")
    async def submit(channel: str, request: Request) -> Response:
        """Submit a batch; each item is accepted (or recognised as a duplicate) or rejected."""
        if channel not in CHANNELS:
            return _error(404, "unknown_channel", f"no channel {channel!r}")
        if (denied := refused(request)) is not None:
            return denied
        fault = await next_fault(channel)
        if fault is not None and not fault.commit_first:
            return await faulty(fault)
        raw = await _body(request)
        if isinstance(raw, Response):
            return raw
        parsed = _parse_messages(raw)
        if isinstance(parsed, Response):
            return parsed
        checked = [(item, _check(channel, item)) for item in parsed]
        valid = [result for _, result in checked if isinstance(result, NewMessage)]
        accepted = (
            {
                a.idempotency_key: a
                for a in await run_in_threadpool(ledger.accept, channel, valid, clock())
            }
            if valid
            else {}
        )
        results: list[dict[str, Any]] = []
        for item, result in checked:
            if isinstance(result, NewMessage):
                acceptance = accepted[item.idempotency_key]
                results.append(
                    {
                        "idempotency_key": item.idempotency_key,
                        "status": "accepted",
                        "id": acceptance.id,
                        "duplicate": acceptance.duplicate,
                    }
                )
            else:
                code, reason = result
                results.append(
                    {
                        "idempotency_key": item.idempotency_key,
                        "status": "rejected",
                        "code": code,
                        "reason": reason,
                    }
                )
        if fault is not None:
            return await faulty(fault)
        return JSONResponse({"results": results})

    @app.post("/v1/{channel}/statuses")
    async def statuses(channel: str, request: Request) -> Response:
        """Current delivery status of messages by gateway id; unknown ids are `not_found`."""
        if channel not in CHANNELS:
            return _error(404, "unknown_channel", f"no channel {channel!r}")
        if (denied := refused(request)) is not None:
            return denied
        fault = await next_fault(channel)
        if fault is not None:
            return await faulty(fault)
        raw = await _body(request)
        if isinstance(raw, Response):
            return raw
        ids = _parse_ids(raw)
        if isinstance(ids, Response):
            return ids
        rows = await run_in_threadpool(ledger.find, channel, ids)
        now = clock()
        answer: list[dict[str, Any]] = []
        for gateway_id in ids:
            row = rows.get(gateway_id)
            if row is None:
                answer.append({"id": gateway_id, "status": NOT_FOUND})
                continue
            receipt = receipt_for(row, rates, now)
            answer.append(
                {
                    "id": row.id,
                    "idempotency_key": row.idempotency_key,
                    "status": VENDOR_STATUS[channel][receipt.status],
                    "updated_at": iso(receipt.occurred_at),
                    "reason": receipt.reason,
                    "event_id": receipt.event_id,
                }
            )
        return JSONResponse({"statuses": answer})

    @app.get("/_admin/ledger")
    async def admin_ledger(
        request: Request, rows: bool = False, channel: str | None = None
    ) -> Response:
        """Counts by channel and delivery status; with ?rows=true the rows (without PII)."""
        if (denied := refused(request)) is not None:
            return denied
        found = await run_in_threadpool(ledger.rows, channel)
        now = clock()
        by_channel: dict[str, Counter[str]] = defaultdict(Counter)
        listed: list[dict[str, Any]] = []
        for row in found:
            receipt = receipt_for(row, rates, now)
            by_channel[row.channel][receipt.status.value] += 1
            by_channel[row.channel]["total"] += 1
            if rows:
                listed.append(
                    {
                        "channel": row.channel,
                        "api": row.api,
                        "idempotency_key": row.idempotency_key,
                        "id": row.id,
                        "status": receipt.status.value,
                        "accepted_at": iso(row.accepted_at),
                        "submissions": row.submissions,
                        "document_sha256": row.document_sha256,
                        "metadata": row.metadata,
                    }
                )
        summary: dict[str, Any] = {
            "total": len(found),
            "resubmissions": sum(row.submissions - 1 for row in found),
            "by_channel": {name: dict(counts) for name, counts in sorted(by_channel.items())},
        }
        if rows:
            summary["rows"] = listed
        return JSONResponse(summary)

    @app.post("/_admin/faults", status_code=201, openapi_extra=SCRIPTED_FAULT_BODY)
    async def admin_fault(request: Request) -> Response:
        """Script the next `count` requests (of a channel, or any) to fail this way."""
        if (denied := refused(request)) is not None:
            return denied
        raw = await _body(request, SCRIPTED_FAULT_MAX_BYTES)
        if isinstance(raw, Response):
            return raw
        fault = scripted_fault(raw)
        if isinstance(fault, str):
            return _error(422, "invalid_fault", fault)
        seq = await run_in_threadpool(ledger.queue_fault, fault.spec(), fault.count, fault.channel)
        return JSONResponse({"queued": seq}, status_code=201)

    @app.get("/_admin/faults")
    async def admin_faults(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        queued = await run_in_threadpool(ledger.faults)
        return JSONResponse(
            [{"channel": f.channel, "remaining": f.remaining, **f.spec} for f in queued]
        )

    @app.post("/_admin/reset")
    async def admin_reset(request: Request) -> Response:
        """Forget every accepted message and scripted fault."""
        if (denied := refused(request)) is not None:
            return denied
        await run_in_threadpool(ledger.reset)
        return JSONResponse({"ok": True})

    @app.post("/_admin/receipts/push")
    async def admin_push(request: Request) -> Response:
        """Push due receipts to the webhook now (a served gateway also does it on a timer)."""
        if (denied := refused(request)) is not None:
            return denied
        if webhook_secret is None and not pushes_vendor:
            return _error(409, "no_webhook", "mock_gateway.receipts.webhook_url is not set")
        return JSONResponse({"pushed": await push_now()})

    return app
