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


def test_pull_request_states_are_ordered_by_payload_time_and_survive_a_restart(
    database_url: str,
) -> None:
    from reconciler.storage.store import PullRequestState

    first = Store(database_url)
    assert first.record_pull_request("shop", PullRequestState(2, "open", event_at=100.0))
    assert first.record_pull_request("shop", PullRequestState(2, "closed", event_at=200.0))
    assert not first.record_pull_request("shop", PullRequestState(2, "open", event_at=150.0))
    assert not first.record_pull_request("shop", PullRequestState(2, "open"))  # no time: stale
    assert first.record_pull_request("shop", PullRequestState(2, "closed", event_at=200.0))
    assert first.record_pull_request("shop", PullRequestState(3, "open", event_at=1.0))
    assert first.pull_requests("shop")[2].state == "closed"  # before the writer ran, too
    first.flush()
    second = Store(database_url)
    states = second.pull_requests("shop")
    assert (states[2].state, states[2].event_at, states[3].state) == ("closed", 200.0, "open")
    assert not second.record_pull_request("shop", PullRequestState(2, "open", event_at=199.0))
    assert second.record_pull_request("shop", PullRequestState(2, "open", event_at=300.0))
    second.flush()
    assert Store(database_url).pull_requests("shop")[2].state == "open"


def test_concurrent_pull_request_states_end_at_the_newest_in_memory_and_on_disk(
    database_url: str,
) -> None:
    import random
    import threading

    from reconciler.storage.store import PullRequestState

    store = Store(database_url)
    stamps = list(range(1, 1601))
    random.Random(7).shuffle(stamps)

    def record(part: list[int]) -> None:
        for t in part:
            store.record_pull_request("shop", PullRequestState(5, f"s{t}", event_at=float(t)))

    threads = [threading.Thread(target=record, args=(stamps[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.pull_requests("shop")[5].event_at == 1600.0
    store.flush()
    assert Store(database_url).pull_requests("shop")[5].state == "s1600"
