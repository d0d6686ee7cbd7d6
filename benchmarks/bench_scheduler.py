"""Issue #4: our in-process cron scheduler next to APScheduler 3, on the same entries.

10,000 entries over 500 environments (20 each: 5 x every minute, 5 x every 2 minutes,
5 x every 5 minutes, 5 x @every 30s) plus one extra environment with a 1,000-line crontab
that is swapped while everything runs. No Docker: jobs are recorded, not run.

Phases, one after another in this one process (never two schedulers at once, so they do
not compete for the cores):

  idle   10,000 entries that are not due for months (`0 0 1 1 *`); process CPU time over
         `--idle` seconds, for each scheduler alone.
  ours   `Scheduler.start()` with the real clock, run log in SQLite on disk (each firing is
         claimed, marked running, finished and trimmed in the store: all part of our
         cost; claims go in one statement per instant, 1 s ahead of it).
  aps    APScheduler 3 `BackgroundScheduler`, `ThreadPoolExecutor(8)`, memory job store.
  tmpfs  ours again with the SQLite file on /dev/shm (tmpfs). `sqlite:///:memory:` is not
         usable: SQLAlchemy gives every thread its own in-memory database.

Each load phase measures the slots of `--minutes` whole minutes starting at a minute
boundary B. The `*/2` and `*/5` entries are written as `r-59/2` / `r-59/5` with the offset
r chosen so that they fire at B: every phase sees the same sequence of bursts (all 10,000
entries at B, then 2,500 at B+30s, 5,000 at B+60s, ...), whatever minute it starts in.

Lateness = actual start of the job function minus its scheduled time. Ours: the runner's
`run()` is called with the run id; the scheduled time comes from the run log afterwards.
APScheduler: the executor's `run_job` is wrapped to hand the scheduled run time to the job.
At dispatch (the firing lateness proper): the moment the firing is handed to the
executor. Ours `Scheduler.lateness`, one value per firing, read once the whole instant is
claimed (durably, in the run log), queued in the pool and the workers woken; APScheduler
each job's `submit_job` returning. At job start adds the executor's own queue: 10,000
jobs due in one second wait for 8 workers on both sides.

  .venv/bin/pip install -e '.[bench]'                            # APScheduler 3, psutil
  .venv/bin/python benchmarks/bench_scheduler.py                 # ~7 minutes
  .venv/bin/python benchmarks/bench_scheduler.py --profile-only  # where our time goes
  .venv/bin/python benchmarks/bench_scheduler.py --checked-groups --skip aps --skip idle
                                                # ours with the whole-group start off
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import json
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from reconciler.core.crontab import Crontab, parse_crontab
from reconciler.core.model import CronSettings
from reconciler.cron.jobs import Handle, Job, Outcome
from reconciler.cron.scheduler import Scheduler, Target
from reconciler.storage.runlog import runs as runs_table
from reconciler.storage.store import Store

try:
    import psutil
except ImportError:  # optional: RSS only
    psutil = None

KINDS = ("1m", "2m", "5m", "30s")
PERIOD = {"1m": 60, "2m": 120, "5m": 300, "30s": 30}
SWAP_ENV = "swap"
SETUP_MARGIN = 15.0  # seconds between the start of a phase's setup and its first slot
SWAP_OFFSETS = (2.0, 8.0, 15.0, 29.99, 30.0, 30.05, 40.0, 50.0, 59.99, 60.0, 60.05, 70.0)
SWAP_OFFSETS_LATE = (80.0, 89.99, 90.0, 90.05, 99.0)
TARGET = Target("bench", "bench-container", {}, CronSettings())


# -- the entries ----------------------------------------------------------------------


def schedule_for(kind: str, minute: int) -> str:
    """Ours: a crontab schedule of `kind` that fires at epoch minute `minute`."""
    if kind == "1m":
        return "* * * * *"
    if kind == "30s":
        return "@every 30s"
    step = PERIOD[kind] // 60
    r = minute % step
    return f"*/{step} * * * *" if r == 0 else f"{r}-59/{step} * * * *"


@dataclass(frozen=True)
class Entry:
    env: str
    kind: str
    command: str  # unique over the whole run: the key on both sides


def main_entries(envs: int, per_env: int) -> list[Entry]:
    return [
        Entry(f"env{i:03d}", KINDS[j % 4], f"echo env{i:03d}-{j:02d}")
        for i in range(envs)
        for j in range(per_env)
    ]


def swap_versions(lines: int) -> tuple[list[Entry], list[Entry]]:
    """Two versions of one environment's crontab: B changes every 10th command (a new
    entry identity) and lists the lines in reverse order (moved lines keep their identity)."""
    a = [Entry(SWAP_ENV, KINDS[j % 4], f"echo swap-{j:04d}") for j in range(lines)]
    b = [
        Entry(SWAP_ENV, e.kind, e.command + ("-b" if j % 10 == 0 else "")) for j, e in enumerate(a)
    ]
    return a, list(reversed(b))


def crontab_text(entries: Iterable[Entry], minute: int, yearly: bool = False) -> str:
    return "".join(
        f"{'0 0 1 1 *' if yearly else schedule_for(e.kind, minute)} {e.command}\n" for e in entries
    )


def by_env(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for e in entries:
        out.setdefault(e.env, []).append(e)
    return out


# -- statistics -----------------------------------------------------------------------


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "max": max(values) if values else math.nan,
    }


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{seconds * 1000:,.1f}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)


def sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 1.0))


def next_boundary(after: float) -> float:
    return math.ceil(after / 60.0) * 60.0


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20 if psutil else math.nan


# -- the two schedulers behind one small interface ------------------------------------


class Recorder:
    """(command, scheduled time, actual start) of every job, appended from worker threads."""

    def __init__(self) -> None:
        self.starts: list[tuple[str, float, float]] = []
        self.dispatch: list[tuple[float, float]] = []  # (scheduled, dispatched), if known


class RecordingRunner:
    """Our side: `run()` notes the start time under the run id; no container."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, float]] = []

    def run(self, job: Job, handle: Handle) -> Outcome:
        self.calls.append((job.run_id, time.time()))
        return Outcome("succeeded", 0, "", "")


