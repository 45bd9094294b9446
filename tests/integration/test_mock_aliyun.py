"""The mock Aliyun SMS speaks dysmsapi 2017-05-25: the official `alibabacloud-dysmsapi20170525`
SDK sends and queries through it over loopback HTTP, and the mock checks the SDK's
ACS3-HMAC-SHA256 signature with the configured AccessKey secret."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils

from tests.integration._vendor_mocks import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    SIGN_NAME,
    TEMPLATE_CODE,
    Gateway,
    vendor_gateway,
)

PARAMS = json.dumps({"name": "张三", "days": "5"}, ensure_ascii=False)
TODAY = datetime.now(timezone(timedelta(hours=8))).strftime("%Y%m%d")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, repo_dir: Path) -> Iterator[Gateway]:
    with vendor_gateway(repo_dir, tmp_path_factory.mktemp("aliyun")) as served:
        yield served


def client(
    gateway: Gateway, key_id: str = ACCESS_KEY_ID, secret: str = ACCESS_KEY_SECRET
) -> Client:
    endpoint = gateway.url.removeprefix("http://")
    config = openapi.Config(
        access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http"
    )
    return Client(config)


def send(
    gateway: Gateway, phones: str, params: str = PARAMS, **fields: str
) -> models.SendSmsResponseBody:
    request = models.SendSmsRequest(
        phone_numbers=phones,
        sign_name=fields.get("sign_name", SIGN_NAME),
        template_code=fields.get("template_code", TEMPLATE_CODE),
        template_param=params,
        out_id=fields.get("out_id"),
    )
    body: models.SendSmsResponseBody = client(gateway).send_sms(request).body
    return body


def details(
    gateway: Gateway, phone: str, biz_id: str | None = None
) -> models.QuerySendDetailsResponseBody:
    request = models.QuerySendDetailsRequest(
        phone_number=phone, send_date=TODAY, page_size=10, current_page=1, biz_id=biz_id
    )
    body: models.QuerySendDetailsResponseBody = client(gateway).query_send_details(request).body
    return body


def test_the_sdk_sends_a_registered_template_and_queries_its_delivery(gateway: Gateway) -> None:
    sent = send(gateway, "13800138001", out_id="acct-1:2026-11-23:early-sms:sms")
    assert (sent.code, sent.message) == ("OK", "OK")
    assert sent.biz_id and sent.request_id
    [row] = [r for r in gateway.ledger.vendor_rows("aliyun") if r.recipient == "+8613800138001"]
    assert row.channel == "sms"
    assert row.body == f"【{SIGN_NAME}】尊敬的张三，您的账户已逾期5天，请尽快还款。"

    found = details(gateway, "13800138001", sent.biz_id)
    assert found.code == "OK" and found.total_count == 1
    [detail] = found.sms_send_detail_dtos.sms_send_detail_dto
    assert (detail.send_status, detail.err_code) == (3, "DELIVERED")
    assert detail.out_id == "acct-1:2026-11-23:early-sms:sms"
    assert (detail.template_code, detail.content) == (TEMPLATE_CODE, row.body)
    assert detail.receive_date is not None


def test_aliyun_does_not_deduplicate_on_out_id(gateway: Gateway) -> None:
    first = send(gateway, "13800138002", out_id="same-key")
    second = send(gateway, "13800138002", out_id="same-key")
    assert first.biz_id != second.biz_id
    assert details(gateway, "13800138002").total_count == 2


def test_a_wrong_secret_or_key_is_refused_by_the_signature_check(gateway: Gateway) -> None:
    before = gateway.ledger.count("sms")
    request = models.SendSmsRequest(
        phone_numbers="13800138003",
        sign_name=SIGN_NAME,
        template_code=TEMPLATE_CODE,
        template_param=PARAMS,
    )
    with pytest.raises(ClientException) as wrong_secret:
        client(gateway, secret="not-the-secret").send_sms(request)
    assert (wrong_secret.value.status_code, wrong_secret.value.code) == (
        400,
        "SignatureDoesNotMatch",
    )
    with pytest.raises(ClientException) as wrong_key:
        client(gateway, key_id="LTAIsomeoneelse").send_sms(request)
    assert wrong_key.value.code == "InvalidAccessKeyId.NotFound"
    assert gateway.ledger.count("sms") == before


@pytest.mark.parametrize(
    ("phones", "fields", "params", "code"),
    [
        ("12345", {}, PARAMS, "isv.MOBILE_NUMBER_ILLEGAL"),
        ("13800000002", {}, PARAMS, "isv.BUSINESS_LIMIT_CONTROL"),
        ("13800138004", {"template_code": "SMS_000000"}, PARAMS, "isv.SMS_TEMPLATE_ILLEGAL"),
        ("13800138004", {"sign_name": "别的签名"}, PARAMS, "isv.SMS_SIGNATURE_ILLEGAL"),
        ("13800138004", {}, '{"name": "张三"}', "isv.TEMPLATE_MISSING_PARAMETERS"),
        ("13800138004,13800000001", {}, PARAMS, "isv.MOBILE_NUMBER_ILLEGAL"),
    ],
)
def test_business_refusals_carry_aliyuns_isv_codes_and_store_nothing(
    gateway: Gateway, phones: str, fields: dict[str, str], params: str, code: str
) -> None:
    before = gateway.ledger.count("sms")
    refused = send(gateway, phones, params, **fields)
    assert refused.code == code and refused.biz_id is None
    assert gateway.ledger.count("sms") == before


def test_a_test_number_is_reported_failed_with_its_err_code(gateway: Gateway) -> None:
    sent = send(gateway, "13800000003")
    [detail] = details(gateway, "13800000003", sent.biz_id).sms_send_detail_dtos.sms_send_detail_dto
    assert (detail.send_status, detail.err_code) == (2, "MN:0001")


def test_send_batch_sms_sends_one_message_per_number_under_one_biz_id(gateway: Gateway) -> None:
    request = models.SendBatchSmsRequest(
        phone_number_json=json.dumps(["13800138005", "13800138006"]),
        sign_name_json=json.dumps([SIGN_NAME, SIGN_NAME], ensure_ascii=False),
        template_code=TEMPLATE_CODE,
        template_param_json=json.dumps(
            [{"name": "甲", "days": "3"}, {"name": "乙", "days": "9"}], ensure_ascii=False
        ),
    )
    sent = client(gateway).send_batch_sms(request).body
    assert sent.code == "OK"
    rows = [r for r in gateway.ledger.vendor_rows("aliyun") if r.metadata["biz_id"] == sent.biz_id]
    assert [(r.recipient, "乙" in r.body) for r in rows] == [
        ("+8613800138005", False),
        ("+8613800138006", True),
    ]


def test_delivery_reports_and_replies_are_pushed_as_aliyun_pushes_them(gateway: Gateway) -> None:
    sent = send(gateway, "13800138007", out_id="acct-9:2026-11-23:early-sms:sms")
    httpx.post(f"{gateway.url}/_admin/receipts/push").raise_for_status()
    reports = [
        item
        for got in gateway.hooks.received
        if got.path == "/aliyun/report"
        for item in got.json()
    ]
    [mine] = [item for item in reports if item["biz_id"] == sent.biz_id]
    assert mine["phone_number"] == "13800138007" and mine["success"] is True
    assert (mine["err_code"], mine["out_id"]) == ("DELIVERED", "acct-9:2026-11-23:early-sms:sms")
    assert {"send_time", "report_time", "err_msg", "sms_size"} <= mine.keys()
    # Marked once the receiver answered {"code": 0}: the next push leaves it out.
    httpx.post(f"{gateway.url}/_admin/receipts/push").raise_for_status()
    again = [
        item
        for got in gateway.hooks.received
        if got.path == "/aliyun/report"
        for item in got.json()
        if item["biz_id"] == sent.biz_id
    ]
    assert len(again) == 1

    up = httpx.post(
        f"{gateway.url}/_admin/aliyun/sms-up", json={"phone_number": "13800138007", "content": "TD"}
    )
    assert up.json() == {"pushed": True, "status": 200}
    [reply] = [got.json() for got in gateway.hooks.received if got.path == "/aliyun/up"]
    assert reply[0]["content"] == "TD" and reply[0]["sign_name"] == SIGN_NAME
    assert {"phone_number", "send_time", "dest_code", "sequence_id"} <= reply[0].keys()


def test_a_replayed_request_is_refused_by_its_nonce(gateway: Gateway) -> None:
    """A request signed by the SDK's own signer goes through once; the same bytes again are
    refused (SignatureNonceUsed) and store nothing."""
    host = gateway.url.removeprefix("http://")
    query = {
        "PhoneNumbers": "13800138008",
        "SignName": SIGN_NAME,
        "TemplateCode": TEMPLATE_CODE,
        "TemplateParam": PARAMS,
    }
    empty = hashlib.sha256(b"").hexdigest()
    headers = {
        "host": host,
        "x-acs-action": "SendSms",
        "x-acs-version": "2017-05-25",
        "x-acs-date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": uuid.uuid4().hex,
        "x-acs-content-sha256": empty,
    }
    signed = SimpleNamespace(pathname="/", query=query, headers=headers, method="POST")
    headers["Authorization"] = Utils.get_authorization(
        signed, "ACS3-HMAC-SHA256", empty, ACCESS_KEY_ID, ACCESS_KEY_SECRET
    )
    first = httpx.post(f"{gateway.url}/", params=query, headers=headers)
    assert first.json()["Code"] == "OK"
    before = gateway.ledger.count("sms")
    again = httpx.post(f"{gateway.url}/", params=query, headers=headers)
    assert (again.status_code, again.json()["Code"]) == (400, "SignatureNonceUsed")
    assert gateway.ledger.count("sms") == before
