"""The database schema: one `metadata` with every table, so the store and the run log
both build on it and neither imports the other. Types stay portable (SQLite and
PostgreSQL). A change here is also a new revision under `migrations/versions/`
(`tests/test_migrations.py` fails while the two differ)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False, index=True),
    sa.Column("repo", sa.String(100), nullable=False, index=True),
    sa.Column("env", sa.String(100), nullable=True, index=True),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("level", sa.String(10), nullable=False, default="info"),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=True),
)

# Keyed by (repo, name): two repos never share a row, even while one of them is being
# refused a name the other holds. `migrate()` moves a database of the name-keyed schema.
environments = sa.Table(
    "environments",
    metadata,
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("ref", sa.String(500), nullable=True),
    sa.Column("kind", sa.String(10), nullable=True),
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, default="pending"),
    sa.Column("url", sa.String(500), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),  # the status line: public
    sa.Column("last_output", sa.Text, nullable=True),  # build or container output: not public
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_environments_name", "name"),
)

suspensions = sa.Table(
    "suspensions",
    metadata,
    sa.Column("env", sa.String(100), primary_key=True),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    sa.Column("received_at", sa.Float, nullable=False),
)

pull_requests = sa.Table(
    "pull_requests",
    metadata,
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(10), nullable=False),  # open | closed
    sa.Column("action", sa.String(40), nullable=True),
    sa.Column("head_ref", sa.String(500), nullable=True),
    sa.Column("is_fork", sa.Boolean, nullable=False, default=False),
    sa.Column("draft", sa.Boolean, nullable=False, default=False),
    sa.Column("labels", sa.Text, nullable=True),  # JSON list
    sa.Column("updated_at", sa.Float, nullable=False),  # when it was recorded
    sa.Column("event_at", sa.Float, nullable=True),  # the payload's own timestamp
)

managed_entries = sa.Table(
    "managed_entries",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("env", sa.String(100), nullable=False, index=True),
    sa.Column("user", sa.String(100), nullable=False),
    sa.Column("schedule", sa.String(200), nullable=True),
    sa.Column("run_at", sa.Float, nullable=True),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo", sa.String(100), nullable=False),
    sa.Column("env", sa.String(100), nullable=False),
    sa.Column("entry_id", sa.String(64), nullable=False),
    sa.Column("line", sa.Integer, nullable=True),
    sa.Column("schedule", sa.String(200), nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(20), nullable=False),
    sa.Column("scheduled_for", sa.Float, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("stdout", sa.Text, nullable=True),
    sa.Column("stderr", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),  # scheduler instance that claimed it
    sa.Column("http_status", sa.Integer, nullable=True),  # an HTTP job's response status
    sa.Column("duration", sa.Float, nullable=True),  # seconds the job ran
    sa.UniqueConstraint("env", "entry_id", "scheduled_for", "attempt", name="uq_run_claim"),
    sa.Index("ix_runs_env_entry", "env", "entry_id", "id"),
)


config_values = sa.Table(
    "config_values",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# Leadership of replicas on one database (`storage/leases.py`): each repo is reconciled
# by the holder of its lease; `epoch` grows with every change of holder (a fencing token).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("repo", sa.String(100), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),  # database time, seconds
)

replicas = sa.Table(
    "replicas",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False),  # database time of its last heartbeat
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("address", sa.String(200), nullable=True),  # where its API answers
    sa.Column("schedule_entries", sa.Integer, nullable=True),  # cron entries it schedules
)

# "Look at repo X" for whichever replica leads X: a webhook may land on any replica.
wakeups = sa.Table(
    "wakeups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repo", sa.String(100), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("reason", sa.String(100), nullable=False),
)
