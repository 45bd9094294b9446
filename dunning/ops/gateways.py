"""`dunning gateway check`: try every configured provider without sending a message.

Each provider of the channels file (named providers, a channel's own adapter, an adapter a
route names outright) is built from its configuration, as a dispatch would build it, and asked
`check()`: its credentials and reachability, in one line. A provider that cannot even be built
(a secret's environment variable unset, a URL variable missing) says so in its line. Secrets are
never printed: the lines name the variables that hold them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from adapters.registry import build_provider
from dunning.config.channels import ChannelsConfig
from dunning.errors import ConfigError, DunningError
from dunning.masking import mask_text


class ProvidersUnusable(DunningError):
    """`dunning gateway check` found a provider that cannot be used (exit status 1)."""


CHECK_TIMEOUT = 30.0
"""Longest wait for one provider's answer (its own timeouts and retries are shorter)."""


@dataclass(frozen=True)
class ProviderCheck:
    provider: str
    adapter: str
    channel: str
    routes: tuple[str, ...]
    """Where it is used: "sms:CN", "sms:default", ..."""
    problem: str | None
    """None: usable."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "adapter": self.adapter,
            "channel": self.channel,
            "routes": list(self.routes),
            "ok": self.ok,
            "problem": self.problem,
        }


def _routes(config: ChannelsConfig) -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for channel in config.channels:
        for key, names in config.routes_of(channel).items():
            for name in names:
                used.setdefault(name, []).append(f"{channel.value}:{key}")
    return used


async def _check_one(name: str, config: ChannelsConfig, state_dir: Path) -> str | None:
    try:
        adapter = build_provider(name, config, state_dir)
    except ConfigError as exc:
        return "; ".join(f"{p.key}: {p.reason}" for p in exc.problems)
    except DunningError as exc:
        return str(exc)
    try:
        async with adapter:
            return await asyncio.wait_for(adapter.check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    except Exception as exc:  # one provider's fault is its line, not a crash
        return f"check failed: {type(exc).__name__}: {exc}"


def check_providers(
    config: ChannelsConfig, state_dir: Path, only: Iterable[str] = ()
) -> list[ProviderCheck]:
    """Every provider's check (or those named in `only`), in name order."""
    providers = config.all_providers()
    wanted = sorted(set(only) or set(providers))
    unknown = [name for name in wanted if name not in providers]
    if unknown:
        known = ", ".join(sorted(providers)) or "none"
        raise DunningError(f"no provider {', '.join(unknown)} (configured: {known})")
    used = _routes(config)
    serves = config.channel_of_provider()

    async def all_checks() -> list[str | None]:
        return await asyncio.gather(*(_check_one(name, config, state_dir) for name in wanted))

    problems = asyncio.run(all_checks())
    return [
        ProviderCheck(
            provider=name,
            adapter=providers[name].adapter,
            channel=serves[name].value if name in serves else "-",
            routes=tuple(used.get(name, [])),
            # A vendor's text may quote a number or a name: masked like every log line.
            problem=None if problem is None else mask_text(problem)[:300],
        )
        for name, problem in zip(wanted, problems, strict=True)
    ]