class Ours:
    name = "ours"

    def __init__(self, db_dir: str, whole_groups: bool = True) -> None:
        self.dir = tempfile.mkdtemp(prefix="hoody-bench-sched-", dir=db_dir)
        self.store = Store(f"sqlite:///{self.dir}/runs.sqlite")
        self.runner = RecordingRunner()
        self.sched = Scheduler(
            self.store.runs, self.runner, owner="bench", whole_groups=whole_groups
        )
        self._tabs: dict[str, Crontab] = {}
        self._lateness_mark = 0

    def load(self, groups: dict[str, list[Entry]], minute: int, yearly: bool = False) -> None:
        for env, entries in groups.items():
            self.sched.replace(env, TARGET, parse_crontab(crontab_text(entries, minute, yearly)))

    def prepare_swap(self, versions: Sequence[list[Entry]], minute: int) -> list[Crontab]:
        return [parse_crontab(crontab_text(v, minute)) for v in versions]

    def swap(self, prepared: Crontab) -> None:
        self.sched.replace(SWAP_ENV, TARGET, prepared)

    def start(self) -> None:
        self.sched.start()

    def mark(self) -> None:
        self._lateness_mark = len(self.sched.lateness)

    def started(self) -> int:
        return len(self.runner.calls)

    def stop(self) -> None:
        self.sched.stop()

    def results(self) -> tuple[list[tuple[str, float, float]], list[float], Counter[str]]:
        """(command, scheduled, start) per runner call; dispatch lateness; run statuses."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    runs_table.c.id,
                    runs_table.c.command,
                    runs_table.c.scheduled_for,
                    runs_table.c.status,
                )
            ).fetchall()
        by_id = {r.id: (r.command, r.scheduled_for) for r in rows}
        starts = [(*by_id[rid], t) for rid, t in self.runner.calls if rid in by_id]
        lateness = list(self.sched.lateness)[self._lateness_mark :]
        return starts, lateness, Counter(r.status for r in rows)

    def close(self) -> None:
        self.store.close()  # its writer and maintenance stop before the file goes
        for p in sorted(Path(self.dir).glob("*")):
            p.unlink()
        os.rmdir(self.dir)


class Aps:
    """APScheduler 3: BackgroundScheduler, ThreadPoolExecutor(8), memory job stores (one
    for the swapped environment, so its swap is `remove_all_jobs(jobstore=...)`)."""

    name = "apscheduler"

    def __init__(self) -> None:
        import apscheduler.executors.pool as ap_pool
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        self.rec = Recorder()
        self._tls = threading.local()
        self._pool_mod = ap_pool
        self._orig_run_job = ap_pool.run_job
        tls = self._tls

        def run_job(job: Any, alias: str, run_times: list[datetime], logger: str) -> Any:
            tls.pending = list(run_times)  # the job function takes them one by one
            return self._orig_run_job(job, alias, run_times, logger)

        ap_pool.run_job = run_job  # restored in close()
        rec = self.rec

        class HandOff(ThreadPoolExecutor):
            def submit_job(self, job: Any, run_times: list[datetime]) -> None:
                super().submit_job(job, run_times)
                now = time.time()
                rec.dispatch.extend((rt.timestamp(), now) for rt in run_times)

        self.sched = BackgroundScheduler(
            timezone=UTC,
            executors={"default": HandOff(8)},
            jobstores={"default": MemoryJobStore(), SWAP_ENV: MemoryJobStore()},
            job_defaults={"misfire_grace_time": None, "coalesce": False, "max_instances": 1},
        )

        self._mark = 0
        self._triggers: dict[tuple[str, int, bool], Any] = {}

    def job(self, command: str) -> None:
        start = time.time()
        scheduled = self._tls.pending.pop(0)
        self.rec.starts.append((command, scheduled.timestamp(), start))

    def trigger(self, kind: str, minute: int, yearly: bool = False) -> Any:
        """Triggers equivalent to ours; built once and shared (they hold no state)."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        key = (kind, minute, yearly)
        if key not in self._triggers:
            if yearly:
                trig: Any = CronTrigger.from_crontab("0 0 1 1 *", timezone=UTC)
            elif kind == "30s":  # ours: whole multiples of 30 s since the epoch
                trig = IntervalTrigger(
                    seconds=30, start_date=datetime(2020, 1, 1, tzinfo=UTC), timezone=UTC
                )
            else:
                trig = CronTrigger.from_crontab(schedule_for(kind, minute), timezone=UTC)
            self._triggers[key] = trig
        return self._triggers[key]

    def _add(self, e: Entry, minute: int, yearly: bool = False, store: str = "default") -> None:
        self.sched.add_job(
            self.job,
            self.trigger(e.kind, minute, yearly),
            args=(e.command,),
            id=e.command,
            jobstore=store,
        )

    def load(self, groups: dict[str, list[Entry]], minute: int, yearly: bool = False) -> None:
        for env, entries in groups.items():
            for e in entries:
                self._add(e, minute, yearly, SWAP_ENV if env == SWAP_ENV else "default")

    def prepare_swap(self, versions: Sequence[list[Entry]], minute: int) -> list[Any]:
        for v in versions:
            for e in v:
                self.trigger(e.kind, minute)
        return [(v, minute) for v in versions]

    def swap(self, prepared: Any) -> None:
        entries, minute = prepared
        self.sched.remove_all_jobs(jobstore=SWAP_ENV)
        for e in entries:
            self._add(e, minute, store=SWAP_ENV)

    def start(self) -> None:
        self.sched.start()

    def mark(self) -> None:
        self._mark = len(self.rec.dispatch)

    def started(self) -> int:
        return len(self.rec.starts)

    def stop(self) -> None:
        executor = self.sched._lookup_executor("default")
        with contextlib.suppress(Exception):  # drop what never started (as ours does)
            executor._pool.shutdown(wait=False, cancel_futures=True)
        self.sched.shutdown(wait=True)

    def results(self) -> tuple[list[tuple[str, float, float]], list[float], Counter[str]]:
        lateness = [d - s for s, d in self.rec.dispatch[self._mark :]]
        return list(self.rec.starts), lateness, Counter()

    def close(self) -> None:
        self._pool_mod.run_job = self._orig_run_job


