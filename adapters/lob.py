"""lob-letter: Lob's Print & Mail API (v1), US letters from our rendered PDFs.

What it speaks (https://docs.lob.com, Lob's OpenAPI file lob-api-bundled.yml):

  POST /v1/letters        create a letter: multipart/form-data, the PDF as the `file` part
  GET  /v1/letters/{id}   the letter, with its USPS tracking events (polling)
  GET  /v1/letters        one letter (`dunning gateway check`)

(`url` is the API's base, https://api.lob.com/v1, as in Lob's OpenAPI file's `servers`.)

and reads Lob's webhooks (`read_webhook(request, "status")`): the letter events Lob POSTs as
JSON, signed with `Lob-Signature` (hex HMAC-SHA256 with the webhook's secret over
`"{Lob-Signature-Timestamp}.{raw body}"`).

The request. `to` is an inline address object built from the outbox letter's address fields
(OutboundMessage.address): name, address_line1 (the first line), address_line2 (the other lines
joined), address_city, address_state (region), address_zip (postal_code), address_country.
`from` is the lender's return address, from this provider's options (`from_address`): it is
the program's configuration, like the sender of an SMS, not the customer's data. `file` is the
rendered PDF (OutboundMessage.document), never Lob's HTML: the letter compliance reviewed is
the one printed. `use_type` is `operational` (a collections letter is account servicing, not
marketing). `address_placement` defaults to `insert_blank_page`: Lob prints the address and
the postage on a page of its own in front of ours, so today's PDFs (whatever their layout) go
out unchanged, at the price of one more page. Once the Typst page formats place the address
where Lob's letter template and a #10 double-window envelope expect it (US Letter, the
address block in Lob's clear zone on page one), set `address_placement: top_first_page`.
`metadata` carries no personal data: the template id and the message's own metadata (template,
locale, tier, run id), within Lob's limits (20 keys, keys under 40 characters, values under
500, no `"` or `\\`).

Authentication: HTTP Basic with the API key as the user and no password (`api_key_env`).

Exactly once. Each create carries `Idempotency-Key: <our key>`. Lob answers a create with a key
it has seen with the letter it already made (the same `ltr_` id), for 24 hours after the first
request with that key (keys are per resource and per mode, Test or Live). So this adapter
`deduplicates`: an ambiguous create (a timeout, a dropped connection, a 5xx) is sent again
with the same key, within this send (seconds) or at a later dispatch once the claim's lease
runs out (`dispatch.lease_seconds`, at most an hour), and yields the one letter. What that
does not cover: a message whose first create Lob may have taken and that is sent again more
than 24 hours later (e.g. its retries ran out and it stayed planned over a day): Lob has
forgotten the key by then and would print a second letter. Keep `max_attempts` and the
dispatch schedule such that a letter left planned after an ambiguous answer is retried the
same day, or check with Lob (the dashboard, by the letter's metadata) before sending it again.

Answers: 200 with an `ltr_` id: ACCEPTED. 422 for the recipient's address
(failed_deliverability_strictness, address_length_exceeds_limit, invalid_country_covid,
invalid_international_feature, and `invalid` naming a `to` field): REJECTED as
invalid_number (the address is no reachable address); 422 for the file (invalid_file,
invalid_file_dimensions, file_pages_*, pdf_encrypted, unembedded_fonts...): REJECTED as
template_invalid; other 422s: REJECTED. 401, 403 and the codes that mean our account or return
address is wrong (foreign_return_address, billing_address_required, payment_method_unverified,
invalid_api_key...): RETRY, not tried again (configuration). 429 and 5xx: the kit's defaults.
Lob's messages can quote the address: reasons for an address refusal use only Lob's code.

Statuses. Polling reads the letter's latest tracking event: none yet, Mailed, In Transit, In
Local Area, Processed for Delivery, Re-Routed: pending; Delivered: delivered; Returned to
Sender: undeliverable (vendor_code `returned_to_sender`: the engine marks the address
returned); a deleted (cancelled) letter: failed. Webhook events: letter.created,
letter.rendered_pdf, letter.rendered_thumbnails, letter.mailed, letter.in_transit,
letter.in_local_area, letter.processed_for_delivery, letter.re-routed: pending;
letter.delivered: delivered; letter.returned_to_sender: undeliverable; letter.deleted and
letter.rendering_failed (Lob could not print our file): failed. Each report's event id is
Lob's (the event's `evt_` id, or the tracking event's `evnt_` id when polled), so an event
Lob delivers twice is recorded once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

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

LOB_URL = "https://api.lob.com/v1"
"""Lob's API base (its OpenAPI file's server); request paths are relative to it."""
LETTERS = "/letters"
SIGNATURE_HEADER = "lob-signature"
TIMESTAMP_HEADER = "lob-signature-timestamp"
RETURNED = "returned_to_sender"

_LETTER_ID = re.compile(r"^ltr_[a-zA-Z0-9]+$")
_DIGITS = re.compile(r"\d[\d\s-]{2,}\d")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")

ADDRESS_CODES: frozenset[str] = frozenset(
    {
        "failed_deliverability_strictness",  # the `to` address fails the account's strictness
        "address_length_exceeds_limit",  # address_line1 + address_line2 over 50 characters
        "invalid_country_covid",  # the destination's post takes no mail now
        "invalid_international_feature",  # the product cannot go to this destination
    }
)
"""422 codes that refuse the recipient's address: REJECTED as invalid_number."""

