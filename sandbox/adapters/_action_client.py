"""The client side shared by the mock action adapters: options, and the in-process mock app."""

from __future__ import annotations

import os
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import httpx
from pydantic import Field

from adapters import HttpAdapterOptions
from adapters.actions import HttpActionAdapter
from dunning.config.channels import FaultRates
from sandbox.actions import AGENCY_LEDGER, CORE_BANKING_LEDGER, AgencyLedger, CoreBankingLedger
from sandbox.actions._common import MAX_ITEMS

if TYPE_CHECKING:
    from fastapi import FastAPI

    from adapters.registry import ActionAdapterContext


class MockActionOptions(HttpAdapterOptions):
    """Options of the mock action adapters: with no `url`, the mock runs in-process."""

    ledger: str | None = Field(
        default=None,
        min_length=1,
        description="SQLite file of the in-process mock; relative paths are under the state dir",
    )
    faults: FaultRates = Field(
        default_factory=FaultRates, description="random faults of the in-process mock"
    )
    max_batch: int | None = Field(
        default=None, ge=1, le=MAX_ITEMS, description="the mocks take at most 1000 per request"
    )


def ledger_file(options: MockActionOptions, default: str, state_dir: Path) -> Path:
    """Where a mock's ledger lives (relative paths are under state_dir)."""
    path = Path(options.ledger or default)
    return path if path.is_absolute() else state_dir / path


class MockActionAdapter(HttpActionAdapter):
    """Talks to one of the action mocks; each subclass encodes items and reads answers."""

    options_model = MockActionOptions
    default_ledger: ClassVar[str]
    """The ledger file name under the state dir when options.ledger is none."""

    @classmethod
    def from_config(cls, options: MockActionOptions, context: ActionAdapterContext) -> Self:
        """With no url, the mock app in this process, reached over ASGI: same HTTP path."""
        transport: httpx.AsyncBaseTransport | None = None
        if options.url is None:
            api_key = os.environ.get(options.api_key_env) if options.api_key_env else None
            app = cls._mock_app(
                ledger_file(options, cls.default_ledger, context.state_dir),
                api_key or None,
                options.faults,
            )
            # A bug in the app answers 500, as a real server would, instead of raising here.
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return cls(options, transport=transport)

    @classmethod
    @abstractmethod
    def _mock_app(cls, ledger: Path, api_key: str | None, faults: FaultRates) -> FastAPI:
        """The mock's ASGI app over this ledger file."""

    @staticmethod
    def _error_text(response: httpx.Response) -> str | None:
        try:
            error: dict[str, Any] = response.json()["error"]
            return f"HTTP {response.status_code} {error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            return None

    def error_reason(self, response: httpx.Response) -> str:
        return self._error_text(response) or super().error_reason(response)


def core_banking_ledger(
    state_dir: Path, options: MockActionOptions | None = None
) -> CoreBankingLedger:
    """The in-process core banking mock's ledger for these options (default: its default file)."""
    return CoreBankingLedger(
        ledger_file(options or MockActionOptions(), CORE_BANKING_LEDGER, state_dir)
    )


def agency_ledger(state_dir: Path, options: MockActionOptions | None = None) -> AgencyLedger:
    """The in-process agency mock's ledger for these options (default: its default file)."""
    return AgencyLedger(ledger_file(options or MockActionOptions(), AGENCY_LEDGER, state_dir))
