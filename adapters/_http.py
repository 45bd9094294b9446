"""The adapter kit: what every HTTP adapter shares, and the public hooks a provider writes.

One class per provider. It writes only what is vendor-specific, through public hooks:

- `send_request(batch) -> VendorRequest`: method, path, query, and a body encoded as JSON,
  form fields or multipart, plus headers; `status_request(ids)` likewise.
- `build_auth() -> Auth`: HTTP Basic, a request signer, OAuth2 bearer tokens, or a key header
  (adapters.auth), with secrets read from the environment (`env_secret`).
- `classify_send(batch, answer)`: what the vendor's answer means for each message: ACCEPTED
  (with its id, segments, price), REJECTED for good (a RejectCode and the vendor's code),
  RETRY (transient), or AMBIGUOUS (it may have been accepted). The default reads 2xx bodies
  with `send_answers` and sorts everything else with `classify_failure`:

  - 2xx: `send_answers` per message; a body it cannot read, or a message it leaves out:
    AMBIGUOUS.
  - 408, 425, 429, 503, a refused connection: RETRY, tried again within this send
    (Retry-After honoured).
  - 500, 502, 504 and other 5xx, a timeout or a dropped connection after the request went
    out: AMBIGUOUS (tried again within this send only if the gateway deduplicates).
  - 401, 403, 404, 405, credentials refused: RETRY at once, not tried again: our
    configuration is wrong, not the message.
  - other 4xx: REJECTED with the vendor's reason.

- `max_batch` messages per request (1 for vendors that take one), `max_concurrency` requests
  in flight at once, `rate_per_second` across all of them.
- `lookup(message)` (optional): ask the vendor whether a message went out.

Exactly once. A gateway that `deduplicates` on our key may get any message again, so an
AMBIGUOUS answer is simply retried (as RETRY), as before. For one that does not, the kit never
sends a message whose fate is unknown: an AMBIGUOUS answer is returned as it is (the
dispatcher leaves the message `sending` until its lease runs out) and, when the message comes
back `in_doubt`, the kit asks `lookup` first: found -> ACCEPTED (duplicate), certainly not
there -> sent, cannot tell -> AMBIGUOUS again. Without a lookup, an in-doubt message is not
sent again: REJECTED with code `in_doubt`, for an operator to check with the vendor.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import os
import random
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import Field, field_validator

from adapters.auth import Auth, AuthFailure, HeaderAuth, NoAuth
from adapters.base import (
    AdapterOptions,
    GatewayAdapter,
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    StatusReport,
)
from dunning.errors import (
    ConfigError,
    ConfigProblem,
    DunningError,
    PermanentGatewayError,
    TransientGatewayError,
)

log = logging.getLogger("dunning.adapters")

CONFIG_FILE = "config/channels.yaml"
ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"
"""What an option naming an environment variable must look like (secrets live there)."""
T = TypeVar("T")


class HttpAdapterOptions(AdapterOptions):
    """Options every HTTP adapter understands (the `options:` of a channel in channels.yaml)."""

    url: str | None = Field(
        default=None, description="gateway base URL; none: the adapter's default (in-process)"
    )
    url_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the gateway base URL, read when the adapter "
        "is built (it takes the place of `url`; unset: a configuration error naming it)",
    )
    timeout: float = Field(default=10.0, gt=0, le=300, description="seconds per request")
    max_attempts: int = Field(default=5, ge=1, le=20, description="tries per request")
    backoff_base: float = Field(default=0.5, ge=0, le=60, description="first backoff, seconds")
    backoff_cap: float = Field(default=8.0, ge=0, le=600, description="longest backoff")
    max_retry_after: float = Field(
        default=30.0,
        ge=0,
        le=3600,
        description="a longer Retry-After ends the attempt (RETRY) instead of waiting",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the API key; secrets never live in files",
    )
    max_batch: int | None = Field(default=None, ge=1, le=10_000, description="override")
    max_concurrency: int | None = Field(
        default=None, ge=1, le=256, description="override: most requests in flight at once"
    )
    rate_per_second: float | None = Field(default=None, gt=0, le=1_000_000, description="override")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


@dataclass(frozen=True)
class Timing:
    """The clocks, sleep and randomness the plumbing uses; tests pass fakes."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random


