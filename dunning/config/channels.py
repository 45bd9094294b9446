"""config/channels.yaml: the gateway adapter of each channel, dispatch settings, the mock gateway.

The adapter names and their options are checked by the adapter registry once the file has loaded
(adapters.registry.check_channels): by `dunning config check`, and before any run starts. This
module imports no adapter, so configuration loads without them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from dunning.config._base import ConfigModel
from dunning.types import Channel

ENV_NAME = r"^[A-Z_][A-Z0-9_]*$"


NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"
DEFAULT_ROUTE = "default"
"""The route of every jurisdiction a channel's `routes` does not name."""


def _a_name(value: str) -> str:
    if not re.match(NAME, value):
        raise ValueError(f"{value!r} is not a provider or adapter name ({NAME})")
    return value


class ProviderEntry(ConfigModel):
    """One provider: an adapter with its options (one vendor account), under a name."""

    adapter: str = Field(pattern=NAME, description="registry name")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="checked against the adapter's options model by the adapter registry",
    )
    rate_per_second: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="the vendor account's rate limit, held across every dispatcher together "
        "(each process's adapter also keeps its own rate_per_second)",
    )


class ChannelAdapter(ConfigModel):
    """How one channel's messages are sent: one adapter for every jurisdiction (`adapter`,
    `options`: a provider named after the adapter), or `routes` from the account's
    jurisdiction (its policy pack code) to an ordered list of providers, tried in turn when
    one is down."""

    adapter: str | None = Field(default=None, pattern=NAME, description="registry name")
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="checked against the adapter's options model by the adapter registry",
    )
    routes: dict[str, list[Annotated[str, AfterValidator(_a_name)]]] | None = Field(
        default=None,
        description="jurisdiction -> providers in order of preference (names under "
        "`providers`, or adapter names for an adapter with its default options); `default` "
        "for every other jurisdiction",
    )

    @model_validator(mode="after")
    def _adapter_or_routes(self) -> Self:
        if (self.adapter is None) == (self.routes is None):
            raise ValueError("give either `adapter` (one for every jurisdiction) or `routes`")
        if self.routes is not None:
            if self.options:
                raise ValueError("`options` go with `adapter`; a route names providers")
            if DEFAULT_ROUTE not in self.routes:
                raise ValueError(
                    "routes need a `default` entry (the providers of every other jurisdiction)"
                )
            for key, providers in self.routes.items():
                if not providers:
                    raise ValueError(f"route {key!r} names no provider")
                if len(set(providers)) != len(providers):
                    raise ValueError(f"route {key!r} names a provider twice")
        return self


def _default_channels() -> dict[Channel, ChannelAdapter]:
    return {
        Channel.SMS: ChannelAdapter(adapter="mock-sms"),
        Channel.PUSH: ChannelAdapter(adapter="mock-push"),
        Channel.LETTER: ChannelAdapter(adapter="mock-letter"),
    }


class DispatchSettings(ConfigModel):
    """Read by the dispatcher (dunning.services.dispatch)."""

    lease_seconds: int = Field(
        default=120,
        ge=10,
        le=3600,
        description="how long a claimed message is ours before another dispatcher may take it; "
        "must exceed an adapter's worst-case send time (timeouts plus backoff)",
    )
    max_attempts: int = Field(
        default=8, ge=1, le=100, description="dispatch attempts before a message is failed"
    )
    claim_size: int = Field(
        default=2000,
        ge=1,
        le=50_000,
        description="messages a dispatcher claims at once, then sends and records before the "
        "next claim; dispatchers running side by side share the outbox in claims of this size",
    )
    circuit_open_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="after a provider is found down (nothing it was given went through), the "
        "dispatcher sends past it to the route's next provider this long before trying it again",
    )


