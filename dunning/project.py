"""The program directory: a checkout holding dunning.yaml, config/ and templates/messages/.

Found the way dbt finds a project: an explicit --project-dir beats DUNNING_PROJECT_DIR, which
beats walking up from the current directory to the marker file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from dunning.config import Strategy, load_file, load_optional
from dunning.config._base import ConfigModel
from dunning.config.actions import ActionsConfig
from dunning.config.channels import ChannelsConfig
from dunning.config.lender import LenderProfile
from dunning.config.packs import load_packs
from dunning.errors import ProjectNotFound

CHANNELS_FILE_ENV = "DUNNING_CHANNELS_FILE"
"""A channels file to use instead of config/channels.yaml (relative to the program)."""

if TYPE_CHECKING:
    from dunning.config.actions import ActionsConfig
    from dunning.config.channels import ChannelsConfig
    from dunning.config.compliance import CompliancePack
    from dunning.config.lender import LenderProfile

MARKER = "dunning.yaml"


class ProjectSettings(ConfigModel):
    name: str = Field(min_length=1)
    lender: str = Field(default="Dunning Demo Lender", description="shown in letters and SMS")
    config_dir: str = "config"
    templates_dir: str = "templates/messages"
    state_dir: str = Field(default=".dunning", description="database, PDFs and ledgers")


def find_root(explicit: Path | None = None, start: Path | None = None) -> Path:
    if explicit is not None:
        root = explicit.resolve()
        if not (root / MARKER).is_file():
            raise ProjectNotFound(f"{root} is not a program directory (no {MARKER})")
        return root
    env = os.environ.get("DUNNING_PROJECT_DIR")
    if env:
        return find_root(Path(env))
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / MARKER).is_file():
            return candidate
    raise ProjectNotFound(
        f"no {MARKER} in {here} or any parent; pass --project-dir or set DUNNING_PROJECT_DIR"
    )


CONFIGS = frozenset({"settings", "strategy", "channels", "lender", "compliance_packs", "actions"})
"""The configuration a Project reads lazily from its files, each a cached property."""


@dataclass
class Project:
    root: Path
    given: dict[str, Any] = field(default_factory=dict, repr=False)
    """Configuration given instead of read from the files (see with_config)."""

    def __post_init__(self) -> None:
        unknown = set(self.given) - CONFIGS
        if unknown:
            raise TypeError(f"not a configuration of a program: {', '.join(sorted(unknown))}")
        # A given model takes the place of the cached property's first read.
        self.__dict__.update(self.given)

    def with_config(self, **configs: Any) -> Project:
        """This program directory with some of its configuration given instead of read: a
        worker planning by its run's strategy, a benchmark without letters, a test."""
        return Project(self.root, {**self.given, **configs})

    @classmethod
    def find(cls, explicit: Path | None = None) -> Project:
        return cls(find_root(explicit))

    @cached_property
    def settings(self) -> ProjectSettings:
        return load_file(self.root / MARKER, ProjectSettings, self.root)

    @property
    def config_dir(self) -> Path:
        return self.root / self.settings.config_dir

    @property
    def templates_dir(self) -> Path:
        return self.root / self.settings.templates_dir

    @property
    def state_dir(self) -> Path:
        env = os.environ.get("DUNNING_STATE_DIR")
        path = Path(env) if env else self.root / self.settings.state_dir
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def database_url(self) -> str:
        env = os.environ.get("DUNNING_DATABASE_URL")
        if env:
            return env
        return f"sqlite:///{self.state_dir / 'dunning.db'}"

    @cached_property
    def strategy(self) -> Strategy:
        return load_optional(self.config_dir / "strategy.yaml", Strategy, self.root)

    @cached_property
    def channels(self) -> ChannelsConfig:
        return load_file(self.channels_file, ChannelsConfig, self.root)

    @property
    def channels_file(self) -> Path:
        """config/channels.yaml, or the file DUNNING_CHANNELS_FILE names (relative to the
        program directory): the same program sent through other gateways, e.g. the demo's
        vendor mocks over loopback HTTP (config/channels.sandbox.yaml), or a staging setup."""
        chosen = os.environ.get(CHANNELS_FILE_ENV, "").strip()
        return self.root / chosen if chosen else self.config_dir / "channels.yaml"

    @cached_property
    def lender(self) -> LenderProfile:

        return load_file(self.config_dir / "lender.yaml", LenderProfile, self.root)

    @cached_property
    def compliance_packs(self) -> dict[str, CompliancePack]:
        """The policy packs under config/compliance/, by jurisdiction."""

        return load_packs(self.config_dir, self.root)

    @cached_property
    def actions(self) -> ActionsConfig:

        return load_optional(self.config_dir / "actions.yaml", ActionsConfig, self.root)
