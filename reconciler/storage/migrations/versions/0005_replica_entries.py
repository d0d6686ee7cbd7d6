"""`replicas.schedule_entries`: the cron entries each replica schedules, written with its
heartbeat, so `hoody_schedule_entries` on every replica is the sum over the live ones.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.add_column(sa.Column("schedule_entries", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replicas") as batch:
        batch.drop_column("schedule_entries")
