"""twilio-sms: Twilio Programmable Messaging (REST API 2010-04-01), SMS.

What it speaks (https://www.twilio.com/docs/messaging/api/message-resource):

  POST /2010-04-01/Accounts/{AccountSid}/Messages.json        send one message (form fields)
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  its status (polling)
  GET  /2010-04-01/Accounts/{AccountSid}/Messages.json        the recipient's messages (lookup)
  GET  /2010-04-01/Accounts/{AccountSid}.json                 the account (`dunning gateway check`)

and reads two webhooks Twilio calls: the StatusCallback (`read_webhook(request, "status")`)
and the incoming-message webhook of the number or Messaging Service (`"inbound"`), both
verified with X-Twilio-Signature.

Authentication: HTTP Basic with the account SID and its auth token (`auth_token_env`), or with
an API key SID and its secret (`api_key_sid`, `api_key_secret_env`). Twilio signs webhooks with
the account's auth token only, so reading webhooks needs `auth_token_env` even when requests
use an API key. Secrets come from the environment only.

Throughput. One message per request (`max_batch` 1), up to 8 requests in flight. The default
rate is what one sender of each kind delivers, not what the API accepts: Twilio takes requests
far faster than a sender sends and queues the rest (up to hours of them), so a faster rate only
moves messages into Twilio's queue, where they may go out late, outside the customer's contact
window. A single `from_number` (a US long code) sends 1 segment a second: 1/s; a Messaging
Service spreads messages over its sender pool: 10/s (a pool of about ten long codes, or a
10DLC campaign's usual throughput). Set `rate_per_second` to what your numbers, short code or
campaign are allowed; the rate counts messages, and Twilio counts segments.

Exactly once. Twilio does not deduplicate (`deduplicates = False`): a repeated POST is a
second message. So a send whose fate is unknown (a timeout or a dropped connection after the
request went out, a 5xx) is never repeated blindly: the kit answers AMBIGUOUS, and when the
message comes back in doubt it asks `lookup` first. What `lookup` guarantees: it lists the
recipient's messages (`To=`, and `From=` when a from_number is configured; never `DateSent`,
which leaves out messages not sent yet), newest first, page by page, and takes an outbound
message with the same body, from our sender (the from_number, or the Messaging Service SID),
created within `lookup_window_hours` (default 24) before now, as ours. So an identical text to
the same number from the same sender within the window counts as this message, and the message
is not sent again (a false "found" can only hold a message back, never send one twice). Not
found after reading every message of the window: sent. Twilio unreachable, an error, or more
than `lookup_max_pages` pages of messages inside the window: cannot tell, AMBIGUOUS (left in
doubt, asked again later).

Error codes (https://www.twilio.com/docs/api/errors) become reject codes: 21610 opted_out;
21211, 21214, 21217, 21401, 21614 invalid_number; 21408, 21612, 21635, 30007, 30034 blocked;
20003 and other codes that mean our account or sender configuration is wrong: RETRY, not tried
again (the messages stay planned); 21611 (the sender's queue is full): RETRY; 429/20429: RETRY
after Retry-After; 5xx and timeouts: the kit's defaults (AMBIGUOUS). Carrier failures arrive
later, as a message's `error_code` (polling) or `ErrorCode` (callback): 30005, 30006 (and the
number errors above) undeliverable, the rest (30003, 30004, 30007, 30008...) failed. The code
is kept in `vendor_code`. Twilio's own error messages can contain the phone number: reasons
use this module's words and mask digits in Twilio's.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from pydantic import Field, field_validator, model_validator

from adapters._http import (
    ENV_NAME,
    Classified,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    RequestFailure,
    Timing,
    VendorAnswer,
    VendorRequest,
)
from adapters.auth import Auth, BasicAuth
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
from dunning.types import Channel

log = logging.getLogger("dunning.adapters")

API_VERSION = "2010-04-01"
TWILIO_URL = "https://api.twilio.com"
SIGNATURE_HEADER = "x-twilio-signature"
SIGNATURE_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
EMPTY_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

_E164 = r"^\+[1-9][0-9]{6,14}$"
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
_DIGITS = re.compile(r"\+?\d[\d\s().-]{4,}\d")
"""Phone-number-like runs in a vendor message (Twilio's 21211 text quotes the number)."""

# -- Twilio's error codes ------------------------------------------------------------------------

REJECTS: dict[int, RejectCode] = {
    21610: RejectCode.OPTED_OUT,  # the recipient replied STOP to this sender
    21211: RejectCode.INVALID_NUMBER,  # invalid 'To' phone number
    21214: RejectCode.INVALID_NUMBER,  # 'To' phone number cannot be reached
    21217: RejectCode.INVALID_NUMBER,  # phone number does not appear to be valid
    21401: RejectCode.INVALID_NUMBER,  # invalid phone number
    21614: RejectCode.INVALID_NUMBER,  # 'To' number is not a valid mobile number
    21408: RejectCode.BLOCKED,  # the destination's region is disabled in Geo Permissions
    21612: RejectCode.BLOCKED,  # this sender cannot reach the 'To' number
    21635: RejectCode.BLOCKED,  # 'To' number cannot be a landline
    30007: RejectCode.BLOCKED,  # filtered by the carrier
    30034: RejectCode.BLOCKED,  # the sender is not registered for A2P 10DLC
}
"""Codes of a 400 on send that refuse the message for good, and what they mean here."""

CONFIG_CODES: frozenset[int] = frozenset(
    {
        20003,  # authenticate: credentials refused
        20005,  # the account is not active
        20008,  # test credentials cannot do this
        20404,  # no such resource: wrong account SID
        21212,  # the 'From' number is not valid
        21603,  # a 'From' number is required
        21606,  # the 'From' number cannot send SMS
        21659,  # the 'From' number is not a Twilio number
        21660,  # the 'From' number belongs to another account
        21701,  # the Messaging Service SID is invalid
        21703,  # the Messaging Service is not active
        21704,  # the Messaging Service has no senders
        21705,  # the Messaging Service SID is invalid
    }
)
"""Codes that mean our configuration is wrong, not the message: RETRY, not tried again."""

BUSY_CODES: frozenset[int] = frozenset({21611, 30001})
"""The sender's queue at Twilio is full: RETRY at the next dispatch."""

UNDELIVERABLE_CODES: frozenset[int] = frozenset(
    {30005, 30006, 21211, 21214, 21217, 21401, 21610, 21614, 21635}
)
"""Error codes on a receipt that mean the number does not work (for us): undeliverable.
Other codes (30003 handset off, 30004 blocked, 30007 filtered, 30008 unknown...) are a failed
attempt at a working number."""

_PENDING = frozenset({"queued", "accepted", "scheduled", "sending", "sent"})


def delivery_status(status: str, error_code: int | None) -> DeliveryStatus | None:
    """A Message's status word (and error code) as a DeliveryStatus; None for a word not
    known here (skipped with a warning)."""
    if status in _PENDING:
        return DeliveryStatus.PENDING
    if status in ("delivered", "read"):
        return DeliveryStatus.DELIVERED
    if status in ("undelivered", "failed"):
        if error_code is not None:
            if error_code in UNDELIVERABLE_CODES:
                return DeliveryStatus.UNDELIVERABLE
            return DeliveryStatus.FAILED
        return DeliveryStatus.UNDELIVERABLE if status == "undelivered" else DeliveryStatus.FAILED
    if status == "canceled":
        return DeliveryStatus.FAILED
    return None


def twilio_signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """X-Twilio-Signature as Twilio computes it: HMAC-SHA1 with the auth token over the full
    URL followed by each POST parameter's name and value, sorted by name (a repeated name's
    values sorted too), base64."""
    text = url
    for name in sorted({n for n, _ in params}):
        for value in sorted({v for n, v in params if n == name}):
            text += name + value
    digest = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url: str) -> list[str]:
    """The URL without and with its port (the scheme's default when it names none): Twilio
    signs either form, and its own RequestValidator accepts both."""
    parts = urlsplit(url)
    if parts.port:
        bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0]))
        return [url, bare]
    port = 443 if parts.scheme == "https" else 80
    return [url, urlunsplit(parts._replace(netloc=f"{parts.netloc}:{port}"))]


