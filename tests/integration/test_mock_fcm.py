"""The mock FCM speaks FCM HTTP v1 and Google's token endpoint: the official `firebase_admin`
SDK sends through it with a service account whose token_uri is the mock's (the SDK has no
option for FCM's URL: its `_MessagingService.FCM_URL` constant is patched), and the fcm-push
adapter's request body matches the FCM v1 discovery document's schemas
(sandbox/gateways/specs/fcm_v1_messages.json, an excerpt, BSD-3-Clause)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import firebase_admin
import httpx
import jsonschema
import pytest
import uvicorn
from firebase_admin import credentials, exceptions, messaging
from google.auth import crypt
from google.auth import jwt as google_jwt
from google.auth.transport.requests import Request as GoogleRequest

from adapters.base import OutboundMessage
from adapters.fcm import FcmOptions, FcmPushAdapter
from dunning.config.channels import MockGatewaySettings
from dunning.types import Channel
from sandbox import GatewayLedger, create_mock_gateway_app
from sandbox.gateways._ledger import ledger_path
from tests.integration._fcm import CLIENT_EMAIL, PROJECT_ID, service_account

SPEC = Path(__file__).parents[2] / "sandbox/gateways/specs/fcm_v1_messages.json"
DEVICE = "fcm-device-token-" + "d" * 140
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class Served:
    url: str
    ledger: GatewayLedger
    account: dict[str, Any]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The mock gateway with FCM, served by uvicorn on a loopback port in this process."""
    root = tmp_path_factory.mktemp("fcm")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    account = service_account(f"{url}/token")
    os.environ["MOCK_FCM_SERVICE_ACCOUNT"] = json.dumps(account)
    settings = MockGatewaySettings.model_validate(
        {"fcm": {"project_id": PROJECT_ID, "service_account_env": "MOCK_FCM_SERVICE_ACCOUNT"}}
    )
    try:
        app = create_mock_gateway_app(settings, root)
    finally:
        del os.environ["MOCK_FCM_SERVICE_ACCOUNT"]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            break
        time.sleep(0.01)
    try:
        yield Served(url, GatewayLedger(ledger_path(settings, root)), account)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def sdk(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[firebase_admin.App]:
    """A firebase_admin app with the service account; FCM's URL is a constant in the SDK,
    pointed at the mock here (the token endpoint is the account's token_uri already)."""
    monkeypatch.setattr(
        messaging._MessagingService,
        "FCM_URL",
        served.url + "/v1/projects/{0}/messages:send",
    )
    app = firebase_admin.initialize_app(
        credentials.Certificate(served.account), name=f"dunning-test-{time.monotonic_ns()}"
    )
    try:
        yield app
    finally:
        firebase_admin.delete_app(app)


def test_the_sdk_sends_a_push_through_the_mock(sdk: firebase_admin.App, served: Served) -> None:
    message = messaging.Message(
        token=DEVICE,
        notification=messaging.Notification(title="Payment reminder", body="5 days late."),
        android=messaging.AndroidConfig(priority="high", ttl=3600),
        apns=messaging.APNSConfig(headers={"apns-priority": "10"}),
        data={"dunning_key": "k1"},
    )
    name = messaging.send(message, app=sdk)
    assert name.startswith(f"projects/{PROJECT_ID}/messages/")
    rows = {row.id: row for row in served.ledger.vendor_rows("fcm")}
    assert rows[name].recipient == DEVICE
    assert (rows[name].body, rows[name].metadata["title"]) == ("5 days late.", "Payment reminder")

    dry = messaging.send(message, dry_run=True, app=sdk)
    assert dry == f"projects/{PROJECT_ID}/messages/fake_message_id"
    assert dry not in {row.id for row in served.ledger.vendor_rows("fcm")}


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("unregistered-" + "e" * 40, messaging.UnregisteredError),
        ("invalid-" + "f" * 40, exceptions.InvalidArgumentError),
        ("mismatch-" + "g" * 40, messaging.SenderIdMismatchError),
    ],
)
def test_the_sdk_reads_the_mocks_errors_as_fcms(
    sdk: firebase_admin.App, token: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        messaging.send(messaging.Message(token=token, data={"k": "v"}), app=sdk)


def test_the_send_needs_a_token_the_mock_issued(served: Served) -> None:
    url = f"{served.url}/v1/projects/{PROJECT_ID}/messages:send"
    body = {"message": {"token": DEVICE, "notification": {"body": "x"}}}
    for headers in ({}, {"Authorization": "Bearer ya29.mock.9999999999.forged"}):
        answer = httpx.post(url, json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


def _assertion(served: Served, *, key: int = 0, **claims: Any) -> str:
    signer = crypt.RSASigner.from_service_account_info(service_account("x", key=key))
    now = int(time.time())
    payload = {
        "iss": CLIENT_EMAIL,
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": f"{served.url}/token",
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    return str(google_jwt.encode(signer, payload).decode())


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"key": 1}, "Invalid JWT Signature."),
        ({"aud": "https://oauth2.example.com/token"}, "audience"),
        ({"iss": "someone@example.iam.gserviceaccount.com"}, "issuer"),
        ({"scope": "https://www.googleapis.com/auth/userinfo.email"}, "scope"),
        ({"iat": 1_000_000_000, "exp": 1_000_003_600}, "short-lived"),
    ],
)
def test_the_token_endpoint_refuses_a_bad_assertion(
    served: Served, changes: dict[str, Any], why: str
) -> None:
    assertion = _assertion(served, **changes)
    answer = httpx.post(
        f"{served.url}/token", data={"grant_type": JWT_BEARER, "assertion": assertion}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert why in answer.json()["error_description"]


def test_the_token_endpoint_issues_a_token_for_a_good_assertion(served: Served) -> None:
    answer = httpx.post(
        f"{served.url}/token",
        data={"grant_type": JWT_BEARER, "assertion": _assertion(served)},
    )
    assert answer.status_code == 200
    assert answer.json()["token_type"] == "Bearer" and answer.json()["expires_in"] == 3600
    wrong = httpx.post(f"{served.url}/token", data={"grant_type": "client_credentials"})
    assert wrong.json()["error"] == "unsupported_grant_type"


# -- the discovery document ----------------------------------------------------------------


def _json_schema(discovery: dict[str, Any], name: str) -> dict[str, Any]:
    """A discovery document's schema as JSON Schema: `$ref` to definitions, `any` to {}, and
    no property the document does not declare (additionalProperties false)."""

    def convert(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": f"#/definitions/{node['$ref']}"}
        out: dict[str, Any] = {}
        if node.get("type") not in (None, "any"):
            out["type"] = node["type"]
        if "enum" in node:
            out["enum"] = node["enum"]
        if node.get("format") == "google-duration":
            out["pattern"] = r"^[0-9]+(\.[0-9]{1,9})?s$"
        if "items" in node:
            out["items"] = convert(node["items"])
        if node.get("type") == "object":
            if "properties" in node:
                out["properties"] = {k: convert(v) for k, v in node["properties"].items()}
            out["additionalProperties"] = convert(node.get("additionalProperties", False))
        return out

    schemas = discovery["schemas"]
    return {
        "$ref": f"#/definitions/{name}",
        "definitions": {key: convert(value) for key, value in schemas.items()},
    }


@pytest.fixture(scope="module")
def discovery() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC.read_text())
    return document


def adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **options: Any) -> FcmPushAdapter:
    monkeypatch.setenv("FCM_CREDENTIALS", json.dumps(service_account("http://fcm.test/token")))
    return FcmPushAdapter(FcmOptions(credentials_env="FCM_CREDENTIALS", **options))


