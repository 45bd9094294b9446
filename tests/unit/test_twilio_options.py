"""twilio-sms without a gateway: its options, secrets only from the environment, the rates it
chooses, Twilio's signature computed as the official SDK computes it, and answers the mock
does not give (a suspended account, a 5xx or an error message quoting the number)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from twilio.request_validator import RequestValidator

from adapters.base import OutboundMessage, SendOutcome
from adapters.twilio import TwilioOptions, TwilioSmsAdapter, twilio_signature
from dunning.errors import ConfigError
from dunning.types import Channel

ACCOUNT_SID = "AC" + "1" * 32
BASE: dict[str, Any] = {
    "account_sid": ACCOUNT_SID,
    "auth_token_env": "TWILIO_AUTH_TOKEN",
    "from_number": "+15005550006",
}


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"messaging_service_sid": "MG" + "3" * 32}, "exactly one of messaging_service_sid"),
        ({"from_number": None}, "exactly one of messaging_service_sid"),
        ({"auth_token_env": None}, "set auth_token_env, or api_key_sid"),
        ({"api_key_sid": "SK" + "2" * 32}, "go together"),
        ({"account_sid": "AC123"}, "should match pattern"),
        ({"from_number": "4155550100"}, "should match pattern"),
        ({"status_callback": "ftp://x"}, "http:// or https://"),
        ({"api_key_env": "TWILIO_KEY"}, "does not use api_key_env"),
        ({"sender": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_options_refuse_what_twilio_cannot_use(changes: dict[str, Any], says: str) -> None:
    options = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    with pytest.raises(ValidationError, match=says):
        TwilioOptions.model_validate(options)


def test_a_missing_secret_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="environment variable TWILIO_AUTH_TOKEN is not set"):
        TwilioSmsAdapter(TwilioOptions.model_validate(BASE))


def test_the_rate_is_one_long_codes_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    assert TwilioSmsAdapter(TwilioOptions.model_validate(BASE)).rate_per_second == 1.0
    service = {**BASE, "from_number": None, "messaging_service_sid": "MG" + "3" * 32}
    service = {k: v for k, v in service.items() if v is not None}
    assert TwilioSmsAdapter(TwilioOptions.model_validate(service)).rate_per_second == 10.0
    told = TwilioSmsAdapter(TwilioOptions.model_validate({**BASE, "rate_per_second": 3}))
    assert (told.rate_per_second, told.max_batch, told.deduplicates) == (3.0, 1, False)
    assert told.options.url == "https://api.twilio.com"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"MessageSid": "SM1", "MessageStatus": "delivered", "Body": "Ünïcode 退订 & = +"},
        {"b": "2", "a": "1", "ab": "", "B": "x"},
    ],
)
def test_the_signature_is_the_one_twilios_sdk_computes(params: dict[str, str]) -> None:
    url = "https://dunning.example.com/webhooks/providers/twilio-us/status?x=1"
    expected = RequestValidator("token").compute_signature(url, params)
    assert twilio_signature("token", url, list(params.items())) == expected


def adapter_answering(
    monkeypatch: pytest.MonkeyPatch, response: httpx.Response, **options: Any
) -> TwilioSmsAdapter:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    return TwilioSmsAdapter(
        TwilioOptions.model_validate({**BASE, "max_attempts": 1, **options}),
        transport=httpx.MockTransport(lambda request: response),
    )


def test_check_says_a_suspended_account_is_not_active(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = httpx.Response(200, json={"sid": ACCOUNT_SID, "status": "suspended"})
    adapter = adapter_answering(monkeypatch, answer)
    assert asyncio.run(adapter.check()) == f"the account {ACCOUNT_SID} is suspended, not active"


def test_twilios_words_are_kept_without_the_number_they_quote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answer = httpx.Response(
        400, json={"code": 21211, "message": "The 'To' number +1 (415) 555-0101 is not valid."}
    )
    adapter = adapter_answering(monkeypatch, answer)
    message = OutboundMessage("k", Channel.SMS, "+14155550101", "hi")
    (result,) = asyncio.run(adapter.send([message]))
    assert (result.code, result.vendor_code) == ("invalid_number", "21211")
    assert result.reason == "HTTP 400 Twilio 21211: The 'To' number [number] is not valid."


@pytest.mark.parametrize(
    ("status", "code", "outcome", "reject_code", "vendor_code"),
    [
        (500, 20500, SendOutcome.AMBIGUOUS, None, "20500"),  # Twilio may have taken it
        (429, 20429, SendOutcome.RETRY, None, None),  # tried again until the attempts run out
        (400, 21606, SendOutcome.RETRY, None, "21606"),  # our From cannot send SMS: config
        (400, 21611, SendOutcome.RETRY, None, "21611"),  # the sender's queue is full
        (400, 21617, SendOutcome.REJECTED, "rejected", "21617"),  # body too long
    ],
)
def test_other_answers(
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    code: int,
    outcome: SendOutcome,
    reject_code: str | None,
    vendor_code: str | None,
) -> None:
    adapter = adapter_answering(
        monkeypatch, httpx.Response(status, json={"code": code, "message": "m"})
    )
    (result,) = asyncio.run(adapter.send([OutboundMessage("k", Channel.SMS, "+14155550101", "hi")]))
    assert (result.outcome, result.code, result.vendor_code) == (outcome, reject_code, vendor_code)
