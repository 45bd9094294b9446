"""Base of action adapters that talk HTTP: the adapter kit's plumbing, keyed by request.

Batches, the rate limit, retries with backoff, Retry-After, authentication and the default
sorting of answers all come from adapters._http (HttpExchange), exactly as for messages; a
provider writes only its public hooks: the request for a group of requests
(`perform_request`, a VendorRequest) and how a 2xx answer is read (`perform_answers`), and
may override `classify_perform`, `build_auth` and `error_reason`.
A batch may mix the adapter's kinds (a freeze and a restore): it goes out as one request per
kind, in the order the kinds first appear.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from adapters._http import (
    HttpAdapterOptions,
    HttpExchange,
    RequestFailure,
    Timing,
    VendorAnswer,
    VendorRequest,
    chunks,
)
from adapters.actions._checks import check_batch
from adapters.actions.base import TARGET, ActionAdapter, ActionKind, ActionRequest, ActionResult
from adapters.base import AdapterOptions

CONFIG_FILE = "config/actions.yaml"


class HttpActionAdapter(HttpExchange, ActionAdapter):
    """Subclasses set name, kinds, default_url and write the two hooks.

    `deduplicates` is True: the action contract requires the other side to deduplicate on
    the idempotency key (action-adapters.md), so every request may be repeated.
    """

    options_model: ClassVar[type[AdapterOptions]] = HttpAdapterOptions
    deduplicates: ClassVar[bool] = True
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
    def perform_request(self, kind: ActionKind, batch: Sequence[ActionRequest]) -> VendorRequest:
        """The request that submits these requests, all of one kind."""

    @abstractmethod
    def perform_answers(
        self, kind: ActionKind, batch: Sequence[ActionRequest], payload: Any
    ) -> Mapping[str, ActionResult]:
        """Per idempotency key, what a 2xx answer (decoded JSON) says about `batch` (the
        requests this answer is for); MalformedResponse if unusable."""

    def classify_perform(
        self, kind: ActionKind, batch: Sequence[ActionRequest], answer: VendorAnswer
    ) -> Mapping[str, ActionResult] | RequestFailure:
        """What the answer (any status, or none) means per request. Default: a 2xx goes to
        `perform_answers`, anything else to `classify_failure`."""
        if not answer.ok:
            return self.classify_failure(answer)
        return self.perform_answers(kind, batch, answer.json())

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
        def request(pending: list[ActionRequest]) -> VendorRequest:
            return self.perform_request(kind, pending)

        def classify(
            pending: list[ActionRequest], answer: VendorAnswer
        ) -> Mapping[str, ActionResult] | RequestFailure:
            return self.classify_perform(kind, pending, answer)

        def unsettled(key: str, failure: RequestFailure) -> ActionResult:
            return ActionResult(key, failure.outcome, reason=failure.reason)

        return await self._settle(chunk, lambda r: r.idempotency_key, request, classify, unsettled)
