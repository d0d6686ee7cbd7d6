"""The schema is managed by Alembic revisions: they build exactly `schema.metadata`,
upgrade a database of release 0.1 in place, and are safe when replicas start at once on
a fresh PostgreSQL database. The spec-hash key lives in the database, so every replica
(each with its own state_dir) hashes alike, and 0.1's `state_dir/hash.key` is taken over."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from reconciler.gitops.sources import load_hash_key
from reconciler.storage import migrate
from reconciler.storage.schema import metadata
from reconciler.storage.store import Store, make_engine


def test_the_revisions_build_exactly_the_schema(database_url: str) -> None:
    store = Store(database_url)
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        # A column or table added to schema.py without a revision fails here.
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    migrate.migrate(store.engine)  # again: a no-op
    with store.engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert versions == [(migrate.head(),)]


def test_a_database_of_release_0_1_is_upgraded_in_place(database_url: str, tmp_path: Path) -> None:
    # Release 0.1's schema is the baseline revision, without Alembic's own table (0.1
    # created its tables with `create_all` and kept no version).
    engine = make_engine(database_url)
    with engine.begin() as conn:
        cfg = migrate.config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(sa.text("DROP TABLE alembic_version"))
        conn.execute(
            sa.text(
                'INSERT INTO environments (repo, name, status, "commit", updated_at) '
                "VALUES ('shop', 'main-shop', 'healthy', :c, 5.0)"
            ),
            {"c": "c" * 40},
        )
        conn.execute(
            sa.text(
                "INSERT INTO events (ts, repo, env, kind, level, message) "
                "VALUES (1.0, 'shop', 'main-shop', 'created', 'info', 'created main-shop')"
            )
        )
    engine.dispose()
    old_key = os.urandom(32)
    (tmp_path / "hash.key").write_bytes(old_key)

    store = Store(database_url)
    with store.engine.connect() as conn:
        assert migrate.current(conn) == migrate.head()
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    assert store.environment("main-shop", "shop")["status"] == "healthy"
    assert [e.message for e in store.events(repo="shop")] == ["created main-shop"]
    # The key 0.1 kept in state_dir is the database's key now: hashes do not change, so
    # nothing is redeployed; a replica without that file gets the same key.
    assert load_hash_key(store, tmp_path) == old_key
    assert load_hash_key(Store(database_url), tmp_path / "other") == old_key


def test_every_replica_gets_the_same_hash_key(database_url: str, tmp_path: Path) -> None:
    a, b = Store(database_url), Store(database_url)
    key = load_hash_key(a, tmp_path / "a")
    assert len(key) == 32
    assert load_hash_key(b, tmp_path / "b") == key
    assert not (tmp_path / "a" / "hash.key").exists()  # nothing secret left in state_dir


_REPLICA = """
import sys, time
from reconciler.storage.store import Store
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
store = Store(sys.argv[1])
print(store.hash_key().hex())
"""


def test_replicas_starting_together_on_a_fresh_database(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("replicas share a PostgreSQL database")
    start = time.time() + 3.0  # every process imported and waiting before the instant
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLICA, database_url, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-2000:]
    keys = {out.strip() for out, _ in results}
    assert len(keys) == 1 and len(next(iter(keys))) == 64
    engine = make_engine(database_url)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert versions == [(migrate.head(),)]
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    engine.dispose()
