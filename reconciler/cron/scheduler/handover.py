"""The claimed firings of each instant, waiting for it, and their hand-over to the pool.

Claimed firings wait grouped by instant and by (table, table version). At the instant a
group is either started as a whole (the fast path: it was *clean* when claimed and
nothing has moved since) or checked firing by firing against the current table and the
overlap policy. Both give the same runs (a hypothesis test holds them to it); the fast
path only skips work that cannot change the outcome."""

from __future__ import annotations

import contextlib
import gc
import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime

from reconciler.cron.fairpool import FairPool
from reconciler.cron.scheduler.clock import Clock
from reconciler.cron.scheduler.firing import Firing, Pending, job_of
from reconciler.cron.scheduler.tables import Tables
from reconciler.storage.runlog import Claim, RunLog

log = logging.getLogger(__name__)
SKIP_REASON = "the previous run is still running (concurrency: forbid)"
ClaimKey = tuple[str, str, datetime, int]  # table key, entry id, scheduled time, attempt
MAX_UNCLAIMED = 100_000  # firings kept to be recorded `missed` (the oldest go first)


def _short(exc: BaseException) -> str:
    """The first line of an error (a driver's message can run to many lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


@contextlib.contextmanager
def no_gc_pause() -> Iterator[None]:
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


class Handover:
    def __init__(
        self,
        tables: Tables,
        runlog: RunLog,
        pool: FairPool,
        clock: Clock,
        owner: str,
        run: Callable[[Firing], None],
        whole_groups: bool = True,
    ) -> None:
        self.tables = tables
        self.runlog = runlog
        self.pool = pool
        self.clock = clock
        self.owner = owner
        self.run = run  # what a started firing's job does on a worker (`Execution.run`)
        self.whole_groups = whole_groups  # False: every group is checked firing by firing
        self.ready: dict[float, dict[tuple[int, int], Pending]] = {}  # instant -> groups
        self.claims_at: dict[float, dict[ClaimKey, Firing]] = {}  # instant -> our claims
        self.instants: list[float] = []  # heap of the instants in `ready`
        self.lateness: deque[float] = deque(maxlen=100_000)
        self.started_whole = 0  # groups started as a whole so far
        self.on_fire: list[Callable[[float], None]] = []  # lateness of each firing, seconds
        # Firings that could not be claimed (the store was down), with why: recorded
        # `missed` as soon as the store takes writes again (`record_missed`).
        self.unclaimed: deque[tuple[Claim, str]] = deque(maxlen=MAX_UNCLAIMED)
        self.store_error: str | None = None  # the last claim's failure, until one succeeds

    def next_instant(self) -> float | None:
        return self.instants[0] if self.instants else None

    def claim(self, taken: list[Firing]) -> int:
        """Claim `taken` in the run log in one go; arm each firing we now own and add it
        to its group, its handle among its entry's runs behind the group's gate. Returns
        how many were claimed."""
        try:
            ids = self.runlog.claim_many([f.claim() for f in taken], self.owner)
        except Exception as exc:
            # Skip, never double: a firing we could not claim does not run (another
            # instance may have claimed it). It is recorded `missed` once the store is back.
            log.exception("scheduler: could not claim %d firing(s); they do not run", len(taken))
            self.unclaimed.extend((f.claim(), f"not claimed: {_short(exc)}") for f in taken)
            self.store_error = f"could not claim {len(taken)} firing(s): {_short(exc)}"
            for f in taken[:20]:  # the first few, each with its identity
                repo, env, entry = f.table.target.repo, f.table.env, f.state.entry
                log.error(
                    "[%s/%s] .hoody/crontab:%s %s: firing of %s not claimed, not run",
                    repo,
                    env,
                    entry.line,
                    entry.id,
                    f.scheduled.isoformat(),
                    extra={"repo": repo, "env": env, "entry": entry.id},
                )
            return 0
        self.store_error = None
        claimed = 0
        tables = self.tables
        with tables.lock:
            starts = tables.starts
            for f, rid in zip(taken, ids, strict=True):
                mine = self.claims_at.get(f.ts)
                ckey = (f.key, f.entry_id, f.scheduled, f.attempt)
                if rid is None:
                    # Held already: by another scheduler instance (it runs the firing), or
                    # by our own claim made for an entry state that was swapped out and
                    # back in before the instant; that claim carries over to this state.
                    old = mine.get(ckey) if mine else None
                    if old is None or old.transferred:
                        continue
                    old.transferred, rid = True, old.run_id
                    tables.moved(f.key)  # the old group checks each of its firings
                if mine is None:
                    mine = self.claims_at[f.ts] = {}
                mine[ckey] = f
                f.arm(rid, self.run)
                state = f.state
                twice = state.claimed_for == f.ts  # a second firing of it at this instant
                state.claimed_for = f.ts
                groups = self.ready.get(f.ts)
                if groups is None:
                    groups = self.ready[f.ts] = {}
                    heapq.heappush(self.instants, f.ts)
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
            tables.changed.notify_all()
        return claimed

    def release(self, now: float) -> int:
        """Hand over every claimed firing whose instant has come."""
        due: list[Pending] = []
        spent = []  # the instants' claims indexes: freed after the hand-over, off its path
        with self.tables.lock:
            while self.instants and self.instants[0] <= now:
                instant = heapq.heappop(self.instants)
                due.extend(self.ready.pop(instant).values())
                spent.append(self.claims_at.pop(instant, None))
        started = self.start(due) if due else 0
        del spent
        return started

    def start(self, due: list[Pending]) -> int:
        """Start claimed firings, given in groups of one table each: check them against
        the current table and the overlap policy, give the whole step to the pool in one
        call, then record lateness and write what did not start (skipped, or given back
        because its entry went away). Returns how many started or were skipped."""
        go: list[Firing] = []
        tasks: dict[str, list[Callable[[], None]]] = {}  # per environment, for the pool
        skipped: list[tuple[int, str]] = []
        given_back: list[int] = []
        tables = self.tables
        starts = tables.starts
        with tables.lock, no_gc_pause():
            for group in due:
                firings, key = group.firings, group.key
                table = tables.by_key.get(key)
                if table is None:
                    given_back.extend(f.withdraw() for f in firings if not f.transferred)
                    continue
                calls = tasks.get(table.env)
                if calls is None:
                    calls = tasks[table.env] = []
                if (
                    self.whole_groups
                    and group.clean
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
                    tables.moved(key)
                    self.started_whole += 1
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
                        f.job = job_of(table, state, f.run_id)
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
                        tables.drop_entry(table, f.entry_id, "ran once")
                if started:
                    tables.moved(key)
            if tasks:
                self.pool.submit_grouped(tasks)
            t = self.clock.now().timestamp()  # handed over: all queued, workers woken
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

    def record_missed(self) -> int:
        """Write the firings that could not be claimed as `missed` runs, with the reason
        (a firing another instance claimed meanwhile keeps that instance's row). Returns
        how many were written; on failure they wait for the next try."""
        batch = list(self.unclaimed)
        if not batch:
            return 0
        try:
            n = self.runlog.record_missed(batch, self.owner)
        except Exception as exc:
            self.store_error = f"could not record {len(batch)} missed firing(s): {_short(exc)}"
            log.warning("scheduler: %s", self.store_error, exc_info=True)
            return 0
        for _ in batch:
            self.unclaimed.popleft()
        self.store_error = None
        log.warning("scheduler: %d firing(s) not claimed while the store was down: missed", n)
        return n

    def give_back_all(self) -> None:
        """(Stopping.) Every claimed firing not handed over yet is given back: its time
        has not come, so its row goes as if it had never been claimed."""
        with self.tables.lock:
            unreleased = [
                f.run_id
                for groups in self.ready.values()
                for p in groups.values()
                for f in p.firings
                if not f.transferred
            ]
            self.ready.clear()
            self.instants.clear()
            self.claims_at.clear()
        try:
            self.runlog.unclaim(unreleased)
        except Exception:
            log.exception("scheduler: could not give back %d claim(s)", len(unreleased))
