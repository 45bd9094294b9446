"""The action adapter registry: names in config/actions.yaml -> classes, via entry points.

Any installed package can add an action adapter by declaring, in its pyproject.toml:

    [project.entry-points."dunning.action_adapters"]
    acme-core = "acme_dunning.core:AcmeCoreAdapter"

The entry point's name is the adapter's `name`. An adapter serves one target (credit_line,
agency or registry: every kind in its `kinds` has that TARGET). build_action_adapter constructs
it as `cls.from_config(options, context)` when the class defines that classmethod (adapters
that need the state directory), else as `cls(options)`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import ValidationError

from adapters.actions.base import TARGET, ActionAdapter
from adapters.base import AdapterOptions
from adapters.registry import InvalidAdapter, UnknownAdapter
from dunning.errors import ConfigError, ConfigProblem, DunningError

if TYPE_CHECKING:
    from dunning.config.actions import ActionsConfig

GROUP = "dunning.action_adapters"
CONFIG_FILE = "config/actions.yaml"
TARGETS: tuple[str, ...] = tuple(dict.fromkeys(TARGET.values()))
"""credit_line, agency, registry."""


@dataclass(frozen=True)
class ActionAdapterContext:
    """What build_action_adapter knows besides the options, for adapters that need it."""

    target: str
    state_dir: Path
    config: ActionsConfig


class _FromConfig(Protocol):
    def __call__(self, options: Any, context: ActionAdapterContext) -> ActionAdapter: ...


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def refresh() -> None:
    """Forget the cached entry points (after installing a package in a running process)."""
    _entry_points.cache_clear()
    action_adapter_class.cache_clear()


def available_action_adapters() -> list[str]:
    """The names of every installed action adapter."""
    return sorted(_entry_points())


@functools.cache
def action_adapter_class(name: str) -> type[ActionAdapter]:
    """The class registered under `name`; UnknownAdapter lists the names there are."""
    found = _entry_points().get(name)
    if found is None:
        names = ", ".join(available_action_adapters()) or "none"
        raise UnknownAdapter(f"no action adapter named {name!r} is installed; available: {names}")
    cls = found.load()
    if not (isinstance(cls, type) and issubclass(cls, ActionAdapter)):
        raise InvalidAdapter(f"entry point {name!r} ({found.value}) is not an ActionAdapter")
    if getattr(cls, "name", None) != name:
        raise InvalidAdapter(
            f"entry point {name!r} ({found.value}) leads to an adapter named "
            f"{getattr(cls, 'name', None)!r}; the two must be the same"
        )
    targets = {TARGET[kind] for kind in getattr(cls, "kinds", frozenset())}
    if len(targets) != 1:
        raise InvalidAdapter(
            f"action adapter {name!r} must perform the kinds of exactly one target "
            f"({', '.join(TARGETS)}); its kinds are of {len(targets)}"
        )
    return cls


def target_of(cls: type[ActionAdapter]) -> str:
    """The target an adapter class serves."""
    (target,) = {TARGET[kind] for kind in cls.kinds}
    return target


def _validate_options(
    cls: type[ActionAdapter], options: Mapping[str, Any]
) -> AdapterOptions | list[tuple[str, str]]:
    try:
        return cls.options_model.model_validate(dict(options))
    except ValidationError as exc:
        return [
            (
                ".".join(str(part) for part in error["loc"]),
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]


def action_options_problems(target: str, name: str, options: Mapping[str, Any]) -> list[str]:
    """Everything wrong with choosing adapter `name` and these options for `target`."""
    try:
        cls = action_adapter_class(name)
    except DunningError as exc:
        return [f"adapter: {exc}"]
    if target_of(cls) != target:
        return [f"adapter: {name!r} performs {target_of(cls)} actions, not {target}"]
    checked = _validate_options(cls, options)
    if isinstance(checked, list):
        return [f"options.{key}: {reason}" for key, reason in checked]
    return []


def build_action_adapter(
    target: str, actions_config: ActionsConfig, state_dir: Path
) -> ActionAdapter:
    """The configured adapter for `target`, options validated; ConfigError names the key."""
    if target not in TARGETS:
        raise ValueError(f"no action target {target!r}; targets: {', '.join(TARGETS)}")
    where = f"adapters.{target}"
    entry = actions_config.adapters.entry(target)
    try:
        cls = action_adapter_class(entry.adapter)
    except DunningError as exc:
        raise ConfigError([ConfigProblem(CONFIG_FILE, f"{where}.adapter", str(exc))]) from None
    if target_of(cls) != target:
        raise ConfigError(
            [
                ConfigProblem(
                    CONFIG_FILE,
                    f"{where}.adapter",
                    f"{entry.adapter!r} performs {target_of(cls)} actions, not {target}",
                )
            ]
        )
    options = _validate_options(cls, entry.options)
    if isinstance(options, list):
        raise ConfigError(
            [ConfigProblem(CONFIG_FILE, f"{where}.options.{key}", why) for key, why in options]
        )
    context = ActionAdapterContext(target=target, state_dir=state_dir, config=actions_config)
    from_config = getattr(cls, "from_config", None)
    if from_config is not None:
        return cast(_FromConfig, from_config)(options, context)
    construct = cast(Callable[[AdapterOptions], ActionAdapter], cls)
    return construct(options)