FILE_CODES: frozenset[str] = frozenset(
    {
        "invalid_file",
        "invalid_file_dimensions",
        "inconsistent_page_dimensions",
        "file_pages_below_min",
        "file_pages_exceed_max",
        "file_size_exceeds_limit",
        "pdf_encrypted",
        "unembedded_fonts",
        "invalid_image_dpi",
        "special_characters_restricted",
    }
)
"""422 codes that refuse our PDF: REJECTED as template_invalid (the layout needs fixing)."""

CONFIG_CODES: frozenset[str] = frozenset(
    {
        "foreign_return_address",  # options.from_address must be a US address
        "billing_address_required",
        "payment_method_unverified",
        "feature_limit_reached",
        "mail_use_type_can_not_be_null",
        "invalid_api_key",
        "publishable_key_not_allowed",
        "unauthorized",
        "unauthorized_token",
        "unsupported_lob_version",
    }
)
"""Codes that mean our account or configuration is wrong: RETRY, not tried again."""

_PENDING_EVENTS = frozenset(
    {
        "created",
        "rendered_pdf",
        "rendered_thumbnails",
        "mailed",
        "in_transit",
        "in_local_area",
        "processed_for_delivery",
        "re-routed",
        "international_exit",
    }
)
_TRACKING: dict[str, DeliveryStatus] = {
    "Mailed": DeliveryStatus.PENDING,
    "In Transit": DeliveryStatus.PENDING,
    "In Local Area": DeliveryStatus.PENDING,
    "Processed for Delivery": DeliveryStatus.PENDING,
    "Re-Routed": DeliveryStatus.PENDING,
    "International Exit": DeliveryStatus.PENDING,
    "Delivered": DeliveryStatus.DELIVERED,
    "Returned to Sender": DeliveryStatus.UNDELIVERABLE,
}


def event_status(event_type: str) -> DeliveryStatus | None:
    """A letter event type (`letter.delivered`) as a DeliveryStatus; None: not ours to read."""
    kind, _, name = event_type.partition(".")
    if kind != "letter":
        return None
    if name in _PENDING_EVENTS:
        return DeliveryStatus.PENDING
    if name == "delivered":
        return DeliveryStatus.DELIVERED
    if name == RETURNED:
        return DeliveryStatus.UNDELIVERABLE
    if name in ("deleted", "rendering_failed", "failed"):
        return DeliveryStatus.FAILED
    return None


