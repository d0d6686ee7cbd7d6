"""Each environment's crontab, run inside this process.

One timer thread sleeps until the next firing (a heap of fire times; no fixed tick) and
is woken when a schedule changes. Firings are claimed in the run log before they run:
all firings of an instant together, in one statement, `lead` seconds ahead of it (as
Quartz acquires triggers inside its fire-ahead window), so that at the instant only the
hand-over to the `FairPool` (global and per-environment limits) is left. A claimed
firing whose entry went away or was paused before its instant is given back (its row
deleted); the overlap policy is applied at the instant, against what runs then. `replace()` swaps an
environment's whole table in one assignment: entries are keyed by identity (schedule +
command + variables), so an unchanged entry keeps its next firing and history across a
swap, and is neither fired twice nor skipped. All time reads go through an injected clock;
`run_due(now)` is the whole firing step, so tests move time instead of sleeping.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Protocol

from reconciler.core.crontab import CronEntry, Crontab, next_fire
from reconciler.core.model import CronSettings
from reconciler.cron.fairpool import FairPool
from reconciler.cron.jobs import Flag, Handle, Job, Outcome
from reconciler.storage.runlog import Claim, RunLog

log = logging.getLogger(__name__)
Notify = Callable[[str, str, str, str, str], None]  # repo, env, kind, message, level
MAX_LEAD = 60.0  # seconds: the most a firing is claimed ahead of its instant
SKIP_REASON = "the previous run is still running (concurrency: forbid)"
NO_RUNS: Mapping[int, Handle] = MappingProxyType({})


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class Runner(Protocol):
    def run(self, job: Job, handle: Handle) -> Outcome: ...


@dataclass(frozen=True)
class Target:
    """Where and how an environment's jobs run."""

    repo: str
    container: str
    env: Mapping[str, str]  # the cron service's environment (crontab variables go over it)
    settings: CronSettings


@dataclass(eq=False, slots=True)
class EntryState:
    entry: CronEntry
    next_at: datetime | None  # next scheduled time (exact; jitter is added when firing)
    offset: float = 0.0  # this entry's stable jitter, seconds
    expires_at: datetime | None = None  # managed entries may remove themselves
    finished: int = 0  # runs finished in this process (history is trimmed every tenth)
    paused: bool = False
    failures: int = 0
    # Copy-on-write, owned by the scheduler's lock: replaced (never changed in place)
    # with the lock held, so anyone may iterate the mapping they read without it.
    running: Mapping[int, Handle] = field(default_factory=lambda: NO_RUNS)  # see `live`
    retry: tuple[datetime, int, datetime] | None = None  # (when, attempt, scheduled_for)
    claimed_for: float | None = None  # instant of its latest firing claimed ahead

    def fire_at(self) -> datetime | None:
        return None if self.next_at is None else self.next_at + timedelta(seconds=self.offset)

    def add_run(self, run_id: int, handle: Handle) -> None:
        """(Scheduler lock held.)"""
        self.running = {**self.running, run_id: handle}

    def drop_run(self, run_id: int) -> None:
        """(Scheduler lock held.)"""
        if run_id in self.running:
            self.running = {k: h for k, h in self.running.items() if k != run_id}

    def live(self) -> list[tuple[int, Handle]]:
        """Its runs that have started. `running` also holds the handles of firings
        claimed ahead, from their claim on, behind their group's gate (see `_hand_off`)."""
        return [(rid, h) for rid, h in self.running.items() if h.started]

    def busy(self) -> bool:
        return any(h.started for h in self.running.values())

    def upcoming(self, now: datetime) -> datetime | None:
        """The next instant this entry fires, one already claimed included (what users
        see: `next_at` moves on when a firing is claimed, up to `lead` before it)."""
        if self.claimed_for is not None and self.claimed_for >= now.timestamp():
            return datetime.fromtimestamp(self.claimed_for, UTC)
        return self.fire_at()


@dataclass
class Table:
    key: str
    env: str
    user: str
    target: Target
    entries: Mapping[str, EntryState]  # copy-on-write, like `EntryState.running`
    source: str = "git"  # git | api | managed
    text: str | None = None  # the crontab text it came from (git or api)
    version: int = 0  # bumped when an entry leaves the table in place (managed entries)


