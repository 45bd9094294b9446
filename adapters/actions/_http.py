"""Base of action adapters that talk JSON over HTTP: the gateways' plumbing, keyed by request.

Batches, the rate limit, retries with backoff, Retry-After, and the transient / permanent /
refused split all come from adapters._http (HttpExchange), exactly as for messages; a provider
writes only its request paths, how a group of requests is encoded and how an answer is read.
A batch may mix the adapter's kinds (a freeze and a restore): it goes out as one request per
kind, in the order the kinds first appear.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from adapters._http import HttpAdapterOptions, HttpExchange, Timing, chunks
from adapters.actions._checks import check_batch
from adapters.actions.base import TARGET, ActionAdapter, ActionKind, ActionRequest, ActionResult
from adapters.base import AdapterOptions, SendOutcome

CONFIG_FILE = "config/actions.yaml"


class HttpActionAdapter(HttpExchange, ActionAdapter):
    """Subclasses set name, kinds, default_url and write the three hooks."""

    options_model: ClassVar[type[AdapterOptions]] = HttpAdapterOptions
    rate_per_second: ClassVar[float] = 50.0
    """Most requests per second the other side accepts."""
    config_file: ClassVar[str] = CONFIG_FILE
    noun: ClassVar[str] = "action"

    def __init__(
        self,
        options: HttpAdapterOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        if options is None:
            default = self.options_model()
            if not isinstance(default, HttpAdapterOptions):
                raise TypeError(
                    f"{type(self).__name__}.options_model must extend HttpAdapterOptions"
                )
            options = default
        self.options = options
        if options.max_batch is not None:
            self.max_batch = options.max_batch  # type: ignore[misc]
        if options.rate_per_second is not None:
            self.rate_per_second = options.rate_per_second  # type: ignore[misc]
        self._open(transport, timing, self.rate_per_second)

    def _config_key(self) -> str:
        targets = sorted({TARGET[kind] for kind in self.kinds})
        return f"adapters.{'/'.join(targets)}"

    # -- what a provider writes -------------------------------------------------------------

    @abstractmethod
    def _perform_request(self, kind: ActionKind, batch: Sequence[ActionRequest]) -> tuple[str, Any]:
        """The path and JSON payload that submit these requests, all of one kind."""

    @abstractmethod
    def _perform_answers(
        self, kind: ActionKind, batch: Sequence[ActionRequest], payload: Any
    ) -> dict[str, ActionResult]:
        """Per idempotency key, what the other side said about `batch` (the requests this
        answer is for); MalformedResponse if unusable."""

    def _perform_headers(self, kind: ActionKind, batch: Sequence[ActionRequest]) -> dict[str, str]:
        """Extra headers of one request, e.g. an Idempotency-Key for one-request APIs."""
        return {}

    # -- the contract -----------------------------------------------------------------------

    async def perform(self, batch: Sequence[ActionRequest]) -> list[ActionResult]:
        check_batch(self.name, self.kinds, batch)
        groups: dict[ActionKind, list[ActionRequest]] = {}
        for request in batch:
            groups.setdefault(request.kind, []).append(request)
        answered: dict[str, ActionResult] = {}
        for kind, group in groups.items():
            for chunk in chunks(group, self.max_batch):
                await self._limiter.acquire(len(chunk))
                for result in await self._perform_chunk(kind, chunk):
                    answered[result.idempotency_key] = result
        return [answered[request.idempotency_key] for request in batch]

    async def _perform_chunk(
        self, kind: ActionKind, chunk: Sequence[ActionRequest]
    ) -> list[ActionResult]:
        sent: list[ActionRequest] = []

        def request(pending: list[ActionRequest]) -> tuple[str, Any, dict[str, str]]:
            sent[:] = pending
            path, payload = self._perform_request(kind, pending)
            return path, payload, self._perform_headers(kind, pending)

        def answers(payload: Any) -> dict[str, ActionResult]:
            return self._perform_answers(kind, sent, payload)

        def unsettled(key: str, outcome: SendOutcome, reason: str) -> ActionResult:
            return ActionResult(key, outcome, reason=reason)

        return await self._settle(chunk, lambda r: r.idempotency_key, request, answers, unsettled)
