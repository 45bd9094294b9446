"""The adapter registry (entry points) and its checks of config/channels.yaml."""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters import (
    InvalidAdapter,
    UnknownAdapter,
    adapter_class,
    available,
    build_adapter,
    check_channels,
    registry,
)
from dunning.config import load_file
from dunning.config.channels import ChannelAdapter, ChannelsConfig, DispatchSettings
from dunning.errors import ConfigError
from dunning.types import Channel
from sandbox import MockLetterAdapter, MockPushAdapter, MockSmsAdapter
from tests.helpers import invoke


def test_builtin_adapters_are_registered_through_entry_points() -> None:
    assert {"mock-sms", "mock-push", "mock-letter"} <= set(available())
    assert adapter_class("mock-sms") is MockSmsAdapter
    assert adapter_class("mock-push") is MockPushAdapter
    assert adapter_class("mock-letter") is MockLetterAdapter


def test_unknown_adapter_lists_the_available_names() -> None:
    with pytest.raises(UnknownAdapter) as caught:
        adapter_class("carrier-pigeon")
    assert "no adapter named 'carrier-pigeon' is installed" in str(caught.value)
    assert "mock-letter, mock-push, mock-sms" in str(caught.value)


PLUGIN = """
from __future__ import annotations
from adapters.base import AdapterOptions, GatewayAdapter, SendOutcome, SendResult
from dunning.types import Channel
from tests.helpers import invoke


class AcmeOptions(AdapterOptions):
    account: str


class AcmeSmsAdapter(GatewayAdapter):
    name = "acme-sms"
    channel = Channel.SMS
    options_model = AcmeOptions
    max_batch = 7

    def __init__(self, options):
        self.options = options

    async def send(self, batch):
        return [SendResult(m.idempotency_key, SendOutcome.ACCEPTED, "acme") for m in batch]

    async def fetch_statuses(self, gateway_message_ids):
        return []


class Misnamed(AcmeSmsAdapter):
    name = "something-else"
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed third-party package: a module plus a dist-info with entry points."""
    (tmp_path / "acme_dunning_plugin.py").write_text(textwrap.dedent(PLUGIN))
    info = tmp_path / "acme_dunning_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-dunning-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[dunning.adapters]\n"
        "acme-sms = acme_dunning_plugin:AcmeSmsAdapter\n"
        "acme-wrong = acme_dunning_plugin:Misnamed\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield
    sys.modules.pop("acme_dunning_plugin", None)
    monkeypatch.undo()
    registry.refresh()


@pytest.mark.usefixtures("plugin")
def test_a_third_party_package_adds_an_adapter(tmp_path: Path) -> None:
    assert "acme-sms" in available()
    config = ChannelsConfig.model_validate(
        {"channels": {"sms": {"adapter": "acme-sms", "options": {"account": "A-1"}}}}
    )
    built = build_adapter(Channel.SMS, config, tmp_path)
    assert type(built).__name__ == "AcmeSmsAdapter"
    assert built.max_batch == 7
    config = ChannelsConfig.model_validate({"channels": {"sms": {"adapter": "acme-sms"}}})
    assert [str(problem) for problem in check_channels(config)] == [
        "config/channels.yaml: channels.sms.options.account: Field required"
    ]


@pytest.mark.usefixtures("plugin")
def test_an_entry_point_must_match_the_adapter_name() -> None:
    with pytest.raises(InvalidAdapter, match="leads to an adapter named 'something-else'"):
        adapter_class("acme-wrong")


BAD_CHANNELS = (
    "channels:\n"
    "  sms: {adapter: mock-sms, options: {timeout: -1}}\n"
    "  push: {adapter: mock-sms}\n"
    "  letter: {adapter: nope}\n"
)


def bad_channels_problems() -> list[str]:
    """What check_channels says of BAD_CHANNELS, with the adapters installed now."""
    names = ", ".join(available())
    return [line.format(available=names) for line in _BAD_CHANNELS_PROBLEMS]


_BAD_CHANNELS_PROBLEMS = [
    "config/channels.yaml: channels.sms.options.timeout: Input should be greater than 0",
    "config/channels.yaml: channels.push.adapter: 'mock-sms' sends sms, not push",
    "config/channels.yaml: channels.letter.adapter: no adapter named 'nope' is installed; "
    "available: {available}",
]


def test_bad_options_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config" / "channels.yaml"
    path.parent.mkdir()
    path.write_text(BAD_CHANNELS)
    # The config model does not know adapters (config imports none); the registry checks them.
    config = load_file(path, ChannelsConfig, tmp_path)
    assert [str(problem) for problem in check_channels(config)] == bad_channels_problems()


