"""The schema of release 0.1 (what `schema.upgrade()` built before migrations existed).

`if_not_exists`: an 0.1 database is upgraded through this revision too (`migrate._legacy`
fixes what 0.1 changed in place first); it creates only the tables that database lacks.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("repo", "delivery_id"),
        if_not_exists=True,
    )
    op.create_table(
        "environments",
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ref", sa.String(length=500), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=True),
        sa.Column("commit", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_output", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("repo", "name"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_environments_name", "environments", ["name"], unique=False, if_not_exists=True
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.Float(), nullable=False),
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("env", sa.String(length=100), nullable=True),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("level", sa.String(length=10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index("ix_events_env", "events", ["env"], unique=False, if_not_exists=True)
    op.create_index("ix_events_repo", "events", ["repo"], unique=False, if_not_exists=True)
    op.create_index("ix_events_ts", "events", ["ts"], unique=False, if_not_exists=True)
    op.create_table(
        "managed_entries",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("env", sa.String(length=100), nullable=False),
        sa.Column("user", sa.String(length=100), nullable=False),
        sa.Column("schedule", sa.String(length=200), nullable=True),
        sa.Column("run_at", sa.Float(), nullable=True),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_managed_entries_env", "managed_entries", ["env"], unique=False, if_not_exists=True
    )
    op.create_table(
        "pull_requests",
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=True),
        sa.Column("head_ref", sa.String(length=500), nullable=True),
        sa.Column("is_fork", sa.Boolean(), nullable=False),
        sa.Column("draft", sa.Boolean(), nullable=False),
        sa.Column("labels", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("event_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("repo", "number"),
        if_not_exists=True,
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("repo", sa.String(length=100), nullable=False),
        sa.Column("env", sa.String(length=100), nullable=False),
        sa.Column("entry_id", sa.String(length=64), nullable=False),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("schedule", sa.String(length=200), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("trigger", sa.String(length=20), nullable=False),
        sa.Column("scheduled_for", sa.Float(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("stdout", sa.Text(), nullable=True),
        sa.Column("stderr", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("env", "entry_id", "scheduled_for", "attempt", name="uq_run_claim"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_runs_env_entry", "runs", ["env", "entry_id", "id"], unique=False, if_not_exists=True
    )
    op.create_table(
        "suspensions",
        sa.Column("env", sa.String(length=100), nullable=False),
        sa.Column("since", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("env"),
        if_not_exists=True,
    )


def downgrade() -> None:
    for table in (
        "suspensions",
        "runs",
        "pull_requests",
        "managed_entries",
        "events",
        "environments",
        "deliveries",
    ):
        op.drop_table(table)
