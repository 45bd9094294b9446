"""GSM-7 / UCS-2 detection and segment counts (GSM 03.38, 3GPP TS 23.040 concatenation)."""

from __future__ import annotations

import pytest

from dunning.compliance import sms_length
from dunning.compliance.sms import GSM7_BASIC, GSM7_EXTENSION


def test_the_tables_have_the_standard_sizes() -> None:
    assert len(GSM7_BASIC) == 127  # 128 codes, one of them the escape
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters take two septets
        ("€" * 81, "GSM-7", 162, 2),
        ("a" * 152 + "€" + "a" * 151, "GSM-7", 305, 2),
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),  # the escape pair is not split: 152|154
        ("Ça coûte 5 €", "UCS-2", 12, 1),  # û is not in GSM-7 (Ç and é are)
        ("逾" * 70, "UCS-2", 70, 1),
        ("逾" * 71, "UCS-2", 71, 2),
        ("逾" * 134, "UCS-2", 134, 2),
        ("逾" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # outside the BMP: a surrogate pair each
        ("a" * 66 + "😀" + "a", "UCS-2", 69, 1),
        ("a" * 66 + "😀" + "a" * 5, "UCS-2", 73, 2),
    ],
)
def test_encoding_units_and_segments(text: str, encoding: str, units: int, segments: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.units, length.segments) == (encoding, units, segments)
    assert length.characters == len(text)


def test_a_surrogate_pair_is_never_split_between_parts() -> None:
    # 66 units, then a pair that would straddle units 67 and 68: it moves to part two.
    assert sms_length("a" * 66 + "😀" + "a" * 65).segments == 2  # 66 | 67
    assert sms_length("a" * 66 + "😀" + "a" * 66).segments == 3  # 134 units, yet 66 | 67 | 1


def test_avoidable_ucs2_is_punctuation_only() -> None:
    curly = sms_length("Can’t pay? Call us — Reply STOP to opt out")
    assert curly.encoding == "UCS-2" and curly.avoidable_ucs2
    assert curly.non_gsm == ("’", "—")
    chinese = sms_length("【邓宁示范贷】您好，回复TD退订")
    assert chinese.encoding == "UCS-2" and not chinese.avoidable_ucs2
    assert not sms_length("plain text").avoidable_ucs2
    assert sms_length("plain text").describe() == "GSM-7, 1 segment, 10 characters"
