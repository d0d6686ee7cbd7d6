"""Leases on a real database (SQLite and PostgreSQL): replicas spread the repos, take
over expired leases, never lead the same repo at the same time, and a replica that cannot
reach the database stops leading before its leases can expire for anybody else."""

from __future__ import annotations

import time

import pytest

from reconciler.serve.leadership import Leadership
from reconciler.storage.leases import Leases
from reconciler.storage.store import Store

REPOS = ["r1", "r2", "r3", "r4", "r5"]


def replica(store: Store, name: str, ttl: float = 1.0, renew: float = 0.2) -> Leadership:
    gained: list[str] = []
    lost: list[str] = []
    lead = Leadership(
        Leases(store.engine, name, ttl), REPOS, renew, on_gained=gained.append, on_lost=lost.append
    )
    lead.gained, lead.lost = gained, lost  # type: ignore[attr-defined]
    return lead


def until(check, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        time.sleep(0.02)
    return time.monotonic() - start


def test_replicas_spread_the_repos_and_each_repo_has_one_leader(database_url: str) -> None:
    store = Store(database_url)
    a, b = replica(store, "a"), replica(store, "b")
    a.step()  # alone: a takes everything
    assert set(a.led()) == set(REPOS)
    b.step()  # b sees two replicas, but everything is held
    assert b.led() == {}
    a.step()  # a sees b: keeps its share (3 of 5), gives the rest up
    b.step()
    assert len(a.led()) == 3 and len(b.led()) == 2
    assert set(a.led()) | set(b.led()) == set(REPOS)
    assert not set(a.led()) & set(b.led())
    for _ in range(5):
        a.step()
        b.step()
        assert not set(a.led()) & set(b.led())
    holders = {lease.repo: lease.holder for lease in a.leases.all()}
    assert holders == {**{r: "a" for r in a.led()}, **{r: "b" for r in b.led()}}


def test_a_dead_holder_is_taken_over_after_the_ttl(database_url: str) -> None:
    store = Store(database_url)
    a, b = replica(store, "a"), replica(store, "b")
    a.step()
    epochs = dict(a.led())
    # a dies (kill -9: it neither renews nor gives anything up); b takes over on expiry.
    b.step()
    assert b.led() == {}
    waited = until(lambda: (b.step(), set(b.led()) == set(REPOS))[1])
    assert waited <= 3.0
    assert all(b.led()[r] == epochs[r] + 1 for r in REPOS)  # a new term: fencing token
    assert sorted(b.gained) == sorted(REPOS)  # type: ignore[attr-defined]


def test_a_clean_stop_hands_over_at_once(database_url: str) -> None:
    store = Store(database_url)
    a, b = replica(store, "a", ttl=30.0, renew=1.0), replica(store, "b", ttl=30.0, renew=1.0)
    a.step()
    a.stop()
    b.step()
    assert set(b.led()) == set(REPOS)


def test_a_replica_that_loses_the_database_stops_before_anybody_takes_over(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(database_url)
    a, b = replica(store, "a"), replica(store, "b")
    a.step()
    assert set(a.led()) == set(REPOS)

    def down(*_a: object, **_k: object) -> None:
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(a.leases, "heartbeat", down)
    monkeypatch.setattr(a.leases, "renew", down)
    overlap = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline and set(b.led()) != set(REPOS):
        a.step()
        b.step()
        overlap += [r for r in REPOS if a.leads(r) and b.leads(r)]
        time.sleep(0.02)
    assert overlap == []
    assert set(b.led()) == set(REPOS)
    assert a.led() == {} and sorted(a.lost) == sorted(REPOS)  # type: ignore[attr-defined]
    assert a.last_error and "unreachable" in a.last_error


def test_wakeups_reach_the_leader(database_url: str) -> None:
    store = Store(database_url)
    follower, leader = Leases(store.engine, "f", 5.0), Leases(store.engine, "l", 5.0)
    start, _ = leader.wakeups_after(0, [])
    follower.wake("r1", "webhook push")
    follower.wake("r3", "webhook push")
    newest, woken = leader.wakeups_after(start, ["r1", "r2"])
    assert woken == {"r1"} and newest > start
    assert leader.wakeups_after(newest, ["r1", "r3"]) == (newest, set())
