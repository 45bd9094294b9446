"""Runs: one execution of a flow for one business date, and the batches its work comes in."""

from __future__ import annotations

from dunning.services.runs.batches import Batch, account_batches
from dunning.services.runs.book import ActiveRun, Liveness, RunBook, RunStatus, describe_error

__all__ = [
    "ActiveRun",
    "Batch",
    "Liveness",
    "RunBook",
    "RunStatus",
    "account_batches",
    "describe_error",
]
