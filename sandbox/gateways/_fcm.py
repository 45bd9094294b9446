"""Mock Firebase Cloud Messaging HTTP v1, and the OAuth token endpoint its clients use.

  POST /token                                      Google's token endpoint (the service
                                                   account's token_uri points here): a JWT
                                                   bearer assertion in, an access token out
  POST /v1/projects/{project_id}/messages:send     FCM's send, one message

The token endpoint verifies the assertion as Google does: RS256, signed with the key of the
service account the mock trusts (`service_account_env`), `iss` its client_email, `aud` the
token endpoint (this one's URL, or Google's, which google-auth always signs for), a
firebase.messaging or cloud-platform scope, issued at most an hour before it expires and not
expired on the gateway's clock. It answers `invalid_grant` otherwise. Access
tokens are stateless (an expiry signed with a key derived from the account's private key), so
every process serving one ledger takes the tokens any of them issued.

The send answers like FCM: field names in camelCase or snake_case, `{"name":
"projects/{id}/messages/{n}"}` on success (recorded in the ledger, channel push, api "fcm"),
and Google API errors with FCM's `FcmError` detail otherwise. FCM does not deduplicate, nor
does the mock: a repeated send is a second message. Registration tokens that fix the answer
(the mock's own, FCM has no magic tokens):

  unregistered-...   404 NOT_FOUND / UNREGISTERED (the app was uninstalled)
  invalid-...        400 INVALID_ARGUMENT on message.token (not a registration token)
  mismatch-...       403 PERMISSION_DENIED / SENDER_ID_MISMATCH

and any token that is not 8-4096 characters of [A-Za-z0-9_:.-] is INVALID_ARGUMENT too.
Throttling (429 QUOTA_EXCEEDED with Retry-After) and outages (503 UNAVAILABLE) come from the
gateway's scripted or random faults on the push channel. `validateOnly` checks the message
and records nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from dunning.config.channels import MockFcmSettings
from dunning.errors import ConfigError, ConfigProblem
from dunning.webhooks import read_body
from sandbox._faults import Fault
from sandbox.gateways._ledger import VendorMessage
from sandbox.gateways._vendor import VENDOR_BODY_LIMIT, VendorContext

API = "fcm"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPES = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
MAX_PAYLOAD = 4096
"""FCM's limit on a message's notification and data, in bytes."""

UNREGISTERED_PREFIX = "unregistered-"
INVALID_PREFIX = "invalid-"
MISMATCH_PREFIX = "mismatch-"

_TOKEN = re.compile(r"^[A-Za-z0-9_:.\-]{8,4096}$")
_RESERVED_DATA = re.compile(r"^(from|message_type|notification|google.*|gcm.*)$")
_TARGETS = ("token", "topic", "condition")
_MAPS = frozenset({"data", "headers", "payload"})
"""Objects whose keys are the sender's, not field names (never converted)."""


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_case(value: Any) -> Any:
    """A request in the proto JSON mapping's lowerCamelCase (FCM takes either spelling)."""
    if isinstance(value, dict):
        return {_camel(k): (v if _camel(k) in _MAPS else camel_case(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    return value


def google_error(
    code: int,
    status: str,
    message: str,
    *,
    fcm_code: str | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """A Google API error body; FCM adds its FcmError detail. Messages never echo a token."""
    details: list[dict[str, Any]] = []
    if fcm_code is not None:
        details.append({"@type": FCM_ERROR_TYPE, "errorCode": fcm_code})
    if field is not None:
        details.append(
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field, "description": message}],
            }
        )
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def _oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class _Account:
    """The service account the mock trusts: its email, public key and token signing key."""

    def __init__(self, settings: MockFcmSettings) -> None:
        key = "mock_gateway.fcm.service_account_env"
        value = os.environ.get(settings.service_account_env, "").strip()
        try:
            if not value:
                raise ValueError("is not set")
            text = value if value.startswith("{") else Path(value).read_text(encoding="utf-8")
            info = json.loads(text)
            private = serialization.load_pem_private_key(
                str(info["private_key"]).encode(), password=None
            )
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError("is not an RSA key")
            self.email = str(info["client_email"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            why = str(exc) if str(exc) in ("is not set", "is not an RSA key") else "unreadable"
            raise ConfigError(
                [
                    ConfigProblem(
                        "config/channels.yaml",
                        key,
                        f"environment variable {settings.service_account_env}: the service "
                        f"account {why}",
                    )
                ]
            ) from None
        self.public_key = private.public_key()
        self.key_id = str(info.get("private_key_id") or "")
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._token_key = hashlib.sha256(b"mock-fcm-access-token" + der).digest()

    def verify_assertion(self, assertion: str, audience: str, now: float) -> str | None:
        """Why the assertion is refused, or None when it is good."""
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(claims_b64))
            signature = _b64decode(signature_b64)
        except (ValueError, binascii.Error):
            return "Invalid JWT."
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "Invalid JWT."
        if header.get("alg") != "RS256":
            return "Invalid JWT: the algorithm must be RS256."
        try:
            self.public_key.verify(
                signature,
                f"{header_b64}.{claims_b64}".encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        if claims.get("iss") != self.email:
            return "Invalid JWT: the issuer is not a known service account."
        # Google takes its own endpoint's URL as the audience wherever the account's
        # token_uri points (google-auth always signs for it), or the token_uri itself.
        if claims.get("aud") not in (audience, GOOGLE_TOKEN_URI):
            return "Invalid JWT: the audience is not this token endpoint."
        scopes = set(str(claims.get("scope") or "").split())
        if not scopes & SCOPES:
            return "Invalid JWT: no scope that sends messages."
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            return "Invalid JWT: iat and exp are required."
        # Google allows a few minutes of clock skew, and at most an hour of life.
        if exp - iat > 3600 or iat > now + 300 or exp < now - 300:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None

    def issue(self, expires_at: float) -> str:
        stamp = str(int(expires_at))
        mac = hmac.new(self._token_key, stamp.encode(), hashlib.sha256).digest()
        return f"ya29.mock.{stamp}.{_b64encode(mac)}"

    def token_good(self, token: str, now: float) -> bool:
        parts = token.split(".")
        if len(parts) != 4 or parts[:2] != ["ya29", "mock"] or not parts[2].isdigit():
            return False
        expected = hmac.new(self._token_key, parts[2].encode(), hashlib.sha256).digest()
        return hmac.compare_digest(_b64encode(expected), parts[3]) and now < int(parts[2])


def mount_fcm(app: FastAPI, settings: MockFcmSettings, context: VendorContext) -> None:
    """Add FCM's send and the token endpoint to the mock gateway app.

    Fails closed: an unset or unreadable service account is a ConfigError.
    """
    account = _Account(settings)
    ledger, clock = context.ledger, context.clock
    project = settings.project_id

    async def faulty(fault: Fault) -> Response:
        if fault.kind == "server_error":
            return google_error(
                fault.status,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                fcm_code="UNAVAILABLE",
            )
        if fault.kind == "throttle":
            return google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Send requests'.",
                fcm_code="QUOTA_EXCEEDED",
                headers={"Retry-After": fault.retry_after_header(clock())},
            )
        if fault.kind == "timeout":
            await asyncio.sleep(fault.sleep_seconds)
            return google_error(504, "DEADLINE_EXCEEDED", "Deadline exceeded.")
        if fault.shape == "invalid-json":
            return Response(b'{"name": "projects/', media_type="application/json")
        return JSONResponse({"data": "unexpected"})

    @app.post("/token", tags=["fcm"])
    async def token(request: Request) -> Response:
        """Google's OAuth 2.0 token endpoint for a service account's JWT bearer grant."""
        raw = await read_body(request, 64 * 1024)
        if raw is None:
            return _oauth_error("invalid_request", "The request is too large.")
        try:
            form = dict(parse_qsl(raw.decode("utf-8")))
        except UnicodeDecodeError:
            return _oauth_error("invalid_request", "The body is not form-encoded UTF-8.")
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        audience = str(request.url.replace(query=""))
        now = clock()
        why = account.verify_assertion(form.get("assertion", ""), audience, now)
        if why is not None:
            return _oauth_error("invalid_grant", why)
        lifetime = settings.token_lifetime_seconds
        return JSONResponse(
            {
                "access_token": account.issue(now + lifetime),
                "expires_in": lifetime,
                "token_type": "Bearer",
            }
        )

    def check(body: Any) -> dict[str, Any] | Response:
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Request contains an invalid argument.",
                fcm_code="INVALID_ARGUMENT",
                field="message",
            )
        message: dict[str, Any] = body["message"]
        targets = [t for t in _TARGETS if message.get(t)]
        if len(targets) != 1:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Exactly one of token, topic or condition is required.",
                fcm_code="INVALID_ARGUMENT",
                field="message",
            )
        target = str(message[targets[0]])
        if targets[0] == "token":
            if not _TOKEN.match(target) or target.startswith(INVALID_PREFIX):
                return google_error(
                    400,
                    "INVALID_ARGUMENT",
                    "The registration token is not a valid FCM registration token",
                    fcm_code="INVALID_ARGUMENT",
                    field="message.token",
                )
            if target.startswith(UNREGISTERED_PREFIX):
                return google_error(
                    404, "NOT_FOUND", "Requested entity was not found.", fcm_code="UNREGISTERED"
                )
            if target.startswith(MISMATCH_PREFIX):
                return google_error(
                    403, "PERMISSION_DENIED", "SenderId mismatch", fcm_code="SENDER_ID_MISMATCH"
                )
        data = message.get("data") or {}
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'message.data': values must be strings",
                fcm_code="INVALID_ARGUMENT",
                field="message.data",
            )
        if any(_RESERVED_DATA.match(k) for k in data):
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid data payload key: a reserved word",
                fcm_code="INVALID_ARGUMENT",
                field="message.data",
            )
        notification = message.get("notification") or {}
        payload = json.dumps({"notification": notification, "data": data}, ensure_ascii=False)
        if len(payload.encode()) > MAX_PAYLOAD:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                "Message is too big",
                fcm_code="INVALID_ARGUMENT",
                field="message",
            )
        return message

    @app.post("/v1/projects/{project_id}/messages:send", tags=["fcm"])
    async def send(project_id: str, request: Request) -> Response:
        """FCM's projects.messages.send: a new message every time (no deduplication)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not account.token_good(given, clock()):
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if project_id != project:
            return google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudmessaging.messages.create' denied on resource "
                f"'//cloudresourcemanager.googleapis.com/projects/{project_id}'",
            )
        fault = await context.next_fault("push")
        if fault is not None and not fault.commit_first:
            return await faulty(fault)
        raw = await read_body(request, VENDOR_BODY_LIMIT)
        if raw is None:
            return google_error(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit")
        try:
            body = camel_case(json.loads(raw))
        except (UnicodeDecodeError, ValueError):
            return google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        checked = check(body)
        if isinstance(checked, Response):
            return checked
        if body.get("validateOnly") is True:
            return JSONResponse({"name": f"projects/{project}/messages/fake_message_id"})
        name = f"projects/{project}/messages/0:{int(time.time() * 1000)}%{uuid.uuid4().hex[:16]}"
        notification = checked.get("notification") or {}
        metadata = {"project_id": project, "title": str(notification.get("title") or "")}
        if checked.get("topic"):
            metadata["topic"] = str(checked["topic"])
        recipient = str(checked.get("token") or checked.get("topic") or checked.get("condition"))
        message = VendorMessage(
            name, recipient, str(notification.get("body") or ""), metadata, receipt_wanted=False
        )
        await run_in_threadpool(ledger.record, "push", API, [message], clock())
        if fault is not None:
            return await faulty(fault)
        return JSONResponse({"name": name})
