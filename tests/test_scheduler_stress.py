"""Job bookkeeping under contention: many short jobs finishing on the pool's workers
while the timer fires, tables are swapped, manual runs start and readers (as the views
do) look at every entry's runs, all at once."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.crontab import Crontab, managed_entry, parse_crontab
from reconciler.cron.jobs import Handle, Job, Outcome
from reconciler.cron.scheduler import Scheduler
from reconciler.storage.store import Store

from .scheduler_helpers import Clock, make, target


class SteppingClock:
    def __init__(self, at: datetime) -> None:
        self.t = at
        self.lock = threading.Lock()

    def now(self) -> datetime:
        with self.lock:
            return self.t

    def advance(self, seconds: float) -> datetime:
        with self.lock:
            self.t += timedelta(seconds=seconds)
            return self.t


class ShortJobs:
    """Each job takes 0-2 ms (sleeping, so the other threads run meanwhile)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ran: list[int] = []

    def run(self, job: Job, handle: Handle) -> Outcome:
        time.sleep(random.random() / 500)
        with self.lock:
            self.ran.append(job.run_id)
        return Outcome("succeeded", 0, "", "")


@pytest.fixture
def fine_switching() -> Iterator[None]:
    """Threads switch every 10 µs instead of 5 ms: many more interleavings per second."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(before)


def crontab(version: int) -> str:
    lines = [f"@every 1s job{k}\n" for k in range(12)]
    lines += [f"@every 2s v{version % 3}-{k}\n" for k in range(4)]  # these come and go
    return "".join(lines)


def test_many_short_jobs_with_concurrent_swaps_keep_the_bookkeeping_exact(
    database_url: str, fine_switching: None
) -> None:
    store = Store(database_url)
    clock = SteppingClock(datetime(2026, 1, 1, 10, 0, tzinfo=UTC))
    runner = ShortJobs()
    s = Scheduler(store.runs, runner, clock=clock, workers=8, per_env=8, owner="a")
    envs = [f"e{i}" for i in range(4)]
    allow = target(concurrency="allow", history=10_000)  # no trims: every row stays
    for env in envs:
        s.replace(env, allow, parse_crontab(crontab(0)))
        # One-shot entries leave their (managed) table as they fire, one per instant.
        start = clock.now()
        once = tuple(
            managed_entry(f"{env}-once{k}", "once", run_at=start + timedelta(seconds=k + 1))
            for k in range(100)
        )
        s.replace(env, allow, Crontab(once, ()), source="managed")
    errors: list[BaseException] = []
    stop = threading.Event()

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def loop() -> None:
            try:
                while not stop.is_set():
                    fn()
            except BaseException as e:  # noqa: BLE001 - reported by the test
                errors.append(e)

        return loop

    def read() -> None:  # what the views and the gauges do, with no lock of their own
        for env in envs:
            for table in s.tables_of(env):
                for state in table.entries.values():
                    state.live()
                    state.busy()
                    len(state.running)
        sum(len(t.entries) for t in list(s.tables.values()))

    versions = iter(range(1, 10**6))

    def swap() -> None:
        s.replace(random.choice(envs), allow, parse_crontab(crontab(next(versions))))
        time.sleep(0.001)

    def manual() -> None:
        env = random.choice(envs)
        states = s.entries(env)
        if states:
            s.trigger(env, random.choice(states).entry.id)
        time.sleep(0.0005)

    threads = [threading.Thread(target=guarded(f), daemon=True) for f in (read, read, swap, manual)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    try:
        for _ in range(120):  # 120 instants, 13-21 firings each per environment
            s.run_due(clock.advance(1.0))
            if errors or time.monotonic() > deadline:
                break
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert s.wait_idle(60)
    assert errors == [], errors[:3]
    for env in envs:
        for state in s.entries(env):
            assert dict(state.running) == {}, (env, state.entry.command)
    assert all(not t.entries for t in s.tables.values() if t.source == "managed")
    rows = store.runs.list(limit=100_000)
    unfinished = [(r.id, r.trigger, r.status) for r in rows if r.status != "succeeded"]
    assert unfinished == []
    assert sorted(r.id for r in rows) == sorted(runner.ran)  # every run ran once, all written
    assert len(rows) > 2000
    s.stop()


@pytest.mark.parametrize("swap", ["entry swapped out", "entry started elsewhere"])
def test_a_manual_run_overtaken_while_it_is_claimed_leaves_no_running_row(
    database_url: str, swap: str
) -> None:
    """The claim of a manual run is written before the hand-over, outside the lock: an
    entry swapped out (given back) or started meanwhile (forbid: skipped) in between
    must not leave its row `running` for ever."""
    import threading as _threading

    store = Store(database_url)
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("@every 1h job\n"))
    (state,) = s.entries("e")
    claim = store.runs.claim
    release = _threading.Event()

    def overtaken(**row: object) -> int | None:
        run_id = claim(**row)  # type: ignore[arg-type]
        if row["trigger"] == "manual" and not release.is_set():
            release.set()
            if swap == "entry swapped out":
                s.replace("e", target(), parse_crontab("@every 1h other\n"))
            else:
                runner.block = _threading.Event()
                clock.set("2026-01-01T10:00:01")  # its own slot
                assert s.trigger("e", state.entry.id) is not None  # this one runs
                assert runner.started.acquire(timeout=10)
        return run_id

    store.runs.claim = overtaken  # type: ignore[method-assign]
    assert s.trigger("e", state.entry.id) is None
    if runner.block is not None:
        runner.block.set()
    assert s.wait_idle(30)
    rows = sorted((r.trigger, r.status, r.reason) for r in store.runs.list(env="e"))
    expected = (
        []
        if swap == "entry swapped out"
        else [
            ("manual", "skipped", "the previous run is still running (concurrency: forbid)"),
            ("manual", "succeeded", None),
        ]
    )
    assert rows == expected