@dataclass(eq=False, slots=True)
class Firing:
    """One claimed firing on its way to the pool."""

    ts: float  # its instant (jitter included)
    key: str  # the table it belongs to
    table: Table  # the table when it was claimed (re-read at the instant)
    state: EntryState
    scheduled: datetime
    trigger: str
    attempt: int
    run_id: int = 0
    handle: Handle | None = None
    job: Job | None = None
    call: Callable[[], None] | None = None
    previous: list[tuple[int, Handle]] = field(default_factory=list)
    entry_id: str = ""
    once: bool = False
    version: int = 0  # the table's version when claimed
    transferred: bool = False  # its claim was handed on to the same entry's new state

    def __post_init__(self) -> None:
        self.entry_id = self.state.entry.id
        self.once = self.state.entry.kind == "once"
        self.version = self.table.version

    @property
    def claimed_ahead(self) -> bool:
        """Scheduled firings and retries are claimed ahead (a `claimed` row until the
        hand-over); manual, reboot and catch-up runs are claimed `running` at once."""
        return self.trigger in ("schedule", "retry")

    def claim(self) -> Claim:
        return claim_of(self.table, self.state, self.scheduled, self.trigger, self.attempt, self.ts)

    def withdraw(self) -> int:
        """It will not run (given back or skipped): its handle, among its entry's runs
        behind a shut gate since the claim, leaves them. Returns its run id."""
        self.state.drop_run(self.run_id)
        self.call = None
        return self.run_id


def claim_of(
    table: Table, state: EntryState, scheduled: datetime, trigger: str, attempt: int, at: float
) -> Claim:
    """The run row of one firing of `state` (`at`: when it is planned to start)."""
    e = state.entry
    return Claim(
        repo=table.target.repo,
        env=table.env,
        entry_id=e.id,
        line=e.line,
        schedule=e.schedule,
        command=e.command,
        trigger=trigger,
        scheduled_for=_ts(scheduled),
        attempt=attempt,
        planned_start=at,
    )


@dataclass(eq=False, slots=True)
class Pending:
    """The claimed firings of one instant and one table (at one version)."""

    key: str
    table: Table
    version: int
    starts: int = 0  # the table key's count of starts and pauses when the group was made
    clean: bool = False  # every entry was idle (not running, not paused) when claimed
    firings: list[Firing] = field(default_factory=list)
    calls: list[Callable[[], None]] = field(default_factory=list)
    gate: Flag = field(default_factory=Flag)  # set when they start as a whole
    once: bool = False  # a one-shot among them (it leaves the table when it starts)

    def add(self, f: Firing) -> None:
        assert f.call is not None and f.handle is not None
        self.firings.append(f)
        self.calls.append(f.call)
        f.handle.gate = self.gate
        self.once = self.once or f.once


def schedule_key(env: str, user: str, managed: bool = False) -> str:
    """A table per (environment, user): the git crontab is cron.user's, an API PUT for that
    user overrides it until the next commit that changes the file, and managed entries of
    each user live in a table of their own."""
    return f"{env}/{user}/managed" if managed else f"{env}/{user}"


def jitter_offset(entry_id: str, window: float) -> float:
    if window <= 0:
        return 0.0
    h = int.from_bytes(hashlib.sha256(entry_id.encode()).digest()[:8], "big")
    return (h % int(window * 1000)) / 1000.0


