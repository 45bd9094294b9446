"""Shared HTTP plumbing of gateway adapters: batches, rate limit, retries with backoff, Retry-After.

A provider subclasses HttpGatewayAdapter and writes only what is vendor-specific: the request
paths, how a batch is encoded, how an answer is decoded, and the status mapping. Everything
that decides *whether to try again* lives here, once:

- transient (retried with exponential backoff and jitter, Retry-After honoured): 5xx, 408, 429,
  timeouts, connection errors, and 2xx answers whose body cannot be parsed. Retrying is safe
  because every message carries its idempotency key and the gateway deduplicates on it.
- permanent (never retried): other 4xx answers and per-message rejections -> REJECTED with the
  gateway's reason.
- refused (never retried, never rejected): 401, 403, 404 and 405 say our credentials or URL
  are wrong, not the message; failing every message for a configuration mistake would lose
  them, so they come back as RETRY and stay planned until the configuration is fixed.
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
from dataclasses import dataclass
from datetime import UTC
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import Field, field_validator

from adapters.base import (
    AdapterOptions,
    GatewayAdapter,
    OutboundMessage,
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

log = logging.getLogger("dunning.adapters")

CONFIG_FILE = "config/channels.yaml"
T = TypeVar("T")


class HttpAdapterOptions(AdapterOptions):
    """Options every HTTP adapter understands (the `options:` of a channel in channels.yaml)."""

    url: str | None = Field(
        default=None, description="gateway base URL; none: the adapter's default (in-process)"
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
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable holding the API key; secrets never live in files",
    )
    max_batch: int | None = Field(default=None, ge=1, le=10_000, description="override")
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


@dataclass(frozen=True)
class Failure:
    """Why one request did not give a usable answer, and what to do about it."""

    reason: str
    transient: bool
    retry_after: float | None = None
    refused: bool = False  # our configuration is wrong (401/403/404/405): stop, do not reject


class MalformedResponse(ValueError):
    """A 2xx answer we cannot use; transient, since the gateway's next answer may be fine."""


_TRANSIENT_STATUS = frozenset({408, 425, 429})
_REFUSED_STATUS = frozenset({401, 403, 404, 405})


class _Outcome(Protocol):
    """A per-item answer: SendResult for messages, ActionResult for actions."""

    @property
    def outcome(self) -> SendOutcome: ...


Item = TypeVar("Item")
Answer = TypeVar("Answer", bound=_Outcome)


