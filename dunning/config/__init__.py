"""Typed configuration of a program directory (the YAML files under config/)."""

from __future__ import annotations

from dunning.config.loader import check_directory, load_file, load_optional, read_yaml, register
from dunning.config.strategy import DpdRange, Step, Strategy, Tier

register("strategy.yaml", Strategy, required=True)

__all__ = [
    "DpdRange",
    "Step",
    "Strategy",
    "Tier",
    "check_directory",
    "load_file",
    "load_optional",
    "read_yaml",
    "register",
]
