"""aliyun-sms: Alibaba Cloud SMS (dysmsapi 2017-05-25), mainland China.

Written only with the adapter kit's public hooks (adapters._http) and a SignedAuth.

- Send: one `SendSms` per message (`POST /`, `x-acs-action: SendSms`, `x-acs-version:
  2017-05-25`, the parameters in the query string as Aliyun's SDK sends them), signed with
  ACS3-HMAC-SHA256 as the SDK signs it. Aliyun sends only registered templates: a message
  names its `TemplateCode` and parameters in `message.vendor["aliyun"]`; one without a code is
  refused here (RejectCode.TEMPLATE_INVALID), never sent as free text. `OutId` is our
  idempotency key.
- Exactly once: Aliyun does not deduplicate on OutId (`deduplicates = False`). An in-doubt
  message is looked up first (`lookup`): QuerySendDetails for its recipient today (and the day
  before just after midnight, China time), matching OutId to our key.
- Receipts: `fetch_receipts` asks QuerySendDetails per message (it needs the phone and the
  send day, which `fetch_statuses` does not get: that returns nothing). Pushes: the delivery
  report (SmsReport) and the upstream message (SmsUp) through `read_webhook`, authenticated
  by a secret token in the push URL (Aliyun does not sign its pushes).

Why not SendBatchSms: a batch carries one OutId for up to 100 messages, so an in-doubt
batch's messages cannot be found by their own keys (the lookup that makes sending exactly
once possible); Aliyun refuses a whole batch for one bad number without saying which; and it
answers one BizId for all. Throughput comes from several SendSms requests in flight
(`max_concurrency`) within the account's rate instead. `use_batch: true` is refused with this
reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

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
)
from adapters.auth import Auth, SignedAuth
from adapters.base import (
    DeliveryStatus,
    InboundReply,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    SentMessage,
    StatusReport,
    WebhookAnswer,
    WebhookRefused,
    WebhookRequest,
)
from dunning.errors import ConfigError, PermanentGatewayError, TransientGatewayError
from dunning.types import Channel

log = logging.getLogger("dunning.adapters")

VERSION = "2017-05-25"
ALGORITHM = "ACS3-HMAC-SHA256"
DEFAULT_URL = "https://dysmsapi.aliyuncs.com"
CHINA = timezone(timedelta(hours=8))
"""Aliyun SMS states send and receive times, and takes SendDate, in China Standard Time."""
VENDOR = "aliyun"
"""The key of this vendor's metadata in OutboundMessage.vendor."""
OUT_ID_PREFIX = "outid:"
"""Gateway id of a message found by lookup: QuerySendDetails gives no BizId, so the message is
known by its send day and OutId ("outid:20261123:<key>") and its receipts by polling."""
PAGE_SIZE = 50
"""QuerySendDetails' largest page."""
MAX_PAGES = 20
"""At most 1,000 messages to one phone on one day are read; more is an incomplete answer."""
LOOKUP_LOOKBACK = timedelta(hours=2)
"""How far back an in-doubt message may have been sent: a claim's lease (at most an hour)
plus the send's own time. Within this of midnight, the day before is asked too."""
SENT_AT_SLACK = timedelta(minutes=15)
"""How much earlier than our sent_at Aliyun may have recorded a message (a send's retries)."""
CHECK_NUMBER = "13800000000"
"""The number `check` asks QuerySendDetails about: a read that sends nothing."""
ACK = json.dumps({"code": 0, "msg": "成功"}, ensure_ascii=False).encode()
"""What Aliyun expects from a push receiver; anything else and it pushes again."""