@contextlib.contextmanager
def _no_gc_pause() -> Iterator[None]:
    """No cyclic-GC pass inside the hand-over of an instant or a swap: a full collection
    walks every object of the process (tens of ms with 10,000 armed firings) and would
    land on the critical path. Collection resumes right after (and stays off if it was
    off)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _ts(t: datetime) -> float:
    return t.timestamp()


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
    ) -> None:
        self.runlog = runlog
        self.runner = runner
        self.clock = clock or SystemClock()
        self.owner = owner
        self.notify = notify or (lambda *_a: None)
        self.shutdown_grace = shutdown_grace
        self.backoff = backoff
        self.tables: dict[str, Table] = {}
        self.lead = lead  # seconds ahead of an instant that its firings are claimed
        # The slowest recent claim (seconds, decaying): an instant whose claim takes longer
        # than half the lead is claimed further ahead from then on (see `_lead`).
        self._claim_s = 0.0
        self._monotonic = time.monotonic  # tests replace it to make a claim "slow"
        self._heap: list[tuple[float, int, str, str, str, EntryState]] = []  # not claimed
        self._expiry: list[tuple[float, int, str, str, str, EntryState]] = []
        # Claimed firings waiting for their instant, by instant, then by (table, version).
        self._ready: dict[float, dict[tuple[int, int], Pending]] = {}
        self._claims_at: dict[float, dict[tuple[str, str, datetime, int], Firing]] = {}
        self._instants: list[float] = []  # heap of the instants in `_ready`
        # Per table key, how many times one of its entries started a run or was paused.
        # A group of claimed firings made when its entries were idle, whose count has
        # not moved by the instant, still has only idle entries: it starts as a whole.
        self._starts: dict[str, int] = {}
        self._seq = itertools.count()
        lock = threading.RLock()
        self._cond = threading.Condition(lock)  # the timer waits on it
        self._finished = threading.Condition(lock)  # a run ended (concurrency: replace)
        self._pool = FairPool(workers, per_env)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.lateness: deque[float] = deque(maxlen=100_000)
        self.on_run_finished: list[Callable[[str, str, CronEntry, str, Outcome], None]] = []
        self.on_entry_gone: list[Callable[[str, str, str, str], None]] = []
        self.on_fire: list[Callable[[float], None]] = []  # lateness of each firing, seconds

    # -- schedules -------------------------------------------------------------------

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
        parsed. Returns the table's key."""
        user = user or target.settings.user
        key = schedule_key(env, user, source == "managed")
        now = self.clock.now()
        # The costly part (next times and jitter of new entries) is done before taking
        # the timer's lock, so that a swap landing on an instant does not hold up its
        # hand-over; under the lock only the assignment and the heap pushes are left.
        seen = self.tables.get(key)
        jitter = target.settings.jitter
        prepared = []
        for e in crontab.entries:
            known = seen.entries.get(e.id) if seen else None
            prepared.append(
                (
                    e,
                    jitter_offset(e.id, jitter),
                    known,
                    next_fire(e, now) if known is None else None,
                )
            )
        with self._cond, _no_gc_pause():  # the swap is one short step: no GC pass inside
            old = self.tables.get(key)
            first_time = old is None and source == "git"
            entries: dict[str, EntryState] = {}
            push: list[EntryState] = []
            for e, offset, known, upcoming in prepared:
                state = old.entries.get(e.id) if old else None
                expires_at = (expires or {}).get(e.id)
                if state is None:
                    state = EntryState(e, upcoming if known is None else next_fire(e, now), offset)
                    push.append(state)
                else:
                    if state.offset != offset or state.expires_at != expires_at:
                        push.append(state)  # a new fire time, or a firing held by an expiry
                    state.entry, state.offset = e, offset  # same job; maybe moved lines
                state.expires_at = expires_at
                entries[e.id] = state
            table = Table(key, env, user, replace_user(target, user), entries, source, text)
            self.tables[key] = table  # the swap: one assignment
            # A kept state's heap item stays valid (same key, entry and fire time).
            for state in push:
                self._push(key, state)
            for state in entries.values():
                if state.expires_at is not None:
                    self._push(key, state, kind="expire")
            self._cond.notify_all()
        if first_time:
            self._catch_up(table, now)
        return key

    def remove(self, env: str, reason: str = "environment removed") -> int:
        """Drop every schedule of `env` and stop its running jobs (recorded `cancelled`)."""
        with self._cond:
            gone = [self.tables.pop(k) for k in [k for k, t in self.tables.items() if t.env == env]]
            for t in gone:
                self._starts.pop(t.key, None)  # a group claimed against `t` fails on `table`
            self._cond.notify_all()
        handles = [h for t in gone for s in t.entries.values() for _, h in s.live()]
        for h in handles:
            h.cancel()
        return len(handles)

    def remove_table(self, key: str) -> None:
        with self._cond:
            self.tables.pop(key, None)
            self._starts.pop(key, None)
            self._cond.notify_all()

    def tables_of(self, env: str) -> list[Table]:
        with self._cond:
            return sorted(
                (t for t in self.tables.values() if t.env == env),
                key=lambda t: (t.source == "managed", t.user),
            )

    def entries(self, env: str) -> list[EntryState]:
        return [s for t in self.tables_of(env) for s in t.entries.values()]

    def find(self, env: str, entry_id: str) -> tuple[Table, EntryState] | None:
        for t in self.tables_of(env):
            if entry_id in t.entries:
                return t, t.entries[entry_id]
        return None

    def pause(self, env: str, entry_id: str) -> bool:
        """Stop firing an entry until `resume` (what N consecutive failures do)."""
        with self._cond:
            found = self.find(env, entry_id)
            if found is None or found[1].paused:
                return False
            self._pause(found[0].key, found[1])
            return True

    def _pause(self, key: str, state: EntryState) -> None:
        state.paused = True
        self._moved(key)

    def _moved(self, key: str) -> None:
        """An entry of table `key` started a run or was paused (see `_starts`)."""
        self._starts[key] = self._starts.get(key, 0) + 1

    def resume(self, env: str, entry_id: str) -> bool:
        with self._cond:
            found = self.find(env, entry_id)
            if found is None or not found[1].paused:
                return False
            found[1].paused, found[1].failures = False, 0
            return True

    def _state(self, key: str, entry_id: str) -> EntryState | None:
        table = self.tables.get(key)
        return table.entries.get(entry_id) if table else None

    # -- the timer -------------------------------------------------------------------

    def _push(self, key: str, state: EntryState, retry: bool = False, kind: str = "sched") -> None:
        kind = "retry" if retry else kind
        if kind == "expire":
            if state.expires_at is not None:
                item = (_ts(state.expires_at), next(self._seq), key, state.entry.id, kind, state)
                heapq.heappush(self._expiry, item)
            return
        when = (state.retry[0] if state.retry else None) if kind == "retry" else state.fire_at()
        if when is not None:
            item = (_ts(when), next(self._seq), key, state.entry.id, kind, state)
            heapq.heappush(self._heap, item)

    def _valid(self, item: tuple[float, int, str, str, str, EntryState]) -> bool:
        ts, _, key, entry_id, kind, state = item
        if self._state(key, entry_id) is not state:
            return False
        if kind == "expire":
            return state.expires_at is not None and _ts(state.expires_at) == ts
        if kind == "retry":
            return state.retry is not None and _ts(state.retry[0]) == ts
        when = state.fire_at()
        return when is not None and _ts(when) == ts

    def _top(self, heap: list[tuple[float, int, str, str, str, EntryState]]) -> float | None:
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def next_wakeup(self) -> datetime | None:
        """The next scheduled firing (claimed or not), exact."""
        with self._cond:
            times = [t for t in (self._top(self._heap), self._ready_top()) if t is not None]
            return datetime.fromtimestamp(min(times), UTC) if times else None

    def _ready_top(self) -> float | None:
        return self._instants[0] if self._instants else None

    def _wake_ts(self) -> float | None:
        """When the timer must act next: claim `lead` seconds before a firing, hand a
        claimed firing over at its instant, drop an expired managed entry."""
        top = self._top(self._heap)
        times = [
            t
            for t in (
                None if top is None else top - self._lead(),
                self._ready_top(),
                self._top(self._expiry),
            )
            if t is not None
        ]
        return min(times) if times else None

    def run_due(self, now: datetime | None = None) -> int:
        """The whole firing step at `now`: drop expired entries, claim what is due and
        hand it over. Returns how many firings started or were recorded `skipped`."""
        now = now or self.clock.now()
        self._expire(now)
        self._prepare(now, _ts(now))
        n = self._release(_ts(now))
        self.runlog.flush()  # what started shows as `running` when this returns
        return n

    def _step(self) -> int:
        """The timer's step: like `run_due`, but claims `lead` seconds ahead, so that
        at the instant itself only the hand-over is left (Quartz's fire-ahead window)."""
        now = self.clock.now()
        self._expire(now)
        before, t0 = self._lead(), self._monotonic()
        if self._prepare(now, _ts(now) + before):
            self._claim_s = max(self._monotonic() - t0, self._claim_s * 0.9)
            lead = self._lead()
            if lead > before * 1.1:
                log.warning(
                    "scheduler: claiming the firings of an instant took %.2fs; they are "
                    "claimed %.1fs ahead from now on (scheduler.claim_ahead: %gs)",
                    self._claim_s,
                    lead,
                    self.lead,
                )
        return self._release(_ts(self.clock.now()))

    def _lead(self) -> float:
        """How far ahead of an instant its firings are claimed: `claim_ahead`, or twice
        the slowest recent claim if that is more, so that a claim grown slow (more
        entries, a busy machine) still ends before its instant; at most `MAX_LEAD`."""
        return min(MAX_LEAD, max(self.lead, 2 * self._claim_s))

    def _expire(self, now: datetime) -> None:
        with self._cond:
            while self._expiry and self._expiry[0][0] <= _ts(now):
                item = heapq.heappop(self._expiry)
                if self._valid(item):
                    self._drop_entry(self.tables[item[2]], item[3], "expired")

    def _prepare(self, now: datetime, horizon: float) -> int:
        """Take every firing due by `horizon` off the heap, advance its entry to the next
        time, and claim all of them in the run log at once. Claimed firings wait in
        `_ready` for their instant. Returns how many were claimed."""
        taken: list[Firing] = []
        with self._cond:
            heap = self._heap
            while heap and heap[0][0] <= horizon:
                item = heapq.heappop(heap)
                if not self._valid(item):
                    continue
                ts, _, key, entry_id, kind, state = item
                table = self.tables[key]
                if state.expires_at is not None and _ts(state.expires_at) <= ts:
                    if state.expires_at <= now:
                        self._drop_entry(table, entry_id, "expired")
                    continue  # the expiry comes first; nothing fires after it
                if kind == "retry":
                    assert state.retry is not None
                    _, attempt, scheduled = state.retry
                    state.retry = None
                    firing = Firing(ts, key, table, state, scheduled, "retry", attempt)
                else:
                    assert state.next_at is not None
                    scheduled = state.next_at
                    upcoming = next_fire(state.entry, scheduled)
                    if upcoming is not None and upcoming <= now:  # we were asleep: no replay
                        upcoming = next_fire(state.entry, now)
                    state.next_at = upcoming
                    state.retry = None  # the next scheduled firing cancels pending retries
                    self._push(key, state)
                    firing = Firing(ts, key, table, state, scheduled, "schedule", 1)
                if not state.paused:
                    taken.append(firing)
        if not taken:
            return 0
        try:
            ids = self.runlog.claim_many([f.claim() for f in taken], self.owner)
        except Exception:
            log.exception("scheduler: could not claim %d firing(s); they do not run", len(taken))
            for f in taken[:20]:  # the first few, each with its identity
                log.error(
                    "[%s/%s] .hoody/crontab:%s %s: firing of %s not claimed, not run",
                    f.table.target.repo,
                    f.table.env,
                    f.state.entry.line,
                    f.state.entry.id,
                    f.scheduled.isoformat(),
                    extra={
                        "repo": f.table.target.repo,
                        "env": f.table.env,
                        "entry": f.state.entry.id,
                    },
                )
            return 0
        claimed = 0
        with self._cond:
            starts = self._starts
            for f, rid in zip(taken, ids, strict=True):
                mine = self._claims_at.get(f.ts)
                ckey = (f.key, f.entry_id, f.scheduled, f.attempt)
                if rid is None:
                    # Held already: by another scheduler instance (it runs the firing), or
                    # by our own claim made for an entry state that was swapped out and
                    # back in before the instant; that claim carries over to this state.
                    old = mine.get(ckey) if mine else None
                    if old is None or old.transferred:
                        continue
                    old.transferred, rid = True, old.run_id
                    self._moved(f.key)  # the old group checks each of its firings
                if mine is None:
                    mine = self._claims_at[f.ts] = {}
                mine[ckey] = f
                self._arm(f, rid)
                state = f.state
                twice = state.claimed_for == f.ts  # a second firing of it at this instant
                state.claimed_for = f.ts
                groups = self._ready.get(f.ts)
                if groups is None:
                    groups = self._ready[f.ts] = {}
                    heapq.heappush(self._instants, f.ts)
                gkey = (id(f.table), f.version)
                group = groups.get(gkey)
                n = starts.get(f.key, 0)
                if group is None:
                    group = groups[gkey] = Pending(f.key, f.table, f.version, n, True)
                if group.clean and (state.paused or twice or group.starts != n or state.busy()):
                    group.clean = False  # checked firing by firing at the instant
                group.add(f)
                state.add_run(rid, f.handle)  # type: ignore[arg-type]  # behind the gate
                claimed += 1
            self._cond.notify_all()
        return claimed

    def _arm(self, f: Firing, run_id: int) -> None:
        """Everything a claimed firing needs to start, built before its instant."""
        f.run_id = run_id
        f.handle = Handle()
        f.job = self._job(f.table, f.state, run_id)
        f.call = functools.partial(self._execute, f)

    @staticmethod
    def _job(table: Table, state: EntryState, run_id: int) -> Job:
        e, target = state.entry, table.target
        return Job(
            run_id=run_id,
            repo=target.repo,
            env=table.env,
            entry_id=e.id,
            container=target.container,
            shell=e.shell,
            command=e.command,
            stdin=e.stdin,
            variables={**target.env, **e.env},
            user=target.settings.user,
            timeout=target.settings.timeout,
        )

    def _release(self, now: float) -> int:
        """Hand over every claimed firing whose instant has come."""
        due: list[Pending] = []
        done: list[object] = []  # the instants' claims indexes: freed on return, not before
        with self._cond:
            while self._instants and self._instants[0] <= now:
                instant = heapq.heappop(self._instants)
                due.extend(self._ready.pop(instant).values())
                done.append(self._claims_at.pop(instant, None))
        return self._hand_off(due) if due else 0

    def _hand_off(self, due: list[Pending]) -> int:
        """Start claimed firings, given in groups of one table each: check them against
        the current table and the overlap policy, give the whole step to the pool in one
        call, then record lateness and write what did not start (skipped, or given back
        because its entry went away)."""
        go: list[Firing] = []
        tasks: dict[str, list[Callable[[], None]]] = {}  # per environment, for the pool
        skipped: list[tuple[int, str]] = []
        given_back: list[int] = []
        starts = self._starts
        with self._cond, _no_gc_pause():
            tables = self.tables
            for group in due:
                firings = group.firings
                key = group.key
                table = tables.get(key)
                if table is None:
                    given_back.extend(f.withdraw() for f in firings if not f.transferred)
                    continue
                calls = tasks.get(table.env)
                if calls is None:
                    calls = tasks[table.env] = []
                if (
                    group.clean
                    and table is group.table
                    and table.version == group.version
                    and starts.get(key, 0) == group.starts
                    and not group.once
                ):
                    # The burst's common case: the very table the firings were claimed
                    # against, unchanged, and none of its entries has started a run or
                    # been paused since they were claimed idle. All of them start.
                    group.gate.set()  # their handles, in `running` since the claim, count
                    go.extend(firings)
                    calls.extend(group.calls)
                    self._moved(key)
                    continue
                started = False
                for f in firings:
                    if f.transferred:
                        continue  # its claim went on to the entry's new state
                    state, handle = f.state, f.handle
                    assert handle is not None
                    if table.entries.get(f.entry_id) is not state or (
                        state.paused and f.trigger != "manual"
                    ):
                        given_back.append(f.withdraw())
                        continue
                    if table is not f.table:  # swapped since the claim: maybe a new container
                        f.table = table
                        f.job = self._job(table, state, f.run_id)
                    live = state.live()  # not this one: its gate is still shut
                    if live:
                        policy = table.target.settings.concurrency
                        if policy == "forbid":
                            skipped.append((f.withdraw(), SKIP_REASON))
                            continue
                        if policy == "replace":
                            f.previous = live
                    handle.gate = None  # it counts as running on its own
                    if state.running.get(f.run_id) is not handle:
                        state.add_run(f.run_id, handle)
                    started = True
                    go.append(f)
                    calls.append(f.call)  # type: ignore[arg-type]
                    if f.once:
                        self._drop_entry(table, f.entry_id, "ran once")
                if started:
                    self._moved(key)
            if tasks:
                self._pool.submit_grouped(tasks)
            t = _ts(self.clock.now())  # handed over: every firing is queued, workers woken
        late = [t - f.ts for f in go if f.claimed_ahead]
        self.lateness.extend(late)
        for f in go:
            for _rid, handle in f.previous:
                handle.cancel()  # concurrency: replace; the new run waits for it to end
        self.runlog.started_later([f.run_id for f in go if f.claimed_ahead], t)
        try:
            self.runlog.skip(skipped)
            self.runlog.unclaim(given_back)
        except Exception:
            log.exception("scheduler: could not record the start of %d firing(s)", len(due))
        for observe in self.on_fire:
            for x in late:
                observe(x)
        return len(go) + len(skipped)

    def _drop_entry(self, table: Table, entry_id: str, why: str) -> None:
        """A managed entry leaves by itself (expired, or a one-shot that fired)."""
        table.entries = {k: s for k, s in table.entries.items() if k != entry_id}
        table.version += 1
        for listener in self.on_entry_gone:
            try:
                listener(table.env, table.user, entry_id, why)
            except Exception:
                log.exception("entry listener failed")

    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                wake = self._wake_ts()
                now = _ts(self.clock.now())
                if wake is None or wake > now:
                    self._cond.wait(None if wake is None else wake - now)
                    continue
            try:
                self._step()
            except Exception:
                log.exception("scheduler: firing step failed; continuing")

    def start(self) -> None:
        n = self.runlog.interrupt_running(owner=self.owner, reason="the scheduler restarted")
        if n:
            log.warning("scheduler: %d run(s) left running by a crash are now interrupted", n)
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop firing, wait up to `shutdown_grace` for running jobs, record the rest as
        `interrupted`."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(5)
        with self._cond:
            unreleased = [
                f.run_id
                for g in self._ready.values()
                for p in g.values()
                for f in p.firings
                if not f.transferred
            ]
            self._ready.clear()
            self._instants.clear()
            self._claims_at.clear()
        try:
            self.runlog.unclaim(unreleased)  # their time has not come: as if never claimed
        except Exception:
            log.exception("scheduler: could not give back %d claim(s)", len(unreleased))
        self._pool.drop_queued()
        finished = self._pool.shutdown(self.shutdown_grace)
        self.runlog.flush()
        # First record what is still running as interrupted (a final status is never
        # overwritten), then stop those jobs' processes so nothing is left behind.
        self.runlog.interrupt_running(owner=self.owner, reason="the service shut down")
        if not finished:
            with self._cond:
                handles = [
                    h for t in self.tables.values() for s in t.entries.values() for _, h in s.live()
                ]
            for h in handles:
                h.cancel()

    # -- firing ----------------------------------------------------------------------

    def trigger(self, env: str, entry_id: str, trigger: str = "manual") -> int | None:
        """Run an entry now (the overlap policy applies). Returns the run id, if any."""
        found = self.find(env, entry_id)
        if found is None:
            return None
        return self._dispatch(found[0], found[1], self.clock.now(), trigger, 1)

    def reboot(self, env: str) -> int:
        """The environment's cron container (re)started: run the @reboot entries of each
        of its tables (one per user, and managed ones) once."""
        found = [
            (t, s)
            for t in self.tables_of(env)
            for s in t.entries.values()
            if s.entry.kind == "reboot"
        ]
        for table, state in found:
            self._dispatch(table, state, self.clock.now(), "reboot", 1)
        return len(found)

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
        c = claim_of(table, state, scheduled, trigger, attempt, _ts(scheduled))
        return self.runlog.claim(
            **c.row(),
            status=status,
            owner=self.owner,
            reason=reason,
        )

    def _dispatch(
        self, table: Table, state: EntryState, scheduled: datetime, trigger: str, attempt: int
    ) -> int | None:
        """Claim and start one firing now (manual, reboot, catch-up)."""
        if state.paused and trigger != "manual":
            return None
        if state.busy() and table.target.settings.concurrency == "forbid":
            self._claim(table, state, scheduled, trigger, attempt, "skipped", SKIP_REASON)
            return None
        run_id = self._claim(table, state, scheduled, trigger, attempt)
        if run_id is None:
            return None  # another scheduler instance owns this firing
        f = Firing(_ts(scheduled), table.key, table, state, scheduled, trigger, attempt)
        self._arm(f, run_id)
        pending = Pending(f.key, f.table, f.version)
        pending.add(f)
        self._hand_off([pending])
        with self._cond:
            return run_id if run_id in state.running else None

    def _execute(self, f: Firing) -> None:
        state, table = f.state, f.table
        e, target = state.entry, table.target
        handle = f.handle
        assert handle is not None and f.job is not None
        if f.previous:  # concurrency: replace — the old run stops before the new one starts
            previous = {rid for rid, _ in f.previous}
            with self._finished:
                self._finished.wait_for(lambda: not previous & state.running.keys(), timeout=60)
        started_at = time.time()
        started = time.monotonic()
        try:
            o = self.runner.run(f.job, handle)
            outcome = Outcome(
                o.status, o.exit_code, o.stdout, o.stderr, o.reason, time.monotonic() - started
            )
        except Exception as ex:
            log.exception("[%s/%s] job %s crashed", target.repo, table.env, e.id)
            outcome = Outcome("error", None, "", "", f"{type(ex).__name__}: {ex}")
        if handle.cancelled.is_set() and outcome.status not in ("timed_out", "error"):
            outcome = Outcome(
                "cancelled",
                outcome.exit_code,
                outcome.stdout,
                outcome.stderr,
                outcome.reason or "cancelled",
            )
        runlog = self.runlog
        try:
            runlog.finish_later(
                f.run_id,
                outcome.status,
                outcome.exit_code,
                outcome.stdout,
                outcome.stderr,
                outcome.reason,
                started_at,
                time.time(),
            )
            # Trimming costs a query: do it every tenth run of an entry, so the history
            # holds between `history` and `history + 9` runs.
            state.finished += 1
            if state.finished % 10 == 0:
                runlog.trim_later(table.env, e.id, target.settings.history)
        except Exception:
            log.exception("[%s/%s] could not record run %d", target.repo, table.env, f.run_id)
        f.call = None  # it referred back to `f`: without the cycle, `f` is freed at once
        self._after(f, outcome)

    def _after(self, f: Firing, outcome: Outcome) -> None:
        state = f.state
        with self._cond:
            state.drop_run(f.run_id)
            self._finished.notify_all()
            if outcome.status != "succeeded" or state.failures:
                self._after_failure(f, outcome)
        self._report(f, outcome)

    def _after_failure(self, f: Firing, outcome: Outcome) -> None:
        """Bookkeeping of a run that did not succeed, or the first success after
        failures: recovery, pause after N failures, retries with backoff (lock held)."""
        table, state, attempt, trigger = f.table, f.state, f.attempt, f.trigger
        target, e = table.target, state.entry
        if outcome.status == "succeeded":
            if state.failures:
                self.notify(
                    target.repo,
                    table.env,
                    "job_recovered",
                    f"job {e.id} (line {e.line}) succeeded again",
                    "info",
                )
            state.failures = 0
        elif outcome.status in ("failed", "timed_out", "error"):
            state.failures += 1
            limit = target.settings.pause_after_failures
            if limit and state.failures >= limit and not state.paused:
                self._pause(f.key, state)
                self.notify(
                    target.repo,
                    table.env,
                    "job_paused",
                    f"job {e.id} (line {e.line}) paused after {state.failures} "
                    "consecutive failures; `hoody cron resume` to resume",
                    "error",
                )
            elif attempt <= target.settings.retries and trigger != "manual":
                when = self.clock.now() + timedelta(seconds=self.backoff * 2 ** (attempt - 1))
                nxt = state.fire_at()
                if nxt is None or when < nxt:
                    state.retry = (when, attempt + 1, f.scheduled)
                    self._push(table.key, state, retry=True)
                    self._cond.notify_all()

    def _report(self, f: Firing, outcome: Outcome) -> None:
        table, run_id, trigger = f.table, f.run_id, f.trigger
        target, e = table.target, f.state.entry
        level = logging.INFO if outcome.status == "succeeded" else logging.WARNING
        if log.isEnabledFor(level):
            log.log(
                level,
                "[%s/%s] .hoody/crontab:%s %s run %d %s%s",
                target.repo,
                table.env,
                e.line,
                e.id,
                run_id,
                outcome.status,
                f" (exit {outcome.exit_code})" if outcome.exit_code is not None else "",
                extra={"repo": target.repo, "env": table.env, "entry": e.id, "run": run_id},
            )
        for listener in self.on_run_finished:
            try:
                listener(target.repo, table.env, e, trigger, outcome)
            except Exception:
                log.exception("run listener failed")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until no job is queued or running and their runs are written (tests,
        shutdown)."""
        deadline = time.monotonic() + timeout
        idle = self._pool.wait_idle(timeout)
        return self.runlog.flush(max(0.0, deadline - time.monotonic())) and idle

    # -- after downtime --------------------------------------------------------------

    def _catch_up(self, table: Table, now: datetime) -> None:
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
                self._dispatch(table, state, missed, "catch-up", 1)
            else:
                self._claim(
                    table,
                    state,
                    missed,
                    "schedule",
                    1,
                    "missed",
                    f"missed while the service was down (more than {deadline:g}s ago)",
                )


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


def replace_user(target: Target, user: str) -> Target:
    if user == target.settings.user:
        return target
    from dataclasses import replace as _replace

    return _replace(target, settings=_replace(target.settings, user=user))
