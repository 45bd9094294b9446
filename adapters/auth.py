"""How an HTTP adapter proves who it is: reusable authentication strategies.

An adapter picks one in `build_auth()` (adapters._http.HttpExchange); the kit applies it to
every final request, just before it goes out, and asks it once after a 401 whether a fresh
credential may help (then sends that request once more: a 401 means the vendor did not take
it, so sending again is safe).

- HeaderAuth: a static key in a header (`Authorization: Bearer <key>` by default).
- BasicAuth: HTTP Basic with a user and a secret (Twilio: account SID or API key, and secret).
- SignedAuth: the adapter signs the final request (method, URL, headers, body), e.g. Aliyun's
  ACS3-HMAC-SHA256.
- OAuth2ClientCredentials: bearer tokens fetched from a token endpoint, cached until shortly
  before they expire, fetched again after a 401.

Secrets come from the environment (HttpExchange.env_secret); none of these ever logs one, and
their reprs do not show them.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = [
    "AccessToken",
    "Auth",
    "AuthFailure",
    "BasicAuth",
    "HeaderAuth",
    "NoAuth",
    "OAuth2ClientCredentials",
    "SignedAuth",
]


class AuthFailure(Exception):
    """No credential could be had (e.g. the token endpoint failed).

    `refused`: the credentials themselves are wrong (a configuration mistake, not retried);
    otherwise the failure is transient.
    """

    def __init__(self, reason: str, *, refused: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused


class Auth:
    """A strategy: `apply` sets the credential on a request; `refresh` reacts to a 401."""

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        """Set the credential on the final request (headers, or the URL for query signing).

        `client` is the adapter's client, for strategies that must fetch a token first.
        Raise AuthFailure when no credential can be had.
        """

    async def refresh(self, request: httpx.Request) -> bool:
        """The vendor answered `request` with 401. True when a fresh credential may help:
        the kit then applies this strategy again and sends the request once more."""
        return False


class NoAuth(Auth):
    """No credential (the in-process mocks without an api_key_env)."""


@dataclass(frozen=True)
class HeaderAuth(Auth):
    """A static key in a header: `Authorization: Bearer <key>` unless told otherwise."""

    key: str = field(repr=False)
    header: str = "Authorization"
    scheme: str | None = "Bearer"
    """Put before the key with a space; None: the header is the key alone (X-Api-Key)."""

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        request.headers[self.header] = f"{self.scheme} {self.key}" if self.scheme else self.key


@dataclass(frozen=True)
class BasicAuth(Auth):
    """HTTP Basic (RFC 7617): `Authorization: Basic base64(user:secret)`."""

    user: str
    secret: str = field(repr=False)

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        pair = f"{self.user}:{self.secret}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class SignedAuth(Auth):
    """The adapter signs each final request itself.

    `sign` gets the request as it will go out: its method, full URL (with query), headers and
    body (`request.content`, already read) are final, so a signature over them holds. It
    changes the request in place: adds headers (Authorization, a date, a nonce, a content
    hash) or replaces `request.url` for vendors that sign in the query string. A nonce or a
    timestamp in the signature makes each attempt's request new, as vendors require.
    """

    sign: Callable[[httpx.Request], None]

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        request.read()  # multipart bodies are streams until read
        self.sign(request)


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and how many seconds it lives (the token endpoint's `expires_in`)."""

    value: str = field(repr=False)
    expires_in: float


class OAuth2ClientCredentials(Auth):
    """OAuth 2.0 client credentials (RFC 6749 4.4): fetch a token, cache it, refresh it.

    The token is fetched on first use with the adapter's own client (so an injected transport
    sees that request too), cached until `margin` seconds before it expires, and fetched again
    after a 401 (once per request: the kit sends the request once more). Concurrent requests
    share one fetch. Override `fetch_token` for a vendor whose token endpoint differs.
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        scope: str | None = None,
        margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.margin = margin
        self._clock = clock
        self._token: str | None = None
        self._good_until = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.fetches = 0
        """How many tokens were fetched (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, {self.client_id!r})"

    async def fetch_token(self, client: httpx.AsyncClient) -> AccessToken:
        """POST grant_type=client_credentials to the token URL, client id and secret in Basic."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        pair = f"{self.client_id}:{self._client_secret}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        try:
            response = await client.post(self.token_url, data=form, headers=headers)
        except httpx.TransportError as exc:
            raise AuthFailure(
                f"token endpoint: connection error: {type(exc).__name__}", refused=False
            ) from exc
        if response.status_code in (400, 401, 403):
            # RFC 6749 5.2: invalid_client, unauthorized_client...: our credentials are wrong.
            raise AuthFailure(
                f"token endpoint refused the client credentials (HTTP {response.status_code})",
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

    async def token(self, client: httpx.AsyncClient) -> str:
        """The cached token, or a new one when it is missing or about to expire."""
        if self._token is not None and self._clock() < self._good_until:
            return self._token
        async with self._lock_for_loop():
            if self._token is None or self._clock() >= self._good_until:
                asked_at = self._clock()
                fresh = await self.fetch_token(client)
                self.fetches += 1
                self._token = fresh.value
                # Counted from when we asked: the token's life began before the answer came.
                self._good_until = asked_at + max(0.0, fresh.expires_in - self.margin)
            return self._token

    async def apply(self, request: httpx.Request, client: httpx.AsyncClient) -> None:
        request.headers["Authorization"] = f"Bearer {await self.token(client)}"

    async def refresh(self, request: httpx.Request) -> bool:
        # Forget the token only if this request carried it: a request that went out with an
        # older token must not throw away one that a concurrent request just fetched.
        if request.headers.get("Authorization") == f"Bearer {self._token}":
            self._token = None
        return True

    def _lock_for_loop(self) -> asyncio.Lock:
        # A lock belongs to one event loop; the dispatcher may run one loop per batch.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock
