"""config/lender.yaml: per-locale lender texts, the views templates get, and their errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dunning.config import LenderProfile, load_file
from dunning.config.loader import registered
from dunning.errors import ConfigError
from dunning.rendering import DEMO_LENDER

TEXTS = {
    "name": "Demo",
    "sms_signature": "Demo",
    "phone": "+1 800-555-0100",
    "website": "https://pay.example.com",
    "payment_instructions": "Pay online.",
    "return_address": ["PO Box 1"],
}


def test_shipped_profile_matches_the_sample_lender(repo_dir: Path) -> None:
    profile = load_file(repo_dir / "config" / "lender.yaml", LenderProfile)
    assert set(profile.locales) == {"en-US", "zh-CN"}
    for locale, view in DEMO_LENDER.items():
        assert profile.view(locale) == view
    assert profile.view("zh_CN").sms_signature == "邓宁示范贷"
    assert any(entry.pattern == "lender.yaml" for entry in registered())


def test_a_missing_locale_names_the_file_and_key() -> None:
    profile = LenderProfile.model_validate({"locales": {"en-US": TEXTS}})
    with pytest.raises(ConfigError, match=r"config/lender\.yaml: locales\.fr-FR: missing"):
        profile.view("fr-FR")


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"sms_signature": "【Demo】"}, "sms_signature"),
        ({"website": "http://pay.example.com"}, "website"),
        ({"return_address": []}, "return_address"),
        ({"return_address": ["x" * 61]}, "return_address"),
        ({"fax": "123"}, "fax"),
    ],
)
def test_bad_texts_are_rejected(tmp_path: Path, change: dict[str, object], key: str) -> None:
    path = tmp_path / "lender.yaml"
    path.write_text(yaml.safe_dump({"locales": {"en-US": {**TEXTS, **change}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"locales\.en-US\.{key}"):
        load_file(path, LenderProfile)


def test_locale_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="english"):
        LenderProfile.model_validate({"locales": {"english": TEXTS}})
