"""The action adapter registry (entry points) and config/actions.yaml."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from adapters import registry
from adapters.actions import FileRegistryAdapter
from adapters.registry import (
    InvalidAdapter,
    UnknownAdapter,
    action_adapter_class,
    adapter_class,
    available_action_adapters,
    build_action_adapter,
    check_actions,
)
from dunning.config import load_file
from dunning.config.actions import ActionsConfig, Agency, CreditFreeze
from dunning.errors import ConfigError
from sandbox import MockAgencyAdapter, MockCoreBankingAdapter
from tests.helpers import invoke

REPO = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str) -> ActionsConfig:
    path = tmp_path / "config" / "actions.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_file(path, ActionsConfig, tmp_path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return [str(p) for p in caught.value.problems]


def test_builtin_action_adapters_are_registered_through_entry_points() -> None:
    assert {"mock-core-banking", "mock-agency", "file-registry"} <= set(available_action_adapters())
    assert action_adapter_class("mock-core-banking") is MockCoreBankingAdapter
    assert action_adapter_class("mock-agency") is MockAgencyAdapter
    assert action_adapter_class("file-registry") is FileRegistryAdapter


def test_unknown_action_adapter_lists_the_available_names() -> None:
    with pytest.raises(UnknownAdapter, match="file-registry, mock-agency, mock-core-banking"):
        action_adapter_class("carrier-pigeon")


PLUGIN = """
from __future__ import annotations
from adapters.actions import ActionAdapter, ActionKind, ActionResult
from adapters.base import AdapterOptions, SendOutcome


class AcmeOptions(AdapterOptions):
    branch: str


class AcmeCoreAdapter(ActionAdapter):
    name = "acme-core"
    kinds = frozenset({ActionKind.CREDIT_FREEZE, ActionKind.CREDIT_RESTORE})
    options_model = AcmeOptions
    max_batch = 3

    def __init__(self, options):
        self.options = options

    async def perform(self, batch):
        return [ActionResult(r.idempotency_key, SendOutcome.ACCEPTED, "acme") for r in batch]


class Everything(AcmeCoreAdapter):
    name = "acme-everything"
    kinds = frozenset({ActionKind.CREDIT_FREEZE, ActionKind.AGENCY_PLACEMENT})


