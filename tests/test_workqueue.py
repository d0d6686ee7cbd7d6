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
    q.done("a", retry_after=10)
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


def next_run(q: WorkQueue, clock: Clock, key: str, horizon: float = 1000.0) -> float | None:
    """How long after now `key` becomes due (stepping the injected clock), None if never."""
    start = clock.t
    step = 0.5
    while clock.t - start <= horizon:
        if q.get(timeout=0) == key:
            waited = clock.t - start
            clock.t = start
            return waited
        clock.t += step
    clock.t = start
    return None


def test_a_failing_key_backs_off_doubling_up_to_the_cap_and_resets_on_success() -> None:
    clock = Clock()
    q = WorkQueue(clock, max_backoff=100)
    q.add("shop")
    assert q.get(timeout=0) == "shop"
    waits = []
    for _ in range(5):  # five failures in a row with a first delay of 15 s
        assert q.done("shop", retry_after=15) is not None
        wait = next_run(q, clock, "shop")
        assert wait is not None
        waits.append(wait)
        clock.t += wait
    assert waits == [15, 30, 60, 100, 100]
    assert q.failures("shop") == 5
    assert q.done("shop") is None  # success: nothing queued, count reset
    assert q.failures("shop") == 0 and next_run(q, clock, "shop") is None
    q.add("shop")
    assert q.get(timeout=0) == "shop"
    q.done("shop", retry_after=15)  # the next failure starts from the first delay again
    assert next_run(q, clock, "shop") == 15


def test_backoff_is_per_key() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    for key in ("a", "b"):
        q.add(key)
    assert {q.get(timeout=0), q.get(timeout=0)} == {"a", "b"}
    q.done("a", retry_after=10)
    q.done("b", retry_after=10)
    assert {q.get(timeout=0) for _ in range(2)} == {None}
    clock.t = 10
    assert {q.get(timeout=0), q.get(timeout=0)} == {"a", "b"}
    q.done("a", retry_after=10)  # a fails again: 20 s
    q.done("b")  # b succeeds
    clock.t = 29
    assert q.get(timeout=0) is None
    clock.t = 30
    assert q.get(timeout=0) == "a"
    assert (q.failures("a"), q.failures("b")) == (2, 0)


def test_a_trigger_during_a_backoff_runs_the_key_without_resetting_the_count() -> None:
    clock = Clock()
    q = WorkQueue(clock)
    q.add("shop")
    q.get(timeout=0)
    q.done("shop", retry_after=60)
    clock.t = 5
    q.add("shop")  # a webhook: new information, no reason to wait a minute
    assert q.get(timeout=0) == "shop"
    assert q.done("shop", retry_after=60) == 120  # the failures still count
    q.add("shop")
    q.get(timeout=0)
    q.add("shop")  # an add while it runs is one more pass after it, backoff or not
    assert q.done("shop", retry_after=60) == 0


def test_many_failures_never_overflow_the_backoff() -> None:
    clock = Clock()
    q = WorkQueue(clock, max_backoff=300)
    q.add("shop")
    delays = []
    for _ in range(2000):
        assert q.get(timeout=0) == "shop"
        delays.append(q.done("shop", retry_after=15))
        clock.t += 300
    assert delays[:6] == [15, 30, 60, 120, 240, 300] and set(delays[5:]) == {300}
    assert q.failures("shop") == 2000