def lob_signature(secret: str, timestamp: str, body: bytes) -> str:
    """Lob-Signature: hex HMAC-SHA256 with the webhook's secret over "{timestamp}.{body}"."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _unix_seconds(timestamp: str) -> float | None:
    """Lob-Signature-Timestamp as Unix seconds: Lob sends milliseconds; seconds are taken too."""
    try:
        value = float(timestamp)
    except ValueError:
        return None
    if value != value or value <= 0:  # NaN
        return None
    return value / 1000 if value > 1e11 else value


def _masked(text: str) -> str:
    """A vendor message without anything it quotes and without digit runs (house numbers,
    ZIP codes)."""
    return _DIGITS.sub("[n]", _QUOTED.sub("[...]", text)).replace("\n", " ")[:200]


def _iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class ReturnAddress(BaseModel):
    """The lender's return address (Lob's `from`): a US address, printed on the envelope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, max_length=40)
    company: str | None = Field(default=None, max_length=40)
    address_line1: str = Field(min_length=1, max_length=64)
    address_line2: str | None = Field(default=None, max_length=64)
    address_city: str = Field(min_length=1, max_length=200)
    address_state: str = Field(pattern=r"^[A-Za-z]{2}$")
    address_zip: str = Field(pattern=r"^\d{5}(-\d{4})?$")
    address_country: Literal["US"] = "US"

    def fields(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class LobOptions(HttpAdapterOptions):
    """The `options:` of a lob-letter provider in config/channels.yaml."""

    url: str | None = Field(
        default=LOB_URL, description="Lob's API (the demo points it at the mock)"
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the API key (test_... or live_...): the "
        "HTTP Basic user, with no password",
    )
    webhook_secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the webhook's secret (Lob's dashboard, "
        "Webhooks): verifies Lob-Signature; without it every webhook call is refused",
    )
    from_address: ReturnAddress = Field(description="the lender's return address (Lob's `from`)")
    color: bool = Field(default=False, description="print in colour (Lob charges more)")
    double_sided: bool = Field(default=True, description="print on both sides of the paper")
    address_placement: Literal["insert_blank_page", "top_first_page"] = Field(
        default="insert_blank_page",
        description="insert_blank_page: Lob adds an address page in front of ours (any "
        "layout); top_first_page: our first page leaves Lob's address area clear",
    )
    mail_type: Literal["usps_first_class", "usps_standard"] = Field(
        default="usps_first_class", description="postage class (first class for notices)"
    )
    webhook_tolerance_seconds: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="a webhook call signed longer ago than this (or this far ahead) is refused",
    )

    @model_validator(mode="after")
    def _api_key(self) -> Self:
        if self.api_key_env is None:
            raise ValueError("lob-letter needs api_key_env (the variable holding the API key)")
        return self