class RateLimiter:
    """Keeps to `rate` messages per second over any window longer than one batch.

    Each reservation moves the next free moment forward by n / rate (the generic cell rate
    algorithm), so a batch of n waits for the time the previous batches have used. No lock:
    reserving does not await, so concurrent senders on one event loop queue up fairly.
    """

    def __init__(self, rate: float, timing: Timing) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._timing = timing
        self._next: float | None = None

    async def acquire(self, n: int = 1) -> None:
        now = self._timing.monotonic()
        start = now if self._next is None else max(now, self._next)
        self._next = start + n / self.rate
        if start > now:
            await self._timing.sleep(start - now)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


# -- the wire: what a provider's hooks build and read -------------------------------------------


@dataclass(frozen=True)
class VendorRequest:
    """One request to the vendor, as a provider's hook builds it.

    The body is at most one of: `json` (any JSON value, sent as compact UTF-8 with
    Content-Type application/json), `form` (application/x-www-form-urlencoded; a sequence value
    repeats the field), or `files` (multipart/form-data: field name -> (file name, bytes,
    content type), with `form`'s fields as the other parts). `params` is the query string.
    `path` is relative to the adapter's base URL, or a full URL.
    """

    method: str = "POST"
    path: str = "/"
    params: Mapping[str, Any] | None = None
    json: Any = None
    form: Mapping[str, Any] | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.json is not None and (self.form is not None or self.files is not None):
            raise ValueError("a VendorRequest has a JSON body or form fields/files, not both")

    @property
    def encoding(self) -> str:
        """ "json", "form", "multipart" or "none"."""
        if self.files is not None:
            return "multipart"
        if self.form is not None:
            return "form"
        return "json" if self.json is not None else "none"


class MalformedResponse(ValueError):
    """An answer a hook cannot use. From a 2xx send answer: AMBIGUOUS (the vendor may have
    taken the messages); from a status or lookup answer: transient."""


@dataclass(frozen=True)
class VendorAnswer:
    """What came back for one VendorRequest: an HTTP response, or why there was none."""

    request: VendorRequest
    response: httpx.Response | None = None
    error: str | None = None
    """Why there is no response: "timed out after 10s", "connection error: ReadError"."""
    maybe_delivered: bool = False
    """No response, but the request may have reached the vendor (sent, then no answer)."""
    auth_refused: bool = False
    """No response: the credentials could not be had and are wrong (a token endpoint said so)."""
    retry_after: float | None = None
    """Seconds the vendor asked us to wait (Retry-After), if it did."""

    @property
    def status_code(self) -> int | None:
        return None if self.response is None else self.response.status_code

    @property
    def ok(self) -> bool:
        """A 2xx response."""
        return self.response is not None and 200 <= self.response.status_code < 300

    def json(self) -> Any:
        """The decoded JSON body; MalformedResponse when there is none."""
        if self.response is None:
            raise MalformedResponse(self.error or "no answer")
        try:
            return self.response.json()
        except ValueError as exc:
            raise MalformedResponse("not JSON") from exc


@dataclass(frozen=True)
class RequestFailure:
    """A verdict on a whole request: every message in it gets this outcome.

    `outcome` is RETRY, REJECTED or AMBIGUOUS. `again`: whether this send may try the request
    again after a backoff (False when our configuration is wrong: the messages go back to
    `planned` at once, never rejected for our mistake).
    """

    outcome: SendOutcome
    reason: str
    again: bool = True
    retry_after: float | None = None
    code: str | None = None
    vendor_code: str | None = None

    def result(self, key: str) -> SendResult:
        return SendResult(
            key, self.outcome, reason=self.reason, code=self.code, vendor_code=self.vendor_code
        )


Classified = Mapping[str, SendResult] | RequestFailure
"""What `classify_send` returns: per idempotency key, or one verdict for the whole request."""