def _masked(text: str) -> str:
    return _DIGITS.sub("[number]", text).replace("\n", " ")[:200]


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _rfc2822(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class TwilioOptions(HttpAdapterOptions):
    """The `options:` of a twilio-sms provider in config/channels.yaml."""

    url: str | None = Field(
        default=TWILIO_URL, description="Twilio's REST API (the demo points it at the mock)"
    )
    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$", description="the account (AC...)")
    auth_token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the account's auth token: Basic password "
        "with the account SID (unless an API key is set), and the key that verifies webhooks",
    )
    api_key_sid: str | None = Field(
        default=None, pattern=r"^SK[0-9a-fA-F]{32}$", description="an API key (SK...) to send with"
    )
    api_key_secret_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="environment variable holding its secret"
    )
    messaging_service_sid: str | None = Field(
        default=None, pattern=r"^MG[0-9a-fA-F]{32}$", description="send through this service"
    )
    from_number: str | None = Field(
        default=None, pattern=_E164, description="or from this number (E.164)"
    )
    status_callback: str | None = Field(
        default=None,
        description="where Twilio posts status changes, e.g. "
        "https://dunning.example.com/webhooks/providers/twilio-us/status",
    )
    lookup_window_hours: float = Field(
        default=24.0,
        gt=0,
        le=24 * 14,
        description="an in-doubt message is looked for among the recipient's messages created "
        "this long before now (longer than the dispatcher's lease)",
    )
    lookup_max_pages: int = Field(
        default=5, ge=1, le=100, description="pages of 50 read by a lookup before it gives up"
    )

    @field_validator("status_callback")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_sender_and_credentials(self) -> Self:
        if (self.messaging_service_sid is None) == (self.from_number is None):
            raise ValueError("set exactly one of messaging_service_sid and from_number")
        if (self.api_key_sid is None) != (self.api_key_secret_env is None):
            raise ValueError("api_key_sid and api_key_secret_env go together")
        if self.auth_token_env is None and self.api_key_sid is None:
            raise ValueError("set auth_token_env, or api_key_sid with api_key_secret_env")
        if self.api_key_env is not None:
            raise ValueError(
                "twilio-sms does not use api_key_env: set auth_token_env, "
                "or api_key_sid with api_key_secret_env"
            )
        return self