class HttpExchange:
    """What every JSON-over-HTTP adapter shares, messages and actions alike.

    One client per event loop, the API key, one attempt under a whole-request deadline sorted
    into an answer or a Failure, backoff, and the keyed retry loop (`_settle`). Subclasses:
    HttpGatewayAdapter here, adapters.actions.HttpActionAdapter for actions.
    """

    name: ClassVar[str]
    options: HttpAdapterOptions
    default_url = "http://gateway.invalid"
    """Base URL when options.url is none (only meaningful with an injected transport)."""
    config_file: ClassVar[str] = CONFIG_FILE
    """The YAML file this adapter is configured in, for error messages."""
    noun: ClassVar[str] = "message"
    """What one item is called in logs."""

    def _open(
        self,
        transport: httpx.AsyncBaseTransport | None,
        timing: Timing | None,
        rate_per_second: float,
    ) -> None:
        """Set up the request side; call after self.options is set."""
        self._transport = transport
        self._timing = timing or Timing()
        self._limiter = RateLimiter(rate_per_second, self._timing)
        self._api_key = self._read_api_key()
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _config_key(self) -> str:
        """Where this adapter's entry is in config_file, e.g. "channels.sms"."""
        raise NotImplementedError

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key}"}

    def _error_reason(self, response: httpx.Response) -> str:
        """A short reason from an error answer (the vendor's message when it has one)."""
        text = response.text.strip().replace("\n", " ")
        return f"HTTP {response.status_code}" + (f": {text[:200]}" if text else "")

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
        request: Callable[[list[Item]], tuple[str, Any, dict[str, str]]],
        answers: Callable[[Any], Mapping[str, Answer]],
        unsettled: Callable[[str, SendOutcome, str], Answer],
    ) -> list[Answer]:
        """POST the items until each has an answer or the attempts run out; one per item.

        `request` builds (path, JSON payload, headers) for the items still pending; `answers`
        reads the decoded answer per key (ValueError: malformed, retried); `unsettled` makes
        the answer of a key that got none (RETRY or REJECTED with the reason).
        """
        pending: dict[str, Item] = {}
        for item in items:
            pending.setdefault(key(item), item)
        settled: dict[str, Answer] = {}
        reason = "not sent"
        for attempt in range(1, self.options.max_attempts + 1):
            path, payload, headers = request(list(pending.values()))
            answer = await self._attempt("POST", path, payload, headers)
            retry_after: float | None = None
            if isinstance(answer, Failure):
                reason, retry_after = answer.reason, answer.retry_after
                if answer.refused or not answer.transient:
                    outcome = SendOutcome.RETRY if answer.refused else SendOutcome.REJECTED
                    self._log_final(outcome, len(pending), answer.reason)
                    for pending_key in pending:
                        settled[pending_key] = unsettled(pending_key, outcome, answer.reason)
                    pending.clear()
                    break
            else:
                try:
                    decoded = answers(answer)
                except ValueError as exc:
                    reason = f"malformed answer from the gateway: {_short(exc)}"
                else:
                    for answered_key, result in decoded.items():
                        if answered_key in pending:
                            settled[answered_key] = result
                            del pending[answered_key]
                    if not pending:
                        break
                    reason = f"the gateway did not answer for {len(pending)} {self.noun}(s)"
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
            await self._timing.sleep(delay)
        if pending:
            self._log_final(SendOutcome.RETRY, len(pending), reason)
            for pending_key in pending:
                settled[pending_key] = unsettled(pending_key, SendOutcome.RETRY, reason)
        rejected = sum(1 for r in settled.values() if r.outcome == SendOutcome.REJECTED)
        if rejected:
            log.info("%s: %d %s(s) rejected by the gateway", self.name, rejected, self.noun)
        return [settled[key(item)] for item in items]

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds before the next attempt; None when the gateway asks for too long a wait."""
        if retry_after is not None:
            return retry_after if retry_after <= self.options.max_retry_after else None
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2.0 ** (attempt - 1))
        # "Equal jitter": at least half the exponential step, so retries never bunch at zero.
        return ceiling / 2 + self._timing.random() * ceiling / 2

    async def _attempt(
        self, method: str, path: str, payload: Any, headers: dict[str, str] | None = None
    ) -> Any | Failure:
        """One request under a whole-request deadline: the decoded JSON, or a Failure."""
        client = self._client()
        if method == "GET":
            request = client.build_request("GET", path, params=payload, headers=headers)
        else:
            content = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            request = client.build_request(method, path, content=content, headers=headers)
        try:
            # httpx's own timeouts are per phase and ASGITransport ignores them; this deadline
            # covers the whole exchange on every transport.
            async with asyncio.timeout(self.options.timeout):
                response = await client.send(request)
        except (TimeoutError, httpx.TimeoutException):
            return Failure(f"timed out after {self.options.timeout:g}s", transient=True)
        except httpx.TransportError as exc:
            return Failure(f"connection error: {type(exc).__name__}", transient=True)
        status = response.status_code
        if 200 <= status < 300:
            try:
                return response.json()
            except ValueError:
                return Failure("malformed answer from the gateway: not JSON", transient=True)
        reason = self._error_reason(response)
        if status >= 500 or status in _TRANSIENT_STATUS:
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), self._timing.wall()
            )
            return Failure(reason, transient=True, retry_after=retry_after)
        if status in _REFUSED_STATUS:
            return Failure(
                f"{reason} (check the url and api_key_env of {self._config_key()} "
                f"in {self.config_file})",
                transient=False,
                refused=True,
            )
        return Failure(reason, transient=False)

    def _client(self) -> httpx.AsyncClient:
        # An AsyncClient's connection pool belongs to the event loop that opened it; callers
        # that run one asyncio.run() per batch get a fresh client on each new loop.
        loop = asyncio.get_running_loop()
        if self._http is None or self._loop is not loop:
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": "dunning-adapter/0.1",
            }
            if self._api_key is not None:
                headers.update(self._auth_headers(self._api_key))
            self._http = httpx.AsyncClient(
                base_url=self.options.url or self.default_url,
                transport=self._transport,
                timeout=httpx.Timeout(self.options.timeout),
                headers=headers,
            )
            self._loop = loop
        return self._http

    def _read_api_key(self) -> str | None:
        name = self.options.api_key_env
        if name is None:
            return None
        value = os.environ.get(name)
        if not value:
            raise ConfigError(
                [
                    ConfigProblem(
                        self.config_file,
                        f"{self._config_key()}.options.api_key_env",
                        f"environment variable {name} is not set",
                    )
                ]
            )
        return value

    def _log_final(self, outcome: SendOutcome, count: int, reason: str) -> None:
        if outcome == SendOutcome.RETRY:
            log.warning(
                "%s: %d %s(s) left for the next dispatch: %s",
                self.name,
                count,
                self.noun,
                _reason_for_log(reason),
            )


class HttpGatewayAdapter(HttpExchange, GatewayAdapter):
    """Base of adapters that talk JSON over HTTP; subclasses add the vendor's wire format."""

    options_model: ClassVar[type[AdapterOptions]] = HttpAdapterOptions
    status_method = "POST"
    """"GET" sends the status request's payload as query parameters instead of a JSON body."""

    def __init__(
        self,
        options: HttpAdapterOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.options = options if options is not None else self._default_options()
        # The contract declares the vendor's limits on the class; options may narrow or widen
        # them for one deployment, and the dispatcher reads them from the instance.
        if self.options.max_batch is not None:
            self.max_batch = self.options.max_batch  # type: ignore[misc]
        if self.options.rate_per_second is not None:
            self.rate_per_second = self.options.rate_per_second  # type: ignore[misc]
        self._open(transport, timing, self.rate_per_second)

    def _default_options(self) -> HttpAdapterOptions:
        options = self.options_model()
        if not isinstance(options, HttpAdapterOptions):
            raise TypeError(f"{type(self).__name__}.options_model must extend HttpAdapterOptions")
        return options

    def _config_key(self) -> str:
        return f"channels.{self.channel.value}"

    # -- what a provider writes -------------------------------------------------------------

    @abstractmethod
    def _send_request(self, batch: Sequence[OutboundMessage]) -> tuple[str, Any]:
        """The path and JSON payload that submit this batch."""

    @abstractmethod
    def _send_answers(self, payload: Any) -> dict[str, SendResult]:
        """Per idempotency key, what the gateway said; MalformedResponse if unusable."""

    @abstractmethod
    def _status_request(self, gateway_message_ids: Sequence[str]) -> tuple[str, Any]:
        """The path and JSON payload that ask for these messages' statuses."""

    @abstractmethod
    def _status_answers(self, payload: Any) -> list[StatusReport]:
        """Status reports from the gateway's answer; MalformedResponse if unusable."""

    def _send_headers(self, batch: Sequence[OutboundMessage]) -> dict[str, str]:
        """Extra headers of one send request, e.g. an Idempotency-Key for one-message APIs."""
        return {}

    # -- the contract -----------------------------------------------------------------------

    async def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        for chunk in chunks(batch, self.max_batch):
            await self._limiter.acquire(len(chunk))
            results.extend(await self._send_chunk(chunk))
        return results

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        for chunk in chunks(gateway_message_ids, self.max_batch):
            await self._limiter.acquire(1)
            reports.extend(await self._fetch_chunk(chunk))
        return reports

    async def _send_chunk(self, chunk: Sequence[OutboundMessage]) -> list[SendResult]:
        def request(batch: list[OutboundMessage]) -> tuple[str, Any, dict[str, str]]:
            path, payload = self._send_request(batch)
            return path, payload, self._send_headers(batch)

        def unsettled(key: str, outcome: SendOutcome, reason: str) -> SendResult:
            return SendResult(key, outcome, reason=reason)

        return await self._settle(
            chunk, lambda m: m.idempotency_key, request, self._send_answers, unsettled
        )

    async def _fetch_chunk(self, ids: Sequence[str]) -> list[StatusReport]:
        reason = "not asked"
        for attempt in range(1, self.options.max_attempts + 1):
            path, payload = self._status_request(ids)
            answer = await self._attempt(self.status_method, path, payload)
            retry_after: float | None = None
            if isinstance(answer, Failure):
                if answer.refused or not answer.transient:
                    raise PermanentGatewayError(f"{self.name}: statuses: {answer.reason}")
                reason, retry_after = answer.reason, answer.retry_after
            else:
                try:
                    return self._status_answers(answer)
                except ValueError as exc:
                    reason = f"malformed answer from the gateway: {_short(exc)}"
            delay = self._backoff(attempt, retry_after)
            if attempt == self.options.max_attempts or delay is None:
                break
            await self._timing.sleep(delay)
        raise TransientGatewayError(f"{self.name}: statuses: {reason}")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _reason_for_log(reason: str) -> str:
    # Reasons may carry the gateway's own words; logs get only the part before any detail.
    return reason.split(":", 1)[0]
