"""Mock JPush REST API v3 (极光推送), as JPush's servers and its `jpush` Python SDK speak it.

Push API (api.jpush.cn in reality) and report API (report.jpush.cn) on the one mock base URL:

  POST /v3/push             a push to registration ids: {"sendno": "...", "msg_id": "..."}
  GET  /v3/push/cid         a pool of cids ({app_key}-{uuid}): a push carrying one answers
                            the first push's result again for a day instead of pushing again
  GET  /v3/received         delivery counts per msg_id (?msg_ids=a,b, at most 100)
  GET  /v3/received/detail  the same, split by channel (jpush_received, android_pns_...)

Every call needs HTTP Basic with the app key and its master secret; JPush's errors are
`{"error": {"code": ..., "message": ...}}` with its codes and HTTP statuses (1004 / 401 for
refused credentials, 1008 for an app key that is none, 1002/1003 for bad fields, 1011 when no
device matches the audience, 2002 / 429 with X-Rate-Limit-* headers when throttled). Like
JPush, it does not deduplicate on sendno: a repeated request is a second push under a new
msg_id. Each registration id of a push is one ledger row (channel push, api jpush, recipient
the registration id, id the msg_id, "-n" added after the first). A row's outcome follows the
receipt simulation (delivered: counted as received; failed or undeliverable: never counted)
unless a test registration id fixes it (TEST_REGISTRATION_IDS).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import os
import random
import re
import uuid
from collections import defaultdict
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.base import DeliveryStatus
from dunning.config.channels import MockJPushSettings
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import Fault
from sandbox.gateways._ledger import LedgerRow, VendorMessage
from sandbox.gateways._receipts import receipt_for
from sandbox.gateways._vendor import VENDOR_BODY_LIMIT, VendorContext

API = "jpush"
RATE_LIMIT = 600
"""Calls a minute the mock app is allowed (JPush's default; X-Rate-Limit-Limit)."""
MAX_AUDIENCE = 1000
"""Registration ids one push may name."""
MAX_PAYLOAD_BYTES = 4000
"""JPush's limit on a push's notification and message together."""
MAX_TTL = 10 * 24 * 3600
PLATFORMS = frozenset({"android", "ios", "quickapp", "hmos"})

_REGISTRATION_ID = re.compile(r"^[0-9A-Za-z_-]{8,64}$")
_APP_KEY = re.compile(r"^[0-9a-f]{24}$")

TEST_REGISTRATION_IDS: dict[str, tuple[str, int | None]] = {
    "1a0000000000001011": ("refuse", 1011),
    "1a0000000000001003": ("refuse", 1003),
    "1a0000000000000000": (DeliveryStatus.PENDING.value, None),
}
"""The mock's test registration ids: refused at once with a JPush code, or accepted and never
counted as received (the device never comes online)."""

MESSAGES = {
    1002: "Missing parameter",
    1003: "Parameter value is invalid",
    1004: "Authen failed",
    1005: "Msg content too long",
    1008: "app_key is invalid",
    1011: "cannot find user by this audience or has been inactive for more than 255 days",
    2002: "Rate limit exceeded",
}


def _env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [ConfigProblem("config/channels.yaml", key, f"environment variable {name} is not set")]
        )
    return value


def _error(
    status: int, code: int, message: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message or MESSAGES.get(code, "error")}}
    return JSONResponse(body, status_code=status, headers=headers)


def _rate_headers(reset: float, remaining: int = 0) -> dict[str, str]:
    return {
        "X-Rate-Limit-Limit": str(RATE_LIMIT),
        "X-Rate-Limit-Remaining": str(remaining),
        "X-Rate-Limit-Reset": str(max(0, math.ceil(reset))),
    }


def _msg_id() -> str:
    # JPush's msg_ids are large decimal numbers, sent as strings.
    return str(random.randrange(10**17, 10**19))


def received_count(row: LedgerRow, context: VendorContext, now: float) -> int:
    """1 when this row's device has the push by `now`, else 0."""
    receipt = receipt_for(row, context.rates, now)
    return 1 if receipt.status == DeliveryStatus.DELIVERED else 0


def _alert(notification: Any) -> str | None:
    """The notification's text: its `alert`, or a platform's."""
    if not isinstance(notification, dict):
        return None
    alert = notification.get("alert")
    if isinstance(alert, str) and alert:
        return alert
    for platform in ("android", "ios", "hmos", "quickapp"):
        block = notification.get(platform)
        if isinstance(block, dict):
            text = block.get("alert")
            if isinstance(text, dict):
                text = text.get("body")
            if isinstance(text, str) and text:
                return text
    return None


