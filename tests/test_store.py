from __future__ import annotations

from reconciler.storage.store import Store


def test_delivery_ids_are_remembered_across_a_restart(database_url: str) -> None:
    url = database_url
    first = Store(url)
    assert first.remember_delivery("shop", "d-1") is True
    assert first.remember_delivery("shop", "d-1") is False
    assert first.remember_delivery("other", "d-1") is True  # ids are per repo
    first.flush()
    second = Store(url)
    assert second.remember_delivery("shop", "d-1") is False
    assert second.remember_delivery("shop", "d-2") is True
