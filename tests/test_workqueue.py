from __future__ import annotations

import itertools
import threading

from reconciler.gitops.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_many_adds_while_running_give_exactly_one_more_pass() -> None:
    q = WorkQueue(Clock())
    q.add("shop")
    assert q.get(timeout=0) == "shop"
    for _ in range(1000):
        q.add("shop")
    assert q.get(timeout=0) is None  # never two passes of one key at once
    q.done("shop")
    assert q.get(timeout=0) == "shop"
    q.done("shop")
    assert q.get(timeout=0) is None


def test_queued_key_is_held_once() -> None:
    q = WorkQueue(Clock())
    for _ in range(5):
        q.add("a")
    q.add("b")
    assert q.depth() == 2
    assert {q.get(timeout=0), q.get(timeout=0)} == {"a", "b"}


def test_requeue_after_waits_for_the_clock() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.done("a", requeue_after=10)
    assert q.get(timeout=0) is None
    clock.t = 10
    assert q.get(timeout=0) == "a"


def test_shutdown_wakes_waiters() -> None:
    q = WorkQueue()
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    q.shutdown()
    t.join(2)
    assert got == [None]


def test_min_interval_spaces_passes_of_a_storm_but_not_the_first() -> None:
    clock = Clock()
    q = WorkQueue(clock, min_interval=2.5)
    q.add("shop")
    assert q.get(timeout=0) == "shop"  # the first pass starts at once
    starts = [clock.t]
    for step in range(1, 101):  # 100 pushes over 10 s while passes take 0.5 s
        clock.t = step * 0.1
        q.add("shop")
        if step % 5 == 0 and "shop" in q._running:
            q.done("shop")
        got = q.get(timeout=0)
        if got:
            starts.append(clock.t)
    assert len(starts) <= 5
    assert all(b - a >= 2.5 - 1e-9 for a, b in itertools.pairwise(starts))


def test_an_add_to_an_idle_key_runs_at_once_even_right_after_a_pass() -> None:
    clock = Clock()
    q = WorkQueue(clock, min_interval=2.5)
    q.add("shop")
    assert q.get(timeout=0) == "shop"
    clock.t = 0.2
    q.done("shop")
    clock.t = 0.3
    q.add("shop")  # a new PR opened: no reason to wait
    assert q.get(timeout=0) == "shop"
