"""Checks that span files of a program directory (config against templates, and so on)."""

from __future__ import annotations

from collections.abc import Callable

from dunning.project import Project


def extra_config_checks(project: Project) -> list[Callable[[], None]]:
    """Cross-file checks run by `dunning config check` after each file validated on its own."""

    def settings() -> None:
        _ = project.settings

    return [settings]
