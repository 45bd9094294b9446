"""The providers' own webhooks (POST /webhooks/providers/{provider}/{kind}): receipts and
customers' replies (STOP, 退订, START) read by the provider's adapter and recorded once.

First through a fake provider installed for the test (an entry point, as a third-party package
adds one), then end to end through the real twilio-sms and aliyun-sms adapters: a reply signed
as the vendor signs it stops the next daily run's SMS to that number, and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import textwrap
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator

from adapters import registry
from adapters.twilio import EMPTY_TWIML
from dunning.bootstrap import Runtime
from dunning.cli.commands_gateway import PUBLIC_URL_ENV as CLI_PUBLIC_URL_ENV
from dunning.cli.commands_gateway import inbound_handler, vendor_hooks
from dunning.config.channels import ChannelsConfig
from dunning.db.tables import ACCOUNT, CUSTOMER, EVENT, OUTBOX, REPLY
from dunning.services.daily import run_daily_outreach
from dunning.services.dispatch.receipts import DatabaseReceiptSink
from dunning.services.outreach.plan import plan_batch
from dunning.webhooks import MAX_BODY_BYTES, PUBLIC_URL_ENV, create_webhook_app
from tests.factories import CN_CUSTOMER, OPEN_FOR_ALL, US_CUSTOMER, add_account
from tests.helpers import dunning_served, invoke, outreach_at, write_csv
from tests.integration import _vendor_mocks as mocks

SECRET = "a-test-secret-of-some-length"
PUBLIC = "https://hooks.lender.example"
TOKEN = "fake-vendor-token"
US_PHONE = str(US_CUSTOMER["phone"])
CN_PHONE = str(CN_CUSTOMER["phone"])
NIGHT = OPEN_FOR_ALL.replace(hour=9)
"""03:00 in Chicago: the day's SMS are planned, waiting for the morning."""
AS_OF = OPEN_FOR_ALL.date()

FAKE = """
from __future__ import annotations

import json
from datetime import datetime

from adapters.base import (
    AdapterOptions, DeliveryStatus, GatewayAdapter, InboundReply, StatusReport, WebhookAnswer,
    WebhookRefused,
)
from dunning.types import Channel

BUILT: list[str] = []
URLS: list[str] = []


class FakeOptions(AdapterOptions):
    token: str


class FakeSmsAdapter(GatewayAdapter):
    \"\"\"A vendor that signs its webhooks with a header token and pushes JSON.\"\"\"

    name = "fake-sms"
    channel = Channel.SMS
    options_model = FakeOptions

    def __init__(self, options):
        self.options = options
        BUILT.append(options.token)

    async def send(self, batch):
        raise AssertionError("nothing is sent in these tests")

    async def fetch_statuses(self, gateway_message_ids):
        return []

    def read_webhook(self, request, kind):
        URLS.append(request.url)
        if request.headers.get("x-fake-token") != self.options.token:
            raise WebhookRefused(401, "the token does not match")
        try:
            data = json.loads(request.body)
        except ValueError:
            raise WebhookRefused(400, "the body is not JSON") from None
        if kind == "inbound":
            replies = [
                InboundReply(r["id"], r["from"], r["text"], datetime.fromisoformat(r["at"]))
                for r in data
            ]
            return WebhookAnswer(replies=replies, content_type="text/xml", body=b"<Response/>")
        statuses = [
            StatusReport(
                s["sid"], "", DeliveryStatus(s["status"]), datetime.fromisoformat(s["at"]),
                event_id=f"{s['sid']}:{s['status']}",
            )
            for s in data
        ]
        return WebhookAnswer(statuses=statuses, content_type="text/plain", body=b"thanks")
"""


@pytest.fixture
def fake_vendor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """An installed package adding the fake-sms adapter; yields its module (BUILT, URLS)."""
    (tmp_path / "fake_vendor_plugin.py").write_text(textwrap.dedent(FAKE))
    info = tmp_path / "fake_vendor_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-vendor-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(
        "[dunning.adapters]\nfake-sms = fake_vendor_plugin:FakeSmsAdapter\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    import fake_vendor_plugin  # type: ignore[import-not-found]

    yield fake_vendor_plugin
    sys.modules.pop("fake_vendor_plugin", None)
    monkeypatch.undo()
    registry.refresh()


