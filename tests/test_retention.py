"""Nothing the webhook endpoint or the event log keeps grows without bound: the in-memory
delivery keys, the deliveries table and the events table are pruned by age and count
(`retention:` in hoody.yaml), on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from reconciler.core.settings import RetentionSettings
from reconciler.storage import deliveries as deliveries_mod
from reconciler.storage.schema import deliveries, events
from reconciler.storage.store import Store


def rows(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


def test_delivery_keys_in_memory_are_bounded_by_count_and_age(database_url: str) -> None:
    store = Store(database_url, RetentionSettings(deliveries_max_count=50, deliveries_max_age=1))
    shared = database_url.startswith("postgresql")  # the table decides (replicas): no memory
    for i in range(500):
        assert store.remember_delivery("shop", f"d-{i}")
    assert store.deliveries.remembered() == (0 if shared else 50)
    assert store.remember_delivery("shop", "d-499") is False  # the newest are kept
    if shared:
        assert store.deliveries.prune() == 450  # the table is bounded by the prune
    assert store.remember_delivery("shop", "d-0") is True  # the oldest went
    assert store.remember_delivery("shop", "d-1") is True
    time.sleep(1.1)
    assert store.remember_delivery("shop", "d-0") is True  # older than the window
    assert store.remember_delivery("shop", "late")
    assert store.deliveries.remembered() == (0 if shared else 2)  # the rest went with age


def test_the_deliveries_table_is_pruned_by_age_and_count(database_url: str) -> None:
    store = Store(database_url, RetentionSettings(deliveries_max_count=100))
    for i in range(300):
        store.remember_delivery("shop", f"d-{i}")
    store.flush()
    assert rows(store, deliveries) == 300
    assert store.deliveries.prune() == 200
    assert rows(store, deliveries) == 100
    later = time.time() + 8 * 86400  # past the 7-day window
    store.deliveries.prune(now=later)
    assert rows(store, deliveries) == 0


def test_the_events_table_is_pruned_by_age_and_count(database_url: str) -> None:
    store = Store(database_url, RetentionSettings(events_max_count=40, events_max_age=3600))
    for i in range(100):
        store.add_event("shop", None, "note", f"event {i}")
    assert store.prune_events() == 60
    kept = store.events(limit=1000)
    assert len(kept) == 40 and kept[0].message == "event 99" and kept[-1].message == "event 60"
    assert store.prune_events(now=time.time() + 7200) == 40
    assert rows(store, events) == 0


def test_the_background_writer_prunes_on_its_own(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deliveries_mod, "MAINTENANCE_EVERY", 0.2)
    store = Store(database_url, RetentionSettings(events_max_count=5, deliveries_max_count=5))
    for i in range(20):
        store.add_event("shop", None, "note", f"event {i}")
        store.remember_delivery("shop", f"d-{i}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (rows(store, events) > 5 or rows(store, deliveries) > 5):
        time.sleep(0.1)
    assert rows(store, events) == 5 and rows(store, deliveries) == 5
