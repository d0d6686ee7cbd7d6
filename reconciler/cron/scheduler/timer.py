"""When the next firings are due: a heap of fire times (no fixed tick), a heap of
expiries of managed entries, and the adaptive claim lead.

Heap items are deleted lazily: an item is valid only while its entry state is still in
its table with the same fire time (or retry time, or expiry), so a swap or a pause never
has to search the heap."""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal, NamedTuple

from reconciler.core.crontab import next_fire
from reconciler.cron.scheduler.firing import Firing
from reconciler.cron.scheduler.tables import EntryState, Table, Tables

log = logging.getLogger(__name__)
MAX_LEAD = 60.0  # seconds: the most a firing is claimed ahead of its instant
Kind = Literal["sched", "retry", "expire"]


class HeapItem(NamedTuple):
    ts: float  # when (epoch seconds)
    seq: int  # ties broken by push order; never compares the states
    key: str  # the table
    entry_id: str
    kind: Kind
    state: EntryState  # the state it was pushed for (valid only while still in the table)


class Timer:
    def __init__(self, tables: Tables, lead: float) -> None:
        self.tables = tables
        self.lead = lead  # `claim_ahead`: seconds ahead of an instant its firings are claimed
        # The slowest recent claim (seconds, decaying): an instant whose claim takes longer
        # than half the lead is claimed further ahead from then on (see `current_lead`).
        self.claim_s = 0.0
        self.monotonic: Callable[[], float] = time.monotonic  # tests make a claim "slow"
        self.heap: list[HeapItem] = []  # firings not claimed yet
        self.expiry: list[HeapItem] = []
        self._seq = itertools.count()

    def push(self, key: str, state: EntryState, kind: Kind = "sched") -> None:
        """(Lock held.)"""
        if kind == "expire":
            if state.expires_at is not None:
                item = HeapItem(
                    state.expires_at.timestamp(), next(self._seq), key, state.entry.id, kind, state
                )
                heapq.heappush(self.expiry, item)
            return
        when = (state.retry[0] if state.retry else None) if kind == "retry" else state.fire_at()
        if when is not None:
            item = HeapItem(when.timestamp(), next(self._seq), key, state.entry.id, kind, state)
            heapq.heappush(self.heap, item)

    def swapped(self, table: Table, fresh: list[EntryState]) -> None:
        """`table` was swapped in: heap items for its new fire times and its expiries (a
        kept state's item stays valid: same key, entry and fire time). (Lock held.)"""
        for state in fresh:
            self.push(table.key, state)
        for state in table.entries.values():
            if state.expires_at is not None:
                self.push(table.key, state, "expire")

    def valid(self, item: HeapItem) -> bool:
        state = item.state
        if self.tables.state(item.key, item.entry_id) is not state:
            return False
        if item.kind == "expire":
            return state.expires_at is not None and state.expires_at.timestamp() == item.ts
        if item.kind == "retry":
            return state.retry is not None and state.retry[0].timestamp() == item.ts
        when = state.fire_at()
        return when is not None and when.timestamp() == item.ts

    def top(self, heap: list[HeapItem]) -> float | None:
        while heap and not self.valid(heap[0]):
            heapq.heappop(heap)
        return heap[0].ts if heap else None

    def current_lead(self) -> float:
        """How far ahead of an instant its firings are claimed: `claim_ahead`, or twice
        the slowest recent claim if that is more, so that a claim grown slow (more
        entries, a busy machine) still ends before its instant; at most `MAX_LEAD`."""
        return min(MAX_LEAD, max(self.lead, 2 * self.claim_s))

    def claimed_in(self, seconds: float, lead_before: float) -> None:
        """A claim took `seconds`: the lead grows if that was slow (with a warning)."""
        self.claim_s = max(seconds, self.claim_s * 0.9)
        lead = self.current_lead()
        if lead > lead_before * 1.1:
            log.warning(
                "scheduler: claiming the firings of an instant took %.2fs; they are "
                "claimed %.1fs ahead from now on (scheduler.claim_ahead: %gs)",
                self.claim_s,
                lead,
                self.lead,
            )

    def wake_ts(self, next_instant: float | None) -> float | None:
        """When the timer must act next: claim `lead` seconds before a firing, hand the
        claimed firings of `next_instant` over, drop an expired managed entry. (Lock held.)"""
        top = self.top(self.heap)
        times = [
            t
            for t in (
                None if top is None else top - self.current_lead(),
                next_instant,
                self.top(self.expiry),
            )
            if t is not None
        ]
        return min(times) if times else None

    def expire(self, now: datetime) -> None:
        with self.tables.lock:
            while self.expiry and self.expiry[0].ts <= now.timestamp():
                item = heapq.heappop(self.expiry)
                if self.valid(item):
                    self.tables.drop_entry(self.tables.by_key[item.key], item.entry_id, "expired")

    def take(self, now: datetime, horizon: float) -> list[Firing]:
        """Take every firing due by `horizon` off the heap and advance its entry to its
        next time (a missed stretch is not replayed). Paused entries' firings are
        dropped here; a one-shot's expiry comes before its firing."""
        taken: list[Firing] = []
        tables = self.tables
        with tables.lock:
            heap = self.heap
            while heap and heap[0].ts <= horizon:
                item = heapq.heappop(heap)
                if not self.valid(item):
                    continue
                ts, _, key, entry_id, kind, state = item
                table = tables.by_key[key]
                if state.expires_at is not None and state.expires_at.timestamp() <= ts:
                    if state.expires_at <= now:
                        tables.drop_entry(table, entry_id, "expired")
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
                    self.push(key, state)
                    firing = Firing(ts, key, table, state, scheduled, "schedule", 1)
                if not state.paused:
                    taken.append(firing)
        return taken
