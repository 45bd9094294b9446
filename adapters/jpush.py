"""jpush-push: JPush (极光推送) REST API v3, push notifications in mainland China.

What it speaks (https://docs.jiguang.cn/jpush/server/push/server_overview):

  POST {url}/v3/push                       one notification to one registration id
  GET  {url}/v3/push/cid?count=1           `dunning gateway check`: the push host and credentials
  GET  {report_url}/v3/received?msg_ids=   delivery counts per msg_id (up to 100 ids a request)

The push API and the report API live on different hosts (api.jpush.cn, report.jpush.cn), so
the report host is its own option, `report_url` (or `report_url_env`), with `report_prefix`
for Beijing apps, whose report API is under /v3/report; the mock serves both on one base URL.

Authentication: HTTP Basic with the app key (`app_key`, not a secret) and the app's master
secret (from the variable `master_secret_env`), on every request to either host.

Sending. One push per message: `{"platform": "all", "audience": {"registration_id": [token]},
"notification": {"alert": body, "android": {...}, "ios": {...}}, "options": {"sendno": ...,
"time_to_live": ..., "apns_production": ...}}`; the title (OutboundMessage.subject) goes to
Android's `title` and iOS's alert title, the message's metadata (no PII) to both platforms'
`extras`. JPush answers `{"sendno": "...", "msg_id": "..."}`; the msg_id is the gateway id.
Why one push per message: each push is its own msg_id, which the report API counts; a push to
several registration ids would share one msg_id, so one device's delivery could not be told
from another's. JPush's batch API (`/v3/push/batch/regid/single`) gives each item its own
msg_id but keys the items by cids fetched beforehand (below), so it is not used either.

Exactly once. JPush does not deduplicate on anything we send (`deduplicates = False`).
`options.sendno` carries a number made from our idempotency key (`sendno_for`: the first 31
bits of its SHA-256): JPush echoes it in its answer and keeps it with the push, which ties a
push in JPush's records to our outbox row, but JPush neither deduplicates on it nor lets us
find a push by it, so there is no `lookup`: a message whose fate is unknown (a timeout after
the request went out, a 500 or JPush's 1000/1030) is AMBIGUOUS, and when it comes back in
doubt the kit does not send it again (REJECTED with code `in_doubt`, for an operator to check
in JPush's console). JPush's own guard against repeats, the `cid` (a push carrying a cid used
in the last day answers the first push's result), needs a cid JPush issued (GET /v3/push/cid)
kept with the message before its first send; the adapter keeps nothing, so it does not use it.

Error codes (JPush's `{"error": {"code": ..., "message": ...}}`): 1011 (no device matches the
audience: unknown, unregistered, or inactive for a long time) is REJECTED with
RejectCode.INVALID_NUMBER, which marks the customer's push token dead; 1002, 1003, 1005, 1009
(a missing or bad field, too large a payload) REJECTED; 1004 or HTTP 401 (app key and master
secret refused) and 1008 (the app key is not valid) RETRY at once, not tried again, naming the
option and the variable; 2003, 2004, 2005 (the app may not push through the API now, an IP
white list, a volume limit) likewise; 2002 and 2008 (rate limits) RETRY after
`X-Rate-Limit-Reset` seconds; 1000 and 1030 (JPush's internal error or timeout: it may have
pushed) AMBIGUOUS.

Receipts. The report API counts deliveries per msg_id: `android_received` (JPush's own
channel), `ios_apns_received` and `ios_msg_received` (APNs and in-app on iOS). As each push
goes to one device, a count of at least one means that device got it: DELIVERED. Anything
else is PENDING: handed to APNs (`ios_apns_sent`) but not confirmed, the device offline (JPush
keeps the push for `time_to_live`), or never delivered at all; the report API cannot tell a
device that will never get the push from one that has not yet, so the adapter never reports
FAILED. JPush keeps the counts for a month after the last delivery.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Self

import httpx
from pydantic import Field, field_validator, model_validator

from adapters._http import (
    ENV_NAME,
    Classified,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    RateLimiter,
    RequestFailure,
    Timing,
    VendorAnswer,
    VendorRequest,
    chunks,
)
from adapters.auth import Auth, BasicAuth
from adapters.base import (
    DeliveryStatus,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    StatusReport,
)
from dunning.errors import (
    ConfigError,
    ConfigProblem,
    PermanentGatewayError,
    TransientGatewayError,
)
from dunning.types import Channel

log = logging.getLogger("dunning.adapters")

PUSH_URL = "https://api.jpush.cn"
REPORT_URL = "https://report.jpush.cn"
REPORT_MAX_IDS = 100
"""The most msg_ids one report request takes."""
MAX_TTL = 10 * 24 * 3600
"""JPush keeps an offline push at most ten days."""
CHECK_MSG_ID = "1"
"""The msg_id `check` asks the report API about: a read that sends nothing."""

_MSG_ID = re.compile(r"^[0-9]{1,24}$")
_LONG_DIGITS = re.compile(r"[0-9]{7,}")
_RECEIVED_FIELDS = ("android_received", "ios_apns_received", "ios_msg_received")
"""Report counts that mean a device has the push (ios_apns_sent only means APNs took it)."""

# -- JPush's error codes --------------------------------------------------------------------------

INVALID_AUDIENCE = 1011
"""cannot find user by this audience: no device has this registration id (any more)."""
REJECTED_CODES: frozenset[int] = frozenset({1002, 1003, 1005, 1009})
"""A missing field, a bad value, too large a payload, an unknown key: the push is refused."""
AUTH_CODES: frozenset[int] = frozenset({1004, 3001})
"""The app key and master secret are refused (3001: the report API's word for it)."""
APP_KEY_CODES: frozenset[int] = frozenset({1008})
"""The app key is not a valid one."""
ACCOUNT_CODES: frozenset[int] = frozenset({2003, 2004, 2005})
"""The app may not push through the API now: restricted, an IP white list, a volume limit."""
RATE_CODES: frozenset[int] = frozenset({2002, 2008})
"""Rate limits (2002: the app's API calls per minute; 2008: pushes in a period)."""
MAYBE_CODES: frozenset[int] = frozenset({1000, 1030})
"""JPush's internal error or timeout: it may have pushed."""


def sendno_for(idempotency_key: str) -> int:
    """The `sendno` a message carries: the first 31 bits of its key's SHA-256 (JPush takes a
    non-negative 32-bit integer). It ties a push in JPush's records to our outbox row; it is
    not unique and JPush does not deduplicate on it."""
    return int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:4], "big") >> 1


