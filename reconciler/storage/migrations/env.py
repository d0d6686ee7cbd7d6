"""Alembic's environment: always run from `reconciler.storage.migrate`, which passes the
connection (inside its transaction and, on PostgreSQL, under its advisory lock)."""

from __future__ import annotations

from alembic import context

from reconciler.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE by copy on SQLite
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