def test_the_adapters_request_matches_the_discovery_document(
    discovery: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method = discovery["resources"]["projects"]["resources"]["messages"]["methods"]["send"]
    assert method["request"] == {"$ref": "SendMessageRequest"}
    schema = _json_schema(discovery, "SendMessageRequest")
    fcm = adapter(tmp_path, monkeypatch, android_channel_id="reminders", default_title="T")
    message = OutboundMessage(
        "k1", Channel.PUSH, DEVICE, "Your payment is late.", template_id="push/early.en-US"
    )
    request = fcm.send_request([message])
    assert f"/{method['path'].replace('{+parent}', f'projects/{PROJECT_ID}')}" == request.path
    jsonschema.validate(request.json, schema)
    jsonschema.validate(fcm.message_body(message, validate_only=True), schema)

    # The check can fail: a field the document does not declare, a wrong enum.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"message": {**request.json["message"], "priority": "high"}}, schema)
    android = {**request.json["message"]["android"], "priority": "URGENT"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"message": {**request.json["message"], "android": android}}, schema)


def test_the_mocks_answer_matches_the_discovery_documents_message(
    discovery: dict[str, Any], served: Served
) -> None:
    token = credentials.Certificate(served.account).get_credential()
    token.refresh(GoogleRequest())
    answer = httpx.post(
        f"{served.url}/v1/projects/{PROJECT_ID}/messages:send",
        json={"message": {"token": DEVICE, "notification": {"title": "t", "body": "b"}}},
        headers={"Authorization": f"Bearer {token.token}"},
    )
    assert answer.status_code == 200
    jsonschema.validate(answer.json(), _json_schema(discovery, "Message"))
