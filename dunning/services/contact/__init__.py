"""The contact rules: when and how a customer may be reached, at plan time and again at send
time (`policy`: windows, caps, consent, the send-time gate), and what stops contact at once
(`stops`: opt-outs, the customer's flags, promises, grace and plans in force), and the
customers' replies and receipts that vendors push (`replies`: STOP, 退订, START).
"""

from __future__ import annotations

from dunning.services.contact.policy import (
    NO_CONTACT_WINDOW,
    NO_POLICY_PACK,
    Check,
    ContactPolicy,
    send_gate,
)
from dunning.services.contact.replies import (
    ReplyMeaning,
    VendorWebhookRecord,
    record_reply,
    record_vendor_webhook,
)
from dunning.services.contact.stops import (
    Stops,
    hold_suppressed,
    inbound_sms,
    opt_out,
    opt_out_customer,
    stops_in_force,
)

__all__ = [
    "NO_CONTACT_WINDOW",
    "NO_POLICY_PACK",
    "Check",
    "ContactPolicy",
    "ReplyMeaning",
    "Stops",
    "VendorWebhookRecord",
    "hold_suppressed",
    "inbound_sms",
    "opt_out",
    "opt_out_customer",
    "record_reply",
    "record_vendor_webhook",
    "send_gate",
    "stops_in_force",
]
