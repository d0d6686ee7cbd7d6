"""Scheduler logic with an injected clock and a recording runner: time is moved, never
slept. Execution in real containers is in test_scheduler_docker.py."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.core.crontab import parse_crontab
from reconciler.cron.jobs import Handle, Job, Outcome
from reconciler.cron.scheduler import Scheduler, jitter_offset
from reconciler.storage.store import Store

from .scheduler_helpers import Clock, Runner, make, target


@pytest.fixture
def store(database_url: str) -> Store:
    """Every scheduler test runs on SQLite and on PostgreSQL (the claims, the batching
    writer's driver-level SQL and the history trims differ by dialect)."""
    return Store(database_url)


def fire(s: Scheduler, clock: Clock, at: str) -> int:
    n = s.run_due(clock.set(at))
    s.wait_idle()
    return n


def test_fires_at_the_computed_instant_not_on_a_tick(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:30")
    s, runner = make(store, clock)
    s.replace("main-shop", target(), parse_crontab("*/5 * * * * echo hi\n"))
    assert s.next_wakeup() == datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    assert fire(s, clock, "2026-01-01T10:04:59") == 0
    assert fire(s, clock, "2026-01-01T10:05:00") == 1
    assert runner.jobs[0].command == "echo hi"
    assert runner.jobs[0].variables == {"BASE": "1"}
    assert s.next_wakeup() == datetime(2026, 1, 1, 10, 10, tzinfo=UTC)
    (run,) = store.runs.list(env="main-shop")
    assert (run.status, run.trigger, run.stdout) == ("succeeded", "schedule", "out echo hi")


def test_swap_keeps_unchanged_entries_and_replaces_the_rest_in_one_step(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * keep\n*/2 * * * * old\n"))
    keep_id = next(e.id for e in parse_crontab("* * * * * keep\n").entries)
    before = s.find("e", keep_id)[1]
    # Re-ordered, with one entry changed: the unchanged one keeps its state and firing.
    s.replace("e", target(), parse_crontab("# moved\n*/2 * * * * new\n* * * * * keep\n"))
    assert s.find("e", keep_id)[1] is before and before.entry.line == 3
    assert fire(s, clock, "2026-01-01T10:02:00") == 2
    assert sorted(j.command for j in runner.jobs) == ["keep", "new"]
    assert fire(s, clock, "2026-01-01T10:02:00") == 0  # never twice


def test_swap_at_the_boundary_neither_doubles_nor_skips(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, _runner = make(store, clock)
    tab = parse_crontab("* * * * * tick\n")
    s.replace("e", target(), tab)
    for minute in range(1, 6):
        clock.set(f"2026-01-01T10:0{minute}:00")
        s.replace("e", target(), tab)  # a pass re-applies the same schedule every time
        s.run_due()
        s.replace("e", target(), parse_crontab("* * * * * tick\n"))
    s.wait_idle()
    slots = sorted(r.scheduled_for for r in store.runs.list(env="e"))
    assert len(slots) == len(set(slots)) == 5


def test_forbid_records_skips_allow_overlaps_replace_stops_the_old_run(store: Store) -> None:
    for policy, expected in (
        ("forbid", {"running", "skipped"}),
        ("allow", {"running"}),
        ("replace", {"cancelled", "running"}),
    ):
        clock = Clock("2026-01-01T10:00:00")
        s, runner = make(store, clock)
        runner.block = threading.Event()
        env = f"env-{policy}"
        s.replace(env, target(concurrency=policy), parse_crontab("* * * * * slow\n"))
        s.run_due(clock.set("2026-01-01T10:01:00"))
        assert runner.started.acquire(timeout=5)
        s.run_due(clock.set("2026-01-01T10:02:00"))
        if policy != "forbid":
            assert runner.started.acquire(timeout=5)
        statuses = {r.status for r in store.runs.list(env=env)}
        if policy == "replace":
            s.wait_idle(0.5)
            statuses = {r.status for r in store.runs.list(env=env)}
        assert statuses == expected, policy
        runner.block.set()
        s.wait_idle()


def test_retries_back_off_and_the_next_firing_cancels_them(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    runner.results = ["failed", "failed", "failed"]
    s.replace("e", target(retries=2), parse_crontab("*/5 * * * * flaky\n"))
    fire(s, clock, "2026-01-01T10:05:00")
    assert fire(s, clock, "2026-01-01T10:05:09") == 0
    assert fire(s, clock, "2026-01-01T10:05:10") == 1  # backoff 10s
    assert fire(s, clock, "2026-01-01T10:05:29") == 0
    assert fire(s, clock, "2026-01-01T10:05:30") == 1  # then 20s
    runs = store.runs.list(env="e")
    assert [(r.trigger, r.attempt) for r in reversed(runs)] == [
        ("schedule", 1),
        ("retry", 2),
        ("retry", 3),
    ]
    # A failure whose retry would land after the next firing is not retried.
    runner.results = ["failed"]
    s.replace("e2", target(retries=1), parse_crontab("* * * * * flaky\n"))
    s.execution.backoff = 120
    fire(s, clock, "2026-01-01T10:06:00")
    assert fire(s, clock, "2026-01-01T10:07:00") == 1
    assert [r.trigger for r in store.runs.list(env="e2")] == ["schedule", "schedule"]


def test_pause_after_consecutive_failures_and_resume(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    notes: list[str] = []
    runner = Runner()
    s = Scheduler(store.runs, runner, clock=clock, notify=lambda *a: notes.append(a[2]))
    runner.results = ["failed"] * 3
    s.replace("e", target(pause_after_failures=2), parse_crontab("* * * * * x\n"))
    fire(s, clock, "2026-01-01T10:01:00")
    fire(s, clock, "2026-01-01T10:02:00")
    assert "job_paused" in notes
    fire(s, clock, "2026-01-01T10:03:00")
    assert len(runner.jobs) == 2  # paused: no more firings
    (entry,) = s.entries("e")
    assert s.resume("e", entry.entry.id)
    fire(s, clock, "2026-01-01T10:04:00")
    assert len(runner.jobs) == 3


def test_jitter_is_stable_within_the_window_and_next_times_stay_exact(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, _ = make(store, clock)
    tab = parse_crontab("0 * * * * a\n0 * * * * b\n")
    s.replace("e", target(jitter=30), tab)
    states = s.entries("e")
    offsets = [st.offset for st in states]
    assert all(0 <= o < 30 for o in offsets) and offsets[0] != offsets[1]
    assert offsets == [jitter_offset(e.id, 30) for e in tab.entries]  # stable
    assert all(st.next_at == datetime(2026, 1, 1, 11, tzinfo=UTC) for st in states)
    first = min(offsets)
    assert fire(s, clock, "2026-01-01T11:00:00") == 0 or first == 0
    assert fire(s, clock, "2026-01-01T11:00:30") >= 1


def test_missed_runs_catch_up_once_within_the_deadline_else_one_missed(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, _ = make(store, clock)
    s.replace("e", target(), parse_crontab("*/10 * * * * job\n"))
    fire(s, clock, "2026-01-01T10:10:00")
    # The service is down for 25 minutes; a new process starts at 10:35.
    clock.set("2026-01-01T10:35:00")
    s2, runner2 = make(store, clock)
    s2.replace("e", target(starting_deadline=600), parse_crontab("*/10 * * * * job\n"))
    s2.wait_idle()
    assert [(j.command) for j in runner2.jobs] == ["job"]
    (catch,) = [r for r in store.runs.list(env="e") if r.trigger == "catch-up"]
    assert catch.scheduled_for == datetime(2026, 1, 1, 10, 30, tzinfo=UTC).timestamp()
    # Down for hours with a short deadline: one `missed` row, no replay.
    clock.set("2026-01-01T15:03:00")
    s3, runner3 = make(store, clock)
    s3.replace("e", target(starting_deadline=60), parse_crontab("*/10 * * * * job\n"))
    s3.wait_idle()
    assert runner3.jobs == []
    missed = [r for r in store.runs.list(env="e") if r.status == "missed"]
    assert len(missed) == 1


def test_two_schedulers_on_one_database_run_each_firing_once(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    a, ra = make(store, clock, owner="a")
    b, rb = make(store, clock, owner="b")
    tab = parse_crontab("* * * * * once\n")
    a.replace("e", target(), tab)
    b.replace("e", target(), tab)
    for minute in range(1, 4):
        clock.set(f"2026-01-01T10:0{minute}:00")
        a.run_due()
        b.run_due()
        a.wait_idle()
        b.wait_idle()
    assert len(ra.jobs) + len(rb.jobs) == 3
    assert len(store.runs.list(env="e")) == 3


def test_removing_an_environment_cancels_its_running_jobs(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    runner.block = threading.Event()
    s.replace("e", target(), parse_crontab("* * * * * long\n"))
    s.run_due(clock.set("2026-01-01T10:01:00"))
    assert runner.started.acquire(timeout=5)
    assert s.remove("e") == 1
    s.wait_idle()
    assert [r.status for r in store.runs.list(env="e")] == ["cancelled"]
    assert s.next_wakeup() is None


def test_runs_left_running_by_a_crash_become_interrupted(store: Store) -> None:
    store.runs.claim(
        repo="shop",
        env="e",
        entry_id="x",
        line=1,
        schedule="* * * * *",
        command="c",
        trigger="schedule",
        scheduled_for=1.0,
        owner="a",
    )
    s, _ = make(store, Clock("2026-01-01T10:00:00"), owner="a")
    s.start()
    s.stop()
    assert [r.status for r in store.runs.list(env="e")] == ["interrupted"]


def test_a_crashing_runner_is_recorded_and_firing_continues(store: Store) -> None:
    class Broken(Runner):
        def run(self, job: Job, handle: Handle) -> Outcome:
            raise ConnectionError("engine gone")

    clock = Clock("2026-01-01T10:00:00")
    s = Scheduler(store.runs, Broken(), clock=clock)
    s.replace("e", target(), parse_crontab("* * * * * x\n"))
    fire(s, clock, "2026-01-01T10:01:00")
    fire(s, clock, "2026-01-01T10:02:00")
    runs = store.runs.list(env="e")
    assert [r.status for r in runs] == ["error", "error"]
    assert "engine gone" in (runs[0].reason or "")


def test_history_is_trimmed_per_entry(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, _ = make(store, clock)
    s.replace("e", target(history=3), parse_crontab("* * * * * x\n"))
    start = clock.now()
    for i in range(1, 11):
        fire(s, clock, (start + timedelta(minutes=i)).replace(tzinfo=None).isoformat())
    assert len(store.runs.list(env="e")) == 3  # trimmed at the tenth run


# -- claiming ahead of the instant (the timer's step) -----------------------------------


def claimed(store: Store, env: str) -> list[tuple[str, str]]:
    return [(r.command, r.status) for r in store.runs.list(env=env)]


def test_the_timer_claims_a_firing_ahead_and_starts_it_only_at_its_instant(
    store: Store,
) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * tick\n"))
    clock.set("2026-01-01T10:00:59.500")
    s.step()  # inside the lead (1 s): claimed, not started
    assert claimed(store, "e") == [] and len(store.runs.list(status="claimed")) == 1
    (run,) = store.runs.list(env="e", status="claimed")
    assert run.started_at == datetime(2026, 1, 1, 10, 1, tzinfo=UTC).timestamp()  # planned
    assert runner.jobs == []
    assert s.next_wakeup() == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)  # still exact
    assert s.entries("e")[0].upcoming(clock.now()) == datetime(2026, 1, 1, 10, 1, tzinfo=UTC)
    clock.set("2026-01-01T10:01:00")
    s.step()
    s.wait_idle()
    assert [j.command for j in runner.jobs] == ["tick"]
    assert claimed(store, "e") == [("tick", "succeeded")]
    assert s.lateness[-1] == 0.0
    assert s.next_wakeup() == datetime(2026, 1, 1, 10, 2, tzinfo=UTC)


def test_a_claim_whose_entry_is_swapped_out_before_its_instant_is_given_back(
    store: Store,
) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * keep\n* * * * * old\n"))
    clock.set("2026-01-01T10:00:59.200")
    s.step()
    assert sorted((r.command, r.status) for r in store.runs.list(status="claimed")) == [
        ("keep", "claimed"),
        ("old", "claimed"),
    ]
    # A commit inside the lead: `old` becomes `new`, `keep` moves to another line.
    s.replace("e", target(), parse_crontab("* * * * * new\n\n* * * * * keep\n"))
    clock.set("2026-01-01T10:00:59.600")
    s.step()  # claims `new` for the same instant
    clock.set("2026-01-01T10:01:00")
    s.step()
    s.wait_idle()
    assert sorted(j.command for j in runner.jobs) == ["keep", "new"]  # neither doubled
    assert sorted(claimed(store, "e")) == [("keep", "succeeded"), ("new", "succeeded")]


def test_removing_or_pausing_before_the_instant_gives_the_claim_back(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("gone", target(), parse_crontab("* * * * * a\n"))
    s.replace("paused", target(), parse_crontab("* * * * * b\n"))
    clock.set("2026-01-01T10:00:59.500")
    s.step()
    assert len(store.runs.list(status="claimed")) == 2
    s.remove("gone")
    assert s.pause("paused", s.entries("paused")[0].entry.id)
    clock.set("2026-01-01T10:01:00")
    s.step()
    s.wait_idle()
    assert runner.jobs == [] and store.runs.list() == []
    assert s.entries("paused")[0].running == {}  # its claimed-ahead handle left with it


def test_stop_gives_back_claims_whose_instant_has_not_come(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:59.500")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * a\n"))
    s.step()
    assert len(store.runs.list(env="e", status="claimed")) == 1
    s.stop()
    assert store.runs.list(env="e") == [] and runner.jobs == []  # not "interrupted"


def test_forbid_is_decided_at_the_instant_not_at_the_claim(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    runner.block = threading.Event()
    s.replace("e", target(), parse_crontab("* * * * * slow\n"))
    s.run_due(clock.set("2026-01-01T10:01:00"))
    assert runner.started.acquire(timeout=5)
    clock.set("2026-01-01T10:01:59.500")
    s.step()  # the next firing is claimed while the first run still runs
    runner.block.set()  # ... which ends before the instant
    s.wait_idle()
    runner.block = None
    clock.set("2026-01-01T10:02:00")
    s.step()
    s.wait_idle()
    assert [st for _, st in claimed(store, "e")] == ["succeeded", "succeeded"]


def test_two_schedulers_claiming_ahead_run_each_firing_once(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    a, ra = make(store, clock, owner="a")
    b, rb = make(store, clock, owner="b")
    tab = parse_crontab("* * * * * once\n*/2 * * * * twice\n")
    a.replace("e", target(), tab)
    b.replace("e", target(), tab)
    for minute in range(1, 5):
        clock.set(f"2026-01-01T10:0{minute - 1}:59.300")
        b.step()  # b claims ahead; a claims later, at the instant
        clock.set(f"2026-01-01T10:0{minute}:00")
        a.run_due()
        b.step()
        a.wait_idle()
        b.wait_idle()
    assert ra.jobs == [] and len(rb.jobs) == 6
    assert len(store.runs.list(env="e")) == 6


def test_a_burst_is_claimed_in_one_go_and_every_firing_runs_once(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    for i in range(50):
        s.replace(f"e{i}", target(), parse_crontab("".join(f"* * * * * j{k}\n" for k in range(20))))
    calls: list[int] = []
    claim_many = store.runs.claim_many

    def counting(claims, owner):  # type: ignore[no-untyped-def]
        calls.append(len(claims))
        return claim_many(claims, owner)

    store.runs.claim_many = counting  # type: ignore[method-assign]
    clock.set("2026-01-01T10:00:59.900")
    s.step()
    assert calls == [1000]
    clock.set("2026-01-01T10:01:00")
    s.step()
    assert s.wait_idle(60)
    assert len(runner.jobs) == 1000
    assert len({(j.env, j.command) for j in runner.jobs}) == 1000
    statuses = {r.status for r in store.runs.list(limit=2000)}
    assert statuses == {"succeeded"}


def test_claim_many_leaves_out_firings_claimed_elsewhere(store: Store) -> None:
    from reconciler.storage.runlog import Claim

    def c(entry: str, at: float) -> Claim:
        return Claim("r", "e", entry, 1, "* * * * *", "x", "schedule", at, 1, at)

    first = store.runs.claim_many([c("a", 60.0), c("b", 60.0)], "one")
    assert all(isinstance(i, int) for i in first)
    second = store.runs.claim_many([c("b", 60.0), c("a", 120.0), c("a", 60.0)], "two")
    assert second[0] is None and second[2] is None and isinstance(second[1], int)
    assert len({*first, second[1]}) == 3


def test_finishes_are_written_in_batches_and_flush_waits_for_them(store: Store) -> None:
    from reconciler.storage.runlog import Claim

    claims = [
        Claim("r", "e", f"x{i}", 1, "* * * * *", "c", "schedule", 1.0, 1, 1.0) for i in range(300)
    ]
    ids = store.runs.claim_many(claims, "a")
    for rid in ids:
        assert rid is not None
        store.runs.finish_later(rid, "succeeded", 0, "out", "", None, 5.0, 6.0)
    assert store.runs.flush(30)
    runs = store.runs.list(env="e", limit=500)
    assert {(r.status, r.stdout, r.started_at, r.finished_at) for r in runs} == {
        ("succeeded", "out", 5.0, 6.0)
    }


def test_a_crash_after_claiming_ahead_gives_the_claim_back_and_catches_up_once(
    store: Store,
) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, _ = make(store, clock, owner="a")
    tab = "*/10 * * * * job\n"
    s.replace("e", target(), parse_crontab(tab))
    fire(s, clock, "2026-01-01T10:10:00")
    clock.set("2026-01-01T10:19:59.500")
    s.step()  # claimed for 10:20 ... and then the process dies (no stop())
    assert len(store.runs.list(env="e", status="claimed")) == 1
    clock.set("2026-01-01T10:21:00")
    s2, runner2 = make(store, clock, owner="a")
    s2.start()
    try:
        assert store.runs.list(env="e", status="claimed") == []  # given back, not a run
        s2.replace("e", target(starting_deadline=300), parse_crontab(tab))
        s2.wait_idle()
        assert [j.command for j in runner2.jobs] == ["job"]
        (catch,) = [r for r in store.runs.list(env="e") if r.trigger == "catch-up"]
        assert catch.scheduled_for == datetime(2026, 1, 1, 10, 20, tzinfo=UTC).timestamp()
    finally:
        s2.stop()


def test_a_failing_batch_of_writes_is_retried_one_by_one(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.storage.runlog import Claim, RunLog

    ids = store.runs.claim_many(
        [Claim("r", "e", f"x{i}", 1, "* * * * *", "c", "schedule", 1.0, 1, 1.0) for i in range(3)],
        "a",
    )
    real = RunLog._write
    calls: list[int] = []

    def flaky(self: RunLog, conn: object, batch: list) -> None:  # type: ignore[type-arg]
        calls.append(len(batch))
        if len(batch) > 1 or batch[0][1][-1] == ids[1]:  # a finish's last field: its run id
            raise RuntimeError("database is locked")
        real(self, conn, batch)  # type: ignore[arg-type]

    monkeypatch.setattr(RunLog, "_write", flaky)
    monkeypatch.setattr("reconciler.storage.runlog.time.sleep", lambda _s: None)
    for rid in ids:
        assert rid is not None
        store.runs.finish_later(rid, "succeeded", 0, "", "", None, 2.0, 3.0)
    assert store.runs.flush(10)
    by_id = {r.id: r.status for r in store.runs.list(env="e", status=None)}
    by_claimed = {r.id: r.status for r in store.runs.list(env="e", status="claimed")}
    assert by_id == {ids[0]: "succeeded", ids[2]: "succeeded"}  # the bad one alone is lost
    assert by_claimed == {ids[1]: "claimed"}


def test_the_timer_thread_claims_ahead_and_fires_on_the_instant_in_real_time(
    store: Store,
) -> None:
    """The real loop (no injected steps): a clock a little before a minute boundary."""
    import time as _time

    boundary = datetime(2026, 1, 1, 10, 1, tzinfo=UTC).timestamp()
    offset = boundary - (_time.time() + 1.5)  # the boundary comes in 1.5 s

    class Near:
        def now(self) -> datetime:
            return datetime.fromtimestamp(_time.time() + offset, UTC)

    runner = Runner()
    s = Scheduler(store.runs, runner, clock=Near(), owner="a", lead=1.0)
    s.replace("e", target(), parse_crontab("* * * * * tick\n* * * * * tock\n"))
    s.start()
    try:
        assert runner.started.acquire(timeout=10) and runner.started.acquire(timeout=10)
        s.wait_idle()
        runs = store.runs.list(env="e")
        assert sorted(r.command for r in runs) == ["tick", "tock"]
        assert {r.status for r in runs} == {"succeeded"}
        assert {r.scheduled_for for r in runs} == {boundary}
        assert all(r.started_at is not None and r.started_at + offset >= boundary for r in runs)
        assert len(s.lateness) == 2 and all(0 <= x < 5 for x in s.lateness)
    finally:
        s.stop()


def test_an_entry_swapped_out_and_back_in_before_its_instant_fires_once(store: Store) -> None:
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    a = parse_crontab("* * * * * stay\n* * * * * flip\n")
    b = parse_crontab("* * * * * stay\n")
    s.replace("e", target(), a)
    clock.set("2026-01-01T10:00:59.100")
    s.step()  # both claimed for 10:01
    clock.set("2026-01-01T10:00:59.400")
    s.replace("e", target(), b)  # `flip` goes ...
    clock.set("2026-01-01T10:00:59.700")
    s.replace("e", target(), a)  # ... and comes back as a new state, due at 10:01 again
    s.step()  # its claim collides with our own earlier one: that claim carries over
    clock.set("2026-01-01T10:01:00")
    s.step()
    s.wait_idle()
    assert sorted(j.command for j in runner.jobs) == ["flip", "stay"]
    assert sorted((r.command, r.status) for r in store.runs.list(env="e")) == [
        ("flip", "succeeded"),
        ("stay", "succeeded"),
    ]
    s.remove("e")
    s.replace("e", target(), a)  # the environment goes and comes back inside the lead
    clock.set("2026-01-01T10:01:59.500")
    s.step()
    s.remove("e")
    s.replace("e", target(), a)
    clock.set("2026-01-01T10:01:59.800")
    s.step()
    clock.set("2026-01-01T10:02:00")
    s.step()
    s.wait_idle()
    assert len(runner.jobs) == 4
    assert len(store.runs.list(env="e")) == 4


def test_a_run_started_between_the_claim_and_the_instant_counts_for_forbid(
    store: Store,
) -> None:
    """Both entries are idle when claimed, so their group would start as a whole; a manual
    run of one of them inside the lead makes the instant check each firing again."""
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * slow\n* * * * * other\n"))
    clock.set("2026-01-01T10:00:59.500")
    s.step()
    slow = next(st for st in s.entries("e") if st.entry.command == "slow")
    runner.block = threading.Event()
    assert s.trigger("e", slow.entry.id) is not None
    assert runner.started.acquire(timeout=5)
    clock.set("2026-01-01T10:01:00")
    s.step()
    runner.block.set()
    s.wait_idle()
    runs = sorted((r.command, r.trigger, r.status) for r in store.runs.list(env="e"))
    assert runs == [
        ("other", "schedule", "succeeded"),
        ("slow", "manual", "succeeded"),
        ("slow", "schedule", "skipped"),
    ]


def test_a_run_that_ends_before_it_is_registered_as_running_leaves_no_trace(
    store: Store,
) -> None:
    """The pool runs each job inside the hand-over here, before the whole-group
    registration: a finished run must not stay behind in `running` (it would make every
    later firing of the entry a `forbid` skip)."""
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * a\n* * * * * b\n* * * * * c\n"))

    def inline(tasks):  # type: ignore[no-untyped-def]
        fns = [fn for group in tasks.values() for fn in group]
        for fn in fns:
            fn()
        return len(fns)

    s.pool.submit_grouped = inline  # type: ignore[method-assign]
    for minute in (1, 2):
        clock.set(f"2026-01-01T10:0{minute - 1}:59.500")
        s.step()
        clock.set(f"2026-01-01T10:0{minute}:00")
        s.step()
        s.wait_idle()
        assert all(not st.running for st in s.entries("e"))
    statuses = sorted(r.status for r in store.runs.list(env="e"))
    assert statuses == ["succeeded"] * 6 and len(runner.jobs) == 6


def test_a_slow_claim_makes_the_timer_claim_further_ahead(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Claiming an instant took 0.8 s of its 1 s lead: the next instants are claimed
    1.6 s ahead (twice the claim), so a claim grown slow still ends before its instant."""
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    s.replace("e", target(), parse_crontab("* * * * * a\n"))
    assert s.wake_ts() == datetime(2026, 1, 1, 10, 0, 59, tzinfo=UTC).timestamp()
    ticks = iter([100.0, 100.8])
    s.timer.monotonic = lambda: next(ticks, 101.0)
    clock.set("2026-01-01T10:00:59")
    s.step()  # claims 10:01, slowly
    assert "claimed 1.6s ahead" in caplog.text
    clock.set("2026-01-01T10:01:00")
    s.step()
    s.wait_idle()
    assert [j.command for j in runner.jobs] == ["a"]
    next_claim = datetime(2026, 1, 1, 10, 1, 58, 400000, tzinfo=UTC).timestamp()
    assert s.wake_ts() == pytest.approx(next_claim)


def test_a_firing_claimed_ahead_counts_as_running_only_from_its_instant(store: Store) -> None:
    """Its handle is among the entry's runs from the claim on, behind a gate that opens at
    the instant: before that nothing counts it (views, overlap policy, remove)."""
    clock = Clock("2026-01-01T10:00:00")
    s, runner = make(store, clock)
    runner.block = threading.Event()
    s.replace("e", target(), parse_crontab("* * * * * slow\n"))
    clock.set("2026-01-01T10:00:59.500")
    s.step()
    state = s.entries("e")[0]
    assert len(state.running) == 1 and state.live() == [] and not state.busy()
    clock.set("2026-01-01T10:01:00")
    s.step()
    assert runner.started.acquire(timeout=5)
    assert [rid for rid, _ in state.live()] == list(state.running)
    assert s.remove("e") == 1  # the started run is cancelled
    runner.block.set()
    s.wait_idle()
    assert claimed(store, "e") == [("slow", "cancelled")]
    assert state.running == {}