def _scrub(text: str) -> str:
    """Vendor words for a reason: long digit runs masked, one line, short."""
    return _LONG_DIGITS.sub("…", " ".join(text.split()))[:200]


def _error(response: httpx.Response | None) -> tuple[int | None, str]:
    """JPush's error code and message from an answer, when it has them."""
    if response is None:
        return None, ""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None, ""
    if not isinstance(error, dict):
        return None, ""
    code = error.get("code")
    try:
        number = int(code) if code is not None and not isinstance(code, bool) else None
    except (TypeError, ValueError):
        number = None
    return number, str(error.get("message") or "")


def _rate_reset(response: httpx.Response | None, fallback: float | None) -> float | None:
    """Seconds until JPush's rate window resets (X-Rate-Limit-Reset), else `fallback`."""
    if response is None:
        return fallback
    value = response.headers.get("X-Rate-Limit-Reset")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return fallback
    return seconds


def _count(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


class JPushOptions(HttpAdapterOptions):
    """The `options:` of a jpush-push provider in config/channels.yaml."""

    url: str | None = Field(
        default=PUSH_URL,
        description="the push API (https://api.jpush.cn; Beijing apps: "
        "https://bjapi.push.jiguang.cn; the demo points it at the mock)",
    )
    report_url: str = Field(
        default=REPORT_URL,
        description="the report API's host (https://report.jpush.cn; Beijing apps: "
        "https://bjapi.push.jiguang.cn with report_prefix /v3/report)",
    )
    report_prefix: str = Field(
        default="/v3",
        pattern=r"^(/[A-Za-z0-9_.-]+)+$",
        description="the report API's path before /received (Beijing apps: /v3/report)",
    )
    report_url_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="or: the environment variable holding the report API's base URL",
    )
    app_key: str = Field(
        pattern=r"^[0-9A-Za-z]{8,64}$", description="the app's AppKey (the Basic user)"
    )
    master_secret_env: str = Field(
        default="JPUSH_MASTER_SECRET",
        pattern=ENV_NAME,
        description="environment variable holding the app's Master Secret",
    )
    apns_production: bool = Field(
        default=True,
        description="iOS pushes through APNs' production environment (false: development)",
    )
    time_to_live: int = Field(
        default=86_400,
        ge=0,
        le=MAX_TTL,
        description="seconds JPush keeps a push for an offline device (0: online devices only)",
    )

    @field_validator("report_url")
    @classmethod
    def _report_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _no_api_key(self) -> Self:
        if self.api_key_env is not None:
            raise ValueError(
                "jpush-push does not use api_key_env: set app_key and master_secret_env"
            )
        return self


