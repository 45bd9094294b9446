"""Typed configuration of a program directory (the YAML files under config/)."""

from __future__ import annotations

from dunning.config.actions import ActionsConfig
from dunning.config.channels import ChannelsConfig
from dunning.config.compliance import BannedPhrases, CompliancePack
from dunning.config.legal import LegalConfig
from dunning.config.lender import LenderProfile
from dunning.config.loader import check_directory, load_file, load_optional, read_yaml, register
from dunning.config.runners import RunnersConfig
from dunning.config.schedules import Schedules
from dunning.config.strategy import DpdRange, Step, Strategy, Tier

register("strategy.yaml", Strategy, required=True)
register("channels.yaml", ChannelsConfig, required=True)
# Other channels files for the same program (DUNNING_CHANNELS_FILE): the demo's sandbox, staging.
register("channels.*.yaml", ChannelsConfig)
register("lender.yaml", LenderProfile)
register("compliance/[A-Z]*.yaml", CompliancePack)
register("compliance/banned_phrases.yaml", BannedPhrases)
register("actions.yaml", ActionsConfig)
register("legal.yaml", LegalConfig)
register("schedules.yaml", Schedules)
register("runners.yaml", RunnersConfig)

__all__ = [
    "ActionsConfig",
    "BannedPhrases",
    "ChannelsConfig",
    "CompliancePack",
    "DpdRange",
    "LegalConfig",
    "LenderProfile",
    "RunnersConfig",
    "Schedules",
    "Step",
    "Strategy",
    "Tier",
    "check_directory",
    "load_file",
    "load_optional",
    "read_yaml",
    "register",
]
