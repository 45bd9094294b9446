"""fcm-push: Firebase Cloud Messaging HTTP v1, push notifications outside mainland China.

What it speaks (https://firebase.google.com/docs/reference/fcm/rest/v1/projects.messages):

  POST /v1/projects/{project_id}/messages:send   one message to one registration token

with OAuth 2.0 bearer tokens for the project's service account: a JWT signed (RS256) with the
account's private key (google-auth's signer) is exchanged at the account's `token_uri`
(grant_type urn:ietf:params:oauth:grant-type:jwt-bearer, scope firebase.messaging). The token
is cached until a minute before it expires, and fetched again after a 401 (the request is then
sent once more: a 401 means FCM did not take it).

Credentials. `credentials_env` names an environment variable holding the service account: the
path of its JSON key file, or the JSON itself (a value starting with "{"). Nothing else is
read from disk, and the key never appears in a log or an error (errors name the variable).

The request: `notification` (title: the message's subject, else `default_title`; body), an
`android` block (priority, ttl, the notification channel if configured), an `apns` block
(apns-priority, apns-push-type alert, sound) and `data` with our idempotency key and the
template id only: no personal data rides in the payload's data.

Answers:
- 200 `{"name": "projects/.../messages/..."}`: ACCEPTED, the name is the gateway message id.
- 404 UNREGISTERED, or 400 INVALID_ARGUMENT about the registration token: REJECTED with
  `invalid_number` (the engine then marks the customer's push token dead, and push is not
  planned for them again).
- another 400 (a payload FCM refuses, e.g. too big): REJECTED.
- 429 QUOTA_EXCEEDED and 503 UNAVAILABLE: RETRY after FCM's Retry-After (or the kit's
  back-off when it gives none).
- 401 (after one fresh token), 403 (PERMISSION_DENIED, SENDER_ID_MISMATCH), a token endpoint
  that refuses the service account: our configuration is wrong: RETRY at once, not tried
  again, the reason naming `credentials_env`; the messages stay planned.
- 500 and other 5xx, a timeout after the request went out: the kit's default, AMBIGUOUS.

Exactly once. FCM does not deduplicate (`deduplicates = False`) and cannot be asked whether a
message went out (no lookup). So a message whose send ended in doubt is never sent again: when
it comes back in doubt the kit refuses it with the code `in_doubt` for an operator to decide. A
push notification lost that way is better than a borrower reminded twice.

Delivery. FCM has no API for the delivery status of a message: `fetch_statuses` returns
nothing, and an accepted push stays `sent`. Dead tokens are learnt from later sends
(UNREGISTERED).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Self

import httpx
from google.auth import crypt
from google.auth import jwt as google_jwt
from pydantic import Field, model_validator

from adapters._http import (
    ENV_NAME,
    Classified,
    HttpAdapterOptions,
    HttpGatewayAdapter,
    MalformedResponse,
    RequestFailure,
    Timing,
    VendorAnswer,
    VendorRequest,
)
from adapters.auth import AccessToken, Auth, AuthFailure, OAuth2ClientCredentials
from adapters.base import (
    OutboundMessage,
    RejectCode,
    SendOutcome,
    SendResult,
    SentMessage,
    StatusReport,
)
from dunning.errors import ConfigError, ConfigProblem
from dunning.types import Channel

FCM_URL = "https://fcm.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
ASSERTION_LIFETIME = 3600
"""Seconds a signed assertion is valid: Google's token endpoint takes at most an hour."""

_RESERVED_DATA = re.compile(r"^(from|message_type|notification|google.*|gcm.*)$")
_TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-:.]{20,}")
"""Registration-token-like runs in FCM's own error messages: masked in reasons."""


def _masked(text: str) -> str:
    return _TOKEN_LIKE.sub("[token]", text).replace("\n", " ")[:200]