class JPushAdapter(HttpGatewayAdapter):
    """JPush REST API v3: one push per message, msg_id as the gateway id (see the module)."""

    name = "jpush-push"
    channel = Channel.PUSH
    options_model = JPushOptions
    max_batch = 1
    max_concurrency = 8
    rate_per_second = 10.0
    """JPush's default API rate is 600 calls a minute per app (X-Rate-Limit-Limit)."""
    default_url = PUSH_URL
    deduplicates = False

    options: JPushOptions

    def __init__(
        self,
        options: JPushOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        if options is None:
            raise TypeError("jpush-push needs its options (app_key, master_secret_env)")
        super().__init__(options, transport=transport, timing=timing)
        if self.options.report_url_env is not None:
            self.options = self.options.model_copy(
                update={"report_url": self._report_url_from_env()}
            )
        # The report API has its own rate at JPush; receipts keep to ours.
        self._reports = RateLimiter(self.rate_per_second, self.timing)

    def _report_url_from_env(self) -> str:
        name = self.options.report_url_env or ""
        value = os.environ.get(name, "").strip()
        if not value.startswith(("http://", "https://")):
            why = f"environment variable {name} is not set" if not value else "not an http URL"
            raise ConfigError(
                [
                    ConfigProblem(
                        self.config_file, f"{self._config_key()}.options.report_url_env", why
                    )
                ]
            )
        return value.rstrip("/")

    # -- authentication -----------------------------------------------------------------------

    def build_auth(self) -> Auth:
        return BasicAuth(self.options.app_key, self.env_secret("master_secret_env"))

    def _credentials_hint(self) -> str:
        return (
            f"check app_key and the Master Secret in {self.options.master_secret_env} "
            f"({self._config_key()} in {self.config_file})"
        )

    # -- send ---------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Refuse here what is no registration id (empty, or with spaces or controls); the kit
        sends the rest."""
        refused: dict[str, SendResult] = {}
        sendable: list[OutboundMessage] = []
        for message in batch:
            token = message.recipient.strip()
            if not token or len(token) > 256 or not token.isprintable() or " " in token:
                refused[message.idempotency_key] = SendResult(
                    message.idempotency_key,
                    SendOutcome.REJECTED,
                    reason="the push token is not a JPush registration id",
                    code=RejectCode.INVALID_NUMBER.value,
                )
            else:
                sendable.append(message)
        sent = await super().send(sendable) if sendable else []
        answered = {r.idempotency_key: r for r in sent}
        answered.update(refused)
        return [answered[m.idempotency_key] for m in batch]

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch  # max_batch is 1: one push, one msg_id, per message
        extras = {str(k): str(v) for k, v in message.metadata.items()}
        android: dict[str, Any] = {"alert": message.body}
        ios: dict[str, Any] = {"alert": message.body}
        if message.subject:
            android["title"] = message.subject
            ios["alert"] = {"title": message.subject, "body": message.body}
        if extras:
            android["extras"] = extras
            ios["extras"] = extras
        payload = {
            "platform": "all",
            "audience": {"registration_id": [message.recipient.strip()]},
            "notification": {"alert": message.body, "android": android, "ios": ios},
            "options": {
                "sendno": sendno_for(message.idempotency_key),
                "time_to_live": self.options.time_to_live,
                "apns_production": self.options.apns_production,
            },
        }
        return VendorRequest("POST", "/v3/push", json=payload)

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        (message,) = batch
        if not isinstance(payload, dict):
            raise MalformedResponse("the answer is not a push result")
        msg_id = payload.get("msg_id")
        if isinstance(msg_id, bool) or not isinstance(msg_id, str | int):
            raise MalformedResponse("an accepted push has no msg_id")
        gateway_id = str(msg_id)
        if not _MSG_ID.match(gateway_id):
            raise MalformedResponse("an accepted push has a malformed msg_id")
        sendno = payload.get("sendno")
        if sendno is not None and str(sendno) != str(sendno_for(message.idempotency_key)):
            # JPush echoes what it was sent; another number means another request's answer.
            log.warning("%s: JPush echoed a sendno that is not this message's", self.name)
        key = message.idempotency_key
        return {key: SendResult(key, SendOutcome.ACCEPTED, gateway_id)}

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        if answer.response is None or answer.ok:
            return super().classify_send(batch, answer)
        status = answer.response.status_code
        code, _ = _error(answer.response)
        vendor_code = None if code is None else str(code)
        reason = self.error_reason(answer.response)
        if code == INVALID_AUDIENCE:
            return RequestFailure(
                SendOutcome.REJECTED,
                reason,
                code=RejectCode.INVALID_NUMBER.value,
                vendor_code=vendor_code,
            )
        if code in AUTH_CODES or status == 401:
            return RequestFailure(
                SendOutcome.RETRY,
                f"credentials refused: {reason} ({self._credentials_hint()})",
                again=False,
                vendor_code=vendor_code,
            )
        if code in APP_KEY_CODES:
            return RequestFailure(
                SendOutcome.RETRY,
                f"JPush does not take the app key: {reason} ({self._credentials_hint()})",
                again=False,
                vendor_code=vendor_code,
            )
        if code in ACCOUNT_CODES:
            return RequestFailure(
                SendOutcome.RETRY,
                f"the JPush app cannot push through the API now: {reason}",
                again=False,
                vendor_code=vendor_code,
            )
        if code in RATE_CODES or status == 429:
            return RequestFailure(
                SendOutcome.RETRY,
                reason,
                retry_after=_rate_reset(answer.response, answer.retry_after),
                vendor_code=vendor_code,
            )
        if code in MAYBE_CODES:
            return RequestFailure(
                SendOutcome.AMBIGUOUS,
                reason,
                retry_after=answer.retry_after,
                vendor_code=vendor_code,
            )
        if status in (403, 404, 405):
            # Not the message: a URL that is no JPush push API, or an app that may not push.
            return RequestFailure(
                SendOutcome.RETRY,
                f"{reason} (check url and app_key of {self._config_key()} in {self.config_file})",
                again=False,
                vendor_code=vendor_code,
            )
        if code in REJECTED_CODES or 400 <= status < 500:
            return RequestFailure(
                SendOutcome.REJECTED, reason, code=RejectCode.OTHER.value, vendor_code=vendor_code
            )
        return replace(self.classify_failure(answer), vendor_code=vendor_code)

    def error_reason(self, response: httpx.Response) -> str:
        """`HTTP 400 JPush 1011: <JPush's message, digits masked>`."""
        code, message = _error(response)
        if code is None:
            return f"HTTP {response.status_code}"
        return f"HTTP {response.status_code} JPush {code}: {_scrub(message)}".rstrip(": ")

    # -- receipts -----------------------------------------------------------------------------

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        return VendorRequest(
            "GET",
            f"{self.options.report_url}{self.options.report_prefix}/received",
            params={"msg_ids": ",".join(gateway_message_ids)},
        )

    def status_answers(self, payload: Any) -> list[StatusReport]:
        if not isinstance(payload, list) or not all(isinstance(i, dict) for i in payload):
            raise MalformedResponse("the report answer is not a list of counts")
        now = datetime.fromtimestamp(self.timing.wall(), UTC)
        reports = []
        for item in payload:
            msg_id = item.get("msg_id")
            if isinstance(msg_id, bool) or not isinstance(msg_id, str | int):
                raise MalformedResponse("a report item has no msg_id")
            received = sum(_count(item.get(name)) for name in _RECEIVED_FIELDS)
            status = DeliveryStatus.DELIVERED if received >= 1 else DeliveryStatus.PENDING
            gateway_id = str(msg_id)
            reports.append(
                StatusReport(
                    gateway_message_id=gateway_id,
                    idempotency_key="",
                    status=status,
                    occurred_at=now,
                    event_id=f"jpush:{gateway_id}:delivered"
                    if status == DeliveryStatus.DELIVERED
                    else None,
                )
            )
        return reports

    def classify_status(
        self, gateway_message_ids: Sequence[str], answer: VendorAnswer
    ) -> list[StatusReport] | RequestFailure:
        if answer.response is not None and not answer.ok:
            code, _ = _error(answer.response)
            reason = self.error_reason(answer.response)
            if code in AUTH_CODES or code in APP_KEY_CODES or answer.status_code == 401:
                return RequestFailure(
                    SendOutcome.RETRY,
                    f"credentials refused: {reason} ({self._credentials_hint()})",
                    again=False,
                )
            if code in RATE_CODES or answer.status_code == 429:
                return RequestFailure(
                    SendOutcome.RETRY,
                    reason,
                    retry_after=_rate_reset(answer.response, answer.retry_after),
                )
        return super().classify_status(gateway_message_ids, answer)

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        """The report API's counts, up to 100 msg_ids a request. A request that fails for
        good (credentials) raises PermanentGatewayError; one that keeps failing,
        TransientGatewayError."""
        ids = [i for i in dict.fromkeys(gateway_message_ids) if _MSG_ID.match(i)]
        if len(ids) < len(set(gateway_message_ids)):
            log.warning("%s: gateway ids that are no JPush msg_id not asked", self.name)
        reports: list[StatusReport] = []
        for part in chunks(ids, REPORT_MAX_IDS):
            reports.extend(await self._report_chunk(part))
        return reports

    async def _report_chunk(self, ids: Sequence[str]) -> list[StatusReport]:
        reason = "not asked"
        for attempt in range(1, self.options.max_attempts + 1):
            await self._reports.acquire(1)
            answer = await self.call(self.status_request(ids))
            try:
                verdict = self.classify_status(ids, answer)
            except ValueError as exc:
                verdict = RequestFailure(SendOutcome.RETRY, f"malformed report answer: {exc}")
            if not isinstance(verdict, RequestFailure):
                asked = set(ids)
                return [r for r in verdict if r.gateway_message_id in asked]
            if verdict.outcome == SendOutcome.REJECTED or not verdict.again:
                raise PermanentGatewayError(f"{self.name}: receipts: {verdict.reason}")
            reason = verdict.reason
            if attempt == self.options.max_attempts:
                break
            wait = verdict.retry_after
            if wait is None:
                ceiling = min(
                    self.options.backoff_cap, self.options.backoff_base * 2.0 ** (attempt - 1)
                )
                wait = ceiling / 2 + self.timing.random() * ceiling / 2
            if wait > self.options.max_retry_after:
                break
            await self.timing.sleep(wait)
        raise TransientGatewayError(f"{self.name}: receipts: {reason}")

    # -- operations ---------------------------------------------------------------------------

    async def check(self) -> str | None:
        """Both hosts, without pushing: a cid from the push API (GET /v3/push/cid, which
        sends nothing) and the counts of a msg_id nobody sent from the report API."""
        push = await self.call(VendorRequest("GET", "/v3/push/cid", params={"count": "1"}))
        problem = self._check_answer(push, self.options.url or self.default_url)
        if problem is not None:
            return problem
        report = await self.call(self.status_request([CHECK_MSG_ID]))
        return self._check_answer(report, self.options.report_url)

    def _check_answer(self, answer: VendorAnswer, url: str) -> str | None:
        if answer.response is None:
            return f"cannot reach {url} ({answer.error or 'no answer'})"
        if answer.ok:
            try:
                answer.json()
            except MalformedResponse:
                return f"{url} does not answer as JPush: HTTP {answer.status_code}"
            return None
        code, _ = _error(answer.response)
        if code in AUTH_CODES or answer.status_code == 401:
            return f"credentials refused by {url} ({self._credentials_hint()})"
        if code in APP_KEY_CODES:
            return f"JPush does not take the app key {self.options.app_key}"
        return f"{url} answered {self.error_reason(answer.response)}"