class NotAnAdapter:
    name = "acme-nothing"
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed third-party package declaring action adapters through entry points."""
    (tmp_path / "acme_action_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "acme_action_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-action-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[dunning.action_adapters]\n"
        "acme-core = acme_action_plugin:AcmeCoreAdapter\n"
        "acme-everything = acme_action_plugin:Everything\n"
        "acme-nothing = acme_action_plugin:NotAnAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield
    sys.modules.pop("acme_action_plugin", None)
    monkeypatch.undo()
    registry.refresh()


@pytest.mark.usefixtures("plugin")
def test_a_third_party_package_adds_an_action_adapter(tmp_path: Path) -> None:
    assert "acme-core" in available_action_adapters()
    config = ActionsConfig.model_validate(
        {"adapters": {"credit_line": {"adapter": "acme-core", "options": {"branch": "B-1"}}}}
    )
    built = build_action_adapter("credit_line", config, tmp_path)
    assert type(built).__name__ == "AcmeCoreAdapter" and built.max_batch == 3
    # The two kinds of adapter keep their own entry-point groups.
    with pytest.raises(UnknownAdapter, match="no adapter named 'acme-core' is installed"):
        adapter_class("acme-core")


@pytest.mark.usefixtures("plugin")
def test_an_action_adapter_serves_one_target_and_is_an_action_adapter() -> None:
    with pytest.raises(InvalidAdapter, match=r"exactly one target .* its kinds are of 2"):
        action_adapter_class("acme-everything")
    with pytest.raises(InvalidAdapter, match=r"'acme-nothing' \(.*\) is not an ActionAdapter"):
        action_adapter_class("acme-nothing")


def test_shipped_config_matches_the_defaults() -> None:
    shipped = load_file(REPO / "config" / "actions.yaml", ActionsConfig, REPO)
    defaults = ActionsConfig()
    assert shipped.agencies == defaults.agencies
    assert shipped.credit_freeze == defaults.credit_freeze
    assert shipped.dispatch == defaults.dispatch
    assert [shipped.adapters.entry(t).adapter for t in ("credit_line", "agency", "registry")] == [
        "mock-core-banking",
        "mock-agency",
        "file-registry",
    ]
    huaxin, north_star = shipped.agencies
    assert (huaxin.id, huaxin.name, huaxin.jurisdictions) == ("huaxin", "华信资产管理", ["CN"])
    assert (huaxin.commission_rate, north_star.commission_rate) == (
        Decimal("0.15"),
        Decimal("0.18"),
    )
    assert shipped.agency_for("US") == north_star
    assert shipped.agency_for("GB") is None


def test_commission_is_overdue_times_rate_and_freeze_sets_the_new_limit() -> None:
    agency = Agency(id="a", name="A", jurisdictions=["CN"], commission_rate=Decimal("0.15"))
    assert agency.expected_commission_minor(310_003) == 46_500  # 46,500.45 rounds half up
    assert agency.expected_commission_minor(5) == 1  # 0.75
    assert CreditFreeze().new_limit_minor(500_000) == 0
    assert CreditFreeze(mode="reduce", reduce_to_percent=30).new_limit_minor(500_001) == 150_000


def test_agencies_by_tier(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """
        agencies:
          - {id: early-bird, name: Early, jurisdictions: [US], commission_rate: 0.1,
             tiers: [middle]}
          - {id: late-owl, name: Late, jurisdictions: [US, CN], commission_rate: "0.3"}
        """,
    )
    assert config.agencies[0].commission_rate == Decimal("0.1")
    assert [a.id for a in (config.agency_for("US", "middle"), config.agency_for("US", "late"))] == [
        "early-bird",
        "late-owl",
    ]


def test_bad_values_name_the_file_and_the_key(tmp_path: Path) -> None:
    assert problems(
        tmp_path,
        """
        credit_freeze: {mode: block}
        agencies:
          - {id: x, name: X, jurisdictions: [cn], commission_rate: "1.5"}
          - {id: x, name: Y, jurisdictions: [US], commission_rate: 0.2, fee: 3}
        dispatch: {lease_seconds: 1}
        """,
    ) == [
        "config/actions.yaml: credit_freeze.mode: Input should be 'freeze' or 'reduce'",
        "config/actions.yaml: agencies.0.jurisdictions.0: String should match pattern "
        "'^[A-Z]{2}(-[A-Z0-9]{1,3})?$'",
        "config/actions.yaml: agencies.0.commission_rate: Input should be less than or equal to 1",
        "config/actions.yaml: agencies.1.fee: Extra inputs are not permitted",
        "config/actions.yaml: dispatch.lease_seconds: Input should be greater than or equal to 10",
    ]
    assert problems(
        tmp_path,
        """
        agencies:
          - {id: x, name: X, jurisdictions: [CN], commission_rate: 0.1}
          - {id: x, name: Y, jurisdictions: [US], commission_rate: 0.2}
        """,
    ) == ["config/actions.yaml: agencies: agency ids must be unique: x"]


def adapter_problems(tmp_path: Path, text: str) -> list[str]:
    return [str(problem) for problem in check_actions(load(tmp_path, text))]


def test_adapter_options_are_checked_by_the_registry(tmp_path: Path) -> None:
    assert problems(tmp_path, "adapters: {courts: {adapter: mock-agency}}") == [
        "config/actions.yaml: adapters.courts: Extra inputs are not permitted"
    ]
    assert adapter_problems(
        tmp_path,
        """
        adapters:
          credit_line: {adapter: mock-core-banking, options: {timeout: 0, colour: red}}
          agency: {adapter: file-registry}
          registry: {adapter: acme, options: {}}
        """,
    ) == [
        "config/actions.yaml: adapters.credit_line.options.timeout: Input should be greater than 0",
        "config/actions.yaml: adapters.credit_line.options.colour: Extra inputs are not permitted",
        "config/actions.yaml: adapters.agency.adapter: 'file-registry' performs registry "
        "actions, not agency",
        "config/actions.yaml: adapters.registry.adapter: no action adapter named 'acme' is "
        "installed; available: file-registry, mock-agency, mock-core-banking",
    ]
    assert adapter_problems(
        tmp_path, "adapters: {registry: {adapter: file-registry, options: {format: xml}}}"
    ) == [
        "config/actions.yaml: adapters.registry.options.format: no registry format 'xml'; "
        "formats: csv, jsonl"
    ]
    assert adapter_problems(tmp_path, "{}") == []  # the defaults are installed


def test_config_check_and_runs_name_a_bad_action_adapter(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "program"
    shutil.copytree(REPO / "config", program / "config")
    shutil.copytree(REPO / "templates", program / "templates")
    shutil.copy(REPO / "dunning.yaml", program / "dunning.yaml")
    (program / "config" / "actions.yaml").write_text(
        "adapters: {agency: {adapter: mock-agency, options: {max_batch: 0}}}\n"
    )
    expected = (
        "config/actions.yaml: adapters.agency.options.max_batch: "
        "Input should be greater than or equal to 1"
    )
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert result.code == 1
    assert [f"{p['file']}: {p['key']}: {p['reason']}" for p in result.json()["problems"]] == [
        expected
    ]
    state = tmp_path / "state"
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    monkeypatch.delenv("DUNNING_DATABASE_URL", raising=False)
    result = invoke(
        capsys, "--project-dir", str(program), "accounts", "tiers", "--as-of", "2026-11-23"
    )
    assert result.code == 1 and expected in result.err
    assert not (state / "dunning.db").exists()


def test_build_action_adapter_names_the_full_key(tmp_path: Path) -> None:
    # build_action_adapter checks again, whatever check_actions was or was not run.
    config = ActionsConfig.model_construct(
        adapters=ActionsConfig().adapters.model_copy(
            update={
                "credit_line": ActionsConfig().adapters.credit_line.model_copy(
                    update={"options": {"max_attempts": 0}}
                )
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        build_action_adapter("credit_line", config, tmp_path)
    assert str(caught.value) == (
        "config/actions.yaml: adapters.credit_line.options.max_attempts: "
        "Input should be greater than or equal to 1"
    )
    with pytest.raises(ValueError, match="targets: credit_line, agency, registry"):
        build_action_adapter("courts", ActionsConfig(), tmp_path)


def test_options_override_the_class_limits() -> None:
    config = ActionsConfig.model_validate(
        {"adapters": {"agency": {"adapter": "mock-agency", "options": {"max_batch": 7}}}}
    )
    adapter = build_action_adapter("agency", config, Path("/nonexistent"))
    assert adapter.max_batch == 7 and MockAgencyAdapter.max_batch == 100
