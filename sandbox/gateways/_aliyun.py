"""Mock Aliyun SMS (dysmsapi 2017-05-25), as Alibaba Cloud's SDK v4 calls it.

Every call is `POST /` with the action in `x-acs-action` and the version in `x-acs-version`,
its parameters in the query string (SendBatchSms: in a form body), signed with ACS3-HMAC-SHA256
in the Authorization header (verify_acs3). Actions: SendSms, SendBatchSms, QuerySendDetails.

Aliyun only sends registered templates under registered signatures: the mock keeps both in
`mock_gateway.aliyun` (templates: code -> text with ${name} parameters). Like Aliyun, it does not
deduplicate on OutId: a repeated request is a second message. Each phone number is one ledger
row (channel sms, api aliyun, recipient in E.164), whose outcome follows the receipt simulation
unless a test number fixes it (TEST_NUMBERS). Delivery reports (SmsReport) are pushed to
`report_url`; a customer's reply (SmsUp) is pushed to `up_url` on POST /_admin/aliyun/sms-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import random
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapters.base import DeliveryStatus
from dunning.config.channels import MockAliyunSettings
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import Fault
from sandbox.gateways._ledger import LedgerRow, VendorMessage
from sandbox.gateways._receipts import receipt_for
from sandbox.gateways._vendor import VENDOR_BODY_LIMIT, VendorContext

log = logging.getLogger("dunning.sandbox")

API = "aliyun"
VERSION = "2017-05-25"
ALGORITHM = "ACS3-HMAC-SHA256"
HOST_ID = "dysmsapi.aliyuncs.com"
SIGNATURE_WINDOW = 15 * 60
"""Seconds either side of x-acs-date a request is good for, and a nonce is remembered."""
BEIJING = timezone(timedelta(hours=8))
"""Aliyun SMS states send and receive times, and takes SendDate, in Beijing time."""

_MOBILE = re.compile(r"^(?:\+86|0086|86)?(1[3-9][0-9]{9})$")
_PARAMETER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")

TEST_NUMBERS: dict[str, tuple[str, str]] = {
    "13800000001": ("refuse", "isv.MOBILE_NUMBER_ILLEGAL"),
    "13800000002": ("refuse", "isv.BUSINESS_LIMIT_CONTROL"),
    "13800000003": (DeliveryStatus.UNDELIVERABLE.value, "MN:0001"),
    "13800000004": (DeliveryStatus.FAILED.value, "UNDELIV"),
}
"""The mock's test numbers: refused at once with an isv code, or accepted and then reported
with a fixed outcome and ErrCode."""

ERROR_TEXT = {
    "isv.MOBILE_NUMBER_ILLEGAL": "非法手机号",
    "isv.BUSINESS_LIMIT_CONTROL": "触发号码天级流控Permits:10",
    "isv.SMS_TEMPLATE_ILLEGAL": "该账号下找不到对应模板",
    "isv.SMS_SIGNATURE_ILLEGAL": "该账号下找不到对应签名",
    "isv.TEMPLATE_MISSING_PARAMETERS": "模板缺少变量",
    "isv.INVALID_JSON_PARAM": "JSON参数不合法，只接受字符串值",
    "isv.INVALID_PARAMETERS": "参数格式不正确",
    "isv.MOBILE_COUNT_OVER_LIMIT": "手机号码数量超过限制",
}
ERR_CODE = {
    DeliveryStatus.DELIVERED: "DELIVERED",
    DeliveryStatus.FAILED: "UNDELIV",
    DeliveryStatus.UNDELIVERABLE: "MN:0001",
}
"""The ErrCode of a report per outcome (test numbers may fix another)."""

SEND_STATUS = {
    DeliveryStatus.PENDING: 1,
    DeliveryStatus.FAILED: 2,
    DeliveryStatus.UNDELIVERABLE: 2,
    DeliveryStatus.DELIVERED: 3,
}
"""QuerySendDetails' SendStatus: 1 waiting for the receipt, 2 failed, 3 delivered."""


