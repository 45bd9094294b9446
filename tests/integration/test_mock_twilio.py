"""The mock Twilio speaks Twilio's wire API: the official `twilio` SDK sends, fetches and lists
messages through it over loopback HTTP, and its RequestValidator accepts the mock's signed
status callbacks. Field names are checked against Twilio's published OpenAPI description."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from dunning.config.channels import MockGatewaySettings
from sandbox import create_mock_gateway_app
from tests.integration._vendor_mocks import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    Gateway,
    vendor_gateway,
)

SPEC = Path(__file__).parents[2] / "sandbox/gateways/specs/twilio_api_v2010_messages.json"
SENDER = "+15005550006"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Gateway]:
    with vendor_gateway(repo_dir, tmp_path_factory.mktemp("twilio")) as served:
        yield served


def client(gateway: Gateway, username: str = ACCOUNT_SID, password: str = AUTH_TOKEN) -> Client:
    """The official client, its api.twilio.com domain pointed at the mock."""
    twilio = Client(username, password, account_sid=ACCOUNT_SID)
    twilio.api.base_url = gateway.url
    return twilio


def test_the_sdk_creates_fetches_and_lists_a_message(gateway: Gateway) -> None:
    twilio = client(gateway)
    body = "Your payment of $120.00 is 5 days late. Reply STOP to opt out."
    created = twilio.messages.create(to="+14155550101", from_=SENDER, body=body)
    assert created.sid.startswith("SM") and len(created.sid) == 34
    assert (created.status, created.num_segments, created.price) == ("queued", "1", None)
    assert created.account_sid == ACCOUNT_SID and created.direction == "outbound-api"
    assert created.date_created is not None and created.date_sent is None
    assert created.uri == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{created.sid}.json"

    fetched = twilio.messages(created.sid).fetch()
    assert (fetched.status, fetched.error_code, fetched.price) == ("delivered", None, "-0.00790")
    assert fetched.date_sent is not None and fetched.body == body

    listed = twilio.messages.list(to="+14155550101")
    assert [m.sid for m in listed] == [created.sid]


def test_twilio_does_not_deduplicate_a_repeated_post(gateway: Gateway) -> None:
    twilio = client(gateway)
    first = twilio.messages.create(to="+14155550102", from_=SENDER, body="Same text")
    second = twilio.messages.create(to="+14155550102", from_=SENDER, body="Same text")
    assert first.sid != second.sid
    rows = [r for r in gateway.ledger.vendor_rows("twilio") if r.recipient == "+14155550102"]
    assert [r.id for r in rows] == [first.sid, second.sid]
    assert {(r.channel, r.submissions) for r in rows} == {("sms", 1)}


def test_an_api_key_authenticates_and_a_wrong_token_is_refused(gateway: Gateway) -> None:
    keyed = client(gateway, API_KEY_SID, API_KEY_SECRET)
    assert keyed.messages.create(to="+14155550103", from_=SENDER, body="hi").status == "queued"
    before = gateway.ledger.count("sms")
    with pytest.raises(TwilioRestException) as refused:
        client(gateway, ACCOUNT_SID, "wrong-token").messages.create(
            to="+14155550103", from_=SENDER, body="hi"
        )
    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert gateway.ledger.count("sms") == before


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550001", 21211), ("+15005550004", 21610), ("+15005550009", 21614)]
)
def test_test_numbers_are_refused_with_twilios_error_codes(
    gateway: Gateway, to: str, code: int
) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client(gateway).messages.create(to=to, from_=SENDER, body="hi")
    assert (refused.value.status, refused.value.code) == (400, code)
    assert to not in refused.value.msg  # no phone number in error text


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [("+15005550303", "undelivered", 30003), ("+15005550308", "failed", 30008)],
)
def test_carrier_failures_come_with_their_error_code(
    gateway: Gateway, to: str, status: str, code: int
) -> None:
    twilio = client(gateway)
    created = twilio.messages.create(to=to, from_=SENDER, body="hi")
    fetched = twilio.messages(created.sid).fetch()
    assert (fetched.status, fetched.error_code) == (status, code)


def test_the_list_filters_by_recipient_sender_and_date_sent_and_pages(gateway: Gateway) -> None:
    twilio = client(gateway)
    sids = [
        twilio.messages.create(to="+14155550104", from_=SENDER, body=f"n{i}").sid for i in range(3)
    ]
    twilio.messages.create(to="+14155550104", from_="+15005550010", body="other sender")
    now = datetime.now(UTC)
    mine = twilio.messages.list(
        to="+14155550104", from_=SENDER, date_sent_after=now - timedelta(hours=1), page_size=2
    )
    assert [m.sid for m in mine] == sids[::-1]  # newest first, across two pages
    assert twilio.messages.list(to="+14155550104", date_sent_before=now - timedelta(days=1)) == []
    page = twilio.messages.page(to="+14155550104", page_size=2)
    assert page.next_page_url is not None


def test_the_status_callback_is_signed_as_twilio_signs(gateway: Gateway) -> None:
    callback = f"{gateway.hooks.url}/twilio/status?key=acct-7%3A2026-11-23"
    created = client(gateway).messages.create(
        to="+14155550105", from_=SENDER, body="hi", status_callback=callback
    )
    pushed = httpx.post(f"{gateway.url}/_admin/receipts/push").json()["pushed"]
    assert pushed >= 1
    got = [r for r in gateway.hooks.received if r.path.startswith("/twilio/status")]
    assert len(got) == 1
    params = dict(parse_qsl(got[0].body.decode()))
    assert params["MessageSid"] == created.sid and params["MessageStatus"] == "delivered"
    signature = got[0].headers["X-Twilio-Signature"]
    assert RequestValidator(AUTH_TOKEN).validate(callback, params, signature)
    assert not RequestValidator("another-token").validate(callback, params, signature)
    forged = {**params, "MessageStatus": "undelivered"}
    assert not RequestValidator(AUTH_TOKEN).validate(callback, forged, signature)
    # One try per status, as Twilio: a second push sends nothing more.
    httpx.post(f"{gateway.url}/_admin/receipts/push")
    assert len([r for r in gateway.hooks.received if r.path.startswith("/twilio/")]) == 1


def test_the_message_resource_has_the_fields_of_twilios_openapi(gateway: Gateway) -> None:
    spec = json.loads(SPEC.read_text())
    schemas = spec["components"]["schemas"]
    fields = set(schemas["api.v2010.account.message"]["properties"])
    statuses = set(schemas["message_enum_status"]["enum"])
    auth = (ACCOUNT_SID, AUTH_TOKEN)
    path = f"{gateway.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    created = httpx.post(path, data={"To": "+14155550106", "From": SENDER, "Body": "hi"}, auth=auth)
    assert created.status_code == 201
    listed = httpx.get(path, params={"To": "+14155550106"}, auth=auth).json()
    list_schema = spec["paths"]["/2010-04-01/Accounts/{AccountSid}/Messages.json"]["get"]
    list_fields = list_schema["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(listed) == set(list_fields["properties"])
    for message in (created.json(), *listed["messages"]):
        assert set(message) == fields
        assert message["status"] in statuses


def test_a_message_moves_from_queued_to_sent_to_its_final_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, on a stopped clock: queued until half the delay, sent, then final."""
    monkeypatch.setenv("MOCK_TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    settings = MockGatewaySettings.model_validate(
        {
            "receipts": {"delivered": 1, "failed": 0, "undeliverable": 0, "delay_seconds": 60},
            "twilio": {"account_sid": ACCOUNT_SID, "auth_token_env": "MOCK_TWILIO_AUTH_TOKEN"},
        }
    )
    now = [1_800_000_000.0]
    app = create_mock_gateway_app(settings, tmp_path, clock=lambda: now[0])

    async def statuses() -> list[tuple[str, str | None]]:
        base = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages"
        transport = httpx.ASGITransport(app=app)
        auth = (ACCOUNT_SID, AUTH_TOKEN)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", auth=auth) as http:
            form = {"To": "+14155550107", "From": SENDER, "Body": "hi"}
            sid = (await http.post(f"{base}.json", data=form)).json()["sid"]
            seen = []
            for later in (10, 30, 60):
                now[0] = 1_800_000_000.0 + later
                message = (await http.get(f"{base}/{sid}.json")).json()
                seen.append((message["status"], message["price"]))
            return seen

    assert asyncio.run(statuses()) == [
        ("queued", None),
        ("sent", "-0.00790"),
        ("delivered", "-0.00790"),
    ]