def _program(repo_dir: Path, root: Path) -> Path:
    shutil.copytree(repo_dir / "config", root / "config")
    shutil.copytree(repo_dir / "templates", root / "templates")
    shutil.copy(repo_dir / "dunning.yaml", root / "dunning.yaml")
    return root


def test_config_check_reports_each_adapter_problem_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, repo_dir: Path
) -> None:
    program = _program(repo_dir, tmp_path / "program")
    (program / "config" / "channels.yaml").write_text(BAD_CHANNELS)
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert result.code == 1
    problems = result.json()["problems"]
    assert [f"{p['file']}: {p['key']}: {p['reason']}" for p in problems] == bad_channels_problems()
    # A file that does not load is reported by its own check, not again by the adapter check.
    (program / "config" / "channels.yaml").write_text("dispatch: {lease_seconds: 1}\n")
    result = invoke(capsys, "--project-dir", str(program), "config", "check", "--json")
    assert [(p["file"], p["key"]) for p in result.json()["problems"]] == [
        ("config/channels.yaml", "dispatch.lease_seconds")
    ]


def test_nothing_runs_on_an_unknown_adapter(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    repo_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    program = _program(repo_dir, tmp_path / "program")
    (program / "config" / "channels.yaml").write_text(BAD_CHANNELS)
    state = tmp_path / "state"
    monkeypatch.setenv("DUNNING_STATE_DIR", str(state))
    monkeypatch.delenv("DUNNING_DATABASE_URL", raising=False)
    result = invoke(
        capsys, "--project-dir", str(program), "accounts", "tiers", "--as-of", "2026-11-23"
    )
    assert result.code == 1
    assert "channels.letter.adapter: no adapter named 'nope' is installed" in result.err
    assert "channels.push.adapter: 'mock-sms' sends sms, not push" in result.err
    assert "Traceback" not in result.err
    assert not (state / "dunning.db").exists()  # refused before the database was opened


def test_build_adapter_rechecks_options_and_names_the_key(tmp_path: Path) -> None:
    # Built without validation, as a caller constructing config by hand might.
    config = ChannelsConfig.model_construct(
        channels={Channel.SMS: ChannelAdapter(adapter="mock-sms", options={"max_attempts": 0})}
    )
    with pytest.raises(ConfigError) as caught:
        build_adapter(Channel.SMS, config, tmp_path)
    assert str(caught.value) == (
        "config/channels.yaml: channels.sms.options.max_attempts: "
        "Input should be greater than or equal to 1"
    )
    with pytest.raises(ConfigError, match=r"channels\.email: no adapter is configured"):
        build_adapter(Channel.EMAIL, config, tmp_path)


def test_shipped_config_is_the_in_process_mocks(repo_dir: Path) -> None:
    config = load_file(repo_dir / "config" / "channels.yaml", ChannelsConfig, repo_dir)
    assert {c: e.adapter for c, e in config.channels.items()} == {
        Channel.SMS: "mock-sms",
        Channel.PUSH: "mock-push",
        Channel.LETTER: "mock-letter",
    }
    assert all("url" not in entry.options for entry in config.channels.values())
    assert config.dispatch == DispatchSettings(lease_seconds=120, max_attempts=8)
    receipts = config.mock_gateway.receipts
    assert (receipts.delivered, receipts.failed, receipts.undeliverable) == (0.95, 0.03, 0.02)
    faults = config.mock_gateway.faults
    assert faults.server_error == faults.throttle == faults.timeout == faults.malformed == 0


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"dispatch": {"lease_seconds": 1}}, "dispatch.lease_seconds"),
        ({"dispatch": {"max_attempts": 0}}, "dispatch.max_attempts"),
        ({"dispatch": {"retries": 3}}, "dispatch.retries"),
        ({"mock_gateway": {"receipts": {"delivered": 0.5}}}, "must be 1, they add up to 0.55"),
        ({"mock_gateway": {"faults": {"throttle": 0.7, "timeout": 0.6}}}, "more than 1"),
        ({"mock_gateway": {"api_key_env": "lower-case"}}, "mock_gateway.api_key_env"),
        ({"mock_gateway": {"receipts": {"webhook_url": "ftp://x"}}}, "http:// or https://"),
    ],
)
def test_settings_are_bounded(data: dict[str, object], problem: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "channels.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=problem.replace(".", r"\.")):
        load_file(path, ChannelsConfig, tmp_path)