def _title(notification: dict[str, Any]) -> str | None:
    android = notification.get("android")
    if isinstance(android, dict) and isinstance(android.get("title"), str):
        return str(android["title"])
    ios = notification.get("ios")
    if isinstance(ios, dict) and isinstance(ios.get("alert"), dict):
        title = ios["alert"].get("title")
        return title if isinstance(title, str) else None
    return None


def mount_jpush(app: FastAPI, settings: MockJPushSettings, context: VendorContext) -> None:
    """Add JPush's push and report APIs to the mock gateway app.

    Fails closed: an unset master secret variable is a ConfigError.
    """
    secret = _env(settings.master_secret_env, "mock_gateway.jpush.master_secret_env")
    ledger, clock = context.ledger, context.clock

    def refused(request: Request, auth_code: int = 1004) -> Response | None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return _error(401, auth_code)
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return _error(401, auth_code)
        if not _APP_KEY.match(user):
            return _error(400, 1008)
        key_ok = hmac.compare_digest(user.encode(), settings.app_key.encode())
        secret_ok = hmac.compare_digest(password.encode(), secret.encode())
        if not (key_ok and secret_ok):
            return _error(401, auth_code)
        return None

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return _error(fault.status, 1000, "Server Internal error")
        if fault.kind == "throttle":
            return _error(429, 2002, None, _rate_headers(fault.retry_after))
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return _error(504, 1030, "Internal service timeout")
        if fault.shape == "invalid-json":
            return Response(b'{"sendno": "0", "msg_', media_type="application/json")
        return JSONResponse({"data": "unexpected"})

    def check_push(payload: Any) -> tuple[list[str], str, dict[str, Any]] | Response:
        """The registration ids, alert and options of a push, or JPush's refusal."""
        if not isinstance(payload, dict):
            return _error(400, 1003, "the push object must be a JSON object")
        platform = payload.get("platform")
        if platform is None:
            return _error(400, 1002, "platform is required")
        if platform != "all" and not (
            isinstance(platform, list)
            and platform
            and all(isinstance(p, str) and p in PLATFORMS for p in platform)
        ):
            return _error(400, 1003, "platform is invalid")
        audience = payload.get("audience")
        if audience is None:
            return _error(400, 1002, "audience is required")
        if audience == "all":
            return _error(400, 1003, "the mock takes pushes to registration ids only")
        ids = audience.get("registration_id") if isinstance(audience, dict) else None
        if (
            not isinstance(audience, dict)
            or set(audience) != {"registration_id"}
            or not isinstance(ids, list)
            or not ids
            or len(ids) > MAX_AUDIENCE
            or not all(isinstance(i, str) for i in ids)
        ):
            return _error(400, 1003, "audience.registration_id must list 1 to 1000 ids")
        if not all(_REGISTRATION_ID.match(i) for i in ids):
            return _error(400, 1003, "registration_id is invalid")
        notification = payload.get("notification")
        if notification is None and payload.get("message") is None:
            return _error(400, 1002, "notification or message is required")
        alert = _alert(notification) if notification is not None else None
        if alert is None:
            message = payload.get("message")
            content = message.get("msg_content") if isinstance(message, dict) else None
            if not isinstance(content, str) or not content:
                return _error(400, 1003, "the notification has no alert")
            alert = content
        size = len(
            json.dumps(
                [notification, payload.get("message")], ensure_ascii=False, separators=(",", ":")
            ).encode()
        )
        if size > MAX_PAYLOAD_BYTES:
            return _error(400, 1005)
        options = payload.get("options", {})
        if not isinstance(options, dict):
            return _error(400, 1003, "options must be an object")
        sendno = options.get("sendno", 0)
        if isinstance(sendno, bool) or not isinstance(sendno, int) or not 0 <= sendno < 2**31:
            return _error(400, 1003, "options.sendno must be a non-negative 32-bit integer")
        ttl = options.get("time_to_live", 86400)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            return _error(400, 1003, "options.time_to_live must be 0 to 864000 seconds")
        production = options.get("apns_production", True)
        if not isinstance(production, bool):
            return _error(400, 1003, "options.apns_production must be a boolean")
        for rid in ids:
            test = TEST_REGISTRATION_IDS.get(rid)
            if test is not None and test[0] == "refuse" and test[1] is not None:
                return _error(400, test[1])
        title = _title(notification) if isinstance(notification, dict) else None
        meta = {"sendno": str(sendno), "time_to_live": str(ttl)}
        meta["apns_production"] = "true" if production else "false"
        if title is not None:
            meta["title"] = title
        return ids, alert, meta

    @app.post("/v3/push")
    async def push(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        fault = await context.next_fault("push")
        if fault is not None and not fault.commit_first:
            return await faulty(fault)
        raw = await read_body(request, VENDOR_BODY_LIMIT)
        if raw is None:
            return _error(400, 1005)
        try:
            payload = json.loads(raw)
        except ValueError:
            return _error(400, 1003, "the body is not JSON")
        checked = check_push(payload)
        if isinstance(checked, Response):
            return checked
        ids, alert, meta = checked
        cid = payload.get("cid")
        if cid is not None:
            if not isinstance(cid, str) or not cid.startswith(f"{settings.app_key}-"):
                return _error(400, 1003, "cid is invalid")
            earlier = [
                r
                for r in await run_in_threadpool(ledger.vendor_rows, API)
                if r.metadata.get("cid") == cid
            ]
            if earlier:
                # JPush answers a repeated cid with the first push's result; nothing is pushed.
                first = earlier[0].metadata
                return JSONResponse({"sendno": first["sendno"], "msg_id": first["msg_id"]})
            meta["cid"] = cid
        msg_id = _msg_id()
        rows = []
        for index, rid in enumerate(ids):
            metadata = {**meta, "msg_id": msg_id}
            test = TEST_REGISTRATION_IDS.get(rid)
            if test is not None:
                metadata["outcome"] = test[0]
            row_id = msg_id if index == 0 else f"{msg_id}-{index}"
            rows.append(VendorMessage(row_id, rid, alert, metadata, receipt_wanted=False))
        await run_in_threadpool(ledger.record, "push", API, rows, clock())
        if fault is not None:
            return await faulty(fault)
        return JSONResponse({"sendno": meta["sendno"], "msg_id": msg_id})

    @app.get("/v3/push/cid")
    async def cids(request: Request, count: str = "1", type: str = "push") -> Response:
        if (denied := refused(request)) is not None:
            return denied
        if not count.isdigit() or not 1 <= int(count) <= 1000 or type not in ("push", "schedule"):
            return _error(400, 1003, "count must be 1 to 1000, type push or schedule")
        return JSONResponse(
            {"cidlist": [f"{settings.app_key}-{uuid.uuid4()}" for _ in range(int(count))]}
        )

    async def counts(request: Request) -> list[tuple[str, int, int]] | Response:
        """(msg_id, devices pushed, devices that received) per asked msg_id."""
        if (denied := refused(request, 3001)) is not None:
            return denied
        fault = await context.next_fault("push")
        if fault is not None:
            return await faulty(fault)
        raw = request.query_params.get("msg_ids", "")
        asked = [i.strip() for i in raw.split(",") if i.strip()]
        if not asked:
            return _error(400, 1002, "msg_ids is required")
        if len(asked) > 100 or not all(i.isdigit() for i in asked):
            return _error(400, 1003, "msg_ids must be at most 100 msg_ids, comma separated")
        now = clock()
        by_msg: dict[str, list[LedgerRow]] = defaultdict(list)
        for row in await run_in_threadpool(ledger.vendor_rows, API):
            by_msg[row.metadata.get("msg_id", "")].append(row)
        return [
            (
                msg_id,
                len(by_msg.get(msg_id, [])),
                sum(received_count(r, context, now) for r in by_msg.get(msg_id, [])),
            )
            for msg_id in asked
        ]

    @app.get("/v3/received")
    async def received(request: Request) -> Response:
        found = await counts(request)
        if isinstance(found, Response):
            return found
        # JPush answers null for a count it has no data for (a msg_id it does not know).
        return JSONResponse(
            [
                {
                    "msg_id": msg_id,
                    "android_received": got if pushed else None,
                    "ios_apns_sent": None,
                    "ios_apns_received": None,
                    "ios_msg_received": None,
                    "wp_mpns_sent": None,
                }
                for msg_id, pushed, got in found
            ]
        )

    @app.get("/v3/received/detail")
    async def received_detail(request: Request) -> Response:
        found = await counts(request)
        if isinstance(found, Response):
            return found
        return JSONResponse(
            [
                {
                    "msg_id": msg_id,
                    "jpush_received": got if pushed else None,
                    "android_pns_sent": 0 if pushed else None,
                    "android_pns_received": 0 if pushed else None,
                    "ios_apns_sent": None,
                    "ios_apns_received": None,
                    "ios_msg_received": None,
                    "live_acivity_sent": None,
                    "live_acivity_received": None,
                    "quickapp_jpush_received": None,
                    "quickapp_pns_sent": None,
                }
                for msg_id, pushed, got in found
            ]
        )