_MAINLAND = re.compile(r"^\+86(1[3-9][0-9]{9})$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_LONG_DIGITS = re.compile(r"[0-9]{7,}")

# Aliyun's codes: (outcome, RejectCode for REJECTED, tried again within this send).
_REJECTED_CODES: dict[str, RejectCode] = {
    "isv.MOBILE_NUMBER_ILLEGAL": RejectCode.INVALID_NUMBER,
    "isv.SMS_TEMPLATE_ILLEGAL": RejectCode.TEMPLATE_INVALID,
    "isv.TEMPLATE_MISSING_PARAMETERS": RejectCode.TEMPLATE_INVALID,
    "isv.SMS_SIGNATURE_ILLEGAL": RejectCode.TEMPLATE_INVALID,
    "isv.INVALID_JSON_PARAM": RejectCode.TEMPLATE_INVALID,
    "isv.BLACK_KEY_CONTROL_LIMIT": RejectCode.BLOCKED,
    "isv.DENY_IP_RANGE": RejectCode.BLOCKED,
}
_LATER_CODES = frozenset({"isv.BUSINESS_LIMIT_CONTROL"})
"""Limits on the number (per minute, hour, day): not worth trying again within this send;
the message goes back to `planned` for a later dispatch."""
_ACCOUNT_CODES = frozenset({"isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE"})
"""The account cannot send now (no balance, suspended): nothing wrong with the message."""
_CONFIG_PREFIXES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidTimeStamp",
)
"""Our credentials, or our clock, are wrong: RETRY at once, not tried again."""
_UNDELIVERABLE_ERR_CODES = frozenset(
    {"MOBILE_NOT_ON_SERVICE", "MOBILE_NUMBER_ILLEGAL", "MOBILE_ACCOUNT_ABNORMAL", "MN:0001"}
)
"""Receipt ErrCodes that mean the number does not work (vacant, out of service), not that
one attempt failed."""


class AliyunSmsOptions(HttpAdapterOptions):
    """Options of aliyun-sms (a provider's `options:` in config/channels.yaml)."""

    access_key_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9]{1,128}$", description="the RAM user's AccessKey ID"
    )
    access_key_id_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="or: the environment variable holding the AccessKey ID",
    )
    access_key_secret_env: str = Field(
        default="ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        pattern=ENV_NAME,
        description="environment variable holding the AccessKey secret",
    )
    sign_name: str = Field(
        min_length=1, max_length=64, description="the approved signature (SignName)"
    )
    region: str = Field(
        default="cn-hangzhou",
        pattern=r"^[a-z0-9-]{2,40}$",
        description="chooses the endpoint when url is not given",
    )
    push_token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the token Aliyun's push URLs carry "
        "(?token=...); none: every push is refused",
    )
    use_batch: bool = Field(default=False, description="SendBatchSms: not supported")
    max_concurrency: int | None = Field(
        default=None, ge=1, le=64, description="SendSms requests in flight at once"
    )
    max_batch: int | None = Field(default=None, ge=1, le=1, description="one message per SendSms")

    @field_validator("use_batch")
    @classmethod
    def _no_batch(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "SendBatchSms is not supported: a batch carries one OutId, so its messages "
                "could not be looked up by their own keys after a lost answer (see "
                "docs/connect-aliyun.md); leave use_batch out"
            )
        return value

    @model_validator(mode="after")
    def _one_key_id_and_an_endpoint(self) -> AliyunSmsOptions:
        if (self.access_key_id is None) == (self.access_key_id_env is None):
            raise ValueError("give exactly one of access_key_id and access_key_id_env")
        if self.url is None:
            url = (
                DEFAULT_URL
                if self.region == "cn-hangzhou"
                else f"https://dysmsapi.{self.region}.aliyuncs.com"
            )
            object.__setattr__(self, "url", url)  # frozen model: filled once, here
        return self


