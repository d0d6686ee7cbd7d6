"""`Scheduler`: the public face of the package, wiring its parts.

One timer thread sleeps until the next thing to do (`Timer`: a heap of fire times, no
fixed tick) and is woken when a table changes. `lead` seconds before an instant it takes
the due firings off the heap and claims them all in the run log in one go (`Handover.
claim`); at the instant only the hand-over to the `FairPool` is left (`Handover.start`).
A worker runs the job and applies the outcome's policies (`Execution`). Manual runs,
`@reboot` and catch-up after downtime are claimed and handed over at once (`Recovery`).
`replace()` swaps one table in one assignment (`Tables`). All time reads go through an
injected clock; `run_due(now)` and `step()` are whole firing steps, so tests move time
instead of sleeping. `docs/architecture.md` follows one firing through all of this."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial

from reconciler.core.crontab import Crontab
from reconciler.cron.fairpool import FairPool
from reconciler.cron.scheduler import lifecycle
from reconciler.cron.scheduler.clock import Clock, SystemClock
from reconciler.cron.scheduler.execution import Execution, Notify, Runner
from reconciler.cron.scheduler.handover import Handover, no_gc_pause
from reconciler.cron.scheduler.recovery import Recovery
from reconciler.cron.scheduler.tables import (
    EntryState,
    Table,
    Tables,
    Target,
    live_handles,
    replace_user,
    schedule_key,
)
from reconciler.cron.scheduler.timer import Timer
from reconciler.storage.runlog import RunLog

MISSED_RETRY = 1.0  # seconds between tries to record firings missed while the store was down


class Scheduler:
    def __init__(
        self,
        runlog: RunLog,
        runner: Runner,
        clock: Clock | None = None,
        workers: int = 8,
        per_env: int = 2,
        owner: str = "hoody",
        notify: Notify | None = None,
        shutdown_grace: float = 30.0,
        backoff: float = 10.0,
        lead: float = 1.0,
        whole_groups: bool = True,
    ) -> None:
        """`lead`: seconds ahead of an instant its firings are claimed (`claim_ahead`).
        `whole_groups`: a group claimed idle and untouched since starts as a whole at its
        instant; False checks every firing (the same runs, more work at the instant)."""
        self.runlog = runlog
        self.clock = clock or SystemClock()
        self.owner = owner
        self.shutdown_grace = shutdown_grace
        self._tables = Tables()
        self.timer = Timer(self._tables, lead)
        self.pool = FairPool(workers, per_env)
        notify = notify or (lambda *_a: None)
        self.execution = Execution(
            self._tables, self.timer, runner, runlog, self.clock, notify, backoff
        )
        self.handover = Handover(
            self._tables, runlog, self.pool, self.clock, owner, self.execution.run, whole_groups
        )
        self.recovery = Recovery(self._tables, self.handover, runlog, self.clock, owner)
        self.trigger = self.recovery.trigger
        self.reboot = self.recovery.reboot
        self.lateness = self.handover.lateness  # seconds, one per firing claimed ahead
        self.on_fire = self.handover.on_fire
        self.on_run_finished = self.execution.on_run_finished
        self.on_entry_gone = self._tables.on_entry_gone
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def tables(self) -> Mapping[str, Table]:
        return self._tables.by_key

    # -- tables ----------------------------------------------------------------------

    def replace(
        self,
        env: str,
        target: Target,
        crontab: Crontab,
        source: str = "git",
        user: str | None = None,
        text: str | None = None,
        expires: Mapping[str, datetime] | None = None,
    ) -> str:
        """Swap one table (environment, user) in one step; the crontab is already fully
        parsed. A git table seen for the first time catches up. Returns its key."""
        user = user or target.settings.user
        key = schedule_key(env, user, source == "managed")
        now = self.clock.now()
        prepared = self._tables.prepare(key, crontab, target.settings.jitter, now)
        with self._tables.lock, no_gc_pause():  # one short step: no GC pass inside
            table = Table(key, env, user, replace_user(target, user), {}, source, text)
            old, fresh = self._tables.swap(table, prepared, expires or {}, now)
            self.timer.swapped(table, fresh)
            self._tables.changed.notify_all()
        if old is None and source == "git":
            self.recovery.catch_up(table, now)
        return key

    def remove(self, env: str) -> int:
        """Drop every table of `env` and stop its running jobs (recorded `cancelled`)."""
        with self._tables.lock:
            gone = self._tables.remove_env(env)
            self._tables.changed.notify_all()
        handles = live_handles(gone)
        for h in handles:
            h.cancel()
        return len(handles)

    def remove_table(self, key: str) -> None:
        with self._tables.lock:
            self._tables.remove(key)
            self._tables.changed.notify_all()

    def tables_of(self, env: str) -> list[Table]:
        return self._tables.of_env(env)

    def entries(self, env: str) -> list[EntryState]:
        return [s for t in self.tables_of(env) for s in t.entries.values()]

    def find(self, env: str, entry_id: str) -> tuple[Table, EntryState] | None:
        return self._tables.find(env, entry_id)

    def pause(self, env: str, entry_id: str) -> bool:
        """Stop firing an entry until `resume` (what N consecutive failures do)."""
        return self._tables.set_paused(env, entry_id, True)

    def resume(self, env: str, entry_id: str) -> bool:
        return self._tables.set_paused(env, entry_id, False)

    # -- firing ----------------------------------------------------------------------

    def next_wakeup(self) -> datetime | None:
        """The next scheduled firing (claimed or not), exact."""
        with self._tables.lock:
            top, ready = self.timer.top(self.timer.heap), self.handover.next_instant()
            times = [t for t in (top, ready) if t is not None]
            return datetime.fromtimestamp(min(times), UTC) if times else None

    def wake_ts(self) -> float | None:
        """When the timer acts next: a claim (`lead` before a firing), a hand-over, an
        expiry."""
        with self._tables.lock:
            wake = self.timer.wake_ts(self.handover.next_instant())
        if self.handover.unclaimed:  # retry recording the missed firings every second
            retry = self.clock.now().timestamp() + MISSED_RETRY
            wake = retry if wake is None else min(wake, retry)
        return wake

    def run_due(self, now: datetime | None = None) -> int:
        """The whole firing step at `now`: drop expired entries, claim what is due and
        hand it over. Returns how many firings started or were recorded `skipped`."""
        now = now or self.clock.now()
        self.timer.expire(now)
        self._claim(now, now.timestamp())
        n = self.handover.release(now.timestamp())
        self.runlog.flush()  # what started shows as `running` when this returns
        return n

    def step(self) -> int:
        """The timer's step: like `run_due`, but claims `lead` seconds ahead, so that
        at the instant itself only the hand-over is left (Quartz's fire-ahead window)."""
        now = self.clock.now()
        self.timer.expire(now)
        lead, t0 = self.timer.current_lead(), self.timer.monotonic()
        if self._claim(now, now.timestamp() + lead):
            self.timer.claimed_in(self.timer.monotonic() - t0, lead)
        return self.handover.release(self.clock.now().timestamp())

    def _claim(self, now: datetime, horizon: float) -> int:
        if self.handover.unclaimed:  # the store was down: record what was missed first
            self.handover.record_missed()
        taken = self.timer.take(now, horizon)
        return self.handover.claim(taken) if taken else 0

    @property
    def store_error(self) -> str | None:
        """Why the run log could not be written at the last try (None: it could): the
        `scheduler` check of /readyz."""
        return self.handover.store_error

    def start(self) -> None:
        loop = partial(
            lifecycle.run_loop,
            self._tables,
            lambda: self._stopping,
            self.wake_ts,
            lambda: self.clock.now().timestamp(),
            self.step,
        )
        self._thread = lifecycle.start(self.runlog, self.owner, loop)

    def stop(self) -> None:
        """Stop firing, give back claims whose instant has not come, wait up to
        `shutdown_grace` for running jobs, record the rest as `interrupted`."""
        with self._tables.lock:
            self._stopping = True
            self._tables.changed.notify_all()
        if self._thread:
            self._thread.join(5)
        lifecycle.shut_down(
            self._tables, self.handover, self.pool, self.runlog, self.owner, self.shutdown_grace
        )

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is queued or running and their runs are written (tests,
        shutdown)."""
        deadline = time.monotonic() + timeout
        idle = self.pool.wait_idle(timeout)
        return self.runlog.flush(max(0.0, deadline - time.monotonic())) and idle
