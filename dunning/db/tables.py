"""Imports every module that defines tables, so SQLModel.metadata is complete."""

from __future__ import annotations

from dunning.db import legal_models, lifecycle_models, models, outreach_models  # noqa: F401