class ReceiptSimulation(ConfigModel):
    """How the mock gateways turn accepted messages into delivery receipts."""

    delivered: float = Field(default=0.95, ge=0, le=1)
    failed: float = Field(default=0.03, ge=0, le=1)
    undeliverable: float = Field(default=0.02, ge=0, le=1)
    delay_seconds: float = Field(
        default=0.0, ge=0, le=30 * 86400, description="pending this long after acceptance"
    )
    webhook_url: str | None = Field(
        default=None, description="push receipts here (Dunning's receipts webhook); none: poll only"
    )
    webhook_secret_env: str = Field(default="DUNNING_WEBHOOK_SECRET", pattern=ENV_NAME)
    push_interval_seconds: float = Field(default=2.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _rates_sum_to_one(self) -> Self:
        total = self.delivered + self.failed + self.undeliverable
        if abs(total - 1.0) > 1e-9:
            raise ValueError(
                f"delivered + failed + undeliverable must be 1, they add up to {total:g}"
            )
        return self

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class FaultRates(ConfigModel):
    """Random faults for chaos and load tests: the share of requests that get each fault."""

    server_error: float = Field(default=0.0, ge=0, le=1, description="answer 503")
    throttle: float = Field(default=0.0, ge=0, le=1, description="answer 429 with Retry-After")
    timeout: float = Field(default=0.0, ge=0, le=1, description="sleep past the client timeout")
    malformed: float = Field(default=0.0, ge=0, le=1, description="answer 200 with a bad body")
    retry_after_seconds: float = Field(default=1.0, ge=0, le=3600)
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600, description="a timeout's sleep")
    seed: int | None = Field(default=None, description="fixed seed for reproducible chaos")

    @model_validator(mode="after")
    def _at_most_one(self) -> Self:
        total = self.server_error + self.throttle + self.timeout + self.malformed
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}, more than 1")
        return self


class MockTwilioSettings(ConfigModel):
    """The mock gateway's Twilio Programmable Messaging API (/2010-04-01/Accounts/...)."""

    account_sid: str = Field(pattern=r"^AC[0-9a-f]{32}$", description="the mock's account")
    auth_token_env: str = Field(
        pattern=ENV_NAME,
        description="environment variable holding the account's auth token (HTTP Basic "
        "password with the account SID; signs status callbacks)",
    )
    api_key_sid: str | None = Field(
        default=None, pattern=r"^SK[0-9a-f]{32}$", description="an API key the mock also takes"
    )
    api_key_secret_env: str | None = Field(
        default=None, pattern=ENV_NAME, description="environment variable holding its secret"
    )

    @model_validator(mode="after")
    def _key_and_secret(self) -> Self:
        if (self.api_key_sid is None) != (self.api_key_secret_env is None):
            raise ValueError("api_key_sid and api_key_secret_env go together")
        return self


