"""The adapter registry: adapter names in config -> classes, via entry points, for both kinds.

Message adapters (config/channels.yaml) and action adapters (config/actions.yaml) are found,
checked, validated and built by the same code; each kind keeps its own entry-point group, so
packages that already declare adapters keep working. Any installed package can add one by
declaring, in its pyproject.toml:

    [project.entry-points."dunning.adapters"]
    acme-sms = "acme_dunning.sms:AcmeSmsAdapter"

    [project.entry-points."dunning.action_adapters"]
    acme-core = "acme_dunning.core:AcmeCoreAdapter"

The entry point's name is the adapter's `name`. A message adapter sends one channel; an action
adapter serves one target (credit_line, agency or registry: every kind in its `kinds` has that
TARGET). build_adapter and build_action_adapter construct it as
`cls.from_config(options, context)` when the class defines that classmethod (for adapters that
need the state directory or other settings), else as `cls(options)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from pydantic import ValidationError

from adapters.actions.base import TARGET, ActionAdapter
from adapters.base import AdapterOptions, GatewayAdapter
from dunning.config.actions import ActionsConfig
from dunning.config.channels import DEFAULT_ROUTE, ChannelsConfig
from dunning.errors import ConfigError, ConfigProblem, DunningError
from dunning.types import Channel

GROUP = "dunning.adapters"
"""Entry-point group of message adapters."""
ACTION_GROUP = "dunning.action_adapters"
"""Entry-point group of action adapters."""
CONFIG_FILE = "config/channels.yaml"
ACTIONS_CONFIG_FILE = "config/actions.yaml"
TARGETS: tuple[str, ...] = tuple(dict.fromkeys(TARGET.values()))
"""credit_line, agency, registry."""


class UnknownAdapter(DunningError, LookupError):
    """No installed adapter has this name."""


class InvalidAdapter(DunningError, TypeError):
    """An entry point that does not lead to a proper adapter class."""


@dataclass(frozen=True)
class AdapterContext:
    """What build_adapter knows besides the options, for adapters that need it."""

    channel: Channel
    state_dir: Path
    config: ChannelsConfig


@dataclass(frozen=True)
class ActionAdapterContext:
    """What build_action_adapter knows besides the options, for adapters that need it."""

    target: str
    state_dir: Path
    config: ActionsConfig


A = TypeVar("A", GatewayAdapter, ActionAdapter)
S = TypeVar("S")  # what an adapter is chosen for: a channel, or an action target


@dataclass(frozen=True)
class _Kind(Generic[A, S]):
    """What differs between message and action adapters; everything else is shared."""

    group: str
    base: type[Any]
    """GatewayAdapter or ActionAdapter (abstract, so typed loosely: mypy refuses type[A])."""
    noun: str
    """"adapter" or "action adapter", as errors name it."""
    config_file: str
    misfit: Callable[[type[A], S], str | None]
    """Why a class cannot serve this channel or target; None when it can."""
    check: Callable[[type[A], str], None] = lambda cls, name: None
    """Further checks of a loaded class (raises InvalidAdapter)."""


class _FromConfig(Protocol):
    def __call__(self, options: Any, context: Any) -> Any: ...


@functools.cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def _available(kind: _Kind[A, S]) -> list[str]:
    return sorted(_entry_points(kind.group))


@functools.cache
def _load(kind: _Kind[A, S], name: str) -> type[A]:
    found = _entry_points(kind.group).get(name)
    if found is None:
        names = ", ".join(_available(kind)) or "none"
        raise UnknownAdapter(f"no {kind.noun} named {name!r} is installed; available: {names}")
    cls = found.load()
    if not (isinstance(cls, type) and issubclass(cls, kind.base)):
        article = "an" if kind.base.__name__[0] in "AEIOU" else "a"
        raise InvalidAdapter(
            f"entry point {name!r} ({found.value}) is not {article} {kind.base.__name__}"
        )
    if getattr(cls, "name", None) != name:
        raise InvalidAdapter(
            f"entry point {name!r} ({found.value}) leads to an adapter named "
            f"{getattr(cls, 'name', None)!r}; the two must be the same"
        )
    kind.check(cls, name)
    return cast("type[A]", cls)


_Problems = list[tuple[str, str]]
"""(key under the adapter's entry, reason): ("adapter", ...) or ("options.timeout", ...)."""


def _validate_options(cls: type[A], options: Mapping[str, Any]) -> AdapterOptions | _Problems:
    try:
        return cls.options_model.model_validate(dict(options))
    except ValidationError as exc:
        return [
            (
                "options." + ".".join(str(part) for part in error["loc"]),
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]


def _choose(
    kind: _Kind[A, S], slot: S, name: str, options: Mapping[str, Any]
) -> tuple[type[A], AdapterOptions] | _Problems:
    """The class and its validated options, or what is wrong with the choice."""
    try:
        cls = _load(kind, name)
    except DunningError as exc:
        return [("adapter", str(exc))]
    misfit = kind.misfit(cls, slot)
    if misfit is not None:
        return [("adapter", misfit)]
    checked = _validate_options(cls, options)
    if isinstance(checked, list):
        return checked
    return cls, checked


def _problems(chosen: tuple[type[A], AdapterOptions] | _Problems) -> _Problems:
    return chosen if isinstance(chosen, list) else []


def _build(
    kind: _Kind[A, S],
    slot: S,
    where: str,
    name: str,
    options: Mapping[str, Any],
    context: object,
) -> A:
    chosen = _choose(kind, slot, name, options)
    if isinstance(chosen, list):
        raise ConfigError(
            [ConfigProblem(kind.config_file, f"{where}.{key}", why) for key, why in chosen]
        )
    cls, validated = chosen
    try:
        from_config = getattr(cls, "from_config", None)
        if from_config is not None:
            return cast(A, cast(_FromConfig, from_config)(validated, context))
        # The base classes have no constructor; the registry's convention is `cls(options)`.
        construct = cast(Callable[[AdapterOptions], A], cls)
        return construct(validated)
    except ConfigError as exc:
        # An adapter names its entry as a channel's (it does not know it is a named
        # provider): say where it really is.
        raise ConfigError([_at(problem, where) for problem in exc.problems]) from None


def _at(problem: ConfigProblem, where: str) -> ConfigProblem:
    """The problem with its key under `where` (its own ".options..." tail kept)."""
    if problem.file != CONFIG_FILE or problem.key.startswith(where):
        return problem
    head, dot, tail = problem.key.partition(".options")
    if not dot or not head.startswith(("channels.", "providers.")):
        return problem
    return ConfigProblem(problem.file, f"{where}{dot}{tail}", problem.reason)


# -- message adapters ---------------------------------------------------------------------------


def _sends_other_channel(cls: type[GatewayAdapter], channel: Channel) -> str | None:
    if cls.channel == channel:
        return None
    return f"{cls.name!r} sends {cls.channel.value}, not {channel.value}"


_MESSAGE: _Kind[GatewayAdapter, Channel] = _Kind(
    GROUP, GatewayAdapter, "adapter", CONFIG_FILE, _sends_other_channel
)


def available() -> list[str]:
    """The names of every installed message adapter."""
    return _available(_MESSAGE)


def adapter_class(name: str) -> type[GatewayAdapter]:
    """The message adapter class registered under `name`; UnknownAdapter lists the names."""
    return _load(_MESSAGE, name)


def _sends_any(cls: type[GatewayAdapter], channel: Channel | None) -> str | None:
    return None if channel is None else _sends_other_channel(cls, channel)


_PROVIDER: _Kind[GatewayAdapter, Channel | None] = _Kind(
    GROUP, GatewayAdapter, "adapter", CONFIG_FILE, _sends_any
)


def check_channels(config: ChannelsConfig) -> list[ConfigProblem]:
    """Everything wrong with the adapters config/channels.yaml chooses and their options.

    The config models import no adapter, so a loaded file is checked here: by `dunning config
    check`, and by bootstrap() before anything runs. Keys are those build_provider names: a
    named provider's under `providers.<name>`, a channel's own adapter under
    `channels.<channel>`; a provider must send the channel whose routes name it.
    """
    problems = [
        ConfigProblem(CONFIG_FILE, f"channels.{channel.value}.{key}", why)
        for channel, entry in config.channels.items()
        if entry.adapter is not None
        for key, why in _problems(_choose(_MESSAGE, channel, entry.adapter, entry.options))
    ]
    serves = config.channel_of_provider()
    for name, provider in config.providers.items():
        chosen = _choose(_PROVIDER, serves.get(name), provider.adapter, provider.options)
        problems += [
            ConfigProblem(CONFIG_FILE, f"providers.{name}.{key}", why)
            for key, why in _problems(chosen)
        ]
    named = set(config.providers) | {e.adapter for e in config.channels.values() if e.adapter}
    for channel in config.channels:
        for route, names in config.routes_of(channel).items():
            for name in names:
                if name in named:
                    continue
                # Not a provider: an adapter named outright, with its default options.
                chosen = _choose(_MESSAGE, channel, name, {})
                problems += [
                    ConfigProblem(
                        CONFIG_FILE,
                        f"channels.{channel.value}.routes.{route}",
                        f"{name!r} is no provider under `providers`, and as an adapter: {why}"
                        if key == "adapter"
                        else f"adapter {name!r} with its default options: {key}: {why}",
                    )
                    for key, why in _problems(chosen)
                ]
    return problems


def _provider_where(name: str, config: ChannelsConfig) -> str:
    if name in config.providers:
        return f"providers.{name}"
    for channel, entry in config.channels.items():
        if entry.adapter == name:
            return f"channels.{channel.value}"
    return f"providers.{name}"


def build_provider(name: str, channels_config: ChannelsConfig, state_dir: Path) -> GatewayAdapter:
    """The provider called `name` (config/channels.yaml), options validated; ConfigError names
    the key. A channel given as `adapter:` is a provider named after its adapter."""
    entry = channels_config.all_providers().get(name)
    where = _provider_where(name, channels_config)
    if entry is None:
        known = ", ".join(sorted(channels_config.all_providers())) or "none"
        raise ConfigError(
            [ConfigProblem(CONFIG_FILE, where, f"no provider {name!r} (defined: {known})")]
        )
    channel = channels_config.channel_of_provider().get(name)
    if channel is None:  # a provider no route names: it serves its adapter's channel
        try:
            channel = adapter_class(entry.adapter).channel
        except DunningError as exc:
            raise ConfigError([ConfigProblem(CONFIG_FILE, f"{where}.adapter", str(exc))]) from exc
    context = AdapterContext(channel=channel, state_dir=state_dir, config=channels_config)
    return _build(_MESSAGE, channel, where, entry.adapter, entry.options, context)


def build_adapter(
    channel: Channel, channels_config: ChannelsConfig, state_dir: Path
) -> GatewayAdapter:
    """The first provider of `channel`'s default route, options validated; ConfigError names
    the key."""
    where = f"channels.{channel.value}"
    if channels_config.adapter_for(channel) is None:
        raise ConfigError([ConfigProblem(CONFIG_FILE, where, "no adapter is configured")])
    (first, *_) = channels_config.routes_of(channel)[DEFAULT_ROUTE]
    return build_provider(first, channels_config, state_dir)


# -- action adapters ----------------------------------------------------------------------------


def target_of(cls: type[ActionAdapter]) -> str:
    """The target an action adapter class serves."""
    (target,) = {TARGET[kind] for kind in cls.kinds}
    return target


def _one_target(cls: type[ActionAdapter], name: str) -> None:
    targets = {TARGET[kind] for kind in getattr(cls, "kinds", frozenset())}
    if len(targets) != 1:
        raise InvalidAdapter(
            f"action adapter {name!r} must perform the kinds of exactly one target "
            f"({', '.join(TARGETS)}); its kinds are of {len(targets)}"
        )


def _performs_other_target(cls: type[ActionAdapter], target: str) -> str | None:
    if target_of(cls) == target:
        return None
    return f"{cls.name!r} performs {target_of(cls)} actions, not {target}"


_ACTION: _Kind[ActionAdapter, str] = _Kind(
    ACTION_GROUP,
    ActionAdapter,
    "action adapter",
    ACTIONS_CONFIG_FILE,
    _performs_other_target,
    _one_target,
)


def available_action_adapters() -> list[str]:
    """The names of every installed action adapter."""
    return _available(_ACTION)


def action_adapter_class(name: str) -> type[ActionAdapter]:
    """The action adapter class registered under `name`; UnknownAdapter lists the names."""
    return _load(_ACTION, name)


def check_actions(config: ActionsConfig) -> list[ConfigProblem]:
    """Everything wrong with the adapters config/actions.yaml chooses and their options.

    As check_channels: run by `dunning config check` and by bootstrap(); keys are those
    build_action_adapter names.
    """
    return [
        ConfigProblem(ACTIONS_CONFIG_FILE, f"adapters.{target}.{key}", why)
        for target in TARGETS
        for entry in [config.adapters.entry(target)]
        for key, why in _problems(_choose(_ACTION, target, entry.adapter, entry.options))
    ]


def build_action_adapter(
    target: str, actions_config: ActionsConfig, state_dir: Path
) -> ActionAdapter:
    """The configured adapter for `target`, options validated; ConfigError names the key."""
    if target not in TARGETS:
        raise ValueError(f"no action target {target!r}; targets: {', '.join(TARGETS)}")
    entry = actions_config.adapters.entry(target)
    context = ActionAdapterContext(target=target, state_dir=state_dir, config=actions_config)
    return _build(
        _ACTION,
        target,
        f"adapters.{target}",
        entry.adapter,
        entry.options,
        context,
    )


def refresh() -> None:
    """Forget the cached entry points (after installing a package in a running process)."""
    _entry_points.cache_clear()
    _load.cache_clear()
