"""How a customer's reply is read against a policy pack's opt-out and opt-in words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from dunning.config.compliance import CompliancePack, normal_reply
from dunning.project import Project


@pytest.fixture(scope="module")
def packs(repo_dir: Path) -> dict[str, CompliancePack]:
    return Project(repo_dir).compliance_packs


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("STOP", "STOP"),
        (" stop ", "STOP"),
        ("Stop.", "STOP"),
        ("STOP!!", "STOP"),
        ("\u201cstop\u201d", "STOP"),
        ("ＳＴＯＰ", "STOP"),  # full width, as Chinese keyboards type it
        ("opt   out", "OPT OUT"),
        ("退订", "退订"),
        (" 退订。", "退订"),
        ("【退订】", "退订"),
        ("td", "TD"),
        ("STOP 🙏", "STOP"),
        ("...", ""),
    ],
)
def test_a_reply_is_compared_without_case_width_spacing_or_surrounding_punctuation(
    text: str, normal: str
) -> None:
    assert normal_reply(text) == normal


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", "Stop.", "STOPALL", "unsubscribe", "Cancel", "END", "quit", "opt out"],
)
def test_the_us_pack_opts_out_on_ctias_words(packs: dict[str, CompliancePack], text: str) -> None:
    assert packs["US"].is_opt_out(text)
    assert not packs["US"].is_opt_in(text)


@pytest.mark.parametrize("text", ["TD", "td", "退订", " 退订！", "R", "r", "ＴＤ"])
def test_the_cn_pack_opts_out_on_td_tuiding_and_r(
    packs: dict[str, CompliancePack], text: str
) -> None:
    assert packs["CN"].is_opt_out(text)


@pytest.mark.parametrize(
    "text", ["STOP calling me", "please stop", "I will pay", "STOPP", "退订了吗", ""]
)
def test_a_sentence_containing_a_word_is_not_the_word(
    packs: dict[str, CompliancePack], text: str
) -> None:
    assert not any(pack.is_opt_out(text) or pack.is_opt_in(text) for pack in packs.values())


def test_us_re_subscribes_on_start_unstop_yes_and_cn_never_does(
    packs: dict[str, CompliancePack],
) -> None:
    for text in ("START", "start", "Unstop", "yes."):
        assert packs["US"].is_opt_in(text), text
        assert not packs["CN"].is_opt_in(text), text
    assert packs["CN"].opt_in_keywords == []


def _pack(repo_dir: Path, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((repo_dir / "config/compliance/US.yaml").read_text())
    data.update(changes)
    return data


def test_a_word_cannot_both_opt_out_and_opt_in(repo_dir: Path) -> None:
    with pytest.raises(ValidationError, match=r"both list \['STOP'\]"):
        CompliancePack.model_validate(_pack(repo_dir, opt_in_keywords=["START", "stop."]))


def test_a_keyword_that_is_only_punctuation_is_refused(repo_dir: Path) -> None:
    with pytest.raises(ValidationError, match="empty once spacing and punctuation go"):
        CompliancePack.model_validate(_pack(repo_dir, opt_out_keywords=["STOP", " ? "]))