class MockAliyunSettings(ConfigModel):
    """The mock gateway's Aliyun SMS API (dysmsapi 2017-05-25, POST / with x-acs-action)."""

    access_key_id: str = Field(pattern=r"^[A-Za-z0-9]{1,128}$")
    access_key_secret_env: str = Field(
        pattern=ENV_NAME, description="environment variable holding the AccessKey secret"
    )
    sign_names: list[str] = Field(
        default_factory=list, description="registered signatures (SignName); empty: any"
    )
    templates: dict[str, str] = Field(
        default_factory=dict,
        description="registered template codes and their texts, with ${name} parameters",
    )
    registered_file: str | None = Field(
        default=None,
        description="also register the codes, texts and signature of this file (relative to "
        "the program directory; templates/registered/aliyun.yaml), as the console has them",
    )
    report_url: str | None = Field(
        default=None, description="push delivery reports (SmsReport) here; none: poll only"
    )
    up_url: str | None = Field(
        default=None, description="push upstream messages (SmsUp, replies) here"
    )

    @field_validator("report_url", "up_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class MockJPushSettings(ConfigModel):
    """The mock gateway's JPush REST API v3 (POST /v3/push, GET /v3/received...)."""

    app_key: str = Field(pattern=r"^[0-9a-f]{24}$", description="the mock app's AppKey")
    master_secret_env: str = Field(
        pattern=ENV_NAME, description="environment variable holding the app's Master Secret"
    )


class MockFcmSettings(ConfigModel):
    """The mock gateway's FCM HTTP v1 API (/v1/projects/{id}/messages:send) and OAuth token
    endpoint (POST /token, where the service account's token_uri points)."""

    project_id: str = Field(pattern=r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$")
    service_account_env: str = Field(
        pattern=ENV_NAME,
        description="environment variable holding the service account the mock trusts (the "
        "path of its JSON key file, or the JSON): its key checks the signed assertions",
    )
    token_lifetime_seconds: int = Field(
        default=3600, ge=1, le=3600, description="how long an access token it issues lives"
    )


class MockLobSettings(ConfigModel):
    """The mock gateway's Lob Print & Mail letters API (/v1/letters)."""

    api_key_env: str = Field(
        pattern=ENV_NAME,
        description="environment variable holding the API key the mock takes (HTTP Basic user)",
    )
    webhook_url: str | None = Field(
        default=None, description="push signed letter events here; none: poll only"
    )
    webhook_secret_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the secret that signs the events "
        "(Lob-Signature); required with webhook_url",
    )

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _secret_with_url(self) -> Self:
        if self.webhook_url is not None and self.webhook_secret_env is None:
            raise ValueError("webhook_url needs webhook_secret_env (the events are signed)")
        return self


class MockGatewaySettings(ConfigModel):
    """The mock sms/push/letter gateways (in-process, or `dunning gateway serve`)."""

    ledger: str = Field(
        default="gateway-ledger.db",
        min_length=1,
        description="SQLite file of everything accepted; relative paths are under the state dir",
    )
    api_key_env: str | None = Field(
        default=None,
        pattern=ENV_NAME,
        description="environment variable holding the API key the mock requires; none: no key",
    )
    receipts: ReceiptSimulation = Field(default_factory=ReceiptSimulation)
    faults: FaultRates = Field(default_factory=FaultRates)
    twilio: MockTwilioSettings | None = Field(
        default=None, description="also speak Twilio's Messages API; none: not served"
    )
    aliyun: MockAliyunSettings | None = Field(
        default=None, description="also speak Aliyun SMS's API; none: not served"
    )
    lob: MockLobSettings | None = Field(
        default=None, description="also speak Lob's letters API; none: not served"
    )
    fcm: MockFcmSettings | None = Field(
        default=None, description="also speak FCM HTTP v1 and its token endpoint; none: not served"
    )
    jpush: MockJPushSettings | None = Field(
        default=None, description="also speak JPush's push and report APIs; none: not served"
    )


class ChannelsConfig(ConfigModel):
    providers: dict[str, ProviderEntry] = Field(
        default_factory=dict, description="named vendor accounts the channels' routes name"
    )
    channels: dict[Channel, ChannelAdapter] = Field(default_factory=_default_channels)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    mock_gateway: MockGatewaySettings = Field(default_factory=MockGatewaySettings)

    @model_validator(mode="after")
    def _routes_name_providers(self) -> Self:
        for name in self.providers:
            if not re.match(NAME, name):
                raise ValueError(f"provider name {name!r} must match {NAME}")
        for channel, entry in self.channels.items():
            if entry.adapter is not None and entry.adapter in self.providers:
                raise ValueError(
                    f"channels.{channel.value}.adapter {entry.adapter!r} is also a provider's "
                    "name; route to the provider instead"
                )
        return self

    def adapter_for(self, channel: Channel) -> ChannelAdapter | None:
        return self.channels.get(channel)

    def all_providers(self) -> dict[str, ProviderEntry]:
        """Every provider by name: those of `providers`, one per channel given as `adapter:`
        (named after its adapter), and one per adapter a route names outright (its defaults).
        """
        found = dict(self.providers)
        for entry in self.channels.values():
            if entry.adapter is not None:
                found[entry.adapter] = ProviderEntry(adapter=entry.adapter, options=entry.options)
            for names in (entry.routes or {}).values():
                for name in names:
                    # A route may name an adapter outright: a provider with its defaults.
                    found.setdefault(name, ProviderEntry(adapter=name))
        return found

    def routes_of(self, channel: Channel) -> dict[str, tuple[str, ...]]:
        """Jurisdiction -> providers in order, with `default`; empty when the channel has no
        entry."""
        entry = self.channels.get(channel)
        if entry is None:
            return {}
        if entry.adapter is not None:
            return {DEFAULT_ROUTE: (entry.adapter,)}
        return {key: tuple(names) for key, names in (entry.routes or {}).items()}

    def channel_of_provider(self) -> dict[str, Channel]:
        """The channel each routed provider serves (a provider serves one channel)."""
        return {
            name: channel
            for channel in self.channels
            for names in self.routes_of(channel).values()
            for name in names
        }