# -- phases ---------------------------------------------------------------------------


def schedstat() -> tuple[int, int]:
    """(ns on a CPU, times scheduled onto a CPU) summed over this process's threads but
    the calling one (which sleeps, then does the reading), from /proc/self/task/*/schedstat:
    nanosecond CPU time, and a count of wake-ups."""
    ns = slices = 0
    me = str(threading.get_native_id())
    for task in Path("/proc/self/task").iterdir():
        if task.name == me:
            continue
        try:
            on_cpu, _wait, runs = (task / "schedstat").read_text().split()
        except (OSError, ValueError):
            continue
        ns, slices = ns + int(on_cpu), slices + int(runs)
    return ns, slices


def idle_phase(make: Callable[[], Any], groups: dict[str, list[Entry]], seconds: float) -> dict:
    s = make()
    t0 = time.perf_counter()
    s.load(groups, 0, yearly=True)
    s.start()
    setup = time.perf_counter() - t0
    time.sleep(2.0)  # let start-up settle
    n0, k0 = schedstat()
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n1, k1 = schedstat()  # after the process clock: reading /proc is not counted
    rss = rss_mb()
    threads = threading.active_count()
    s.stop()
    s.close()
    return {
        "scheduler": s.name,
        "setup_s": setup,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_s_per_min": cpu / wall * 60,
        "sched_cpu_us": (n1 - n0) / 1000,
        "wakeups": k1 - k0,
        "threads": threads,
        "rss_mb": rss,
    }


