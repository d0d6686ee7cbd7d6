"""Alembic migrations of the database schema (`reconciler.storage.migrate` runs them)."""
