"""Durable state (SQLAlchemy Core): one schema, the store (events, statuses, deliveries)
and the run log of scheduled jobs on top of it."""