class LobLetterAdapter(HttpGatewayAdapter):
    """Lob Print & Mail, one letter per request (see the module's docstring)."""

    name = "lob-letter"
    channel = Channel.LETTER
    options_model = LobOptions
    max_batch = 1
    max_concurrency = 4
    rate_per_second = 10.0
    default_url = LOB_URL
    deduplicates = True

    options: LobOptions

    def __init__(
        self,
        options: LobOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        if options is None:
            raise TypeError("lob-letter needs its options (api_key_env, from_address)")
        super().__init__(options, transport=transport, timing=timing)
        # Read now, so a missing variable is a configuration error at start, not at the first
        # webhook.
        self._webhook_secret = (
            self.env_secret("webhook_secret_env")
            if options.webhook_secret_env is not None
            else None
        )

    # -- authentication -----------------------------------------------------------------------

    def build_auth(self) -> Auth:
        return BasicAuth(self.env_secret("api_key_env"), "")

    # -- send ---------------------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        """Letters without address fields or a PDF are refused here, never sent to Lob."""
        refused = {m.idempotency_key: r for m in batch if (r := _unsendable(m)) is not None}
        sendable = [m for m in batch if m.idempotency_key not in refused]
        answered = {r.idempotency_key: r for r in await super().send(sendable)} if sendable else {}
        return [refused.get(m.idempotency_key) or answered[m.idempotency_key] for m in batch]

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch
        assert message.address is not None and message.document is not None
        form: dict[str, str] = {}
        for name, value in recipient_fields(message.address).items():
            form[f"to[{name}]"] = value
        for name, value in self.options.from_address.fields().items():
            form[f"from[{name}]"] = value
        for name, value in letter_metadata(message).items():
            form[f"metadata[{name}]"] = value
        form.update(
            {
                "color": _bool(self.options.color),
                "double_sided": _bool(self.options.double_sided),
                "address_placement": self.options.address_placement,
                "mail_type": self.options.mail_type,
                "use_type": "operational",
            }
        )
        return VendorRequest(
            "POST",
            LETTERS,
            form=form,
            files={"file": ("letter.pdf", message.document, "application/pdf")},
            headers={"Idempotency-Key": message.idempotency_key},
        )

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        (message,) = batch
        if not isinstance(payload, dict):
            raise MalformedResponse("the answer is not a letter")
        letter_id = payload.get("id")
        if not isinstance(letter_id, str) or not _LETTER_ID.match(letter_id):
            raise MalformedResponse("the answer has no letter id")
        key = message.idempotency_key
        return {key: SendResult(key, SendOutcome.ACCEPTED, gateway_message_id=letter_id)}

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        if answer.response is None or answer.ok:
            return super().classify_send(batch, answer)
        status = answer.response.status_code
        code, message = _error(answer.response)
        if status in (401, 403) or code in CONFIG_CODES:
            why = f"HTTP {status} Lob {code or '?'}"
            return RequestFailure(
                SendOutcome.RETRY,
                f"check api_key_env and from_address of {self._config_key()} in "
                f"{self.config_file}: {why}",
                again=False,
                vendor_code=code,
            )
        if status == 422 and code is not None:
            if code in ADDRESS_CODES or (code == "invalid" and _names_recipient(message)):
                return RequestFailure(
                    SendOutcome.REJECTED,
                    f"HTTP 422 Lob {code}: the recipient's address was refused",
                    code=RejectCode.INVALID_NUMBER.value,
                    vendor_code=code,
                )
            reject = RejectCode.TEMPLATE_INVALID if code in FILE_CODES else RejectCode.OTHER
            return RequestFailure(
                SendOutcome.REJECTED,
                self.error_reason(answer.response),
                code=reject.value,
                vendor_code=code,
            )
        if status == 409:
            # Another request with this key is still in progress at Lob: ask again.
            return RequestFailure(SendOutcome.RETRY, self.error_reason(answer.response))
        return replace(self.classify_failure(answer), vendor_code=code)

    def error_reason(self, response: httpx.Response) -> str:
        """`HTTP 422 Lob invalid_file: <Lob's message, quotes and digits masked>`."""
        code, message = _error(response)
        if code is None:
            return f"HTTP {response.status_code}"
        return f"HTTP {response.status_code} Lob {code}: {_masked(message)}"

    # -- status polling -----------------------------------------------------------------------

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        (letter_id,) = gateway_message_ids
        return VendorRequest("GET", f"{LETTERS}/{quote(letter_id, safe='')}")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        if not isinstance(payload, dict):
            raise MalformedResponse("the answer is not a letter")
        return [self._polled(payload)]

    def classify_status(
        self, gateway_message_ids: Sequence[str], answer: VendorAnswer
    ) -> list[StatusReport] | RequestFailure:
        if answer.status_code == 404:
            return []  # no such letter at this account: nothing to report
        return super().classify_status(gateway_message_ids, answer)

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        """Each letter fetched by its id; the reports carry our keys."""
        keys = {m.gateway_message_id: m.idempotency_key for m in messages}
        reports = await self.fetch_statuses(list(keys))
        return [replace(r, idempotency_key=keys.get(r.gateway_message_id, "")) for r in reports]

    def _polled(self, letter: Mapping[str, Any]) -> StatusReport:
        letter_id = letter.get("id")
        if not isinstance(letter_id, str) or not _LETTER_ID.match(letter_id):
            raise MalformedResponse("a letter lacks its id")
        now = datetime.fromtimestamp(self.timing.wall(), UTC)
        if letter.get("deleted") is True:
            return StatusReport(
                gateway_message_id=letter_id,
                idempotency_key="",
                status=DeliveryStatus.FAILED,
                occurred_at=_iso(letter.get("date_modified")) or now,
                reason="Lob: the letter was cancelled",
                event_id=f"{letter_id}:deleted",
                vendor_code="deleted",
            )
        events = letter.get("tracking_events") or []
        if not isinstance(events, list):
            raise MalformedResponse("tracking_events is not a list")
        known = [
            e
            for e in events
            if isinstance(e, dict) and isinstance(e.get("name"), str) and e["name"] in _TRACKING
        ]
        if not known:
            created = _iso(letter.get("date_created")) or now
            return StatusReport(letter_id, "", DeliveryStatus.PENDING, created, None)
        # Lob lists events by ascending time; the latest says where the letter is.
        # (same time: the later in the list, which is in order of time).
        order = {id(event): index for index, event in enumerate(known)}

        def when(event: Mapping[str, Any]) -> tuple[datetime, int]:
            at = _iso(event.get("time")) or _iso(event.get("date_created")) or now
            return at, order[id(event)]

        latest = max(known, key=when)
        name = str(latest["name"])
        status = _TRACKING[name]
        vendor = name.lower().replace(" ", "_")
        return StatusReport(
            gateway_message_id=letter_id,
            idempotency_key="",
            status=status,
            occurred_at=_iso(latest.get("time")) or _iso(latest.get("date_created")) or now,
            reason="Lob: returned to sender" if status is DeliveryStatus.UNDELIVERABLE else None,
            event_id=str(latest.get("id") or f"{letter_id}:{vendor}"),
            vendor_code=vendor,
        )

    # -- operations ---------------------------------------------------------------------------

    async def check(self) -> str | None:
        """Try the API key without sending: list one letter."""
        url = self.options.url or self.default_url
        answer = await self.call(VendorRequest("GET", LETTERS, params={"limit": "1"}))
        if answer.response is None:
            return f"cannot reach {url} ({answer.error or 'no answer'})"
        if answer.response.status_code in (401, 403):
            return f"credentials refused ({self.options.api_key_env})"
        if not answer.ok:
            return f"{url} answered {self.error_reason(answer.response)}"
        return None

    # -- webhooks -----------------------------------------------------------------------------

    def read_webhook(self, request: WebhookRequest, kind: str) -> WebhookAnswer:
        """A Lob event ("status"), verified.

        401: no webhook secret configured (fail closed), no or a wrong Lob-Signature, or a
        Lob-Signature-Timestamp further than `webhook_tolerance_seconds` from now (a replay of
        an old call). 400: not JSON, or not an event. Events that are not about letters, or a
        letter event type not known here, are acknowledged and change nothing. A call Lob
        repeats carries the same event id, so it is recorded once.
        """
        if kind != "status":
            raise WebhookRefused(404, f"{self.name} takes no {kind} webhooks")
        event = self._verified(request)
        event_id = event.get("id")
        event_type = event.get("event_type")
        type_id = event_type.get("id") if isinstance(event_type, dict) else event_type
        if not isinstance(event_id, str) or not event_id or not isinstance(type_id, str):
            raise WebhookRefused(400, "the event lacks its id or event_type")
        status = event_status(type_id)
        if status is None:
            if type_id.startswith("letter."):
                log.warning("%s: a letter event of an unknown type skipped", self.name)
            return WebhookAnswer()
        body = event.get("body")
        letter_id = body.get("id") if isinstance(body, dict) else None
        letter_id = letter_id or event.get("reference_id")
        if not isinstance(letter_id, str) or not _LETTER_ID.match(letter_id):
            raise WebhookRefused(400, "the event names no letter")
        name = type_id.partition(".")[2]
        reason = None
        if status is DeliveryStatus.UNDELIVERABLE:
            reason = "Lob: returned to sender"
        elif status is DeliveryStatus.FAILED:
            reason = f"Lob: {name.replace('_', ' ')}"
        report = StatusReport(
            gateway_message_id=letter_id,
            idempotency_key="",
            status=status,
            occurred_at=_iso(event.get("date_created")) or request.received_at,
            reason=reason,
            event_id=event_id,
            vendor_code=name,
        )
        return WebhookAnswer(statuses=[report])

    def _verified(self, request: WebhookRequest) -> dict[str, Any]:
        """The JSON event of a call Lob signed with our webhook secret, recently."""
        if self._webhook_secret is None:
            raise WebhookRefused(
                401, f"{self.name} cannot verify Lob-Signature: set webhook_secret_env"
            )
        signature = request.headers.get(SIGNATURE_HEADER)
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookRefused(401, "Lob-Signature or Lob-Signature-Timestamp is missing")
        signed_at = _unix_seconds(timestamp)
        if signed_at is None:
            raise WebhookRefused(401, "Lob-Signature-Timestamp is not a timestamp")
        expected = lob_signature(self._webhook_secret, timestamp, request.body)
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise WebhookRefused(401, "Lob-Signature does not match")
        age = request.received_at.timestamp() - signed_at
        if abs(age) > self.options.webhook_tolerance_seconds:
            raise WebhookRefused(401, "Lob-Signature-Timestamp is too old (or in the future)")
        if request.method.upper() != "POST":
            raise WebhookRefused(400, "Lob's webhooks are POSTs")
        try:
            event = json.loads(request.body)
        except ValueError as exc:
            raise WebhookRefused(400, "the body is not JSON") from exc
        if not isinstance(event, dict):
            raise WebhookRefused(400, "the body is not an event")
        return event


# -- the request's parts ---------------------------------------------------------------------


def recipient_fields(address: Mapping[str, Any]) -> dict[str, str]:
    """Lob's inline `to` address from an outbox letter's address fields."""
    lines = [str(line).strip() for line in address.get("lines") or [] if str(line).strip()]
    fields = {
        "name": str(address.get("name") or "").strip(),
        "address_line1": lines[0] if lines else "",
        "address_line2": ", ".join(lines[1:]),
        "address_city": str(address.get("city") or "").strip(),
        "address_state": str(address.get("region") or "").strip(),
        "address_zip": str(address.get("postal_code") or "").strip(),
        "address_country": str(address.get("country") or "US").strip().upper(),
    }
    return {name: value for name, value in fields.items() if value}


def letter_metadata(message: OutboundMessage) -> dict[str, str]:
    """Lob's metadata: the template id and the message's metadata (no personal data), within
    Lob's limits; what does not fit is left out."""
    pairs = dict(message.metadata)
    if message.template_id:
        pairs.setdefault("template_id", message.template_id)
    kept: dict[str, str] = {}
    for key, value in pairs.items():
        text = str(value)
        if len(kept) == 20 or len(key) >= 40 or len(text) >= 500:
            continue
        if any(ch in key + text for ch in '"\\'):
            continue
        kept[key] = text
    return kept


def _unsendable(message: OutboundMessage) -> SendResult | None:
    key = message.idempotency_key
    if not message.address or not (message.address.get("lines") or [None])[0]:
        return SendResult(
            key,
            SendOutcome.REJECTED,
            reason="lob-letter: the letter has no postal address fields (name, lines, city...)",
            code=RejectCode.OTHER.value,
        )
    if not message.document:
        return SendResult(
            key,
            SendOutcome.REJECTED,
            reason="lob-letter: the letter has no rendered PDF",
            code=RejectCode.OTHER.value,
        )
    return None


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _error(response: httpx.Response) -> tuple[str | None, str]:
    """Lob's error code and message ({"error": {"code", "message", "status_code"}})."""
    try:
        error = response.json()["error"]
        code = error.get("code")
        return (str(code) if code else None), str(error.get("message") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None, ""


def _names_recipient(message: str) -> bool:
    """Lob's `invalid` message is about the `to` address (e.g. "to.address_zip must ...")."""
    return bool(re.match(r"^\s*\"?to(\.|\b)", message))