class _QueryFailed(Exception):
    """A QuerySendDetails call that gave no usable answer. `config`: our credentials or
    configuration are wrong (not worth asking again soon)."""

    def __init__(self, reason: str, *, config: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.config = config


def aliyun_number(recipient: str) -> str | None:
    """The number as Aliyun takes it: 11 digits for a mainland mobile (+86 stripped), the
    country code and number without `+` for others; None if `recipient` is not E.164."""
    number = recipient.strip()
    mainland = _MAINLAND.match(number)
    if mainland:
        return mainland.group(1)
    if _E164.match(number):
        return number[1:]
    return None


def e164(number: str) -> str:
    """A number as Aliyun's pushes give it (11 mainland digits, or with 86), in E.164."""
    digits = number.strip()
    if digits.startswith("+"):
        return digits
    if re.fullmatch(r"1[3-9][0-9]{9}", digits):
        return "+86" + digits
    return "+" + digits.removeprefix("00")


def _scrub(text: str) -> str:
    """Vendor words for a reason or log: long digit runs (a phone) masked, one line, short."""
    return _LONG_DIGITS.sub("…", " ".join(text.split()))[:200]


def _failure_reason(err_code: str | None) -> str:
    if not err_code:
        return "Aliyun reported a failure without an ErrCode"
    return f"Aliyun ErrCode {_scrub(err_code)}"


def _china_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError:
        return None


def _encode(value: str) -> str:
    # RFC 3986 percent-encoding, `~` kept: what the SDK's canonical query uses.
    return quote(value, safe="~")


def _delivery(send_status: Any, err_code: str | None) -> DeliveryStatus | None:
    """QuerySendDetails' SendStatus (1 waiting, 2 failed, 3 delivered) as a DeliveryStatus."""
    if send_status in (1, "1"):
        return DeliveryStatus.PENDING
    if send_status in (3, "3"):
        return DeliveryStatus.DELIVERED
    if send_status in (2, "2"):
        return _failure(err_code)
    return None


def _failure(err_code: str | None) -> DeliveryStatus:
    if err_code in _UNDELIVERABLE_ERR_CODES:
        return DeliveryStatus.UNDELIVERABLE
    return DeliveryStatus.FAILED


class AliyunSmsAdapter(HttpGatewayAdapter):
    """Alibaba Cloud SMS (dysmsapi 2017-05-25): one SendSms per message, OutId = our key.

    Guarantee: never sent twice by us, found again after a lost answer. Aliyun does not
    deduplicate, so a send whose fate is unknown (a timeout or dropped connection after the
    request went out, a 5xx, an unreadable 200) is AMBIGUOUS and not sent again; when the
    message comes back in doubt, `lookup` finds it by OutId (ACCEPTED, not sent), or finds
    that the day's answer for its number holds no such OutId (sent), or cannot tell (stays
    in doubt).
    """

    name = "aliyun-sms"
    channel = Channel.SMS
    options_model = AliyunSmsOptions
    max_batch = 1
    max_concurrency = 4
    rate_per_second = 20.0
    default_url = DEFAULT_URL
    deduplicates = False

    options: AliyunSmsOptions

    def __init__(
        self,
        options: AliyunSmsOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        super().__init__(options, transport=transport, timing=timing)
        # QuerySendDetails has its own rate at Aliyun; receipts and lookups keep to ours.
        self._queries = RateLimiter(self.rate_per_second, self.timing)

    # -- authentication ---------------------------------------------------------------------

    def build_auth(self) -> Auth:
        key_id = (
            self.options.access_key_id
            if self.options.access_key_id is not None
            else self.env_secret("access_key_id_env")
        )
        return SignedAuth(acs3_signer(key_id, self.env_secret("access_key_secret_env"), self._now))

    def _now(self) -> float:
        return self.timing.wall()

    # -- send ---------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Refuse here what Aliyun must never get (no registered template, unusable
        parameters, a recipient that is not E.164); the kit sends the rest."""
        refused: dict[str, SendResult] = {}
        sendable: list[OutboundMessage] = []
        for message in batch:
            why = self._unsendable(message)
            if why is None:
                sendable.append(message)
            else:
                refused[message.idempotency_key] = why
        if refused:
            log.info("%s: %d message(s) refused before sending", self.name, len(refused))
        sent = await super().send(sendable) if sendable else []
        answered = {r.idempotency_key: r for r in sent}
        answered.update(refused)
        return [answered[m.idempotency_key] for m in batch]

    def _unsendable(self, message: OutboundMessage) -> SendResult | None:
        key = message.idempotency_key
        meta = message.vendor.get(VENDOR) or {}
        code = meta.get("template_code")
        if not isinstance(code, str) or not code.strip():
            return SendResult(
                key,
                SendOutcome.REJECTED,
                reason=(
                    f"template {message.template_id or '(unknown)'} names no registered "
                    "Aliyun template (vendor.aliyun.template_code); Aliyun sends only "
                    "registered templates"
                ),
                code=RejectCode.TEMPLATE_INVALID.value,
            )
        params = meta.get("params") or {}
        if not isinstance(params, Mapping) or not all(
            isinstance(v, str | int | float) and not isinstance(v, bool) for v in params.values()
        ):
            return SendResult(
                key,
                SendOutcome.REJECTED,
                reason=(
                    f"template {message.template_id or '(unknown)'}: the Aliyun parameters "
                    "must be a mapping of names to strings or numbers"
                ),
                code=RejectCode.TEMPLATE_INVALID.value,
            )
        if aliyun_number(message.recipient) is None:
            return SendResult(
                key,
                SendOutcome.REJECTED,
                reason="the recipient is not an E.164 phone number",
                code=RejectCode.INVALID_NUMBER.value,
            )
        return None

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch  # max_batch is 1: one SendSms per message
        meta = message.vendor[VENDOR]
        params = {name: str(value) for name, value in (meta.get("params") or {}).items()}
        query = {
            "PhoneNumbers": aliyun_number(message.recipient),
            "SignName": self.options.sign_name,
            "TemplateCode": str(meta["template_code"]).strip(),
            "OutId": message.idempotency_key,
        }
        if params:
            query["TemplateParam"] = json.dumps(params, ensure_ascii=False, separators=(",", ":"))
        return _action("SendSms", query)

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        (message,) = batch
        key = message.idempotency_key
        if not isinstance(payload, dict) or payload.get("Code") != "OK":
            raise MalformedResponse("not a SendSms answer")
        biz_id = payload.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            raise MalformedResponse("an accepted message has no BizId")
        return {key: SendResult(key, SendOutcome.ACCEPTED, biz_id, vendor_code="OK")}

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        body = _body(answer)
        code = body.get("Code") if body is not None else None
        if not isinstance(code, str):
            if answer.ok:
                raise MalformedResponse("no Code in the answer")
            return self.classify_failure(answer)
        if code == "OK" and answer.ok:
            return self.send_answers(batch, body)
        reason = f"{code}: {_scrub(str((body or {}).get('Message') or ''))}".rstrip(": ")
        if code in _REJECTED_CODES:
            return RequestFailure(
                SendOutcome.REJECTED,
                reason,
                code=_REJECTED_CODES[code].value,
                vendor_code=code,
            )
        if code in _LATER_CODES:
            return RequestFailure(SendOutcome.RETRY, reason, again=False, vendor_code=code)
        if code in _ACCOUNT_CODES:
            return RequestFailure(
                SendOutcome.RETRY,
                f"{reason} (the Aliyun account cannot send now)",
                again=False,
                vendor_code=code,
            )
        if code.startswith("Throttling"):
            return RequestFailure(
                SendOutcome.RETRY, reason, retry_after=answer.retry_after, vendor_code=code
            )
        if code == "SignatureNonceUsed":
            # The next attempt is signed afresh with a new nonce.
            return RequestFailure(SendOutcome.RETRY, reason, vendor_code=code)
        if code.startswith(_CONFIG_PREFIXES) or answer.status_code in (401, 403):
            # 403: the RAM user may not call dysmsapi (Forbidden.RAM, NoPermission...).
            return RequestFailure(
                SendOutcome.RETRY, self._config_hint(reason), again=False, vendor_code=code
            )
        if answer.ok:
            # A business refusal we do not know: Aliyun gave no BizId, it did not take it.
            return RequestFailure(
                SendOutcome.REJECTED, reason, code=RejectCode.OTHER.value, vendor_code=code
            )
        return replace(self.classify_failure(answer), vendor_code=code)

    def error_reason(self, response: httpx.Response) -> str:
        try:
            body = response.json()
            return f"HTTP {response.status_code} {body['Code']}: {_scrub(str(body['Message']))}"
        except (ValueError, KeyError, TypeError):
            return f"HTTP {response.status_code}"

    def _config_hint(self, reason: str) -> str:
        key_id = (
            "access_key_id"
            if self.options.access_key_id is not None
            else f"the AccessKey ID in {self.options.access_key_id_env}"
        )
        return (
            f"{reason} (check {key_id}, the AccessKey secret in "
            f"{self.options.access_key_secret_env}, and this host's clock)"
        )

    # -- statuses -------------------------------------------------------------------------------

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        raise NotImplementedError("Aliyun finds a message by its phone and day: fetch_receipts")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        raise NotImplementedError("Aliyun finds a message by its phone and day: fetch_receipts")

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        """Nothing: QuerySendDetails needs each message's phone number and send day, which a
        gateway id alone does not give. The receipts poll calls `fetch_receipts`."""
        if gateway_message_ids:
            log.warning(
                "%s: %d status(es) not asked: Aliyun needs the recipient (fetch_receipts)",
                self.name,
                len(gateway_message_ids),
            )
        return []

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        """QuerySendDetails per message (its phone, its send day in China time, its BizId).

        A message Aliyun does not list yet gets no report (asked again at the next poll). A
        query that fails is skipped the same way; when every one fails, the poll fails:
        PermanentGatewayError when the credentials are refused, else TransientGatewayError.
        """
        if not messages:
            return []
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(message: SentMessage) -> StatusReport | _QueryFailed | None:
            async with gate:
                try:
                    return await self._receipt(message)
                except _QueryFailed as failed:
                    return failed

        answers = await asyncio.gather(*(one(m) for m in messages))
        reports = [a for a in answers if isinstance(a, StatusReport)]
        failures = [a for a in answers if isinstance(a, _QueryFailed)]
        if failures:
            first = failures[0]
            if len(failures) == len(messages):
                error = PermanentGatewayError if first.config else TransientGatewayError
                raise error(f"{self.name}: receipts: {first.reason}")
            log.warning(
                "%s: %d of %d receipt queries failed, asked again next poll: %s",
                self.name,
                len(failures),
                len(messages),
                first.reason.split(":", 1)[0],
            )
        return reports

    async def _receipt(self, message: SentMessage) -> StatusReport | None:
        phone = aliyun_number(message.recipient)
        if phone is None:
            return None
        gateway_id = message.gateway_message_id
        if gateway_id.startswith(OUT_ID_PREFIX):
            day_text, _, key = gateway_id.removeprefix(OUT_ID_PREFIX).partition(":")
            days = [datetime.strptime(day_text, "%Y%m%d").date()]
            biz_id = None
        else:
            key, biz_id = message.idempotency_key, gateway_id
            days = _days_before(message.sent_at or datetime.fromtimestamp(self._now(), UTC))
        for day in days:
            details = await self._details(phone, day, biz_id)
            mine = [d for d in details if d.get("OutId") == key] or (
                details if biz_id is not None else []
            )
            if mine:
                return self._report(gateway_id, message.idempotency_key, mine[0])
        return None

    def _report(self, gateway_id: str, key: str, detail: Mapping[str, Any]) -> StatusReport | None:
        err_code = detail.get("ErrCode") or None
        status = _delivery(detail.get("SendStatus"), err_code)
        if status is None:
            log.warning("%s: a SendStatus this adapter does not know was skipped", self.name)
            return None
        occurred = (
            _china_time(detail.get("ReceiveDate"))
            or _china_time(detail.get("SendDate"))
            or datetime.fromtimestamp(self._now(), UTC)
        )
        failed = status in (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERABLE)
        return StatusReport(
            gateway_message_id=gateway_id,
            idempotency_key=key,
            status=status,
            occurred_at=occurred,
            reason=_failure_reason(err_code) if failed else None,
            vendor_code=err_code,
        )

    # -- lookup -------------------------------------------------------------------------------

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        """Did an earlier SendSms of this message reach Aliyun? QuerySendDetails for its
        number today (and yesterday within LOOKUP_LOOKBACK of midnight, China time), every
        page, looking for OutId == our key. Found: ACCEPTED; a complete answer without it:
        None (send it); no complete answer: AMBIGUOUS (still in doubt)."""
        key = message.idempotency_key
        phone = aliyun_number(message.recipient)
        if phone is None:
            return None  # never sendable, so never sent
        now = datetime.fromtimestamp(self._now(), UTC)
        try:
            for day in _days_before(now, LOOKUP_LOOKBACK):
                for detail in await self._details(phone, day):
                    if detail.get("OutId") == key:
                        sent_day = _china_time(detail.get("SendDate"))
                        found_day = sent_day.date() if sent_day is not None else day
                        return SendResult(
                            key,
                            SendOutcome.ACCEPTED,
                            f"{OUT_ID_PREFIX}{found_day:%Y%m%d}:{key}",
                            duplicate=True,
                            reason="found at Aliyun by OutId",
                        )
        except _QueryFailed as failed:
            return SendResult(key, SendOutcome.AMBIGUOUS, reason=f"lookup failed: {failed.reason}")
        return None

    # -- QuerySendDetails -----------------------------------------------------------------------

    async def _details(
        self, phone: str, day: date, biz_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every SmsSendDetailDTO for `phone` on `day` (China time); _QueryFailed when the
        answer is not complete."""
        found: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            query = {
                "PhoneNumber": phone,
                "SendDate": f"{day:%Y%m%d}",
                "PageSize": str(PAGE_SIZE),
                "CurrentPage": str(page),
            }
            if biz_id:
                query["BizId"] = biz_id
            body = await self._query(query)
            try:
                total = int(body["TotalCount"])
                items = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _QueryFailed("malformed QuerySendDetails answer") from exc
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise _QueryFailed("malformed QuerySendDetails answer")
            found.extend(items)
            if len(found) >= total:
                return found
            if not items:
                break
        raise _QueryFailed("QuerySendDetails did not list every message of the day")

    async def _query(self, query: Mapping[str, str]) -> dict[str, Any]:
        """One QuerySendDetails (a second with a fresh nonce after SignatureNonceUsed)."""
        for _ in range(2):
            await self._queries.acquire(1)
            answer = await self.call(_action("QuerySendDetails", query))
            body = _body(answer)
            code = body.get("Code") if body is not None else None
            if answer.ok and code == "OK" and body is not None:
                return body
            if code == "SignatureNonceUsed":
                continue
            raise self._query_failure(answer, code)
        raise _QueryFailed("SignatureNonceUsed twice")

    def _query_failure(self, answer: VendorAnswer, code: Any) -> _QueryFailed:
        if answer.response is None:
            return _QueryFailed(answer.error or "no answer", config=answer.auth_refused)
        if isinstance(code, str):
            config = code.startswith(_CONFIG_PREFIXES) or answer.status_code in (403, 404)
            return _QueryFailed(self.error_reason(answer.response), config=config)
        return _QueryFailed(self.error_reason(answer.response))

    # -- check ----------------------------------------------------------------------------------

    async def check(self) -> str | None:
        """A signed QuerySendDetails for a fixed number today: it sends nothing. None when
        Aliyun takes the credentials; else one line (no secret)."""
        today = datetime.fromtimestamp(self._now(), CHINA).date()
        query = {
            "PhoneNumber": CHECK_NUMBER,
            "SendDate": f"{today:%Y%m%d}",
            "PageSize": "1",
            "CurrentPage": "1",
        }
        answer = await self.call(_action("QuerySendDetails", query))
        if answer.response is None:
            return f"cannot reach {self.options.url}: {answer.error or 'no answer'}"
        body = _body(answer)
        code = body.get("Code") if body is not None else None
        if not isinstance(code, str):
            return f"{self.options.url} does not answer as Aliyun SMS: HTTP {answer.status_code}"
        if answer.ok:
            return None  # OK, or a business code: either way the signature was accepted
        if code.startswith("InvalidAccessKeyId"):
            return f"{code}: Aliyun does not know this AccessKey ID (or it is disabled)"
        if code in ("SignatureDoesNotMatch", "IncompleteSignature"):
            return (
                f"{code}: the AccessKey secret in {self.options.access_key_secret_env} "
                "does not match the AccessKey ID"
            )
        if code.startswith("InvalidTimeStamp"):
            return f"{code}: this host's clock is off by more than 15 minutes"
        return self.error_reason(answer.response)

    # -- webhooks -------------------------------------------------------------------------------

    def read_webhook(self, request: WebhookRequest, kind: str) -> WebhookAnswer:
        """Aliyun's SmsReport ("status") and SmsUp ("inbound") pushes: a JSON array each.

        Aliyun does not sign its pushes: the push URL configured in the console carries a
        secret token (`?token=...`, from push_token_env), compared in constant time.
        """
        if kind not in ("status", "inbound"):
            raise WebhookRefused(404, f"{self.name} takes no {kind} webhooks")
        self._authenticate(request)
        try:
            items = json.loads(request.body)
        except ValueError as exc:
            raise WebhookRefused(400, "the body is not JSON") from exc
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise WebhookRefused(400, "the body is not a JSON array of objects")
        if kind == "status":
            statuses = [r for r in (self._push_report(i, request) for i in items) if r]
            if len(statuses) < len(items):
                log.info(
                    "%s: %d SmsReport item(s) without our OutId ignored",
                    self.name,
                    len(items) - len(statuses),
                )
            return WebhookAnswer(statuses=statuses, body=ACK)
        replies = [self._push_reply(i, request) for i in items]
        return WebhookAnswer(replies=replies, body=ACK)

    def _authenticate(self, request: WebhookRequest) -> None:
        if self.options.push_token_env is None:
            raise WebhookRefused(401, "no push token is configured (push_token_env)")
        try:
            expected = self.env_secret("push_token_env")
        except ConfigError as exc:
            raise WebhookRefused(
                401, f"environment variable {self.options.push_token_env} is not set"
            ) from exc
        given = httpx.URL(request.url).params.get("token")
        if not given:
            raise WebhookRefused(401, "the push URL carries no token")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRefused(401, "wrong push token")

    def _push_report(self, item: Mapping[str, Any], request: WebhookRequest) -> StatusReport | None:
        out_id, biz_id = item.get("out_id"), item.get("biz_id")
        if not out_id:
            return None  # not sent by us (no OutId: the console, another system)
        if not isinstance(out_id, str) or not isinstance(biz_id, str) or not biz_id:
            raise WebhookRefused(400, "an SmsReport item lacks biz_id")
        success = item.get("success")
        if not isinstance(success, bool):
            raise WebhookRefused(400, "an SmsReport item lacks success")
        err_code = str(item.get("err_code") or "") or None
        status = DeliveryStatus.DELIVERED if success else _failure(err_code)
        try:
            segments = int(item["sms_size"]) if item.get("sms_size") not in (None, "") else None
        except (TypeError, ValueError):
            segments = None
        return StatusReport(
            gateway_message_id=biz_id,
            idempotency_key=out_id,
            status=status,
            occurred_at=_china_time(item.get("report_time")) or request.received_at,
            reason=None if success else _failure_reason(err_code),
            event_id=f"aliyun-report:{biz_id}:{status.value}",
            vendor_code=err_code,
            segments=segments,
        )

    def _push_reply(self, item: Mapping[str, Any], request: WebhookRequest) -> InboundReply:
        phone, content, sequence = (
            item.get("phone_number"),
            item.get("content"),
            item.get("sequence_id"),
        )
        if not isinstance(phone, str) or not phone or not isinstance(content, str):
            raise WebhookRefused(400, "an SmsUp item lacks phone_number or content")
        if not isinstance(sequence, int | str) or isinstance(sequence, bool) or sequence == "":
            raise WebhookRefused(400, "an SmsUp item lacks sequence_id")
        return InboundReply(
            event_id=f"aliyun-up:{sequence}",
            sender=e164(phone),
            text=content,
            received_at=_china_time(item.get("send_time")) or request.received_at,
        )


def _action(action: str, query: Mapping[str, Any]) -> VendorRequest:
    """A dysmsapi RPC call as the SDK makes it: POST /, the parameters in the query string."""
    return VendorRequest(
        "POST",
        "/",
        params={k: v for k, v in query.items() if v is not None},
        headers={"x-acs-action": action, "x-acs-version": VERSION},
    )


def _body(answer: VendorAnswer) -> dict[str, Any] | None:
    if answer.response is None:
        return None
    try:
        body = answer.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _days_before(moment: datetime, slack: timedelta = SENT_AT_SLACK) -> list[date]:
    """The China-time day of `moment`, and the day before when `moment - slack` falls in it."""
    if moment.tzinfo is None:  # the database's naive datetimes are UTC
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(CHINA)
    days = [local.date()]
    earlier = (local - slack).date()
    if earlier != days[0]:
        days.append(earlier)
    return days


def acs3_signer(
    access_key_id: str, secret: str, now: Callable[[], float]
) -> Callable[[httpx.Request], None]:
    """Sign a request with ACS3-HMAC-SHA256 as Alibaba Cloud's SDK (alibabacloud_tea_openapi)
    does: the canonical request is the method, the path, the query sorted by name with names
    and values percent-encoded (RFC 3986, `~` kept), each signed header as `name:value\\n`
    (lower-case, trimmed, sorted), the signed header names joined by `;`, and the hex SHA-256
    of the body; the signature is the hex HMAC-SHA256, keyed by the secret, of
    `ACS3-HMAC-SHA256\\n<hex SHA-256 of the canonical request>`. Signed: host, content-type,
    and every x-acs- header (the date, a fresh nonce, the body hash, the action and version).
    The query goes out exactly as it was signed."""

    def sign(request: httpx.Request) -> None:
        query = "&".join(
            f"{_encode(name)}={_encode(value)}"
            for name, value in sorted(request.url.params.multi_items())
        )
        request.url = request.url.copy_with(query=query.encode("ascii") if query else None)
        payload_hash = hashlib.sha256(request.content).hexdigest()
        stamp = datetime.fromtimestamp(now(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        request.headers["x-acs-date"] = stamp
        request.headers["x-acs-signature-nonce"] = uuid.uuid4().hex
        request.headers["x-acs-content-sha256"] = payload_hash
        names = sorted(
            {
                name.lower()
                for name in request.headers
                if name.lower() in ("host", "content-type") or name.lower().startswith("x-acs-")
            }
        )
        headers = "".join(f"{name}:{request.headers[name].strip()}\n" for name in names)
        signed = ";".join(names)
        canonical = "\n".join(
            [request.method, request.url.path or "/", query, headers, signed, payload_hash]
        )
        to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        request.headers["Authorization"] = (
            f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={signature}"
        )

    return sign
