"""A database of the previous schema (environments keyed by name) is upgraded in place,
on SQLite and PostgreSQL: rows kept unchanged, then keyed by (repo, name)."""

from __future__ import annotations

import sqlalchemy as sa

from reconciler.storage.store import Store

from .test_hostile_names import _V1


def test_the_name_keyed_table_is_upgraded_in_place(database_url: str) -> None:
    old = sa.create_engine(database_url)
    _V1.create_all(old)
    row = {
        "name": "main-shop",
        "repo": "shop",
        "ref": "refs/heads/main",
        "kind": "branch",
        "commit": "c" * 40,
        "status": "healthy",
        "url": "http://127.0.0.1:9",
        "last_error": None,
        "updated_at": 5.0,
    }
    with old.begin() as conn:
        conn.execute(_V1.tables["environments"].insert().values(**row))
    old.dispose()

    store = Store(database_url)
    assert store.environments() == [{**row, "last_output": None}]
    key = sa.inspect(store.engine).get_pk_constraint("environments")["constrained_columns"]
    assert sorted(key) == ["name", "repo"]

    # Another repo's row of the same name is its own row; neither overwrites the other.
    store.set_status("main-shop", "other", "failed", last_error="refused")
    assert store.environment("main-shop")["repo"] == "shop"
    assert store.environment("main-shop", "other")["status"] == "failed"
    assert store.name_holders(["main-shop"], "other")["main-shop"]["repo"] == "shop"
    store.forget_environment("main-shop", "other")
    assert [r["repo"] for r in store.environments()] == ["shop"]

    # Opening it again changes nothing.
    again = Store(database_url)
    assert again.environment("main-shop") == {**row, "last_output": None}
    store.engine.dispose()
    again.engine.dispose()