def canonical_request(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: list[str],
    hashed_payload: str,
) -> str:
    """ACS3's canonical request, as the SDK builds it: the method, the path, the query sorted
    by name with names and values percent-encoded (RFC 3986, `~` kept), each signed header as
    `name:value` (lower-case name, trimmed value), the signed header names, the body's SHA-256."""
    canonical_query = "&".join(
        f"{quote(name, safe='~')}={quote(value, safe='~')}" for name, value in sorted(query)
    )
    canonical_headers = "".join(
        f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers
    )
    return "\n".join(
        [
            method,
            path or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            hashed_payload,
        ]
    )


def acs3_signature(secret: str, canonical: str) -> str:
    """HMAC-SHA256 with the AccessKey secret over `ACS3-HMAC-SHA256\\n<hex SHA-256 of the
    canonical request>`, in hex."""
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _env(name: str, key: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(
            [ConfigProblem("config/channels.yaml", key, f"environment variable {name} is not set")]
        )
    return value


def _request_id() -> str:
    return str(uuid.uuid4()).upper()


def _refusal(status: int, code: str, message: str) -> Response:
    """Aliyun's error body for a request refused before the action (signature, parameters)."""
    return JSONResponse(
        {
            "RequestId": _request_id(),
            "HostId": HOST_ID,
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi",
        },
        status_code=status,
    )


def _isv(code: str) -> Response:
    """A business refusal: HTTP 200 with the isv code, as dysmsapi answers."""
    return JSONResponse({"Code": code, "Message": ERROR_TEXT[code], "RequestId": _request_id()})


def _beijing(unix_seconds: float) -> str:
    return datetime.fromtimestamp(unix_seconds, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _national(number: str) -> str | None:
    """The 11-digit mainland mobile number, or None if it is not one."""
    match = _MOBILE.match(number.strip())
    return match.group(1) if match else None


def verify_acs3(
    request: Request,
    raw_body: bytes,
    access_key_id: str,
    secret: str,
    now: float,
) -> Response | str:
    """Check an ACS3-HMAC-SHA256 Authorization header; the nonce to record, or the refusal."""
    header = request.headers.get("authorization", "")
    algorithm, _, rest = header.partition(" ")
    fields = dict(part.strip().partition("=")[::2] for part in rest.split(","))
    if algorithm != ALGORITHM or not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        return _refusal(
            400,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    if not hmac.compare_digest(fields["Credential"].encode(), access_key_id.encode()):
        return _refusal(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    signed = fields["SignedHeaders"].split(";")
    required = {"host", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
    if not required <= set(signed) or signed != sorted(signed):
        return _refusal(400, "IncompleteSignature", "Host and every x-acs- header must be signed.")
    payload_hash = hashlib.sha256(raw_body).hexdigest()
    if request.headers.get("x-acs-content-sha256") != payload_hash:
        return _refusal(
            400, "SignatureDoesNotMatch", "The x-acs-content-sha256 does not match the body."
        )
    query = parse_qsl(request.url.query, keep_blank_values=True)
    canonical = canonical_request(
        request.method, request.url.path, query, request.headers, signed, payload_hash
    )
    if not hmac.compare_digest(acs3_signature(secret, canonical), fields["Signature"]):
        return _refusal(
            400, "SignatureDoesNotMatch", "Specified signature does not match our calculation."
        )
    try:
        stamp = datetime.strptime(request.headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return _refusal(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
    if abs(stamp.replace(tzinfo=UTC).timestamp() - now) > SIGNATURE_WINDOW:
        return _refusal(
            400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
        )
    return request.headers["x-acs-signature-nonce"]


def _render(text: str, params: Mapping[str, Any]) -> str | None:
    """The template's text with its parameters, or None if one is missing."""
    names = _PARAMETER.findall(text)
    if any(name not in params for name in names):
        return None
    return _PARAMETER.sub(lambda m: str(params[m.group(1)]), text)


def report(row: LedgerRow, context: VendorContext, now: float) -> tuple[int, str, str | None]:
    """SendStatus, ErrCode and report time (Beijing) of one row at `now`."""
    receipt = receipt_for(row, context.rates, now)
    if receipt.status is DeliveryStatus.PENDING:
        return SEND_STATUS[receipt.status], "", None
    code = row.metadata.get("err_code") or ERR_CODE[receipt.status]
    return SEND_STATUS[receipt.status], code, _beijing(receipt.occurred_at)


async def push_reports(
    context: VendorContext, settings: MockAliyunSettings, *, limit: int = 500
) -> int:
    """POST the SmsReport array of messages that reached their final status; return how many.

    At least once, as Aliyun retries: rows are marked pushed only when the receiver answers
    2xx with {"code": 0}.
    """
    if settings.report_url is None:
        return 0
    now = context.clock()
    due = await run_in_threadpool(
        context.ledger.unpushed, now - context.rates.delay_seconds, limit, API
    )
    if not due:
        return 0
    items = []
    for row in due:
        status, code, reported_at = report(row, context, now)
        meta = row.metadata
        items.append(
            {
                "phone_number": meta["phone_number"],
                "send_time": _beijing(row.accepted_at),
                "report_time": reported_at,
                "success": status == SEND_STATUS[DeliveryStatus.DELIVERED],
                "err_code": code,
                "err_msg": "用户接收成功" if code == "DELIVERED" else "失败",
                "sms_size": meta["sms_size"],
                "biz_id": meta["biz_id"],
                "out_id": meta.get("out_id"),
            }
        )
    async with httpx.AsyncClient(transport=context.transport, timeout=10.0) as client:
        try:
            response = await client.post(settings.report_url, json=items)
            answer = response.json() if response.status_code < 300 else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("SmsReport not pushed: %s", type(exc).__name__)
            return 0
    if not isinstance(answer, dict) or answer.get("code") != 0:
        log.warning("SmsReport refused: %d", response.status_code)
        return 0
    await run_in_threadpool(context.ledger.mark_pushed, "sms", [row.id for row in due], now)
    return len(due)


def mount_aliyun(app: FastAPI, settings: MockAliyunSettings, context: VendorContext) -> None:
    """Add dysmsapi's `POST /` to the mock gateway app, and POST /_admin/aliyun/sms-up.

    Fails closed: an unset AccessKey secret variable is a ConfigError.
    """
    secret = _env(settings.access_key_secret_env, "mock_gateway.aliyun.access_key_secret_env")
    ledger, clock = context.ledger, context.clock

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return _refusal(
                fault.status,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            )
        if fault.kind == "throttle":
            return _refusal(400, "Throttling.User", "Request was denied due to user flow control.")
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return _refusal(504, "ServiceTimeout", "The request timed out.")
        if fault.shape == "invalid-json":
            return Response(b'{"Code": "O', media_type="application/json")
        return JSONResponse({"data": "unexpected"})

    def template_text(code: str) -> str | None:
        return settings.templates.get(code)

    def signature_ok(sign_name: str) -> bool:
        return not settings.sign_names or sign_name in settings.sign_names

    async def accept(
        sends: list[tuple[str, str, dict[str, Any]]],
        template_code: str,
        out_id: str | None,
        fault: Fault | None,
    ) -> Response:
        """Check and store one request's (phone, sign name, parameters); all or nothing."""
        text = template_text(template_code)
        if text is None:
            return _isv("isv.SMS_TEMPLATE_ILLEGAL")
        biz_id = f"{random.randrange(10**17, 10**18)}^0"
        messages = []
        for index, (phone, sign_name, params) in enumerate(sends):
            national = _national(phone)
            if national is None:
                return _isv("isv.MOBILE_NUMBER_ILLEGAL")
            test = TEST_NUMBERS.get(national)
            if test is not None and test[0] == "refuse":
                return _isv(test[1])
            if not signature_ok(sign_name):
                return _isv("isv.SMS_SIGNATURE_ILLEGAL")
            rendered = _render(text, params)
            if rendered is None:
                return _isv("isv.TEMPLATE_MISSING_PARAMETERS")
            body = f"【{sign_name}】{rendered}"
            metadata = {
                "biz_id": biz_id,
                "phone_number": phone,
                "sign_name": sign_name,
                "template_code": template_code,
                "template_param": json.dumps(params, ensure_ascii=False, sort_keys=True),
                "sms_size": str(-(-len(body) // 67) if len(body) > 70 else 1),
            }
            if out_id:
                metadata["out_id"] = out_id
            if test is not None:
                metadata["outcome"], metadata["err_code"] = test
            messages.append(
                VendorMessage(
                    f"{biz_id}-{index}",
                    f"+86{national}",
                    body,
                    metadata,
                    receipt_wanted=settings.report_url is not None,
                )
            )
        await run_in_threadpool(ledger.record, "sms", API, messages, clock())
        if fault is not None:
            return await faulty(fault)
        return JSONResponse(
            {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()}
        )

    def params_of(raw: str | None) -> dict[str, Any] | None:
        if not raw:
            return {}
        try:
            params = json.loads(raw)
        except ValueError:
            return None
        return params if isinstance(params, dict) else None

    async def send_sms(values: dict[str, str], fault: Fault | None) -> Response:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not values.get(name):
                return _refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")
        phones = values["PhoneNumbers"].split(",")
        if len(phones) > 1000:
            return _isv("isv.MOBILE_COUNT_OVER_LIMIT")
        params = params_of(values.get("TemplateParam"))
        if params is None:
            return _isv("isv.INVALID_JSON_PARAM")
        sends = [(phone, values["SignName"], params) for phone in phones]
        return await accept(sends, values["TemplateCode"], values.get("OutId"), fault)

    async def send_batch_sms(values: dict[str, str], fault: Fault | None) -> Response:
        for name in ("PhoneNumberJson", "SignNameJson", "TemplateCode"):
            if not values.get(name):
                return _refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")
        try:
            phones = json.loads(values["PhoneNumberJson"])
            signs = json.loads(values["SignNameJson"])
            params = json.loads(values.get("TemplateParamJson") or "null")
        except ValueError:
            return _isv("isv.INVALID_JSON_PARAM")
        if params is None:
            params = [{} for _ in phones] if isinstance(phones, list) else None
        if (
            not isinstance(phones, list)
            or not isinstance(signs, list)
            or not isinstance(params, list)
            or not len(phones) == len(signs) == len(params)
            or not all(isinstance(p, str) for p in (*phones, *signs))
            or not all(isinstance(p, dict) for p in params)
        ):
            return _isv("isv.INVALID_PARAMETERS")
        if len(phones) > 100:
            return _isv("isv.MOBILE_COUNT_OVER_LIMIT")
        sends = list(zip(phones, signs, params, strict=True))
        return await accept(sends, values["TemplateCode"], values.get("OutId"), fault)

    async def query_send_details(values: dict[str, str]) -> Response:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not values.get(name):
                return _refusal(400, f"Missing{name}", f"{name} is mandatory for this action.")
        national = _national(values["PhoneNumber"])
        try:
            day = datetime.strptime(values["SendDate"], "%Y%m%d").date()
            size, page = int(values["PageSize"]), int(values["CurrentPage"])
        except ValueError:
            return _isv("isv.INVALID_PARAMETERS")
        if national is None:
            return _isv("isv.MOBILE_NUMBER_ILLEGAL")
        if not 1 <= size <= 50 or page < 1:
            return _isv("isv.INVALID_PARAMETERS")
        now = clock()
        rows = await run_in_threadpool(ledger.vendor_rows, API, f"+86{national}")
        biz_id = values.get("BizId")
        found = [
            row
            for row in rows
            if datetime.fromtimestamp(row.accepted_at, BEIJING).date() == day
            and (not biz_id or row.metadata["biz_id"] == biz_id)
        ]
        details = []
        for row in found[(page - 1) * size : page * size]:
            status, code, received = report(row, context, now)
            detail: dict[str, Any] = {
                "PhoneNum": national,
                "SendStatus": status,
                "ErrCode": code,
                "TemplateCode": row.metadata["template_code"],
                "Content": row.body,
                "SendDate": _beijing(row.accepted_at),
                "OutId": row.metadata.get("out_id"),
            }
            if received is not None:
                detail["ReceiveDate"] = received
            details.append(detail)
        return JSONResponse(
            {
                "Code": "OK",
                "Message": "OK",
                "RequestId": _request_id(),
                "TotalCount": len(found),
                "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
            }
        )

    @app.post("/", tags=["aliyun"])
    async def dysmsapi(request: Request) -> Response:
        """dysmsapi 2017-05-25 (x-acs-action: SendSms, SendBatchSms or QuerySendDetails)."""
        raw = await read_body(request, VENDOR_BODY_LIMIT)
        if raw is None:
            return _refusal(413, "RequestEntityTooLarge", "The request body is too large.")
        now = clock()
        verified = verify_acs3(request, raw, settings.access_key_id, secret, now)
        if isinstance(verified, Response):
            return verified
        if not await run_in_threadpool(ledger.use_nonce, verified, now, SIGNATURE_WINDOW):
            return _refusal(
                400, "SignatureNonceUsed", "Specified signature nonce was used already."
            )
        if request.headers.get("x-acs-version") != VERSION:
            return _refusal(400, "InvalidVersion", "Specified parameter Version is not valid.")
        action = request.headers.get("x-acs-action", "")
        if action not in ("SendSms", "SendBatchSms", "QuerySendDetails"):
            return _refusal(404, "InvalidAction.NotFound", "Specified api is not found.")
        values = dict(parse_qsl(request.url.query, keep_blank_values=True))
        if raw:
            try:
                values.update(parse_qsl(raw.decode(), keep_blank_values=True))
            except UnicodeDecodeError:
                return _refusal(400, "InvalidParameter", "The body is not form-encoded UTF-8.")
        fault = await context.next_fault("sms")
        if fault is not None and not (fault.commit_first and action != "QuerySendDetails"):
            return await faulty(fault)
        if action == "SendSms":
            return await send_sms(values, fault)
        if action == "SendBatchSms":
            return await send_batch_sms(values, fault)
        return await query_send_details(values)

    @app.post("/_admin/aliyun/sms-up", tags=["aliyun"])
    async def sms_up(request: Request) -> Response:
        """A customer's reply, pushed at once to `up_url` as Aliyun's SmsUp array:
        {"phone_number", "content", "sign_name"?, "dest_code"?} -> {"pushed": true, "status"}."""
        if settings.up_url is None:
            return JSONResponse(
                {
                    "error": {
                        "code": "no_up_url",
                        "message": "mock_gateway.aliyun.up_url is not set",
                    }
                },
                status_code=409,
            )
        try:
            reply = json.loads(await request.body())
            phone, content = reply["phone_number"], reply["content"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"error": {"code": "bad_request", "message": "expected phone_number and content"}},
                status_code=400,
            )
        item = {
            "phone_number": phone,
            "send_time": _beijing(clock()),
            "content": content,
            "sign_name": reply.get("sign_name") or (settings.sign_names or [""])[0],
            "dest_code": reply.get("dest_code", ""),
            "sequence_id": random.randrange(10**9, 10**10),
        }
        async with httpx.AsyncClient(transport=context.transport, timeout=10.0) as client:
            try:
                response = await client.post(settings.up_url, json=[item])
            except httpx.HTTPError as exc:
                return JSONResponse({"pushed": False, "error": type(exc).__name__}, status_code=502)
        return JSONResponse({"pushed": response.status_code < 300, "status": response.status_code})
