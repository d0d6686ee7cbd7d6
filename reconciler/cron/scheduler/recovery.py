"""Firings that are not due by the clock: manual runs, `@reboot` (the environment's cron
container started), and the catch-up of a slot missed while the service was down.

Each is claimed `running` at once (no claim ahead) and handed over alone; the overlap
policy and pauses apply as to any firing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.core.crontab import CronEntry, next_fire
from reconciler.cron.scheduler.clock import Clock
from reconciler.cron.scheduler.firing import Firing, Pending, claim_of
from reconciler.cron.scheduler.handover import SKIP_REASON, Handover
from reconciler.cron.scheduler.tables import EntryState, Table, Tables
from reconciler.storage.runlog import RunLog

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RESOLUTION = timedelta(microseconds=1)


def last_fire(entry: CronEntry, after: datetime, upto: datetime) -> datetime | None:
    """The latest firing of `entry` in (`after`, `upto`], found directly, however many
    slots lie in between (a walk from `after` would take one step per slot)."""
    first = next_fire(entry, after)
    if first is None or first > upto:
        return None
    if entry.kind == "every":  # whole multiples of the interval since the epoch
        step = round((entry.every or 0) * 1_000_000)
        return _EPOCH + timedelta(microseconds=(upto - _EPOCH) // _RESOLUTION // step * step)
    if entry.kind != "cron":
        return first  # a one-shot fires once
    # `next_fire(entry, t) <= upto` holds for every t up to just before the latest firing
    # and for none after: double a window back from `upto` until it holds a firing, then
    # halve the interval where the answer flips, down to a microsecond.
    lo, hi, span = upto, upto, timedelta(minutes=1)
    while True:
        lo = max(after, upto - span)
        found = next_fire(entry, lo)
        if found is not None and found <= upto:
            break
        hi, span = lo, span * 2
    while hi - lo > _RESOLUTION:
        mid = lo + (hi - lo) / 2
        found = next_fire(entry, mid)
        if found is not None and found <= upto:
            lo = mid
        else:
            hi = mid
    return next_fire(entry, lo)


class Recovery:
    def __init__(
        self, tables: Tables, handover: Handover, runlog: RunLog, clock: Clock, owner: str
    ) -> None:
        self.tables = tables
        self.handover = handover
        self.runlog = runlog
        self.clock = clock
        self.owner = owner

    def trigger(self, env: str, entry_id: str, trigger: str = "manual") -> int | None:
        """Run an entry now (the overlap policy applies). Returns the run id, if any."""
        found = self.tables.find(env, entry_id)
        if found is None:
            return None
        return self.dispatch(found[0], found[1], self.clock.now(), trigger, 1)

    def reboot(self, env: str) -> int:
        """The environment's cron container (re)started: run the @reboot entries of each
        of its tables (one per user, and managed ones) once."""
        found = [
            (t, s)
            for t in self.tables.of_env(env)
            for s in t.entries.values()
            if s.entry.kind == "reboot"
        ]
        for table, state in found:
            self.dispatch(table, state, self.clock.now(), "reboot", 1)
        return len(found)

    def catch_up(self, table: Table, now: datetime) -> None:
        """An entry whose latest scheduled time was missed runs once if that time is within
        `starting_deadline`; otherwise one run is recorded `missed`. Never a replay."""
        deadline = table.target.settings.starting_deadline
        for state in list(table.entries.values()):
            e = state.entry
            if e.kind == "reboot":
                continue
            last = self.runlog.last_scheduled(table.env, e.id)
            if last is None:
                continue
            missed = last_fire(e, datetime.fromtimestamp(last, UTC), now)
            if missed is None:
                continue
            if (now - missed).total_seconds() <= deadline:
                self.dispatch(table, state, missed, "catch-up", 1)
            else:
                why = f"missed while the service was down (more than {deadline:g}s ago)"
                self._claim(table, state, missed, "schedule", 1, "missed", why)

    def dispatch(
        self, table: Table, state: EntryState, scheduled: datetime, trigger: str, attempt: int
    ) -> int | None:
        """Claim and start one firing now. Returns its run id if it started."""
        if state.paused and trigger != "manual":
            return None
        if state.busy() and table.target.settings.concurrency == "forbid":
            self._claim(table, state, scheduled, trigger, attempt, "skipped", SKIP_REASON)
            return None
        run_id = self._claim(table, state, scheduled, trigger, attempt)
        if run_id is None:
            return None  # another scheduler instance owns this firing
        f = Firing(scheduled.timestamp(), table.key, table, state, scheduled, trigger, attempt)
        f.arm(run_id, self.handover.run)
        pending = Pending(f.key, f.table, f.version)
        pending.add(f)
        self.handover.start([pending])
        with self.tables.lock:
            return run_id if run_id in state.running else None

    def _claim(
        self,
        table: Table,
        state: EntryState,
        scheduled: datetime,
        trigger: str,
        attempt: int,
        status: str = "running",
        reason: str | None = None,
    ) -> int | None:
        c = claim_of(table, state, scheduled, trigger, attempt, scheduled.timestamp())
        return self.runlog.claim(**c.row(), status=status, owner=self.owner, reason=reason)
