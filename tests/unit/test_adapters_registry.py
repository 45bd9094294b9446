"""The adapter registry (entry points) and config/channels.yaml validation."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters import (
    InvalidAdapter,
    UnknownAdapter,
    adapter_class,
    available,
    build_adapter,
    registry,
)
from dunning.config import load_file
from dunning.config.channels import ChannelAdapter, ChannelsConfig, DispatchSettings
from dunning.errors import ConfigError
from dunning.types import Channel
from sandbox import MockLetterAdapter, MockPushAdapter, MockSmsAdapter


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
    with pytest.raises(ValidationError, match=r"sms: options\.account: Field required"):
        ChannelsConfig.model_validate({"channels": {"sms": {"adapter": "acme-sms"}}})


@pytest.mark.usefixtures("plugin")
def test_an_entry_point_must_match_the_adapter_name() -> None:
    with pytest.raises(InvalidAdapter, match="leads to an adapter named 'something-else'"):
        adapter_class("acme-wrong")


def test_bad_options_name_the_file_and_key(tmp_path: Path, repo_dir: Path) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    path = config_dir / "channels.yaml"
    path.write_text(
        "channels:\n"
        "  sms: {adapter: mock-sms, options: {timeout: -1}}\n"
        "  push: {adapter: mock-sms}\n"
        "  letter: {adapter: nope}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_file(path, ChannelsConfig, tmp_path)
    message = str(caught.value)
    assert message.startswith("config/channels.yaml: channels: ")
    assert "sms: options.timeout: Input should be greater than 0" in message
    assert "push: adapter: 'mock-sms' sends sms, not push" in message
    assert "letter: adapter: no adapter named 'nope' is installed" in message


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
