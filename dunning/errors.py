"""Every error Dunning raises on purpose, so entrypoints can turn them into one-line messages.

DunningError
├── ProjectNotFound        no program directory (dunning.yaml) where one was looked for
├── ConfigError            a YAML file under config/ is invalid: file, key and reason
├── ImportRejected         a CSV import had bad rows; nothing was written
├── TemplateError          a template is missing, malformed or fails to render
├── NotFound               an entity named on the command line does not exist
├── InvalidTransition      a state machine was asked for a move it does not allow
├── ReceiptConflict        a delivery receipt names two different messages; nothing recorded
└── GatewayError           a gateway answered with something we cannot use
    ├── TransientGatewayError   worth retrying (5xx, 429, timeout)
    └── PermanentGatewayError   never retried; the message is recorded as failed
"""

from __future__ import annotations

from dataclasses import dataclass


class DunningError(Exception):
    """Base class: the message is safe to show to a user (no PII)."""


class ProjectNotFound(DunningError):
    pass


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '(top level)'}: {self.reason}"


class ConfigError(DunningError):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based line number in the file, the header being line 1
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}"
        return (
            f"{where}: {self.column}: {self.reason}" if self.column else f"{where}: {self.reason}"
        )


class ImportRejected(DunningError):
    def __init__(self, file: str, problems: list[RowProblem], limit: int = 20) -> None:
        self.file = file
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:limit])
        more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
        super().__init__(
            f"{file}: rejected, nothing was written: {len(problems)} problem(s): {shown}{more}"
        )


class TemplateError(DunningError):
    pass


class NotFound(DunningError):
    pass


class InvalidTransition(DunningError):
    pass


class ReceiptConflict(DunningError):
    """Delivery receipts whose gateway message id and idempotency key name two different
    messages: none of the receipts given together is recorded."""


class GatewayError(DunningError):
    pass


class TransientGatewayError(GatewayError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentGatewayError(GatewayError):
    pass
