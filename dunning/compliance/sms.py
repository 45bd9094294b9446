"""SMS encoding and length: GSM-7 or UCS-2, and how many parts a text is sent in.

GSM 03.38: the basic character set (one septet each) and the extension table (an escape and the
character: two septets). A text made only of these goes as GSM-7, 160 septets in one message or
153 per part when split; any other character (Chinese, emoji, curly quotes, full-width
punctuation) sends the whole text as UCS-2: 70 UTF-16 units, 67 per part. A part never ends
between an escape and its character, nor inside a surrogate pair.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""The 127 characters of the basic table (its 128th code is the escape to the extension)."""
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
"""Characters of the extension table: two septets each."""

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PER_PART = {"GSM-7": 153, "UCS-2": 67}


@dataclass(frozen=True)
class SmsLength:
    encoding: Encoding
    characters: int
    """Characters as a person counts them (code points): what Chinese carriers bill."""
    units: int
    """Septets (GSM-7) or UTF-16 code units (UCS-2)."""
    segments: int
    """Messages the text is sent as (1 when it fits in one)."""
    non_gsm: tuple[str, ...]
    """The characters that made it UCS-2, in order of first appearance."""

    @property
    def avoidable_ucs2(self) -> bool:
        """UCS-2 only because of punctuation, symbols or spaces (a curly quote, a dash, an
        emoji), not because of the language's letters: the text could go as GSM-7."""
        return bool(self.non_gsm) and not any(
            unicodedata.category(char).startswith("L") for char in self.non_gsm
        )

    def describe(self) -> str:
        parts = "1 segment" if self.segments == 1 else f"{self.segments} segments"
        return f"{self.encoding}, {parts}, {self.characters} characters"


def _unit_costs(text: str) -> tuple[Encoding, list[int], tuple[str, ...]]:
    non_gsm = tuple(
        dict.fromkeys(c for c in text if c not in GSM7_BASIC and c not in GSM7_EXTENSION)
    )
    if not non_gsm:
        return "GSM-7", [2 if char in GSM7_EXTENSION else 1 for char in text], ()
    return "UCS-2", [2 if ord(char) > 0xFFFF else 1 for char in text], non_gsm


def sms_length(text: str) -> SmsLength:
    """How `text` goes out: encoding, units and segments (see the module docstring)."""
    encoding, costs, non_gsm = _unit_costs(text)
    units = sum(costs)
    if units <= SINGLE[encoding]:
        segments = 1
    else:
        limit, segments, used = PER_PART[encoding], 1, 0
        for cost in costs:
            if used + cost > limit:  # a two-unit character moves whole to the next part
                segments, used = segments + 1, 0
            used += cost
    return SmsLength(encoding, len(text), units, segments, non_gsm)
