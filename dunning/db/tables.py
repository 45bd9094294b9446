"""Imports every module that defines tables, so SQLModel.metadata is complete."""

from __future__ import annotations

from dunning.db import models, outreach_models  # noqa: F401
