"""The adapter registry: adapter names in config/channels.yaml -> classes, via entry points.

Any installed package can add an adapter by declaring, in its pyproject.toml:

    [project.entry-points."dunning.adapters"]
    acme-sms = "acme_dunning.sms:AcmeSmsAdapter"

The entry point's name is the adapter's `name`. build_adapter constructs it as
`cls.from_config(options, context)` when the class defines that classmethod (for adapters that
need the state directory or other settings), else as `cls(options)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import ValidationError

from adapters.base import AdapterOptions, GatewayAdapter
from dunning.config.channels import ChannelsConfig
from dunning.errors import ConfigError, ConfigProblem, DunningError
from dunning.types import Channel

GROUP = "dunning.adapters"
CONFIG_FILE = "config/channels.yaml"


class UnknownAdapter(DunningError, LookupError):
    """No installed adapter has this name."""


class InvalidAdapter(DunningError, TypeError):
    """An entry point that does not lead to a proper GatewayAdapter subclass."""


@dataclass(frozen=True)
class AdapterContext:
    """What build_adapter knows besides the options, for adapters that need it."""

    channel: Channel
    state_dir: Path
    config: ChannelsConfig


class _FromConfig(Protocol):
    def __call__(self, options: Any, context: AdapterContext) -> GatewayAdapter: ...


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def refresh() -> None:
    """Forget the cached entry points (after installing a package in a running process)."""
    _entry_points.cache_clear()
    adapter_class.cache_clear()


def available() -> list[str]:
    """The names of every installed adapter."""
    return sorted(_entry_points())


@functools.cache
def adapter_class(name: str) -> type[GatewayAdapter]:
    """The adapter class registered under `name`; UnknownAdapter lists the names there are."""
    found = _entry_points().get(name)
    if found is None:
        names = ", ".join(available()) or "none"
        raise UnknownAdapter(f"no adapter named {name!r} is installed; available: {names}")
    cls = found.load()
    if not (isinstance(cls, type) and issubclass(cls, GatewayAdapter)):
        raise InvalidAdapter(f"entry point {name!r} ({found.value}) is not a GatewayAdapter")
    if getattr(cls, "name", None) != name:
        raise InvalidAdapter(
            f"entry point {name!r} ({found.value}) leads to an adapter named "
            f"{getattr(cls, 'name', None)!r}; the two must be the same"
        )
    return cls


def _validate_options(
    cls: type[GatewayAdapter], options: Mapping[str, Any]
) -> AdapterOptions | list[tuple[str, str]]:
    try:
        return cls.options_model.model_validate(dict(options))
    except ValidationError as exc:
        return [
            (".".join(str(part) for part in error["loc"]), _message(error["msg"]))
            for error in exc.errors()
        ]


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")


def options_problems(channel: Channel, name: str, options: Mapping[str, Any]) -> list[str]:
    """Everything wrong with choosing adapter `name` and these options for `channel`."""
    try:
        cls = adapter_class(name)
    except DunningError as exc:
        return [f"adapter: {exc}"]
    if cls.channel != channel:
        return [f"adapter: {name!r} sends {cls.channel.value}, not {channel.value}"]
    checked = _validate_options(cls, options)
    if isinstance(checked, list):
        return [f"options.{key}: {reason}" for key, reason in checked]
    return []


def build_adapter(
    channel: Channel, channels_config: ChannelsConfig, state_dir: Path
) -> GatewayAdapter:
    """The configured adapter for `channel`, options validated; ConfigError names the key."""
    where = f"channels.{channel.value}"
    entry = channels_config.adapter_for(channel)
    if entry is None:
        raise ConfigError([ConfigProblem(CONFIG_FILE, where, "no adapter is configured")])
    try:
        cls = adapter_class(entry.adapter)
    except DunningError as exc:
        raise ConfigError([ConfigProblem(CONFIG_FILE, f"{where}.adapter", str(exc))]) from None
    if cls.channel != channel:
        raise ConfigError(
            [
                ConfigProblem(
                    CONFIG_FILE,
                    f"{where}.adapter",
                    f"{entry.adapter!r} sends {cls.channel.value}, not {channel.value}",
                )
            ]
        )
    options = _validate_options(cls, entry.options)
    if isinstance(options, list):
        raise ConfigError(
            [ConfigProblem(CONFIG_FILE, f"{where}.options.{key}", why) for key, why in options]
        )
    context = AdapterContext(channel=channel, state_dir=state_dir, config=channels_config)
    from_config = getattr(cls, "from_config", None)
    if from_config is not None:
        return cast(_FromConfig, from_config)(options, context)
    # The base class has no constructor; the registry's convention is `cls(options)`.
    construct = cast(Callable[[AdapterOptions], GatewayAdapter], cls)
    return construct(options)