def with_channels(runtime: Runtime, config: Mapping[str, Any]) -> Runtime:
    channels = ChannelsConfig.model_validate(config)
    return Runtime(runtime.project.with_config(channels=channels), runtime.engine, runtime.runs)


FAKE_CHANNELS = {
    "providers": {"fake-us": {"adapter": "fake-sms", "options": {"token": TOKEN}}},
    "channels": {
        "sms": {"routes": {"US": ["fake-us"], "default": ["mock-sms"]}},
        "push": {"adapter": "mock-push"},
        "letter": {"adapter": "mock-letter"},
    },
}


class Hooks:
    """The webhook app over a runtime, posted to in this process (ASGI)."""

    def __init__(self, runtime: Runtime, public_url: str | None = PUBLIC) -> None:
        self.runtime = runtime
        self.app = create_webhook_app(
            SECRET,
            DatabaseReceiptSink(runtime.engine),
            inbound=inbound_handler(runtime),
            vendors=vendor_hooks(runtime),
            public_url=public_url,
        )

    def post(
        self, path: str, content: bytes, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://10.0.0.7") as c:
                return await c.post(path, content=content, headers=dict(headers or {}))

        return asyncio.run(go())

    def fake(self, kind: str, items: list[dict[str, Any]], token: str = TOKEN) -> httpx.Response:
        return self.post(
            f"/webhooks/providers/fake-us/{kind}",
            json.dumps(items).encode(),
            {"X-Fake-Token": token, "Content-Type": "application/json"},
        )


def reply(event: str, text: str, sender: str = US_PHONE) -> dict[str, str]:
    return {"id": event, "from": sender, "text": text, "at": "2026-11-24T08:00:00+00:00"}


@pytest.fixture
def hooks(runtime: Runtime, fake_vendor: Any) -> Hooks:
    return Hooks(with_channels(runtime, FAKE_CHANNELS))


def customers(runtime: Runtime) -> dict[str, tuple[str | None, bool, str | None]]:
    """external id -> (phone, SMS opted out, its source)."""
    c = CUSTOMER.c
    with runtime.engine.connect() as connection:
        return {
            row.external_id: (row.phone, row.sms_opted_out_at is not None, row.sms_opt_out_source)
            for row in connection.execute(
                select(c.external_id, c.phone, c.sms_opted_out_at, c.sms_opt_out_source)
            )
        }


def replies(runtime: Runtime) -> list[tuple[str, str, str, int]]:
    r = REPLY.c
    with runtime.engine.connect() as connection:
        return [
            tuple(row)  # type: ignore[misc]
            for row in connection.execute(
                select(r.provider, r.event_id, r.meaning, r.customers).order_by(r.id)
            )
        ]


def outbox_of(runtime: Runtime) -> dict[str, list[tuple[str, str, str | None]]]:
    """account external id -> [(channel, status, suppression)]."""
    o, a = OUTBOX.c, ACCOUNT.c
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    with runtime.engine.connect() as connection:
        for row in connection.execute(
            select(a.external_id, o.channel, o.status, o.suppression)
            .join(OUTBOX, o.account_id == a.id)
            .order_by(o.id)
        ):
            found.setdefault(row.external_id, []).append((row.channel, row.status, row.suppression))
    return found


def account_ids(runtime: Runtime) -> dict[int, str]:
    with runtime.engine.connect() as connection:
        return dict(connection.execute(select(ACCOUNT.c.id, ACCOUNT.c.external_id)).all())


# -- through a fake provider --------------------------------------------------------------------


def test_a_stop_reply_opts_out_every_customer_with_the_phone_and_holds_their_waiting_sms(
    hooks: Hooks,
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        first = add_account(c, dpd=3, as_of=AS_OF)
        second = add_account(c, dpd=3, as_of=AS_OF)
        other = add_account(c, dpd=3, as_of=AS_OF, phone="+13125550199")
    env = outreach_at(runtime, NIGHT)
    with runtime.runs.run("daily-outreach", AS_OF) as run:
        plan_batch(env.planner, run.id, AS_OF, 0, 2**31 - 1)
    env.close()
    names = account_ids(runtime)
    waiting = [("sms", "planned", None)]
    assert outbox_of(runtime) == {names[a]: waiting for a in (first, second, other)}

    answer = hooks.fake("inbound", [reply("SM1", " Stop. ")])

    assert (answer.status_code, answer.text) == (200, "<Response/>")
    assert answer.headers["content-type"].startswith("text/xml")
    held = [("sms", "held", "opted_out")]
    assert outbox_of(runtime) == {
        names[first]: held,
        names[second]: held,
        names[other]: waiting,
    }
    assert sorted(customers(runtime).values()) == [
        (US_PHONE, True, "reply:fake-us"),
        (US_PHONE, True, "reply:fake-us"),
        ("+13125550199", False, None),
    ]
    assert replies(runtime) == [("fake-us", "SM1", "opt_out", 2)]


def test_a_reply_pushed_again_is_recorded_once_and_answered_as_the_first(hooks: Hooks) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    first = hooks.fake("inbound", [reply("SM1", "STOP")])
    with runtime.unit_of_work() as c:
        # An operator lifts it by hand: a retried push of the old STOP must not opt out again.
        c.execute(update(CUSTOMER).values(sms_opted_out_at=None, sms_opt_out_source=None))
    again = hooks.fake("inbound", [reply("SM1", "STOP")])
    assert (
        (first.status_code, first.content)
        == (again.status_code, again.content)
        == (
            200,
            b"<Response/>",
        )
    )
    assert replies(runtime) == [("fake-us", "SM1", "opt_out", 1)]
    assert list(customers(runtime).values()) == [(US_PHONE, False, None)]


def test_start_lifts_only_an_opt_out_made_by_reply_and_gives_no_consent(
    hooks: Hooks, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF, sms_consent=False)
        add_account(c, dpd=3, as_of=AS_OF, phone="+13125550177")
    assert hooks.fake("inbound", [reply("SM1", "STOP")]).status_code == 200
    (operator_opted,) = [k for k, v in customers(runtime).items() if v[0] == "+13125550177"]
    assert invoke(capsys, "customers", "opt-out", operator_opted, "--channel", "sms").code == 0

    answer = hooks.fake("inbound", [reply("SM2", "start"), reply("SM3", "unstop", "+13125550177")])

    assert answer.status_code == 200
    c = CUSTOMER.c
    with runtime.engine.connect() as connection:
        rows = {
            row.phone: (row.sms_opted_out_at is not None, row.sms_opt_out_source, row.sms_consent)
            for row in connection.execute(
                select(c.phone, c.sms_opted_out_at, c.sms_opt_out_source, c.sms_consent)
            )
        }
    assert rows == {
        US_PHONE: (False, None, False),  # re-subscribed, and still without consent
        "+13125550177": (True, "operator", True),  # a text does not undo the operator's record
    }
    assert [r[2:] for r in replies(runtime)] == [("opt_out", 1), ("opt_in", 1), ("opt_in", 0)]


def test_start_does_nothing_where_the_pack_has_no_opt_in_words(hooks: Hooks) -> None:
    """CN: MIIT Order 31 wants new consent after a refusal; no reply word gives it."""
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN")
    hooks.fake("inbound", [reply("SM1", "退订", CN_PHONE)])
    hooks.fake("inbound", [reply("SM2", "START", CN_PHONE), reply("SM3", "UNSTOP", CN_PHONE)])
    assert list(customers(runtime).values()) == [(CN_PHONE, True, "reply:fake-us")]
    assert [r[2:] for r in replies(runtime)] == [("opt_out", 1), ("other", 0), ("other", 0)]


def test_a_customer_with_accounts_under_both_packs_needs_both_to_allow_start(
    hooks: Hooks,
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
        cn = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN", phone=US_PHONE)
        (first, second) = c.execute(select(CUSTOMER.c.id).order_by(CUSTOMER.c.id)).scalars()
        # One customer, an account under each pack.
        c.execute(update(ACCOUNT).where(ACCOUNT.c.id == cn).values(customer_id=first))
        c.execute(CUSTOMER.delete().where(CUSTOMER.c.id == second))
    hooks.fake("inbound", [reply("SM1", "TD")])  # a CN word opts out whoever has a CN account
    hooks.fake("inbound", [reply("SM2", "START")])  # but the CN pack never re-subscribes
    assert list(customers(runtime).values()) == [(US_PHONE, True, "reply:fake-us")]
    assert [r[2:] for r in replies(runtime)] == [("opt_out", 1), ("other", 0)]


def test_other_texts_change_nothing_and_no_reply_text_or_phone_is_logged(
    hooks: Hooks, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="dunning")
    texts = ["I will pay on Friday", "stop calling my mother", "STOP STOP"]
    answer = hooks.fake("inbound", [reply(f"SM{i}", t) for i, t in enumerate(texts)])
    assert answer.status_code == 200
    assert list(customers(runtime).values()) == [(US_PHONE, False, None)]
    assert [r[2] for r in replies(runtime)] == ["other"] * 3
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "recorded" in logged
    assert US_PHONE not in logged and not any(text in logged for text in texts)


def test_a_status_callback_records_the_receipt_once(hooks: Hooks) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=AS_OF)
    env = outreach_at(runtime, NIGHT)
    with runtime.runs.run("daily-outreach", AS_OF) as run:
        plan_batch(env.planner, run.id, AS_OF, 0, 2**31 - 1)
    env.close()
    with runtime.unit_of_work() as c:
        c.execute(
            update(OUTBOX).values(
                status="sent", gateway_message_id="SMabc", provider="fake-us", sent_at=NIGHT
            )
        )
    status = [{"sid": "SMabc", "status": "delivered", "at": "2026-11-24T09:01:00+00:00"}]
    for _ in range(2):
        answer = hooks.fake("status", status)
        assert (answer.status_code, answer.text) == (200, "thanks")
    assert outbox_of(runtime) == {account_ids(runtime)[account]: [("sms", "delivered", None)]}
    with runtime.engine.connect() as connection:
        events = connection.execute(select(EVENT.c.source, EVENT.c.event_id)).all()
    assert [tuple(e) for e in events] == [("webhook", "SMabc:delivered")]


def test_a_call_the_adapter_refuses_changes_nothing_and_says_why_without_echoing(
    hooks: Hooks,
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    forged = hooks.fake("inbound", [reply("SM1", "STOP")], token="guessed")
    assert forged.status_code == 401
    assert forged.json() == {"error": {"code": "refused", "message": "the token does not match"}}
    unsigned = hooks.post("/webhooks/providers/fake-us/inbound", b"[]")
    assert unsigned.status_code == 401
    bad = hooks.post(
        "/webhooks/providers/fake-us/inbound", US_PHONE.encode(), {"X-Fake-Token": TOKEN}
    )
    assert bad.status_code == 400 and US_PHONE not in bad.text
    assert replies(runtime) == []
    assert list(customers(runtime).values()) == [(US_PHONE, False, None)]


def test_unknown_providers_and_kinds_are_404_without_building_anything(
    hooks: Hooks, fake_vendor: Any
) -> None:
    for path in (
        "/webhooks/providers/nobody/inbound",
        "/webhooks/providers/fake-us/delivery",
        "/webhooks/providers/fake-us/",
    ):
        answer = hooks.post(path, b"[]", {"X-Fake-Token": TOKEN})
        assert answer.status_code == 404, path
    assert fake_vendor.BUILT == []
    # A channel's provider that takes no webhooks (the mock) says so through its adapter.
    assert hooks.post("/webhooks/providers/mock-push/inbound", b"[]").status_code == 404


def test_without_a_public_url_the_provider_webhooks_answer_503_and_build_nothing(
    runtime: Runtime, fake_vendor: Any
) -> None:
    hooks = Hooks(with_channels(runtime, FAKE_CHANNELS), public_url=None)
    answer = hooks.fake("inbound", [reply("SM1", "STOP")])
    assert answer.status_code == 503 and PUBLIC_URL_ENV in answer.json()["error"]["message"]
    assert fake_vendor.BUILT == []
    assert CLI_PUBLIC_URL_ENV == PUBLIC_URL_ENV


def test_the_url_given_to_the_adapter_is_the_public_one_whatever_proxies_say(
    hooks: Hooks, fake_vendor: Any
) -> None:
    hooks.post(
        "/webhooks/providers/fake-us/inbound?token=a%2Fb&x=1",
        b"[]",
        {
            "X-Fake-Token": TOKEN,
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "http",
            "Forwarded": "host=evil.example;proto=http",
            "Host": "internal:8766",
        },
    )
    assert [f"{PUBLIC}/webhooks/providers/fake-us/inbound?token=a%2Fb&x=1"] == fake_vendor.URLS


def test_a_body_over_the_limit_is_refused_before_the_adapter_reads_it(
    hooks: Hooks, fake_vendor: Any
) -> None:
    answer = hooks.post("/webhooks/providers/fake-us/inbound", b"[" + b" " * MAX_BODY_BYTES + b"]")
    assert answer.status_code == 413
    assert fake_vendor.URLS == []


def test_a_provider_whose_secret_is_missing_answers_503_naming_no_secret(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WEBHOOK_TEST_TWILIO_TOKEN", raising=False)
    config = {
        "providers": {
            "twilio-us": {
                "adapter": "twilio-sms",
                "options": {
                    "account_sid": "AC" + "1" * 32,
                    "auth_token_env": "WEBHOOK_TEST_TWILIO_TOKEN",
                    "from_number": "+15005550006",
                    "url": "http://127.0.0.1:9",
                },
            }
        },
        "channels": {"sms": {"routes": {"default": ["twilio-us"]}}},
    }
    hooks = Hooks(with_channels(runtime, config))
    answer = hooks.post("/webhooks/providers/twilio-us/inbound", b"From=x")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "provider_unavailable"


def test_a_failure_to_record_answers_503_so_the_vendor_retries_and_records_nothing(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    import dunning.services.contact.replies as module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"database says no to {US_PHONE}")

    monkeypatch.setattr(module, "opt_out", broken)
    answer = hooks.fake("inbound", [reply("SM1", "STOP")])
    assert answer.status_code == 503
    assert replies(runtime) == []  # the claim of the event rolled back with the rest
    assert US_PHONE not in caplog.text
    monkeypatch.undo()
    assert hooks.fake("inbound", [reply("SM1", "STOP")]).status_code == 200
    assert list(customers(runtime).values()) == [(US_PHONE, True, "reply:fake-us")]


# -- opt-outs that imports and operators record -------------------------------------------------

COLUMNS = ["external_id", "name", "locale", "time_zone", "phone", "sms_consent", "sms_opted_out"]


def _customers_file(path: Path, opted_out: Mapping[str, str]) -> Path:
    rows = [
        [external_id, "Ann Lee", "en-US", "America/Chicago", phone, "true", opted_out[external_id]]
        for external_id, phone in (
            ("C-reply", US_PHONE),
            ("C-operator", "+13125550177"),
            ("C-import", "+13125550188"),
        )
    ]
    return write_csv(path, COLUMNS, rows)


def test_an_import_lifts_only_the_opt_outs_imports_made(
    hooks: Hooks, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The lender's next file does not know of a STOP: it must not undo it, nor an operator's
    record; an opt-out the file made, the file may lift."""
    runtime = hooks.runtime
    first = {"C-reply": "false", "C-operator": "false", "C-import": "true"}
    result = invoke(capsys, "import", "customers", str(_customers_file(tmp_path / "a.csv", first)))
    assert result.code == 0, result.err
    assert hooks.fake("inbound", [reply("SM1", "STOP")]).status_code == 200
    assert invoke(capsys, "customers", "opt-out", "C-operator", "--channel", "sms").code == 0
    assert customers(runtime) == {
        "C-reply": (US_PHONE, True, "reply:fake-us"),
        "C-operator": ("+13125550177", True, "operator"),
        "C-import": ("+13125550188", True, "import"),
    }
    none = dict.fromkeys(first, "false")
    result = invoke(capsys, "import", "customers", str(_customers_file(tmp_path / "b.csv", none)))
    assert result.code == 0, result.err
    assert customers(runtime) == {
        "C-reply": (US_PHONE, True, "reply:fake-us"),
        "C-operator": ("+13125550177", True, "operator"),
        "C-import": ("+13125550188", False, None),
    }


# -- end to end, through the real adapters and the vendors' own formats -------------------------

TWILIO_TOKEN_ENV = "E2E_TWILIO_AUTH_TOKEN"
ALIYUN_SECRET_ENV = "E2E_ALIYUN_SECRET"
ALIYUN_PUSH_ENV = "E2E_ALIYUN_PUSH_TOKEN"
PUSH_TOKEN = "aliyun-push-token-of-some-length"
SENDER = "+15005550006"
BYSTANDER = "+13125550199"


def vendor_channels(gateway_url: str) -> dict[str, Any]:
    """US SMS through Twilio, CN SMS through Aliyun SMS (both the served mock), the rest in
    process through the mock's own API."""
    return {
        "providers": {
            "twilio-us": {
                "adapter": "twilio-sms",
                "options": {
                    "account_sid": mocks.ACCOUNT_SID,
                    "auth_token_env": TWILIO_TOKEN_ENV,
                    "from_number": SENDER,
                    "url": gateway_url,
                },
            },
            "aliyun-cn": {
                "adapter": "aliyun-sms",
                "options": {
                    "access_key_id": mocks.ACCESS_KEY_ID,
                    "access_key_secret_env": ALIYUN_SECRET_ENV,
                    "sign_name": mocks.SIGN_NAME,
                    "push_token_env": ALIYUN_PUSH_ENV,
                    "url": gateway_url,
                },
            },
        },
        "channels": {
            "sms": {"routes": {"US": ["twilio-us"], "CN": ["aliyun-cn"], "default": ["mock-sms"]}},
            "push": {"adapter": "mock-push"},
            "letter": {"adapter": "mock-letter"},
        },
    }


def twilio_call(
    hooks: Hooks, kind: str, params: dict[str, str], token: str = mocks.AUTH_TOKEN
) -> httpx.Response:
    """A call as Twilio makes it: form fields, signed by the twilio SDK's RequestValidator over
    the public URL."""
    path = f"/webhooks/providers/twilio-us/{kind}"
    signature = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return hooks.post(
        path,
        urlencode(params).encode(),
        {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded",
            "I-Twilio-Idempotency-Token": "ignored",
        },
    )


def twilio_reply(sid: str, sender: str, text: str) -> dict[str, str]:
    return {
        "AccountSid": mocks.ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": text,
        "From": sender,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": SENDER,
    }


def aliyun_up(hooks: Hooks, items: list[dict[str, Any]], token: str | None) -> httpx.Response:
    query = f"?token={token}" if token is not None else ""
    return hooks.post(
        f"/webhooks/providers/aliyun-cn/inbound{query}",
        json.dumps(items, ensure_ascii=False).encode(),
        {"Content-Type": "application/json"},
    )


def sms_up(sequence: int, phone: str, text: str) -> dict[str, Any]:
    """One SmsUp item as Aliyun pushes it (mainland numbers without +86)."""
    return {
        "phone_number": phone.removeprefix("+86"),
        "send_time": "2026-11-24 09:00:00",
        "content": text,
        "sign_name": mocks.SIGN_NAME,
        "dest_code": "1234",
        "sequence_id": sequence,
    }


@pytest.fixture
def vendors(
    repo_dir: Path, tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Hooks, mocks.Gateway]]:
    monkeypatch.setenv(TWILIO_TOKEN_ENV, mocks.AUTH_TOKEN)
    monkeypatch.setenv(ALIYUN_SECRET_ENV, mocks.ACCESS_KEY_SECRET)
    monkeypatch.setenv(ALIYUN_PUSH_ENV, PUSH_TOKEN)
    with mocks.vendor_gateway(repo_dir, tmp_path / "gateway") as gateway:
        yield Hooks(with_channels(runtime, vendor_channels(gateway.url))), gateway


def sms_ledger(gateway: mocks.Gateway) -> list[tuple[str, str]]:
    """(vendor API, recipient) of every SMS the served mock took."""
    return sorted((row.api, row.recipient) for row in gateway.ledger.rows() if row.channel == "sms")


def test_stop_and_tuiding_through_the_vendors_webhooks_stop_every_later_sms_to_the_number(
    vendors: tuple[Hooks, mocks.Gateway],
) -> None:
    hooks, gateway = vendors
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        us_sms = add_account(c, dpd=3, as_of=AS_OF)  # an SMS today
        us_push = add_account(c, dpd=1, as_of=AS_OF)  # the same phone: a push today
        bystander = add_account(c, dpd=3, as_of=AS_OF, phone=BYSTANDER)
        cn_sms = add_account(c, dpd=3, as_of=AS_OF, jurisdiction="CN")
        cn_push = add_account(c, dpd=1, as_of=AS_OF, jurisdiction="CN")

    stop = twilio_reply("SM" + "a" * 32, US_PHONE, "Stop")
    first = twilio_call(hooks, "inbound", stop)
    again = twilio_call(hooks, "inbound", stop)  # Twilio retries: recorded once
    assert first.status_code == again.status_code == 200
    assert first.content == again.content == EMPTY_TWIML
    assert first.headers["content-type"].startswith("text/xml")
    tuiding = [sms_up(90001, CN_PHONE, "退订")]
    assert aliyun_up(hooks, tuiding, PUSH_TOKEN).json() == {"code": 0, "msg": "成功"}
    assert aliyun_up(hooks, tuiding, PUSH_TOKEN).json() == {"code": 0, "msg": "成功"}

    # Forged and unauthenticated calls for the bystander change nothing.
    forged = twilio_call(hooks, "inbound", twilio_reply("SM" + "f" * 32, BYSTANDER, "STOP"), "x")
    assert forged.status_code == 401
    assert aliyun_up(hooks, [sms_up(90002, BYSTANDER, "TD")], None).status_code == 401
    assert aliyun_up(hooks, [sms_up(90003, BYSTANDER, "TD")], "guessed").status_code == 401
    assert replies(runtime) == [
        ("twilio-us", "SM" + "a" * 32, "opt_out", 2),
        ("aliyun-cn", "aliyun-up:90001", "opt_out", 2),
    ]
    opted = {phone: (out, source) for phone, out, source in customers(runtime).values()}
    assert opted == {
        US_PHONE: (True, "reply:twilio-us"),
        BYSTANDER: (False, None),
        CN_PHONE: (True, "reply:aliyun-cn"),
    }

    summary = run_daily_outreach(outreach_at(runtime, approved=True), AS_OF)

    names = account_ids(runtime)
    outbox = outbox_of(runtime)
    assert {account: outbox[names[account]] for account in (us_sms, cn_sms)} == {
        us_sms: [("sms", "held", "opted_out")],
        cn_sms: [("sms", "held", "opted_out")],
    }
    assert [status for _, status, _ in outbox[names[us_push]]] == ["sent"]
    assert [status for _, status, _ in outbox[names[cn_push]]] == ["sent"]
    assert outbox[names[bystander]] == [("sms", "sent", None)]
    assert sms_ledger(gateway) == [("twilio", BYSTANDER)]  # nothing to either opted-out phone
    assert summary["this_run"]["dispatch"]["sent"] == 3

    # Twilio's StatusCallback for the bystander's message, through the same route.
    with runtime.engine.connect() as connection:
        (sid,) = connection.execute(
            select(OUTBOX.c.gateway_message_id).where(OUTBOX.c.provider == "twilio-us")
        ).scalars()
    status = {
        "AccountSid": mocks.ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": sid,
        "MessageStatus": "delivered",
        "SmsSid": sid,
        "SmsStatus": "delivered",
        "To": BYSTANDER,
    }
    for _ in range(2):
        answer = twilio_call(hooks, "status", status)
        assert answer.status_code == 200
    assert outbox_of(runtime)[names[bystander]] == [("sms", "delivered", None)]
    with runtime.engine.connect() as connection:
        events = connection.execute(
            select(EVENT.c.event_id).where(EVENT.c.source == "webhook")
        ).scalars()
        assert list(events) == [f"{sid}:delivered"]


def test_start_through_twilio_re_subscribes_a_us_number_and_its_next_sms_goes(
    vendors: tuple[Hooks, mocks.Gateway],
) -> None:
    hooks, gateway = vendors
    runtime = hooks.runtime
    with runtime.unit_of_work() as c:
        account = add_account(c, dpd=3, as_of=AS_OF)
    assert twilio_call(hooks, "inbound", twilio_reply("SM" + "1" * 32, US_PHONE, "STOP")).is_success
    run_daily_outreach(outreach_at(runtime, approved=True), AS_OF)
    name = account_ids(runtime)[account]
    assert outbox_of(runtime)[name] == [("sms", "held", "opted_out")]

    start = twilio_reply("SM" + "2" * 32, US_PHONE, "START")
    assert twilio_call(hooks, "inbound", start).status_code == 200
    assert list(customers(runtime).values()) == [(US_PHONE, False, None)]

    later = AS_OF + timedelta(days=4)  # DPD 7: the next SMS step
    run_daily_outreach(outreach_at(runtime, OPEN_FOR_ALL + timedelta(days=4), approved=True), later)
    assert outbox_of(runtime)[name] == [("sms", "held", "opted_out"), ("sms", "sent", None)]
    assert sms_ledger(gateway) == [("twilio", US_PHONE)]
    assert [r[2:] for r in replies(runtime)] == [("opt_out", 1), ("opt_in", 1)]


# -- `dunning webhook serve` --------------------------------------------------------------------


def test_webhook_serve_takes_a_twilio_stop_at_its_public_url(
    runtime: Runtime, repo_dir: Path, tmp_path: Path
) -> None:
    """The served app, as an operator starts it: providers from the channels file, the public
    URL from DUNNING_PUBLIC_URL, the reply recorded in the database."""
    with runtime.unit_of_work() as c:
        add_account(c, dpd=3, as_of=AS_OF)
    channels = tmp_path / "channels.yaml"
    channels.write_text(json.dumps(vendor_channels("http://127.0.0.1:9")))  # JSON is YAML
    env = {
        "DUNNING_WEBHOOK_SECRET": SECRET,
        PUBLIC_URL_ENV: PUBLIC,
        "DUNNING_CHANNELS_FILE": str(channels),
        TWILIO_TOKEN_ENV: mocks.AUTH_TOKEN,
    }
    path = "/webhooks/providers/twilio-us/inbound"
    params = twilio_reply("SM" + "c" * 32, US_PHONE, "unsubscribe")
    signature = RequestValidator(mocks.AUTH_TOKEN).compute_signature(PUBLIC + path, params)
    with dunning_served(repo_dir, tmp_path / "state", "webhook", env) as (url, _):
        answer = httpx.post(
            url + path,
            content=urlencode(params).encode(),
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
    assert (answer.status_code, answer.content) == (200, EMPTY_TWIML)
    assert list(customers(runtime).values()) == [(US_PHONE, True, "reply:twilio-us")]


@pytest.mark.usefixtures("env")
def test_webhook_serve_refuses_a_public_url_that_is_not_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUNNING_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv(PUBLIC_URL_ENV, "hooks.lender.example/dunning?x=1")
    result = invoke(capsys, "webhook", "serve", "--port", "1")
    assert result.code == 1
    assert "DUNNING_PUBLIC_URL must be http(s)://host" in result.err


def test_twilio_refusing_a_number_as_unsubscribed_records_its_opt_out(
    vendors: tuple[Hooks, mocks.Gateway],
) -> None:
    """Twilio's 21610 (the number sent STOP to our sender at Twilio): the message fails
    opted_out, and Dunning records the opt-out for every customer with that number."""
    hooks, gateway = vendors
    runtime = hooks.runtime
    unsubscribed = "+15005550004"  # the mock's magic number for 21610, as Twilio's
    with runtime.unit_of_work() as c:
        refused = add_account(c, dpd=3, as_of=AS_OF, phone=unsubscribed)
        bystander = add_account(c, dpd=3, as_of=AS_OF, phone=BYSTANDER)
    summary = run_daily_outreach(outreach_at(runtime, approved=True), AS_OF)

    names = account_ids(runtime)
    assert outbox_of(runtime)[names[refused]] == [("sms", "failed", None)]
    assert outbox_of(runtime)[names[bystander]] == [("sms", "sent", None)]
    assert summary["this_run"]["dispatch"]["vendor_opt_outs"] == 1
    opted = {phone: (out, source) for phone, out, source in customers(runtime).values()}
    assert opted == {unsubscribed: (True, "vendor:twilio-us"), BYSTANDER: (False, None)}
    with runtime.engine.connect() as connection:
        error = connection.execute(
            select(OUTBOX.c.last_error).where(OUTBOX.c.recipient == unsubscribed)
        ).scalar_one()
    assert "21610" in error and unsubscribed not in error

    # The next SMS step plans nothing for the number: held opted_out before it is sent.
    later = AS_OF + timedelta(days=4)
    run_daily_outreach(outreach_at(runtime, OPEN_FOR_ALL + timedelta(days=4), approved=True), later)
    assert outbox_of(runtime)[names[refused]][1:] == [("sms", "held", "opted_out")]
    assert [row for row in sms_ledger(gateway) if row[1] == unsubscribed] == []