_RETRY_STATUS = frozenset({408, 425, 429, 503})
_REFUSED_STATUS = frozenset({401, 403, 404, 405})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport errors that happen before any byte of the request reaches the vendor."""


class _Outcome(Protocol):
    """A per-item answer: SendResult for messages, ActionResult for actions."""

    @property
    def outcome(self) -> SendOutcome: ...

    @property
    def reason(self) -> str | None: ...


Item = TypeVar("Item")
Answer = TypeVar("Answer", bound=_Outcome)


class HttpExchange:
    """What every HTTP adapter shares, messages and actions alike.

    One client per event loop, the authentication strategy, one exchange under a
    whole-request deadline (`call`), the default sorting of failures (`classify_failure`),
    backoff, and the keyed retry loop (`_settle`). Subclasses: HttpGatewayAdapter here,
    adapters.actions.HttpActionAdapter for actions.
    """

    name: ClassVar[str]
    options: HttpAdapterOptions
    default_url = "http://gateway.invalid"
    """Base URL when options.url is none (only meaningful with an injected transport)."""
    config_file: ClassVar[str] = CONFIG_FILE
    """The YAML file this adapter is configured in, for error messages."""
    noun: ClassVar[str] = "message"
    """What one item is called in logs."""
    deduplicates: ClassVar[bool] = False
    """The other side deduplicates on our idempotency key: an AMBIGUOUS answer is retried."""
    auth: Auth

    def _open(
        self,
        transport: httpx.AsyncBaseTransport | None,
        timing: Timing | None,
        rate_per_second: float,
    ) -> None:
        """Set up the request side; call after self.options is set."""
        self._transport = transport
        self.timing = timing or Timing()
        self._limiter = RateLimiter(rate_per_second, self.timing)
        self.auth = self.build_auth()
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _config_key(self) -> str:
        """Where this adapter's entry is in config_file, e.g. "channels.sms"."""
        raise NotImplementedError

    # -- hooks a provider may override ----------------------------------------------------------

    def build_auth(self) -> Auth:
        """The authentication strategy (adapters.auth); called once, at construction.

        Default: `Authorization: Bearer <key>` with the key from `api_key_env`, or none.
        Read secrets with `env_secret(option)` so a missing one is a ConfigError naming it.
        """
        if self.options.api_key_env is None:
            return NoAuth()
        return HeaderAuth(self.env_secret("api_key_env"))

    def error_reason(self, response: httpx.Response) -> str:
        """A short reason from an error answer (the vendor's message when it has one)."""
        text = response.text.strip().replace("\n", " ")
        return f"HTTP {response.status_code}" + (f": {text[:200]}" if text else "")

    def classify_failure(self, answer: VendorAnswer) -> RequestFailure:
        """The default verdict on an answer that is not a 2xx (see the module's table).

        A provider's `classify_send` or `classify_status` calls it for what it does not
        handle itself.
        """
        if answer.response is None:
            reason = answer.error or "no answer"
            if answer.auth_refused:
                return RequestFailure(SendOutcome.RETRY, self._check_config(reason), again=False)
            outcome = SendOutcome.AMBIGUOUS if answer.maybe_delivered else SendOutcome.RETRY
            return RequestFailure(outcome, reason)
        status = answer.response.status_code
        reason = self.error_reason(answer.response)
        if status in _RETRY_STATUS:
            return RequestFailure(SendOutcome.RETRY, reason, retry_after=answer.retry_after)
        if status >= 500:
            # The vendor may have acted on the request before it failed.
            return RequestFailure(SendOutcome.AMBIGUOUS, reason, retry_after=answer.retry_after)
        if status in _REFUSED_STATUS:
            return RequestFailure(SendOutcome.RETRY, self._check_config(reason), again=False)
        return RequestFailure(SendOutcome.REJECTED, reason, code=RejectCode.OTHER.value)

    # -- tools for hooks ----------------------------------------------------------------------

    def env_secret(self, option: str) -> str:
        """The secret in the environment variable that options.<option> names.

        ConfigError naming the option when the option is unset or the variable is empty.
        """
        name = getattr(self.options, option, None)
        value = os.environ.get(name) if isinstance(name, str) and name else None
        if not value:
            why = (
                f"environment variable {name} is not set"
                if isinstance(name, str) and name
                else "is required (the name of an environment variable)"
            )
            raise ConfigError(
                [ConfigProblem(self.config_file, f"{self._config_key()}.options.{option}", why)]
            )
        return value

    async def call(self, request: VendorRequest) -> VendorAnswer:
        """One exchange under the whole-request deadline, authenticated; never raises for the
        vendor's or the network's failures (they are in the answer)."""
        client = self._client()
        sent = False
        try:
            # httpx's own timeouts are per phase and ASGITransport ignores them; this deadline
            # covers the whole exchange, token fetches included, on every transport.
            async with asyncio.timeout(self.options.timeout):
                built = await self._built(client, request)
                sent = True
                response = await client.send(built)
                if response.status_code == 401 and await self.auth.refresh(built):
                    built = await self._built(client, request)
                    response = await client.send(built)
        except AuthFailure as exc:
            return VendorAnswer(request, error=exc.reason, auth_refused=exc.refused)
        except (TimeoutError, httpx.TimeoutException) as exc:
            return VendorAnswer(
                request,
                error=f"timed out after {self.options.timeout:g}s",
                maybe_delivered=sent and not isinstance(exc, _NOT_SENT),
            )
        except httpx.TransportError as exc:
            return VendorAnswer(
                request,
                error=f"connection error: {type(exc).__name__}",
                maybe_delivered=sent and not isinstance(exc, _NOT_SENT),
            )
        retry_after = None
        if not 200 <= response.status_code < 300:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self.timing.wall())
        return VendorAnswer(request, response, retry_after=retry_after)

    async def aclose(self) -> None:
        if self._http is not None:
            client, self._http = self._http, None
            if self._loop is asyncio.get_running_loop():
                await client.aclose()

    # -- retries ----------------------------------------------------------------------------

    async def _settle(
        self,
        items: Sequence[Item],
        key: Callable[[Item], str],
        request: Callable[[list[Item]], VendorRequest],
        classify: Callable[[list[Item], VendorAnswer], Mapping[str, Answer] | RequestFailure],
        unsettled: Callable[[str, RequestFailure], Answer],
        maybe_taken: set[str] | None = None,
    ) -> list[Answer]:
        """Send the items until each has a final answer or the attempts run out; one per item.

        `request` builds the request for the items still pending; `classify` reads the answer
        per key (ValueError: malformed) or for the whole request; `unsettled` makes the
        answer of a key from a RequestFailure. Per key, RETRY stays pending and is sent again;
        AMBIGUOUS too when the other side deduplicates, else it is final. The keys that had
        an AMBIGUOUS answer on the way are added to `maybe_taken`.
        """
        pending: dict[str, Item] = {}
        for item in items:
            pending.setdefault(key(item), item)
        settled: dict[str, Answer] = {}
        reason = "not sent"
        for attempt in range(1, self.options.max_attempts + 1):
            batch = list(pending.values())
            answer = await self.call(request(batch))
            verdict = self._classified(batch, answer, classify)
            retry_after: float | None = None
            if isinstance(verdict, RequestFailure):
                reason, retry_after = verdict.reason, verdict.retry_after
                if verdict.outcome == SendOutcome.AMBIGUOUS and maybe_taken is not None:
                    maybe_taken.update(pending)
                if verdict.outcome == SendOutcome.AMBIGUOUS and self.deduplicates:
                    verdict = replace(verdict, outcome=SendOutcome.RETRY)
                if verdict.outcome != SendOutcome.RETRY or not verdict.again:
                    self._log_final(verdict.outcome, len(pending), verdict.reason)
                    for pending_key in pending:
                        settled[pending_key] = unsettled(pending_key, verdict)
                    pending.clear()
                    break
            else:
                retried: list[str] = []
                for answered_key, result in verdict.items():
                    if answered_key not in pending:
                        continue
                    if maybe_taken is not None and _outcome(result) == SendOutcome.AMBIGUOUS:
                        maybe_taken.add(answered_key)
                    again = result.outcome == SendOutcome.RETRY or (
                        result.outcome == SendOutcome.AMBIGUOUS and self.deduplicates
                    )
                    if again:
                        retried.append(result.reason or "transient")
                        continue
                    settled[answered_key] = result
                    del pending[answered_key]
                if not pending:
                    break
                missing = len(pending) - len(retried)
                if missing and not self.deduplicates and answer.ok:
                    # A 2xx that leaves messages out may still have taken them.
                    why = f"the gateway did not answer for {missing} {self.noun}(s)"
                    gap = RequestFailure(SendOutcome.AMBIGUOUS, why)
                    for pending_key in [k for k in pending if k not in verdict]:
                        settled[pending_key] = unsettled(pending_key, gap)
                        del pending[pending_key]
                    if not pending:
                        break
                reason = (
                    retried[-1]
                    if retried
                    else f"the gateway did not answer for {len(pending)} {self.noun}(s)"
                )
            delay = self._backoff(attempt, retry_after)
            if attempt == self.options.max_attempts or delay is None:
                break
            log.warning(
                "%s: attempt %d/%d failed (%s); retrying %d %s(s) in %.2fs",
                self.name,
                attempt,
                self.options.max_attempts,
                _reason_for_log(reason),
                len(pending),
                self.noun,
                delay,
            )
            await self.timing.sleep(delay)
        if pending:
            self._log_final(SendOutcome.RETRY, len(pending), reason)
            last = RequestFailure(SendOutcome.RETRY, reason)
            for pending_key in pending:
                settled[pending_key] = unsettled(pending_key, last)
        rejected = sum(1 for r in settled.values() if r.outcome == SendOutcome.REJECTED)
        if rejected:
            log.info("%s: %d %s(s) rejected by the gateway", self.name, rejected, self.noun)
        return [settled[key(item)] for item in items]

    def _classified(
        self,
        batch: list[Item],
        answer: VendorAnswer,
        classify: Callable[[list[Item], VendorAnswer], Mapping[str, Answer] | RequestFailure],
    ) -> Mapping[str, Answer] | RequestFailure:
        try:
            return classify(batch, answer)
        except ValueError as exc:
            why = f"malformed answer from the gateway: {_short(exc)}"
            # A 2xx we cannot read may still mean the vendor took the request.
            outcome = SendOutcome.AMBIGUOUS if answer.ok else SendOutcome.RETRY
            return RequestFailure(outcome, why)

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before the next attempt; None when the gateway asks for too long a wait."""
        if retry_after is not None:
            return retry_after if retry_after <= self.options.max_retry_after else None
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2.0 ** (attempt - 1))
        # "Equal jitter": at least half the exponential step, so retries never bunch at zero.
        return ceiling / 2 + self.timing.random() * ceiling / 2

    def _check_config(self, reason: str) -> str:
        return (
            f"{reason} (check the url and api_key_env of {self._config_key()} "
            f"in {self.config_file})"
        )

    async def _built(self, client: httpx.AsyncClient, request: VendorRequest) -> httpx.Request:
        """The final httpx request, body encoded and credential applied."""
        headers = dict(request.headers)
        if request.encoding == "json":
            content = json.dumps(request.json, ensure_ascii=False, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
            built = client.build_request(
                request.method,
                request.path,
                params=request.params,
                content=content,
                headers=headers,
            )
        elif request.encoding == "none":
            built = client.build_request(
                request.method, request.path, params=request.params, headers=headers
            )
        else:
            built = client.build_request(
                request.method,
                request.path,
                params=request.params,
                data=dict(request.form or {}),
                files=dict(request.files) if request.files is not None else None,
                headers=headers,
            )
        await self.auth.apply(built, client)
        return built

    def _client(self) -> httpx.AsyncClient:
        # An AsyncClient's connection pool belongs to the event loop that opened it; callers
        # that run one asyncio.run() per batch get a fresh client on each new loop.
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            self._http = httpx.AsyncClient(
                base_url=self.options.url or self.default_url,
                transport=self._transport,
                timeout=httpx.Timeout(self.options.timeout),
                headers={"Accept": "application/json", "User-Agent": "dunning-adapter/0.1"},
            )
            self._loop = loop
        return self._http

    def _log_final(self, outcome: SendOutcome, count: int, reason: str) -> None:
        if outcome == SendOutcome.RETRY:
            log.warning(
                "%s: %d %s(s) left for the next dispatch: %s",
                self.name,
                count,
                self.noun,
                _reason_for_log(reason),
            )
        elif outcome == SendOutcome.AMBIGUOUS:
            log.warning(
                "%s: %d %s(s) in doubt (the gateway may have them), not sent again: %s",
                self.name,
                count,
                self.noun,
                _reason_for_log(reason),
            )


class HttpGatewayAdapter(HttpExchange, GatewayAdapter):
    """Base of adapters that talk HTTP to a message gateway; one subclass per provider.

    Write `send_request`, `send_answers`, `status_request`, `status_answers`; override
    `classify_send` / `classify_status` to read non-2xx answers the vendor's way,
    `build_auth` for its authentication, and `lookup` when the vendor can say whether a
    message went out. Set `deduplicates = True` only when the vendor deduplicates on our key.
    """

    options_model: ClassVar[type[AdapterOptions]] = HttpAdapterOptions

    def __init__(
        self,
        options: HttpAdapterOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.options = options if options is not None else self._default_options()
        if self.options.url_env is not None:
            self.options = self.options.model_copy(update={"url": self._url_from_env()})
        # The contract declares the vendor's limits on the class; options may narrow or widen
        # them for one deployment, and the dispatcher reads them from the instance.
        if self.options.max_batch is not None:
            self.max_batch = self.options.max_batch  # type: ignore[misc]
        if self.options.rate_per_second is not None:
            self.rate_per_second = self.options.rate_per_second  # type: ignore[misc]
        if self.options.max_concurrency is not None:
            self.max_concurrency = self.options.max_concurrency  # type: ignore[misc]
        self._open(transport, timing, self.rate_per_second)

    def _url_from_env(self) -> str:
        """The base URL from the variable `url_env` names (never a secret: may be shown)."""
        name = self.options.url_env or ""
        value = os.environ.get(name, "").strip()
        try:
            checked = HttpAdapterOptions._http_url(value)
        except ValueError as exc:
            why = f"environment variable {name} is not set" if not value else str(exc)
            raise ConfigError(
                [ConfigProblem(self.config_file, f"{self._config_key()}.options.url_env", why)]
            ) from None
        assert checked is not None
        return checked

    def _default_options(self) -> HttpAdapterOptions:
        options = self.options_model()
        if not isinstance(options, HttpAdapterOptions):
            raise TypeError(f"{type(self).__name__}.options_model must extend HttpAdapterOptions")
        return options

    def _config_key(self) -> str:
        return f"channels.{self.channel.value}"

    # -- what a provider writes -------------------------------------------------------------

    @abstractmethod
    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        """The request that submits these messages (at most max_batch, keys distinct)."""

    @abstractmethod
    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        """Per idempotency key, what a 2xx answer (decoded JSON) says about `batch`.

        Raise MalformedResponse (or any ValueError) when it cannot be read: AMBIGUOUS.
        A key left out is sent again if the gateway deduplicates, else AMBIGUOUS.
        """

    @abstractmethod
    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        """The request that asks for these messages' statuses."""

    @abstractmethod
    def status_answers(self, payload: Any) -> list[StatusReport]:
        """Status reports from a 2xx status answer; MalformedResponse if unusable."""

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        """What the vendor's answer (any status, or none) means for each message.

        Default: a 2xx goes to `send_answers`; anything else to `classify_failure`. Override
        to read the vendor's error answers: e.g. a 400 whose code means "invalid number" is
        REJECTED with RejectCode.INVALID_NUMBER for that message.
        """
        if not answer.ok:
            return self.classify_failure(answer)
        return self.send_answers(batch, answer.json())

    def classify_status(
        self, gateway_message_ids: Sequence[str], answer: VendorAnswer
    ) -> list[StatusReport] | RequestFailure:
        """Status reports from the answer, or a verdict on it. RETRY and AMBIGUOUS are tried
        again; REJECTED, or RETRY with again=False, raise PermanentGatewayError. Override,
        e.g., to read a 404 as "no such message" (return [])."""
        if not answer.ok:
            return self.classify_failure(answer)
        return self.status_answers(answer.json())

    # -- the contract -----------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        answered: dict[str, SendResult] = {}
        fresh: list[OutboundMessage] = []
        for message in batch:
            if message.in_doubt and not self.deduplicates:
                if message.idempotency_key not in answered:
                    resolved = await self._resolve(message)
                    if resolved is None:
                        fresh.append(message)
                    else:
                        answered[message.idempotency_key] = resolved
            else:
                fresh.append(message)
        parts = list(chunks(fresh, self.max_batch))
        if self.max_concurrency <= 1:
            for part in parts:
                answered.update(await self._send_part(part))
        else:
            gate = asyncio.Semaphore(self.max_concurrency)

            async def bounded(part: Sequence[OutboundMessage]) -> dict[str, SendResult]:
                async with gate:
                    return await self._send_part(part)

            for group in await asyncio.gather(*(bounded(part) for part in parts)):
                answered.update(group)
        return [answered[message.idempotency_key] for message in batch]

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        for chunk in chunks(gateway_message_ids, self.max_batch):
            await self._limiter.acquire(1)
            reports.extend(await self._fetch_chunk(chunk))
        return reports

    async def _send_part(self, part: Sequence[OutboundMessage]) -> dict[str, SendResult]:
        await self._limiter.acquire(len(part))
        return {r.idempotency_key: r for r in await self._send_chunk(part)}

    async def _resolve(self, message: OutboundMessage) -> SendResult | None:
        """An in-doubt message: its answer if the vendor has it (or cannot say), None to send."""
        key = message.idempotency_key
        if not self.can_lookup:
            log.warning("%s: 1 message in doubt and no lookup: not sent again", self.name)
            return SendResult(
                key,
                SendOutcome.REJECTED,
                reason=(
                    f"an earlier send may have gone out and {self.name} cannot ask the gateway;"
                    " not sent again: check with the vendor"
                ),
                code=RejectCode.IN_DOUBT.value,
            )
        await self._limiter.acquire(1)
        try:
            found = await self.lookup(message)
        except (DunningError, ValueError, httpx.HTTPError) as exc:
            found = SendResult(key, SendOutcome.AMBIGUOUS, reason=f"lookup failed: {_short(exc)}")
        if found is None:
            return None
        if found.outcome == SendOutcome.ACCEPTED:
            return replace(found, idempotency_key=key, duplicate=True)
        if found.outcome == SendOutcome.RETRY:  # "ask again later" is not "it is not there"
            return replace(found, idempotency_key=key, outcome=SendOutcome.AMBIGUOUS)
        return replace(found, idempotency_key=key)

    async def _send_chunk(self, chunk: Sequence[OutboundMessage]) -> list[SendResult]:
        def classify(batch: list[OutboundMessage], answer: VendorAnswer) -> Classified:
            return self.classify_send(batch, answer)

        def unsettled(key: str, failure: RequestFailure) -> SendResult:
            return failure.result(key)

        # An in-doubt message here was looked up and not found, unless the gateway deduplicates
        # (then it is simply sent again, and the earlier send may have reached it).
        maybe = {m.idempotency_key for m in chunk if m.in_doubt and self.deduplicates}
        results = await self._settle(
            chunk, lambda m: m.idempotency_key, self.send_request, classify, unsettled, maybe
        )
        # A RETRY the gateway certainly did not take may go to another provider (failover).
        return [
            replace(r, not_taken=True)
            if r.outcome == SendOutcome.RETRY and r.idempotency_key not in maybe
            else r
            for r in results
        ]

    async def _fetch_chunk(self, ids: Sequence[str]) -> list[StatusReport]:
        reason = "not asked"
        for attempt in range(1, self.options.max_attempts + 1):
            answer = await self.call(self.status_request(ids))
            try:
                verdict = self.classify_status(ids, answer)
            except ValueError as exc:
                verdict = RequestFailure(
                    SendOutcome.RETRY, f"malformed answer from the gateway: {_short(exc)}"
                )
            if not isinstance(verdict, RequestFailure):
                return verdict
            if verdict.outcome == SendOutcome.REJECTED or (
                verdict.outcome == SendOutcome.RETRY and not verdict.again
            ):
                raise PermanentGatewayError(f"{self.name}: statuses: {verdict.reason}")
            reason = verdict.reason
            delay = self._backoff(attempt, verdict.retry_after)
            if attempt == self.options.max_attempts or delay is None:
                break
            await self.timing.sleep(delay)
        raise TransientGatewayError(f"{self.name}: statuses: {reason}")


def _outcome(answer: object) -> SendOutcome | None:
    return getattr(answer, "outcome", None)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _reason_for_log(reason: str) -> str:
    # Reasons may carry the gateway's own words; logs get only the part before any detail.
    return reason.split(":", 1)[0]
