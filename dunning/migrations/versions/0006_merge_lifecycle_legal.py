"""Merge the lifecycle and legal branches into one head.

Revision ID: 0006_merge_lifecycle_legal
Revises: 0003_lifecycle, 0005_legal
"""

from __future__ import annotations

revision = "0006_merge_lifecycle_legal"
down_revision = ("0003_lifecycle", "0005_legal")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
