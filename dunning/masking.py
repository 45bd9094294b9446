"""Masking of personal data for anything shown outside the database: logs, CLI, artifacts."""

from __future__ import annotations

import re

# Every phone number shape we store or could be given: E.164 (+86..., +1...), Chinese mobiles
# (138 1234 5678), US numbers ((312) 555-0142, 312.555.0142) and long digit runs; but not the
# dates, times and id ranges that log lines carry.
_PHONE = re.compile(
    r"\+\d[\d \-().]{6,}\d"
    r"|(?<![\w-])1\d{2}[ \-]?\d{4}[ \-]?\d{4}(?![\w-])"
    r"|(?<![\w-])\(?\d{3}\)?[ \-.]\d{3}[ \-.]\d{4}(?![\w-])"
    r"|(?<!\d)\d{9,}(?!\d)"
)
_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    digits = phone.lstrip("+")
    country = digits[:2] if digits.startswith("86") else digits[:1]
    return f"+{country}{'*' * max(len(digits) - len(country) - 4, 0)}{digits[-4:]}"


def mask_name(name: str | None) -> str:
    if not name:
        return ""
    return " ".join(
        part[0] + "*" * (len(part) - 1) if len(part) > 1 else part + "*" for part in name.split(" ")
    )


def mask_token(token: str | None) -> str:
    if not token:
        return ""
    return f"{token[:4]}...({len(token)} chars)"


def mask_recipient(channel: str, recipient: str | None) -> str:
    if not recipient:
        return ""
    if channel == "sms":
        return mask_phone(recipient)
    if channel == "push":
        return mask_token(recipient)
    if channel == "email":
        local, _, domain = recipient.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"[postal address, {recipient.count(chr(10)) + 1} lines]"


def _phone(match: re.Match[str]) -> str:
    digits = re.sub(r"[^\d+]", "", match.group(0))
    if digits.startswith("+"):
        return mask_phone(digits)
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_text(text: str) -> str:
    """Mask e-mail addresses and phone numbers in free text (idempotent)."""
    return _PHONE.sub(_phone, _EMAIL.sub("[email]", text))
