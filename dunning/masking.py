"""Masking of personal data for anything shown outside the database: logs, CLI, artifacts."""

from __future__ import annotations

import re

_PHONE = re.compile(r"\+?\d[\d \-]{7,}\d")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


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


def scrub(text: str) -> str:
    """Mask anything that looks like a phone number or an e-mail address in free text."""
    text = _EMAIL.sub("[email]", text)
    return _PHONE.sub(lambda m: mask_phone(re.sub(r"[ \-]", "", m.group(0))), text)