def baseline_phase(seconds: float) -> dict:
    n0, k0 = schedstat()
    c0, w0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n1, k1 = schedstat()
    return {
        "scheduler": "none",
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_s_per_min": cpu / wall * 60,
        "sched_cpu_us": (n1 - n0) / 1000,
        "wakeups": k1 - k0,
        "threads": threading.active_count(),
    }


@dataclass
class LoadResult:
    name: str
    boundary: float
    minutes: float
    setup_s: float
    slack_s: float  # time left between end of setup and the first slot (must be > 0)
    cpu_s_per_min: float
    rss_mb: float
    expected: int
    start_lateness: dict[str, float]
    dispatch_lateness: dict[str, float]
    bursts: list[dict[str, Any]]
    never_started: int
    doubled: int
    swap_never_started: int
    swap_doubled: int
    swaps: list[dict[str, float]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    swap_parse_ms: float = math.nan
    swap_lines: int = 0
    stopped_at_s: float = math.nan  # after B; jobs not started by then count as not started
    loadavg: tuple[float, ...] = ()  # 1-minute load average before / after (other users)


def load_phase(
    s: Any, main: list[Entry], swap_lines: int, minutes: float, last: bool
) -> LoadResult:
    load_before = os.getloadavg()
    t_setup = time.time()
    boundary = next_boundary(t_setup + SETUP_MARGIN)
    minute = int(boundary // 60)
    end = boundary + minutes * 60
    a, b = swap_versions(swap_lines)
    groups = by_env(main)
    groups[SWAP_ENV] = a
    parse_t0 = time.perf_counter()
    parse_crontab(crontab_text(b, minute))
    parse_ms = (time.perf_counter() - parse_t0) * 1000
    s.load(groups, minute)
    prepared = s.prepare_swap([a, b], minute)
    s.start()
    setup = time.time() - t_setup
    slack = boundary - time.time()
    rss = rss_mb()

    sleep_until(boundary - 0.5)
    s.mark()
    c0, w0 = time.process_time(), time.perf_counter()
    swaps: list[dict[str, float]] = []
    offsets = [o for o in SWAP_OFFSETS + SWAP_OFFSETS_LATE if o <= minutes * 60 - 20]
    for i, off in enumerate(offsets):
        sleep_until(boundary + off)
        at = time.time() - boundary
        t0 = time.perf_counter()
        s.swap(prepared[(i + 1) % 2])  # A is loaded: B, A, B, ...
        swaps.append({"at_s": at, "ms": (time.perf_counter() - t0) * 1000})

    # The last slot inside the window is end - 30 s; stop once nothing has started for a
    # second, and in any case before `end` (early enough to set up the next phase there).
    sleep_until(end - 29.0)
    deadline = end - 1.0 if last else end - SETUP_MARGIN - 3
    seen, quiet_since = s.started(), time.time()
    while time.time() < deadline and time.time() - quiet_since < 1.0:
        time.sleep(0.1)
        now_n = s.started()
        if now_n != seen:
            seen, quiet_since = now_n, time.time()
    stopped_at = time.time() - boundary
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    s.stop()
    starts, dispatch, statuses = s.results()

    # -- analysis --
    in_window = [(c, sch, st) for c, sch, st in starts if boundary <= sch < end]
    counts = Counter((c, round(sch, 3)) for c, sch, _ in in_window)
    a_cmds = {e.command for e in a}
    b_cmds = {e.command for e in b}
    unchanged = [e for e in a if e.command in b_cmds]

    def check(entries: Iterable[Entry]) -> tuple[int, int]:
        """(slots due in the window, slots whose job never started)"""
        expected = missing = 0
        for e in entries:
            for k in range(int(minutes * 60) // PERIOD[e.kind] + 1):
                slot = boundary + k * PERIOD[e.kind]
                if slot >= end:
                    break
                expected += 1
                missing += counts[(e.command, round(slot, 3))] == 0
        return expected, missing

    expected, missing = check(main)
    _, swap_missing = check(unchanged)
    main_cmds = {e.command for e in main}
    doubled = sum(n - 1 for (c, _), n in counts.items() if n > 1 and c in main_cmds)
    swap_doubled = sum(n - 1 for (c, _), n in counts.items() if n > 1 and c in (a_cmds | b_cmds))
    late = [st - sch for c, sch, st in in_window if c in main_cmds]
    bursts = []
    by_slot: dict[float, list[float]] = {}
    for c, sch, st in in_window:
        if c in main_cmds:
            by_slot.setdefault(sch - boundary, []).append(st - sch)
    for off in sorted(by_slot):
        bursts.append({"offset_s": off, **summary(by_slot[off])})
    return LoadResult(
        name=s.name,
        boundary=boundary,
        minutes=minutes,
        setup_s=setup,
        slack_s=slack,
        cpu_s_per_min=cpu / wall * 60,
        rss_mb=rss,
        expected=expected,
        start_lateness=summary(late),
        dispatch_lateness=summary(dispatch),
        bursts=bursts,
        never_started=missing,
        doubled=doubled,
        swap_never_started=swap_missing,
        swap_doubled=swap_doubled,
        swaps=swaps,
        statuses=dict(statuses),
        swap_parse_ms=parse_ms,
        swap_lines=swap_lines,
        stopped_at_s=stopped_at,
        loadavg=(load_before[0], os.getloadavg()[0]),
    )


# -- profile (offline, injected clock: where a burst's time goes) ---------------------


class FixedClock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def now(self) -> datetime:
        return self.t


BEFORE = datetime(2030, 1, 1, 9, 59, 59, 500000, tzinfo=UTC)  # inside the 1 s lead
INSTANT = datetime(2030, 1, 1, 10, 0, 0, tzinfo=UTC)


WHOLE_GROUPS = True  # --checked-groups: False


def burst_scheduler(db_dir: str, envs: int, per_env: int, prefix: str) -> tuple[Any, ...]:
    d = tempfile.mkdtemp(prefix=prefix, dir=db_dir)
    store = Store(f"sqlite:///{d}/runs.sqlite")
    runner = RecordingRunner()
    clock = FixedClock(datetime(2030, 1, 1, 9, 59, 50, tzinfo=UTC))
    s = Scheduler(store.runs, runner, clock=clock, owner="bench", whole_groups=WHOLE_GROUPS)
    for env, entries in by_env(main_entries(envs, per_env)).items():
        s.replace(env, TARGET, parse_crontab("".join(f"* * * * * {e.command}\n" for e in entries)))
    return d, store, runner, clock, s


def drop_dir(d: str, store: Store) -> None:
    store.close()
    for f in Path(d).glob("*"):
        f.unlink()
    os.rmdir(d)


def plain_burst(db_dir: str, envs: int, per_env: int, ahead: bool) -> dict[str, float]:
    """One burst of envs*per_env simultaneous firings, not profiled. `ahead`: the timer's
    way (claimed inside the lead, then handed over at the instant); else `run_due` at the
    instant (the claim is on the critical path)."""
    d, store, runner, clock, s = burst_scheduler(db_dir, envs, per_env, "hoody-bench-burst-")
    claim_s = math.nan
    if ahead:
        clock.t = BEFORE
        t0 = time.perf_counter()
        s.step()
        claim_s = time.perf_counter() - t0
    clock.t = INSTANT
    c0, t0 = time.process_time(), time.time()
    n = s.step() if ahead else s.run_due()
    t_dispatch = time.time() - t0
    s.pool.wait_idle(300)
    drained = time.time() - t0
    s.runlog.flush(300)
    result = {
        "firings": len(runner.calls) if ahead else n,
        "claim_ahead_s": claim_s,
        "run_due_s": t_dispatch,
        "last_start_s": max(t for _, t in runner.calls) - t0,
        "drained_s": drained,
        "written_s": time.time() - t0,
        "cpu_s": time.process_time() - c0,
    }
    s.stop()
    drop_dir(d, store)
    return result


def profile_burst(db_dir: str, envs: int, per_env: int, top: int) -> dict[str, Any]:
    """One burst of envs*per_env firings the timer's way (claim ahead, hand over at the
    instant), both steps called in this thread under cProfile, and each worker thread's
    `Execution.run` under its own profiler."""
    d, store, runner, clock, s = burst_scheduler(db_dir, envs, per_env, "hoody-bench-prof-")
    worker_profiles: list[cProfile.Profile] = []
    tls = threading.local()
    original = s.handover.run

    def profiled_execute(*args: Any, **kwargs: Any) -> None:
        prof = getattr(tls, "prof", None)
        if prof is None:
            prof = tls.prof = cProfile.Profile()
            worker_profiles.append(prof)
        prof.enable()
        try:
            original(*args, **kwargs)
        finally:
            prof.disable()

    s.handover.run = profiled_execute
    claim_prof, hand_prof = cProfile.Profile(), cProfile.Profile()
    clock.t = BEFORE
    t0 = time.perf_counter()
    claim_prof.enable()
    s.step()
    claim_prof.disable()
    claim_s = time.perf_counter() - t0
    clock.t = INSTANT
    c0 = time.process_time()
    t0 = time.time()
    hand_prof.enable()
    s.step()
    hand_prof.disable()
    t_dispatch = time.time() - t0
    s.pool.wait_idle(300)
    t_all = time.time() - t0
    s.runlog.flush(300)
    t_written = time.time() - t0
    cpu_s = time.process_time() - c0
    last_start = max(t for _, t in runner.calls) - t0

    def top_of(stats: pstats.Stats, key: str) -> str:
        buf = io.StringIO()
        stats.stream = buf  # type: ignore[attr-defined]
        stats.sort_stats(key).print_stats(top)
        text = buf.getvalue()
        return text[text.find("   ncalls") :]

    wstats = pstats.Stats(worker_profiles[0])
    for p in worker_profiles[1:]:
        wstats.add(p)
    result = {
        "firings": len(runner.calls),
        "claim_ahead_s": claim_s,
        "hand_off_s": t_dispatch,
        "drained_s": t_all,
        "written_s": t_written,
        "last_start_s": last_start,
        "cpu_s": cpu_s,
        "claim_cumtime": top_of(pstats.Stats(claim_prof), "cumulative"),
        "hand_off_tottime": top_of(pstats.Stats(hand_prof), "tottime"),
        "workers_tottime": top_of(wstats, "tottime"),
    }
    s.stop()
    drop_dir(d, store)
    return result


# -- main -----------------------------------------------------------------------------


def print_load(r: LoadResult) -> None:
    print(
        f"\n== {r.name}: slots of {r.minutes:g} min from "
        f"{datetime.fromtimestamp(r.boundary, UTC):%H:%M:%S} UTC =="
    )
    print(
        f"setup {r.setup_s:.1f} s (slack before the first slot {r.slack_s:.1f} s), "
        f"RSS {r.rss_mb:.0f} MiB, CPU under load {r.cpu_s_per_min:.1f} s/min"
    )
    print(
        table(
            ["lateness (ms)", "n", "p50", "p99", "max"],
            [
                [
                    "at job start",
                    r.start_lateness["n"],
                    ms(r.start_lateness["p50"]),
                    ms(r.start_lateness["p99"]),
                    ms(r.start_lateness["max"]),
                ],
                [
                    "at dispatch",
                    r.dispatch_lateness["n"],
                    ms(r.dispatch_lateness["p50"]),
                    ms(r.dispatch_lateness["p99"]),
                    ms(r.dispatch_lateness["max"]),
                ],
            ],
        )
    )
    print(
        table(
            ["burst at B+", "firings", "p50 ms", "p99 ms", "max ms"],
            [
                [f"{b['offset_s']:.0f}s", b["n"], ms(b["p50"]), ms(b["p99"]), ms(b["max"])]
                for b in r.bursts
            ],
        )
    )
    print(
        f"main entries: {r.expected} slots due, {r.never_started} not started by the stop "
        f"at B+{r.stopped_at_s:.0f}s, {r.doubled} doubled; run log {r.statuses or '-'}; "
        f"load average {r.loadavg[0]:.1f} -> {r.loadavg[1]:.1f}"
    )
    if r.swaps:
        times = [sw["ms"] for sw in r.swaps]
        print(
            f"swap of the {SWAP_ENV!r} crontab x{len(times)}: median "
            f"{statistics.median(times):.1f} ms, max {max(times):.1f} ms "
            f"(parsing the {r.swap_lines} lines, not included: {r.swap_parse_ms:.0f} ms)"
        )
        print("  " + ", ".join(f"B+{sw['at_s']:.2f}s: {sw['ms']:.1f}" for sw in r.swaps))
        print(
            f"  entries in both versions: {r.swap_never_started} slots not started; "
            f"doubled slots over all swap entries: {r.swap_doubled}"
        )


def code_version() -> dict[str, str]:
    """HEAD and the hashes of the files measured (they may carry uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        head = "?"
    parts = {
        "reconciler/cron/scheduler/": sorted((root / "reconciler/cron/scheduler").glob("*.py")),
        "reconciler/storage/runlog.py": [root / "reconciler/storage/runlog.py"],
        "reconciler/cron/fairpool.py": [root / "reconciler/cron/fairpool.py"],
    }
    digests = {}
    for name, files in parts.items():
        h = hashlib.sha256()
        for f in files:
            h.update(f.name.encode() + b"\0" + f.read_bytes())
        digests[name] = h.hexdigest()[:10]
    return {"HEAD": head or "?", **digests}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2, help="window of each load phase")
    ap.add_argument("--tmpfs-minutes", type=float, default=1, help="0: skip the tmpfs phase")
    ap.add_argument("--idle", type=float, default=30, help="seconds of each idle measurement")
    ap.add_argument("--envs", type=int, default=500)
    ap.add_argument("--per-env", type=int, default=20)
    ap.add_argument("--swap-lines", type=int, default=1000)
    ap.add_argument("--db-dir", default=tempfile.gettempdir(), help="disk for the SQLite file")
    ap.add_argument("--tmpfs-dir", default="/dev/shm")
    ap.add_argument("--skip", action="append", default=[], choices=["idle", "ours", "aps"])
    ap.add_argument("--profile", action="store_true", help="also profile one burst (~40 s)")
    ap.add_argument("--profile-only", action="store_true")
    ap.add_argument("--idle-only", action="store_true", help="only the idle phase")
    ap.add_argument("--top", type=int, default=25, help="lines of each profile table")
    ap.add_argument("--json", metavar="PATH", help="write all figures as JSON")
    ap.add_argument(
        "--checked-groups",
        action="store_true",
        help="ours with Scheduler(whole_groups=False): every claimed firing checked at its instant",
    )
    args = ap.parse_args(argv)
    global WHOLE_GROUPS
    WHOLE_GROUPS = not args.checked_groups

    out: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "code": code_version(),
        "whole_groups": WHOLE_GROUPS,
        "args": vars(args),
    }
    print(f"{os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}")
    print("code: " + ", ".join(f"{k} {v}" for k, v in out["code"].items()))
    print(f"ours: Scheduler(whole_groups={WHOLE_GROUPS})")
    main_list = main_entries(args.envs, args.per_env)
    print(
        f"{len(main_list)} entries over {args.envs} environments; swapped environment: "
        f"{args.swap_lines} lines. Phases run one after another in this process."
    )

    if not args.profile_only:
        if "idle" not in args.skip:
            groups = by_env(main_list)
            idle = [baseline_phase(min(5.0, args.idle))]
            if "ours" not in args.skip:
                idle.append(idle_phase(lambda: Ours(args.db_dir, WHOLE_GROUPS), groups, args.idle))
            if "aps" not in args.skip:
                idle.append(idle_phase(Aps, groups, args.idle))
            out["idle"] = idle
            print(f"\n== idle: {len(main_list)} entries due next 1 January ==")
            print(
                table(
                    [
                        "scheduler",
                        "threads",
                        "CPU s",
                        "over s",
                        "CPU s/min",
                        "other threads' CPU us",
                        "their wake-ups",
                    ],
                    [
                        [
                            i["scheduler"],
                            i["threads"],
                            f"{i['cpu_s']:.4f}",
                            f"{i['wall_s']:.1f}",
                            f"{i['cpu_s_per_min']:.4f}",
                            f"{i['sched_cpu_us']:.0f}",
                            i["wakeups"],
                        ]
                        for i in idle
                    ],
                )
            )
        loads: list[LoadResult] = []
        phases: list[tuple[str, Callable[[], Any], float]] = []
        ours, aps = "ours" not in args.skip, "aps" not in args.skip
        if args.idle_only:
            ours = aps = False
        if ours:
            phases.append(
                ("ours (SQLite on disk)", lambda: Ours(args.db_dir, WHOLE_GROUPS), args.minutes)
            )
        if aps:
            phases.append(("apscheduler", Aps, args.minutes))
        if ours and args.tmpfs_minutes > 0 and os.path.isdir(args.tmpfs_dir):
            phases.append(
                (
                    "ours (SQLite on tmpfs)",
                    lambda: Ours(args.tmpfs_dir, WHOLE_GROUPS),
                    args.tmpfs_minutes,
                )
            )
        for i, (label, make, minutes) in enumerate(phases):
            s = make()
            try:
                r = load_phase(s, main_list, args.swap_lines, minutes, i == len(phases) - 1)
            finally:
                s.close()
            r.name = label
            loads.append(r)
            print_load(r)
            sys.stdout.flush()
        out["load"] = [r.__dict__ for r in loads]
        if loads:
            print("\n== summary (main entries; lateness at dispatch = firing, and at job start) ==")
            print(
                table(
                    [
                        "scheduler",
                        "dispatch p50",
                        "dispatch p99",
                        "dispatch max",
                        "start p50",
                        "start p99",
                        "start max",
                        "CPU s/min",
                        "swap med ms",
                        "swap max ms",
                        "lost",
                        "doubled",
                    ],
                    [
                        [
                            r.name,
                            ms(r.dispatch_lateness["p50"]),
                            ms(r.dispatch_lateness["p99"]),
                            ms(r.dispatch_lateness["max"]),
                            ms(r.start_lateness["p50"]),
                            ms(r.start_lateness["p99"]),
                            ms(r.start_lateness["max"]),
                            f"{r.cpu_s_per_min:.1f}",
                            f"{statistics.median([x['ms'] for x in r.swaps]):.1f}"
                            if r.swaps
                            else "-",
                            f"{max(x['ms'] for x in r.swaps):.1f}" if r.swaps else "-",
                            r.never_started + r.swap_never_started,
                            r.doubled + r.swap_doubled,
                        ]
                        for r in loads
                    ],
                )
            )
    if args.profile or args.profile_only:
        print(f"\n== profile: one burst of {args.envs * args.per_env} firings, injected clock ==")
        plain = {
            label: plain_burst(args.db_dir, args.envs, args.per_env, ahead)
            for label, ahead in (("claimed ahead (timer)", True), ("run_due at the instant", False))
        }
        print(
            table(
                [
                    "not profiled",
                    "firings",
                    "claim ahead s",
                    "at instant s",
                    "last start s",
                    "drained s",
                    "written s",
                    "CPU s",
                ],
                [
                    [
                        label,
                        r["firings"],
                        f"{r['claim_ahead_s']:.3f}",
                        f"{r['run_due_s']:.3f}",
                        f"{r['last_start_s']:.3f}",
                        f"{r['drained_s']:.3f}",
                        f"{r['written_s']:.3f}",
                        f"{r['cpu_s']:.2f}",
                    ]
                    for label, r in plain.items()
                ],
            )
        )
        prof = profile_burst(args.db_dir, args.envs, args.per_env, args.top)
        out["profile"] = {"plain": plain, **prof}
        print("\nunder cProfile (everything about 2x slower):")
        print(
            f"claim ahead {prof['claim_ahead_s']:.3f} s; hand-off at the instant "
            f"{prof['hand_off_s']:.3f} s; last job started at {prof['last_start_s']:.3f} s; "
            f"all finished at {prof['drained_s']:.3f} s, written at {prof['written_s']:.3f} s"
        )
        print("\n-- timer thread, claim ahead (step() before the instant), cumulative --")
        print(prof["claim_cumtime"])
        print("-- timer thread, hand-off (step() at the instant), by own time --")
        print(prof["hand_off_tottime"])
        print("-- the 8 pool workers (Execution.run), by own time --")
        print(prof["workers_tottime"])
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
