"""Replicas on one PostgreSQL database share the webhook dedupe and the pull request
states: a delivery that reaches two replicas is taken once, a 503 leaves nothing behind on
any of them, and a state written on one replica is what the leader's pass reads."""

from __future__ import annotations

import threading

import pytest

from reconciler.storage.shared_deliveries import SharedDeliveryLog
from reconciler.storage.store import PullRequestState, Store

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def test_postgresql_stores_share_the_table(database_url: str) -> None:
    assert isinstance(Store(database_url).deliveries, SharedDeliveryLog)


def test_a_delivery_reaching_several_replicas_is_taken_by_exactly_one(database_url: str) -> None:
    replicas = [Store(database_url) for _ in range(6)]
    for round_ in range(20):
        keys = (f"guid-{round_}", f"sha256:{round_}")
        results: list[bool] = []
        start = threading.Barrier(len(replicas))

        threads = [
            threading.Thread(target=deliver, args=(s, keys, start, results)) for s in replicas
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(results) == [False] * 5 + [True], round_


def deliver(
    store: Store, keys: tuple[str, str], start: threading.Barrier, results: list[bool]
) -> None:
    start.wait()
    results.append(store.deliveries.claim("shop", keys))


def test_a_released_claim_lets_the_retry_in_on_another_replica(database_url: str) -> None:
    a, b = Store(database_url), Store(database_url)
    assert a.deliveries.claim("shop", ["guid-1"])
    assert not b.deliveries.claim("shop", ["guid-1"])  # a holds it
    a.deliveries.release("shop", ["guid-1"])  # a answered 503
    assert b.deliveries.claim("shop", ["guid-1"])  # the provider's retry, on b
    b.deliveries.confirm("shop", ["guid-1"])
    assert not a.deliveries.claim("shop", ["guid-1"])
    assert a.deliveries.claim("other-repo", ["guid-1"])  # keys are per repo


def test_a_claim_holding_one_known_key_takes_none(database_url: str) -> None:
    a, b = Store(database_url), Store(database_url)
    assert a.deliveries.claim("shop", ["guid-1"])
    assert not b.deliveries.claim("shop", ["guid-2", "guid-1"])  # same body, new id
    assert b.deliveries.claim("shop", ["guid-2"])  # guid-2 was given back


def test_pull_request_states_are_read_from_the_table_and_ordered_by_it(
    database_url: str,
) -> None:
    leader, follower = Store(database_url), Store(database_url)
    assert leader.pull_requests("shop") == {}
    opened = PullRequestState(7, "open", "opened", "feature", event_at=100.0)
    closed = PullRequestState(7, "closed", "closed", "feature", event_at=200.0)
    assert follower.record_pull_request("shop", opened)
    assert leader.pull_requests("shop")[7].state == "open"  # written on the follower
    assert leader.record_pull_request("shop", closed)
    assert not follower.record_pull_request("shop", opened)  # a replay of the older one
    assert follower.pull_requests("shop")[7].state == "closed"
    assert leader.pull_requests("shop")[7].state == "closed"
    reopened = PullRequestState(7, "open", "reopened", "feature", event_at=200.0)
    assert follower.record_pull_request("shop", reopened)  # equal times go by arrival
    assert leader.pull_requests("shop")[7].action == "reopened"
