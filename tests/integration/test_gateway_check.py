"""`dunning gateway check`: each configured provider tried without sending, one line each.

The sandbox's channels file (CN SMS through Aliyun SMS, US SMS through Twilio) is checked
against its mock gateways served on loopback: everything answers when the credentials are
right; a wrong secret, a missing variable or an unreachable URL is named on its provider's
line (never the secret itself), the exit status is 1, and no message reaches any gateway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox import GatewayLedger
from tests.helpers import dunning_served, free_port, invoke
from tests.integration._fcm import service_account

REPO = Path(__file__).resolve().parents[2]
TOKEN = "sandbox-twilio-token-0123456789abcdef"
SECRET = "sandbox-aliyun-secret-0123456789abcdef"
SANDBOX_ENV = {
    "DUNNING_CHANNELS_FILE": "config/channels.sandbox.yaml",
    "DUNNING_SANDBOX_TWILIO_TOKEN": TOKEN,
    "DUNNING_SANDBOX_ALIYUN_SECRET": SECRET,
    "DUNNING_SANDBOX_JPUSH_SECRET": "sandbox-jpush-secret-0123456789abcdef",
    "DUNNING_SANDBOX_LOB_KEY": "test_sandbox_lob_key_0123456789",
    # The mock needs only the account's key; the adapter's copy names the served token URL.
    "DUNNING_SANDBOX_FCM_ACCOUNT": json.dumps(
        service_account("http://mock-gateway.invalid/token", project_id="dunning-sandbox")
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The sandbox's mock gateways (their own state directory, so their own ledger)."""
    state = tmp_path_factory.mktemp("gateway-state")
    with dunning_served(REPO, state, "gateway", env=SANDBOX_ENV) as (url, _):
        yield url, state


@pytest.fixture
def sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, served: tuple[str, Path]
) -> tuple[str, Path]:
    monkeypatch.setenv("DUNNING_PROJECT_DIR", str(REPO))
    monkeypatch.setenv("DUNNING_STATE_DIR", str(tmp_path / "state"))
    for name, value in SANDBOX_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DUNNING_SANDBOX_URL", served[0])
    monkeypatch.setenv("DUNNING_SANDBOX_LOB_URL", f"{served[0]}/v1")
    account = service_account(f"{served[0]}/token", project_id="dunning-sandbox")
    monkeypatch.setenv("DUNNING_SANDBOX_FCM_ACCOUNT", json.dumps(account))
    return served


def lines(out: str) -> dict[str, str]:
    return {line.split(" ", 1)[0]: line for line in out.splitlines() if line.strip()}


def test_every_provider_of_the_sandbox_answers_and_nothing_is_sent(
    capsys: pytest.CaptureFixture[str], sandbox: tuple[str, Path]
) -> None:
    _, state = sandbox
    before = GatewayLedger(state / "gateway-ledger.db").count()
    result = invoke(capsys, "gateway", "check")
    assert result.code == 0, result.out + result.err
    found = lines(result.out)
    assert set(found) == {
        "aliyun-cn",
        "twilio-us",
        "jpush-cn",
        "fcm-us",
        "lob-us",
        "mock-sms",
        "mock-push",
        "mock-letter-sandbox",
    }
    assert all(line.endswith(": ok") for line in found.values()), found
    assert "aliyun-sms; sms:CN" in found["aliyun-cn"]
    assert "twilio-sms; sms:US" in found["twilio-us"]
    assert GatewayLedger(state / "gateway-ledger.db").count() == before

    checked = invoke(capsys, "gateway", "check", "twilio-us", "--json").json()
    assert checked == {
        "providers": [
            {
                "provider": "twilio-us",
                "adapter": "twilio-sms",
                "channel": "sms",
                "routes": ["sms:US"],
                "ok": True,
                "problem": None,
            }
        ]
    }


def test_wrong_secrets_are_named_by_their_variable_never_shown(
    capsys: pytest.CaptureFixture[str], sandbox: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNNING_SANDBOX_TWILIO_TOKEN", "wrong-token-never-printed-0001")
    monkeypatch.setenv("DUNNING_SANDBOX_ALIYUN_SECRET", "wrong-secret-never-printed-0002")
    result = invoke(capsys, "gateway", "check", "twilio-us", "aliyun-cn")
    assert result.code == 1
    found = lines(result.out)
    assert "DUNNING_SANDBOX_TWILIO_TOKEN" in found["twilio-us"]
    assert "refused" in found["twilio-us"]
    assert not found["aliyun-cn"].endswith(": ok")
    assert "2 provider(s) cannot be used: aliyun-cn, twilio-us" in result.err
    for text in (result.out, result.err):
        assert "never-printed" not in text and TOKEN not in text and SECRET not in text


def test_a_missing_variable_and_an_unreachable_gateway_each_say_so(
    capsys: pytest.CaptureFixture[str], sandbox: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUNNING_SANDBOX_ALIYUN_SECRET")
    gone = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("DUNNING_SANDBOX_URL", gone)
    monkeypatch.setenv("DUNNING_SANDBOX_LOB_URL", f"{gone}/v1")
    result = invoke(capsys, "gateway", "check", "--json")
    assert result.code == 1
    problems = {p["provider"]: p["problem"] for p in result.json()["providers"]}
    assert problems["aliyun-cn"] is not None
    assert "DUNNING_SANDBOX_ALIYUN_SECRET" in problems["aliyun-cn"]
    assert "is not set" in problems["aliyun-cn"]
    assert problems["twilio-us"] is not None and "cannot reach" in problems["twilio-us"]
    assert problems["jpush-cn"] is not None and "cannot reach" in problems["jpush-cn"]
    assert problems["fcm-us"] is not None
    assert problems["lob-us"] is not None


def test_an_unknown_provider_is_refused_naming_the_configured_ones(
    capsys: pytest.CaptureFixture[str], sandbox: tuple[str, Path]
) -> None:
    result = invoke(capsys, "gateway", "check", "nexmo")
    assert result.code == 1
    assert "no provider nexmo" in result.err and "twilio-us" in result.err
