"""config/strategy.yaml: tiers, cadence steps, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dunning.config import Strategy, load_file
from dunning.config.strategy import DpdRange, Step
from dunning.errors import ConfigError


def test_default_tiers_have_exact_boundaries() -> None:
    strategy = Strategy()
    assert [(t.name, t.dpd.min, t.dpd.max) for t in strategy.tiers] == [
        ("early", 1, 30),
        ("middle", 31, 60),
        ("late", 61, None),
    ]
    assert strategy.tier_for(0) is None
    assert strategy.tier_for(30).name == "early"  # type: ignore[union-attr]
    assert strategy.tier_for(31).name == "middle"  # type: ignore[union-attr]
    assert strategy.tier_for(60).name == "middle"  # type: ignore[union-attr]
    assert strategy.tier_for(61).name == "late"  # type: ignore[union-attr]
    assert strategy.tier_for(10_000).name == "late"  # type: ignore[union-attr]


def test_step_days_and_repetition() -> None:
    tier = DpdRange(min=1, max=30)
    step = Step(id="s", channel="sms", template="reminder", days=[3, 7], every=7)
    assert [d for d in range(0, 40) if step.is_due(d, tier)] == [3, 7, 14, 21, 28]
    weekly = Step(id="w", channel="sms", template="firm", every=7)
    middle = DpdRange(min=31, max=60)
    assert [d for d in range(0, 70) if weekly.is_due(d, middle)] == [38, 45, 52, 59]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strategy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("yaml_text", "key", "reason"),
    [
        ("batch_size: 0\n", "batch_size", "greater than or equal to 1"),
        (
            "tiers:\n  - name: early\n    dpd: {min: 1, max: 30}\n"
            "  - name: late\n    dpd: {min: 40}\n",
            "",
            "must start at DPD 31",
        ),
        ("tiers:\n  - name: early\n    dpd: {min: 5, max: 2}\n", "tiers.0.dpd", "below min"),
        ("batch_sise: 10\n", "batch_sise", "Extra inputs are not permitted"),
        (
            "tiers:\n  - name: early\n    dpd: {min: 1}\n    cadence:\n"
            "      - {id: a, channel: fax, template: x, days: [1]}\n",
            "tiers.0.cadence.0.channel",
            "Input should be",
        ),
        ("tiers: [\n", "line 2, column 1", "invalid YAML"),
    ],
)
def test_bad_strategy_names_file_and_key(
    tmp_path: Path, yaml_text: str, key: str, reason: str
) -> None:
    path = _write(tmp_path, yaml_text)
    with pytest.raises(ConfigError) as caught:
        load_file(path, Strategy, tmp_path)
    problem = caught.value.problems[0]
    assert problem.file == "strategy.yaml"
    assert problem.key == key
    assert reason in problem.reason
    assert "strategy.yaml" in str(caught.value)
