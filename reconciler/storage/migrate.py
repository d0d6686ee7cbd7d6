"""Bring a database to the schema of this version, safely when replicas start at once.

Alembic runs the revisions under `migrations/versions/` in one transaction. On PostgreSQL
that transaction first takes an advisory lock, so replicas that start together run the
migrations one after the other: the first creates or upgrades, the others find the head
already there (without the lock, two `CREATE TABLE`s of a fresh database collide on
`pg_type_typname_nsp_index`). A SQLite file is locked with `flock` beside it.

A database of release 0.1 has no `alembic_version`: it is first brought to 0.1's final
shape (`_legacy`: the name-keyed `environments` of the first version moved to the
(repo, name) key, columns added since), then upgraded from the start: the baseline
revision creates only the tables it lacks.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from reconciler.storage.schema import environments

MIGRATIONS = Path(__file__).parent / "migrations"
# pg_advisory_xact_lock key: "hoodymig" as a 64-bit integer, so no other lock collides.
_LOCK_KEY = int.from_bytes(b"hoodymig", "big") - 2**63

# Columns added to 0.1's tables after they first shipped (nullable, so old rows stay
# valid); 0.1's own `upgrade()` added them, so an 0.1 database may lack them.
_LEGACY_ADDED = {"pull_requests": {"event_at": "FLOAT"}}


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(config()).get_current_head()
    assert rev is not None
    return rev


def current(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: sa.Engine) -> None:
    """Upgrade `engine`'s database to the head revision (a no-op when it is there)."""
    with _file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        if current(conn) == head():
            return
        cfg = config()
        cfg.attributes["connection"] = conn
        tables = set(sa.inspect(conn).get_table_names())
        if "alembic_version" not in tables and "environments" in tables:
            _legacy(conn)  # then 0001 creates the tables this database lacks
        command.upgrade(cfg, "head")


@contextlib.contextmanager
def _file_lock(engine: sa.Engine) -> Iterator[None]:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _legacy(conn: sa.Connection) -> None:
    """An 0.1 database (from any of its versions) to 0.1's final shape, in place."""
    inspector = sa.inspect(conn)
    key = inspector.get_pk_constraint("environments").get("constrained_columns") or []
    if sorted(key) != ["name", "repo"]:
        old = [c["name"] for c in inspector.get_columns("environments")]
        keep = ", ".join(f'"{c}"' for c in old if c in environments.c)
        # Built beside the old table and renamed at the end: the old table's key and
        # index names (per schema in PostgreSQL) go with it when it is dropped.
        moved = environments.to_metadata(sa.MetaData(), name="environments_v2")
        moved.create(conn)
        conn.execute(
            sa.text(f"INSERT INTO environments_v2 ({keep}) SELECT {keep} FROM environments")
        )
        conn.execute(sa.text("DROP TABLE environments"))
        conn.execute(sa.text("ALTER TABLE environments_v2 RENAME TO environments"))
    inspector = sa.inspect(conn)
    for table_name, columns in _LEGACY_ADDED.items():
        if table_name not in inspector.get_table_names():
            continue  # created whole by the baseline revision
        present = {c["name"] for c in inspector.get_columns(table_name)}
        for name, kind in columns.items():
            if name not in present:
                conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))
