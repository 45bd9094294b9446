"""Routing: which provider sends a message, failover when one is down, and shared rates.

A channel's route (config/channels.yaml) maps the account's jurisdiction (its policy pack
code) to providers in order of preference. The dispatcher gives each claimed message to the
first provider of its route whose circuit is closed, and records that choice on the row
*before* sending, so that whatever happens next (an answer, a timeout, a crash) the message's
receipts and in-doubt lookups go to the vendor that may have it.

Failover. A RETRY answer means the provider certainly did not take the message (refused
connection, 503, 429, credentials refused, retries used up): the message moves to the route's
next provider in the same dispatch. An AMBIGUOUS answer (a timeout after the request went
out) keeps the message with its provider until that provider's lookup settles it; it never
moves. A message claimed back in doubt is first settled with the provider recorded on it.
When every message a provider was given came back RETRY, the provider is taken as down and
its circuit opens for `dispatch.circuit_open_seconds`: this process sends past it meanwhile.

Shared rates. A provider's `rate_per_second` is the vendor account's limit: every dispatcher
reserves its messages in one atomic UPDATE of the provider's `provider_pace` row (the moment
from which the next message may go), then waits for its turn, so processes sending side by
side together stay within it (clocks of the machines involved must agree to a few ms: NTP).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, case, update

from adapters.base import AdapterFactory, GatewayAdapter
from dunning.config.channels import DEFAULT_ROUTE, ChannelsConfig
from dunning.db.sql import insert_ignoring_conflicts
from dunning.db.tables import PACE
from dunning.types import Channel

ProviderFactory = Callable[[str], GatewayAdapter]
"""Builds a fresh adapter for a provider name; called inside the event loop that uses it."""


@dataclass(frozen=True)
class Routing:
    """Each channel's routes, how to build a provider's adapter, and providers' shared rates."""

    routes: Mapping[Channel, Mapping[str, tuple[str, ...]]]
    build: ProviderFactory
    rates: Mapping[str, float] = field(default_factory=dict)
    """Account-wide messages per second, by provider (absent: no shared limit)."""

    @classmethod
    def from_config(
        cls, config: ChannelsConfig, build: ProviderFactory, *, state_dir: Path | None = None
    ) -> Routing:
        del state_dir  # the factory already knows it
        return cls(
            routes={channel: config.routes_of(channel) for channel in config.channels},
            build=build,
            rates={
                name: entry.rate_per_second
                for name, entry in config.all_providers().items()
                if entry.rate_per_second is not None
            },
        )

    @classmethod
    def by_channel(cls, factory: AdapterFactory) -> Routing:
        """One provider per channel, named after the channel (tests and embedders that hand
        in an adapter per channel)."""
        return cls(
            routes={channel: {DEFAULT_ROUTE: (channel.value,)} for channel in Channel},
            build=lambda name: factory(Channel(name)),
        )

    def candidates(self, channel: Channel, jurisdiction: str | None) -> tuple[str, ...]:
        """The providers of a message's route, in order (empty: the channel has none)."""
        routes = self.routes.get(channel, {})
        if jurisdiction is not None and jurisdiction in routes:
            return routes[jurisdiction]
        return routes.get(DEFAULT_ROUTE, ())

    def knows(self, provider: str) -> bool:
        """Whether a route names this provider (a recorded one may have left the config)."""
        return any(
            provider in names for routes in self.routes.values() for names in routes.values()
        )

    def default(self, channel: Channel) -> str | None:
        """The first provider of the channel's default route."""
        found = self.candidates(channel, None)
        return found[0] if found else None

    def for_channel(self, channel: Channel) -> GatewayAdapter:
        """The default provider's adapter of a channel (an AdapterFactory)."""
        name = self.default(channel)
        if name is None:
            raise LookupError(f"no provider sends {channel.value}")
        return self.build(name)


@dataclass
class Circuits:
    """Providers found down, and until when this process sends past them."""

    open_seconds: float = 60.0
    monotonic: Callable[[], float] = time.monotonic
    _open_until: dict[str, float] = field(default_factory=dict)

    def is_open(self, provider: str) -> bool:
        until = self._open_until.get(provider)
        return until is not None and self.monotonic() < until

    def trip(self, provider: str) -> None:
        if self.open_seconds > 0:
            self._open_until[provider] = self.monotonic() + self.open_seconds

    def close(self, provider: str) -> None:
        self._open_until.pop(provider, None)


class SharedPace:
    """An account-wide rate per provider, kept in the database for every dispatcher.

    `reserve(provider, n, rate)` moves the provider's next free moment forward by n / rate in
    one UPDATE (atomic on PostgreSQL and SQLite alike) and waits until the moment it reserved
    from: the generic cell rate algorithm, shared. Over any window the provider gets at most
    rate x window + one reservation's messages.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self._wall = wall
        self._sleep = sleep
        self._known: set[str] = set()

    def _reserve_now(self, provider: str, n: int, rate: float) -> float:
        """Seconds to wait before sending n messages (runs in a worker thread)."""
        cost = n / rate
        p = PACE.c
        with self.engine.begin() as connection:
            if provider not in self._known:
                insert_ignoring_conflicts(
                    connection, PACE, [{"provider": provider, "next_free": 0.0}], "provider"
                )
            # Take the row's lock first (SQLite: the write lock; PostgreSQL: the row), then
            # read the clock: a `now` read before a wait for the lock would be stale, and a
            # turn reserved from a moment already past would go at once, together with the
            # turns of every other dispatcher that waited for the lock alongside (a burst
            # beyond the rate).
            connection.execute(
                update(PACE).where(p.provider == provider).values(next_free=p.next_free)
            )
            now = self._wall()
            start = case((p.next_free > now, p.next_free), else_=now)
            statement = (
                update(PACE)
                .where(p.provider == provider)
                .values(next_free=start + cost)
                .returning(p.next_free)
            )
            # One statement: SQLite runs it under its write lock; PostgreSQL locks the row
            # and computes SET from its latest committed version, so no two dispatchers
            # reserve the same moment.
            next_free = float(connection.execute(statement).scalar_one())
        self._known.add(provider)
        # From the clock again: the time the commit took is already waited.
        return max(0.0, next_free - cost - self._wall())

    async def reserve(self, provider: str, n: int, rate: float) -> None:
        wait = await asyncio.to_thread(self._reserve_now, provider, n, rate)
        if wait > 0:
            await self._sleep(wait)
