"""Sending what is due: claim due outbox messages and send them through the gateways exactly
once (`send`), print letters' PDFs in a pool of printer processes first (`printing`), and record
the gateways' later delivery receipts, polled or pushed to the webhook (`receipts`).
"""

from __future__ import annotations

from dunning.services.dispatch.printing import LetterPress, Printing, PrintReport, default_workers
from dunning.services.dispatch.receipts import (
    DatabaseReceiptSink,
    ReceiptReport,
    reconcile_receipts,
)
from dunning.services.dispatch.send import DispatchReport, Scope, SendGate, dispatch_due

__all__ = [
    "DatabaseReceiptSink",
    "DispatchReport",
    "LetterPress",
    "PrintReport",
    "Printing",
    "ReceiptReport",
    "Scope",
    "SendGate",
    "default_workers",
    "dispatch_due",
    "reconcile_receipts",
]
