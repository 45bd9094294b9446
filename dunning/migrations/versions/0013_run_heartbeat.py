"""run.heartbeat_at: a running run stamps it, so a run whose process died shows as abandoned

Before, a run whose process was killed stayed `running` for ever. Now the run lifecycle
(dunning.services.run_book) stamps `heartbeat_at` while the run is alive; a `running` row
whose heartbeat (or, for rows from before this revision, whose start) is older than the
configured limit reads as `abandoned`, and the next run of the same flow and date marks it so.

Revision ID: 0013_run_heartbeat
Revises: 0012_outbox_subject_text

"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013_run_heartbeat"
down_revision = "0012_outbox_subject_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
