"""Gateway faults on demand: scripted for the next N requests, or random at configured rates."""

from __future__ import annotations

import email.utils
import math
import random
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dunning.config.channels import FaultRates

FaultKind = Literal["server_error", "throttle", "timeout", "malformed"]


class ScriptedFault(BaseModel):
    """POST /_admin/faults body: what the next `count` matching requests get instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    count: int = Field(default=1, ge=1, le=100_000)
    channel: Literal["sms", "push", "letter"] | None = Field(
        default=None, description="only requests on this channel; none: any channel"
    )
    status: int = Field(default=503, ge=500, le=599, description="server_error's status")
    retry_after: float = Field(default=1.0, ge=0, le=86400, description="throttle's wait")
    retry_after_format: Literal["seconds", "http-date"] = "seconds"
    sleep_seconds: float = Field(
        default=30.0, ge=0, le=3600, description="timeout: how long to hang (then answer 504)"
    )
    shape: Literal["invalid-json", "wrong-shape"] = Field(
        default="invalid-json", description="malformed: what the 200 body looks like"
    )
    commit_first: bool = Field(
        default=False,
        description="process the request (store it) before the fault, as when a gateway "
        "accepts a message but the answer is lost",
    )

    def spec(self) -> dict[str, object]:
        return self.model_dump(exclude={"count", "channel"})


SCRIPTED_FAULT_MAX_BYTES = 64 * 1024
"""The largest POST /_admin/faults body the mocks read (a fault is a few hundred bytes)."""

SCRIPTED_FAULT_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ScriptedFault.model_json_schema()}},
    }
}
"""The OpenAPI entry of POST /_admin/faults, whose body the endpoint reads itself."""


def scripted_fault(raw: bytes) -> ScriptedFault | str:
    """The fault in a POST /_admin/faults body, or what is wrong with it (no input echoed)."""
    try:
        return ScriptedFault.model_validate_json(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])


class Fault(BaseModel):
    """One fault to apply to one request."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: FaultKind
    status: int = 503
    retry_after: float = 1.0
    retry_after_format: Literal["seconds", "http-date"] = "seconds"
    sleep_seconds: float = 30.0
    shape: Literal["invalid-json", "wrong-shape"] = "invalid-json"
    commit_first: bool = False

    def retry_after_header(self, now: float) -> str:
        if self.retry_after_format == "http-date":
            # HTTP dates have whole seconds: round up so the client never comes back early.
            return email.utils.formatdate(math.ceil(now + self.retry_after), usegmt=True)
        return f"{self.retry_after:g}"


class RandomFaults:
    """Draws a fault for a request at the configured rates (chaos and load tests)."""

    def __init__(self, rates: FaultRates) -> None:
        self.rates = rates
        self._random = random.Random(rates.seed)
        self.enabled = (rates.server_error + rates.throttle + rates.timeout + rates.malformed) > 0

    def draw(self) -> Fault | None:
        if not self.enabled:
            return None
        rates = self.rates
        draw = self._random.random()
        commit_first = self._random.random() < 0.5
        choices: tuple[tuple[FaultKind, float], ...] = (
            ("server_error", rates.server_error),
            ("throttle", rates.throttle),
            ("timeout", rates.timeout),
            ("malformed", rates.malformed),
        )
        for kind, rate in choices:
            if draw < rate:
                return Fault(
                    kind=kind,
                    retry_after=rates.retry_after_seconds,
                    sleep_seconds=rates.timeout_seconds,
                    shape="invalid-json" if self._random.random() < 0.5 else "wrong-shape",
                    commit_first=commit_first and kind in ("timeout", "malformed"),
                )
            draw -= rate
        return None
