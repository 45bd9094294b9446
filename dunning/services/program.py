"""Checks that span files of a program directory (config against templates, and so on)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from adapters.registry import check_actions, check_channels
from dunning.compliance.registered import load_registered
from dunning.errors import ConfigError, ConfigProblem, DunningError
from dunning.project import Project
from dunning.rendering import TemplateStore
from dunning.types import Channel


def required_templates(project: Project) -> list[tuple[str, Channel, str, str]]:
    """(where it is required, channel, folder, template name) for every template a run uses."""
    strategy = project.strategy
    needed: list[tuple[str, Channel, str, str]] = []
    for index, tier in enumerate(strategy.tiers):
        for step_index, step in enumerate(tier.cadence):
            if step.channel is None or step.template is None:
                continue
            key = f"tiers.{index}.cadence.{step_index}"
            needed.append((key, step.channel, tier.name, step.template))
            fallback = strategy.channel_fallback.get(step.channel)
            if fallback is not None:
                needed.append((f"{key} (fallback)", fallback, tier.name, step.template))
        needed.append(
            (
                f"promises.broken_template ({tier.name})",
                Channel.SMS,
                tier.name,
                strategy.promises.broken_template,
            )
        )
    needed.append(
        (
            "plans.confirmation_template",
            Channel.LETTER,
            "plan",
            strategy.plans.confirmation_template,
        )
    )
    needed.append(
        ("plans.reminder_template", Channel.SMS, "plan", strategy.plans.reminder_template)
    )
    return needed


def check_templates_exist(project: Project) -> None:
    """Every template the strategy names exists in every locale the lender writes in."""

    try:
        store = TemplateStore(project.templates_dir)
    except DunningError as exc:
        raise ConfigError([ConfigProblem("templates/messages", "", str(exc))]) from None
    locales = sorted(project.lender.locales)
    problems = []
    seen = set()
    for key, channel, folder, name in required_templates(project):
        for locale in locales:
            if (channel, folder, name, locale) in seen:
                continue
            seen.add((channel, folder, name, locale))
            if store.find(channel, folder, name, locale) is None:
                problems.append(
                    ConfigProblem(
                        "config/strategy.yaml",
                        key,
                        f"template {channel.value}/{folder}/{name}.{locale} does not exist",
                    )
                )
    if problems:
        raise ConfigError(problems)


def check_adapters(project: Project) -> None:
    """The adapters config/channels.yaml and config/actions.yaml choose, and their options.

    A file that does not load is reported by its own check; only the files that load are
    checked here, so no problem is reported twice.
    """
    problems: list[ConfigProblem] = []
    with contextlib.suppress(ConfigError):
        problems += check_channels(project.channels)
    with contextlib.suppress(ConfigError):
        problems += check_actions(project.actions)
    if problems:
        raise ConfigError(problems)


def extra_config_checks(project: Project) -> list[Callable[[], None]]:
    """Cross-file checks run by `dunning config check` after each file validated on its own."""

    def settings() -> None:
        _ = project.settings

    def packs() -> None:
        _ = project.compliance_packs

    def registered_texts() -> None:
        # The daily run reads them (a bad file stops it), so the check names the file and key.
        load_registered(project.templates_dir.parent, project.root)

    return [
        settings,
        packs,
        lambda: check_adapters(project),
        lambda: check_templates_exist(project),
        registered_texts,
    ]