class FcmOptions(HttpAdapterOptions):
    """The `options:` of an fcm-push provider in config/channels.yaml."""

    url: str | None = Field(
        default=FCM_URL, description="FCM's API (the demo points it at the mock)"
    )
    credentials_env: str = Field(
        pattern=ENV_NAME,
        description="environment variable holding the service account: the path of its JSON "
        "key file, or the JSON itself",
    )
    project_id: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$",
        description="the Firebase project; none: the service account's project_id",
    )
    default_title: str | None = Field(
        default=None, max_length=200, description="the title of a push without a subject"
    )
    android_priority: Literal["HIGH", "NORMAL"] = Field(
        default="HIGH", description="FCM's Android delivery priority (HIGH wakes the device)"
    )
    android_channel_id: str | None = Field(
        default=None, max_length=200, description="the app's Android notification channel"
    )
    ttl_seconds: int = Field(
        default=86_400,
        ge=0,
        le=2_419_200,
        description="how long FCM keeps the push for an offline device (at most 4 weeks)",
    )

    @model_validator(mode="after")
    def _no_api_key(self) -> Self:
        if self.api_key_env is not None:
            raise ValueError("fcm-push does not use api_key_env: set credentials_env")
        return self


class ServiceAccountAuth(OAuth2ClientCredentials):
    """OAuth 2.0 for a Google service account (RFC 7523 JWT bearer grant).

    The cache, the refresh before expiry and after a 401 are OAuth2ClientCredentials'; only
    `fetch_token` differs: an assertion signed with the account's key, posted to its token_uri.
    """

    def __init__(
        self,
        info: Mapping[str, Any],
        *,
        scope: str,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        super().__init__(
            str(info["token_uri"]), str(info["client_email"]), "", scope=scope, clock=clock
        )
        # google-auth's signer carries the key id (private_key_id) into the JWT header.
        self._signer = crypt.RSASigner.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(info)
        )
        self._wall = wall

    async def fetch_token(self, client: httpx.AsyncClient) -> AccessToken:
        now = int(self._wall())
        claims = {
            "iss": self.client_id,
            "scope": self.scope,
            "aud": self.token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        try:
            signed: bytes = google_jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
            assertion = signed.decode("ascii")
        except (ValueError, TypeError) as exc:
            raise AuthFailure("the service account's key cannot sign", refused=True) from exc
        try:
            response = await client.post(
                self.token_url, data={"grant_type": JWT_BEARER, "assertion": assertion}
            )
        except httpx.TransportError as exc:
            raise AuthFailure(
                f"token endpoint: connection error: {type(exc).__name__}", refused=False
            ) from exc
        if response.status_code in (400, 401, 403):
            # invalid_grant (a bad signature, an unknown or disabled key), invalid_client...
            raise AuthFailure(
                f"the token endpoint refused the service account (HTTP {response.status_code}"
                f"{_oauth_error(response)})",
                refused=True,
            )
        if not 200 <= response.status_code < 300:
            raise AuthFailure(f"token endpoint: HTTP {response.status_code}", refused=False)
        try:
            payload: Any = response.json()
            value = str(payload["access_token"])
            expires_in = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthFailure("token endpoint: malformed answer", refused=False) from exc
        return AccessToken(value, expires_in)


def _oauth_error(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f" {error}" if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else ""


def load_service_account(value: str) -> dict[str, Any]:
    """The service account from an environment variable's value: a JSON key file's path, or
    the JSON itself. ValueError saying what is wrong (never the content)."""
    text = value.strip()
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"the file it names cannot be read ({type(exc).__name__})") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise ValueError("it is not a service account's JSON key") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ValueError('it is not a service account\'s JSON key ("type": "service_account")')
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ValueError(f"the service account's JSON lacks {', '.join(missing)}")
    if not str(info["token_uri"]).startswith(("http://", "https://")):
        raise ValueError("the service account's token_uri is not an http(s) URL")
    return info


class FcmPushAdapter(HttpGatewayAdapter):
    """Firebase Cloud Messaging HTTP v1, one push per request (see the module's docstring)."""

    name = "fcm-push"
    channel = Channel.PUSH
    options_model = FcmOptions
    max_batch = 1
    max_concurrency = 8
    rate_per_second = 100.0
    default_url = FCM_URL
    deduplicates = False

    options: FcmOptions

    def __init__(
        self,
        options: FcmOptions | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timing: Timing | None = None,
    ) -> None:
        if options is None:
            raise TypeError("fcm-push needs its options (credentials_env)")
        super().__init__(options, transport=transport, timing=timing)

    # -- authentication -----------------------------------------------------------------------

    def build_auth(self) -> Auth:
        value = self.env_secret("credentials_env")
        try:
            info = load_service_account(value)
        except ValueError as exc:
            raise self._credentials_problem(str(exc)) from None
        try:
            auth = ServiceAccountAuth(
                info, scope=SCOPE, clock=self.timing.monotonic, wall=self.timing.wall
            )
        except (ValueError, TypeError, IndexError):
            # google-auth's own words may quote part of the key: ours instead.
            raise self._credentials_problem("its private_key cannot be read") from None
        self._project = self.options.project_id or str(info.get("project_id") or "")
        if not self._project:
            raise ConfigError(
                [
                    ConfigProblem(
                        self.config_file,
                        f"{self._config_key()}.options.project_id",
                        "is required: the service account names no project_id",
                    )
                ]
            )
        return auth

    def _credentials_problem(self, why: str) -> ConfigError:
        return ConfigError(
            [
                ConfigProblem(
                    self.config_file,
                    f"{self._config_key()}.options.credentials_env",
                    f"environment variable {self.options.credentials_env}: {why}",
                )
            ]
        )

    @property
    def _send_path(self) -> str:
        return f"/v1/projects/{self._project}/messages:send"

    def _configuration(self, reason: str) -> str:
        return (
            f"{reason} (check the service account in {self.options.credentials_env} and the "
            f"project of {self._config_key()} in {self.config_file})"
        )

    # -- send ---------------------------------------------------------------------------------

    def message_body(self, message: OutboundMessage, *, validate_only: bool = False) -> Any:
        """The SendMessageRequest for one push (camelCase, as FCM's discovery document)."""
        notification: dict[str, str] = {"body": message.body}
        title = message.subject or self.options.default_title
        if title:
            notification["title"] = title
        android: dict[str, Any] = {
            "priority": self.options.android_priority,
            "ttl": f"{self.options.ttl_seconds}s",
        }
        if self.options.android_channel_id:
            android["notification"] = {"channelId": self.options.android_channel_id}
        high = self.options.android_priority == "HIGH"
        apns = {
            "headers": {"apns-priority": "10" if high else "5", "apns-push-type": "alert"},
            "payload": {"aps": {"sound": "default"}},
        }
        # Only our key and the template id: the data block reaches the app as it is, and
        # nothing personal belongs in it.
        data = {"dunning_key": message.idempotency_key}
        if message.template_id:
            data["template_id"] = message.template_id
        body: dict[str, Any] = {
            "message": {
                "token": message.recipient,
                "notification": notification,
                "android": android,
                "apns": apns,
                "data": {k: v for k, v in data.items() if not _RESERVED_DATA.match(k)},
            }
        }
        if validate_only:
            body["validateOnly"] = True
        return body

    def send_request(self, batch: Sequence[OutboundMessage]) -> VendorRequest:
        (message,) = batch
        return VendorRequest("POST", self._send_path, json=self.message_body(message))

    def send_answers(
        self, batch: Sequence[OutboundMessage], payload: Any
    ) -> Mapping[str, SendResult]:
        (message,) = batch
        name = payload.get("name") if isinstance(payload, dict) else None
        if not isinstance(name, str) or not name.startswith("projects/"):
            raise MalformedResponse("the answer has no message name")
        key = message.idempotency_key
        return {key: SendResult(key, SendOutcome.ACCEPTED, gateway_message_id=name)}

    def classify_send(self, batch: Sequence[OutboundMessage], answer: VendorAnswer) -> Classified:
        if answer.ok:
            return super().classify_send(batch, answer)
        if answer.response is None:
            if answer.auth_refused:
                return RequestFailure(
                    SendOutcome.RETRY, self._configuration(answer.error or "?"), again=False
                )
            return self.classify_failure(answer)
        status = answer.response.status_code
        error = _fcm_error(answer.response)
        reason = self.error_reason(answer.response)
        vendor_code = error.code or None
        if status == 404 and error.code == "UNREGISTERED":
            return RequestFailure(
                SendOutcome.REJECTED,
                "the registration token is no longer valid (FCM UNREGISTERED)",
                code=RejectCode.INVALID_NUMBER.value,
                vendor_code=vendor_code,
            )
        if status == 400:
            code = RejectCode.INVALID_NUMBER if error.about_token else RejectCode.OTHER
            return RequestFailure(
                SendOutcome.REJECTED, reason, code=code.value, vendor_code=vendor_code
            )
        if status in (401, 403):
            return RequestFailure(
                SendOutcome.RETRY, self._configuration(reason), again=False, vendor_code=vendor_code
            )
        return replace(self.classify_failure(answer), vendor_code=vendor_code)

    def error_reason(self, response: httpx.Response) -> str:
        """`HTTP 404 FCM UNREGISTERED: <FCM's message, tokens masked>`."""
        error = _fcm_error(response)
        if not error.status and not error.message:
            return f"HTTP {response.status_code}"
        code = error.code or error.status
        return f"HTTP {response.status_code} FCM {code}: {_masked(error.message)}"

    # -- no delivery status ---------------------------------------------------------------------

    def status_request(self, gateway_message_ids: Sequence[str]) -> VendorRequest:
        raise NotImplementedError("FCM has no delivery status API")

    def status_answers(self, payload: Any) -> list[StatusReport]:
        raise NotImplementedError("FCM has no delivery status API")

    async def fetch_statuses(self, gateway_message_ids: Sequence[str]) -> list[StatusReport]:
        """Nothing: FCM cannot say whether a push reached the device. It stays `sent`."""
        return []

    async def fetch_receipts(self, messages: Sequence[SentMessage]) -> list[StatusReport]:
        return []

    # -- operations ---------------------------------------------------------------------------

    async def check(self) -> str | None:
        """Get a token (proves the service account), then ask FCM to validate a push to a
        topic (`validateOnly`: nothing is delivered), which proves the project and the
        account's permission to send."""
        url = self.options.url or self.default_url
        probe = OutboundMessage("dunning-check", Channel.PUSH, "dunning-check", "check")
        body = self.message_body(probe, validate_only=True)
        body["message"].pop("token")
        body["message"]["topic"] = "dunning-check"
        answer = await self.call(VendorRequest("POST", self._send_path, json=body))
        if answer.response is None:
            if answer.auth_refused:
                return self._configuration(answer.error or "credentials refused")
            if answer.error and answer.error.startswith("timed out"):
                return f"{url} did not answer ({answer.error})"
            return f"cannot reach {url} or the token endpoint ({answer.error or 'no answer'})"
        status = answer.response.status_code
        if status in (401, 403, 404):
            return self._configuration(self.error_reason(answer.response))
        if not answer.ok:
            return f"{url} answered {self.error_reason(answer.response)}"
        return None


class _FcmError:
    """The parts of a Google API error body FCM's clients read."""

    def __init__(self, payload: Any) -> None:
        error = payload.get("error") if isinstance(payload, dict) else None
        error = error if isinstance(error, dict) else {}
        self.status = str(error.get("status") or "")
        self.message = str(error.get("message") or "")
        self.code = ""
        self.about_token = False
        details = error.get("details")
        for detail in details if isinstance(details, list) else []:
            if not isinstance(detail, dict):
                continue
            if detail.get("@type") == FCM_ERROR_TYPE and detail.get("errorCode"):
                self.code = str(detail["errorCode"])
            if detail.get("@type") == BAD_REQUEST_TYPE:
                for violation in detail.get("fieldViolations") or []:
                    if isinstance(violation, dict) and violation.get("field") == "message.token":
                        self.about_token = True
        if not self.code:
            self.code = self.status
        if self.code == "INVALID_ARGUMENT" and "registration token" in self.message.lower():
            self.about_token = True


def _fcm_error(response: httpx.Response) -> _FcmError:
    try:
        return _FcmError(response.json())
    except ValueError:
        return _FcmError(None)