class TwilioSmsAdapter(HttpGatewayAdapter):
    """Twilio Programmable Messaging, one SMS per request (see the module's docstring)."""

    name = "twilio-sms"
    channel = Channel.SMS
    options_model = TwilioOptions
    max_batch = 1
    max_concurrency = 8
    rate_per_second = 10.0
    default_url = TWILIO_URL
    deduplicates = False

    options: TwilioOptions

    def __init__(
        self,
        options: TwilioOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        if options is None:
            raise TypeError("twilio-sms needs its options (account_sid, credentials, sender)")
        if options.rate_per_second is None and options.from_number is not None:
            # One long code sends one segment a second; faster only queues at Twilio.
            self.rate_per_second = 1.0  # type: ignore[misc]
        super().__init__(options, transport=transport, timing=timing)
        # Read now, so a missing variable is a configuration error at start, not at the
        # first webhook. Twilio signs webhooks with the auth token, never with an API key.
        self._webhook_token = (
            self.env_secret("auth_token_env") if options.auth_token_env is not None else None
        )

    @property
    def _messages(self) -> str:
        return f"/{API_VERSION}/Accounts/{self.options.account_sid}/Messages"

    @property
    def _secret_name(self) -> str:
        """The environment variable of the credential in use (named in errors, never read)."""
        return self.options.api_key_secret_env or self.options.auth_token_env or "?"

    # -- authentication -----------------------------------------------------------------------

    def build_auth(self) -> Auth:
        if self.options.api_key_sid is not None:
            return BasicAuth(self.options.api_key_sid, self.env_secret("api_key_secret_env"))
        return BasicAuth(self.options.account_sid, self.env_secret("auth_token_env"))

    # -- send ---------------------------------------------------------------------------------

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch
        form = {"To": message.recipient, "Body": message.body}
        if self.options.messaging_service_sid is not None:
            form["MessagingServiceSid"] = self.options.messaging_service_sid
        else:
            form["From"] = str(self.options.from_number)
        if self.options.status_callback is not None:
            form["StatusCallback"] = self.options.status_callback
        return VendorRequest("POST", f"{self._messages}.json", form=form)

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        (message,) = batch
        if not isinstance(payload, dict):
            raise MalformedResponse("the answer is not a Message resource")
        sid = payload.get("sid")
        if not isinstance(sid, str) or not _MESSAGE_SID.match(sid):
            raise MalformedResponse("the answer has no message sid")
        key = message.idempotency_key
        return {
            key: SendResult(
                key,
                SendOutcome.ACCEPTED,
                gateway_message_id=sid,
                segments=_int(payload.get("num_segments")),
                price=_price(payload.get("price")),
                price_unit=_price(payload.get("price_unit")) if payload.get("price") else None,
            )
        }

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        if answer.response is None or answer.ok:
            return super().classify_send(batch, answer)
        status = answer.response.status_code
        code = _error_code(answer.response)
        vendor_code = None if code is None else str(code)
        reason = self.error_reason(answer.response)
        if status == 401 or code == 20003:
            return RequestFailure(
                SendOutcome.RETRY,
                f"credentials refused ({self._secret_name}): {reason}",
                again=False,
                vendor_code=vendor_code,
            )
        if code in CONFIG_CODES:
            return RequestFailure(
                SendOutcome.RETRY,
                f"check the provider's account_sid and sender in its config: {reason}",
                again=False,
                vendor_code=vendor_code,
            )
        if code in BUSY_CODES:
            return RequestFailure(
                SendOutcome.RETRY,
                f"the sender's queue at Twilio is full: {reason}",
                again=False,
                vendor_code=vendor_code,
            )
        if status == 429 or code == 20429 or status >= 500:
            return replace(self.classify_failure(answer), vendor_code=vendor_code)
        if 400 <= status < 500 and status not in (403, 404, 405, 408, 425):
            reject = REJECTS.get(code, RejectCode.OTHER) if code is not None else RejectCode.OTHER
            return RequestFailure(
                SendOutcome.REJECTED, reason, code=reject.value, vendor_code=vendor_code
            )
        return replace(self.classify_failure(answer), vendor_code=vendor_code)

    def error_reason(self, response: httpx.Response) -> str:
        """`HTTP 400 Twilio 21211: <Twilio's message, digits masked>`."""
        try:
            payload = response.json()
            code, message = payload["code"], str(payload.get("message") or "")
        except (ValueError, KeyError, TypeError):
            return f"HTTP {response.status_code}"
        return f"HTTP {response.status_code} Twilio {code}: {_masked(message)}"

    # -- status polling -----------------------------------------------------------------------

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        (sid,) = gateway_message_ids
        return VendorRequest("GET", f"{self._messages}/{sid}.json")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        if not isinstance(payload, dict):
            raise MalformedResponse("the answer is not a Message resource")
        report = self._report(payload, "")
        return [] if report is None else [report]

    def classify_status(
        self, gateway_message_ids: Sequence[str], answer: VendorAnswer
    ) -> list[StatusReport] | RequestFailure:
        if answer.status_code == 404:
            return []  # no such message at this account: nothing to report
        if answer.status_code == 401:
            return RequestFailure(
                SendOutcome.RETRY, f"credentials refused ({self._secret_name})", again=False
            )
        return super().classify_status(gateway_message_ids, answer)

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        """Each message fetched by its SID; the reports carry our keys (Twilio has none)."""
        keys = {m.gateway_message_id: m.idempotency_key for m in messages}
        reports = await self.fetch_statuses(list(keys))
        return [replace(r, idempotency_key=keys.get(r.gateway_message_id, "")) for r in reports]

    def _report(self, resource: Mapping[str, Any], key: str) -> StatusReport | None:
        sid = resource.get("sid")
        word = resource.get("status")
        if not isinstance(sid, str) or not isinstance(word, str):
            raise MalformedResponse("a Message lacks sid or status")
        error_code = _int(resource.get("error_code"))
        status = delivery_status(word, error_code)
        if status is None:
            log.warning("%s: a message with the unknown status word %r skipped", self.name, word)
            return None
        occurred = (
            _rfc2822(resource.get("date_updated"))
            or _rfc2822(resource.get("date_created"))
            or datetime.fromtimestamp(self.timing.wall(), UTC)
        )
        return StatusReport(
            gateway_message_id=sid,
            idempotency_key=key,
            status=status,
            occurred_at=occurred,
            reason=_status_reason(word, error_code),
            event_id=f"{sid}:{word}",
            vendor_code=None if error_code is None else str(error_code),
            segments=_int(resource.get("num_segments")),
            price=_price(resource.get("price")),
            price_unit=_price(resource.get("price_unit")) if resource.get("price") else None,
        )

    # -- lookup of an in-doubt message ----------------------------------------------------------

    async def lookup(self, message: OutboundMessage) -> SendResult | None:
        """Whether Twilio has this message (see the module's docstring for the rule).

        ACCEPTED (with the SID found) when the recipient has an outbound message with the same
        body from our sender created within the window; None when every message of the window
        was read and none matches; AMBIGUOUS when Twilio cannot be asked or the window holds
        more than `lookup_max_pages` pages.
        """
        key = message.idempotency_key
        since = datetime.fromtimestamp(self.timing.wall(), UTC) - timedelta(
            hours=self.options.lookup_window_hours
        )
        params: dict[str, str] = {"To": message.recipient, "PageSize": "50"}
        if self.options.from_number is not None:
            params["From"] = self.options.from_number
        request = VendorRequest("GET", f"{self._messages}.json", params=params)
        for _ in range(self.options.lookup_max_pages):
            answer = await self.call(request)
            if not answer.ok:
                why = answer.error or (
                    self.error_reason(answer.response) if answer.response is not None else "?"
                )
                return SendResult(key, SendOutcome.AMBIGUOUS, reason=f"lookup failed: {why}")
            try:
                payload = answer.json()
                listed = payload["messages"]
                next_page = payload.get("next_page_uri")
                if not isinstance(listed, list) or not (
                    next_page is None or isinstance(next_page, str)
                ):
                    raise MalformedResponse("not a list of messages")
            except (MalformedResponse, KeyError, TypeError):
                return SendResult(
                    key, SendOutcome.AMBIGUOUS, reason="lookup failed: malformed answer"
                )
            in_window = False
            for resource in listed:
                if not isinstance(resource, dict):
                    continue
                created = _rfc2822(resource.get("date_created"))
                if created is None or created >= since:
                    in_window = True  # undated: read on, it may be recent
                if created is not None and created < since:
                    continue
                if self._ours(resource, message):
                    sid = str(resource.get("sid"))
                    return SendResult(
                        key,
                        SendOutcome.ACCEPTED,
                        gateway_message_id=sid,
                        duplicate=True,
                        segments=_int(resource.get("num_segments")),
                        price=_price(resource.get("price")),
                        price_unit=_price(resource.get("price_unit"))
                        if resource.get("price")
                        else None,
                    )
            if next_page is None or not in_window:
                # Newest first: a page wholly older than the window ends the search.
                return None
            request = VendorRequest("GET", next_page)
        return SendResult(
            key,
            SendOutcome.AMBIGUOUS,
            reason=(
                f"lookup: more than {self.options.lookup_max_pages} pages of messages to this "
                "recipient in the window; cannot tell"
            ),
        )

    def _ours(self, resource: Mapping[str, Any], message: OutboundMessage) -> bool:
        if not str(resource.get("direction") or "outbound").startswith("outbound"):
            return False
        if resource.get("body") != message.body:
            return False
        sid = resource.get("sid")
        if not isinstance(sid, str) or not _MESSAGE_SID.match(sid):
            return False
        if self.options.messaging_service_sid is not None:
            return resource.get("messaging_service_sid") == self.options.messaging_service_sid
        return resource.get("from") == self.options.from_number

    # -- operations ---------------------------------------------------------------------------

    async def check(self) -> str | None:
        """Try the credentials without sending: the account (auth token), or one page of
        messages (an API key: standard keys may not read the Accounts resource)."""
        url = self.options.url or self.default_url
        if self.options.api_key_sid is None:
            request = VendorRequest(
                "GET", f"/{API_VERSION}/Accounts/{self.options.account_sid}.json"
            )
        else:
            request = VendorRequest("GET", f"{self._messages}.json", params={"PageSize": "1"})
        answer = await self.call(request)
        if answer.response is None:
            if answer.error and answer.error.startswith("timed out"):
                return f"{url} did not answer ({answer.error})"
            return f"cannot reach {url} ({answer.error or 'no answer'})"
        status = answer.response.status_code
        if status in (401, 403):
            return f"credentials refused ({self._secret_name})"
        if status == 404:
            return f"no account {self.options.account_sid} at {url}"
        if not answer.ok:
            return f"{url} answered {self.error_reason(answer.response)}"
        if self.options.api_key_sid is None:
            try:
                account_status = answer.json().get("status")
            except (MalformedResponse, AttributeError):
                return f"{url} answered something that is not a Twilio account"
            if account_status != "active":
                return f"the account {self.options.account_sid} is {account_status}, not active"
        return None

    # -- webhooks -----------------------------------------------------------------------------

    def read_webhook(self, request: WebhookRequest, kind: str) -> WebhookAnswer:
        """A StatusCallback ("status") or an incoming message ("inbound"), verified.

        401: no X-Twilio-Signature, one that does not match (computed with the auth token over
        the URL Twilio called and the form fields), or no auth_token_env to check it with.
        400: not a form POST, or fields missing. Twilio's signature has no timestamp: a
        replayed call is accepted and carries the same event_id (status: "<sid>:<status>",
        inbound: the message SID), so it is recorded once.
        """
        if kind not in ("status", "inbound"):
            raise WebhookRefused(404, f"{self.name} takes no {kind} webhooks")
        params = self._verified(request)
        fields = dict(params)
        if fields.get("AccountSid") != self.options.account_sid:
            raise WebhookRefused(400, "the call is not for this provider's account")
        sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
        if not _MESSAGE_SID.match(sid):
            raise WebhookRefused(400, "MessageSid is missing or malformed")
        if kind == "inbound":
            sender, text = fields.get("From"), fields.get("Body")
            if not sender or text is None:
                raise WebhookRefused(400, "From or Body is missing")
            reply = InboundReply(
                event_id=sid, sender=sender, text=text, received_at=request.received_at
            )
            return WebhookAnswer(replies=[reply], content_type="text/xml", body=EMPTY_TWIML)
        word = fields.get("MessageStatus") or fields.get("SmsStatus")
        if not word:
            raise WebhookRefused(400, "MessageStatus is missing")
        raw_code = fields.get("ErrorCode") or None
        error_code = _int(raw_code)
        if raw_code is not None and error_code is None:
            raise WebhookRefused(400, "ErrorCode is not a number")
        status = delivery_status(word, error_code)
        if status is None:
            log.warning("%s: a status callback with an unknown status word skipped", self.name)
            return WebhookAnswer(content_type="text/plain")
        report = StatusReport(
            gateway_message_id=sid,
            idempotency_key="",
            status=status,
            occurred_at=request.received_at,
            reason=_status_reason(word, error_code),
            event_id=f"{sid}:{word}",
            vendor_code=None if error_code is None else str(error_code),
            segments=_int(fields.get("NumSegments")),
        )
        return WebhookAnswer(statuses=[report], content_type="text/plain")

    def _verified(self, request: WebhookRequest) -> list[tuple[str, str]]:
        """The form fields of a call signed by Twilio with our auth token."""
        if self._webhook_token is None:
            raise WebhookRefused(
                401,
                f"{self.name} cannot verify X-Twilio-Signature: Twilio signs webhooks with the "
                "account's auth token; set auth_token_env",
            )
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise WebhookRefused(401, "X-Twilio-Signature is missing")
        settings = request.headers.get(SIGNATURE_SETTINGS_HEADER, "")
        if "algorithm=" in settings and "algorithm=HMAC_SHA1" not in settings.replace(" ", ""):
            raise WebhookRefused(401, "only auth token (HMAC-SHA1) signatures are accepted")
        if request.method.upper() != "POST":
            raise WebhookRefused(400, "Twilio's webhooks are form POSTs")
        try:
            params = parse_qsl(
                request.body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=bool(request.body),
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise WebhookRefused(400, "the body is not form-encoded UTF-8") from exc
        token = self._webhook_token
        if not any(
            hmac.compare_digest(twilio_signature(token, url, params), signature)
            for url in _url_variants(request.url)
        ):
            raise WebhookRefused(401, "X-Twilio-Signature does not match")
        return params


def _price(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error_code(response: httpx.Response) -> int | None:
    try:
        return _int(response.json().get("code"))
    except (ValueError, AttributeError):
        return None


def _status_reason(word: str, error_code: int | None) -> str | None:
    if word in _PENDING or word in ("delivered", "read"):
        return None
    return f"Twilio {word}" + (f" ({error_code})" if error_code is not None else "")
