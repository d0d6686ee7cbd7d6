"""The tables and their entry states, and the scheduler's one lock.

A table is one (environment, user) crontab, or one user's managed entries. Its entries
are keyed by identity (schedule + command + variables), so an unchanged entry keeps its
`EntryState` (next firing, failures, runs) across a swap. Ownership: everything here is
changed only with `Tables.lock` held. A table's `entries` and an entry's `running` are
copy-on-write (replaced, never changed in place), so a reader without the lock (the
views) iterates a mapping that no one changes under it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from reconciler.core.crontab import CronEntry, Crontab, next_fire
from reconciler.core.model import CronSettings
from reconciler.cron.jobs import Handle

log = logging.getLogger(__name__)
NO_RUNS: Mapping[int, Handle] = MappingProxyType({})
EntryGone = Callable[[str, str, str, str], None]  # env, user, entry id, why


@dataclass(frozen=True)
class Target:
    """Where and how an environment's jobs run."""

    repo: str
    container: str
    env: Mapping[str, str]  # the cron service's environment (crontab variables go over it)
    settings: CronSettings
    # service name -> its container: where an HTTP job's `http://<service>:<port>` goes
    services: Mapping[str, str] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class EntryState:
    entry: CronEntry
    next_at: datetime | None  # next scheduled time (exact; jitter is added when firing)
    offset: float = 0.0  # this entry's stable jitter, seconds
    expires_at: datetime | None = None  # managed entries may remove themselves
    finished: int = 0  # runs finished in this process (history is trimmed every tenth)
    paused: bool = False
    failures: int = 0
    # Its runs by run id (copy-on-write): the started ones, and those claimed ahead,
    # behind their group's gate from the claim on (see `live`).
    running: Mapping[int, Handle] = field(default_factory=lambda: NO_RUNS)
    retry: tuple[datetime, int, datetime] | None = None  # (when, attempt, scheduled_for)
    claimed_for: float | None = None  # instant of its latest firing claimed ahead

    def fire_at(self) -> datetime | None:
        return None if self.next_at is None else self.next_at + timedelta(seconds=self.offset)

    def add_run(self, run_id: int, handle: Handle) -> None:
        """(Lock held.)"""
        self.running = {**self.running, run_id: handle}

    def drop_run(self, run_id: int) -> None:
        """(Lock held.)"""
        if run_id in self.running:
            self.running = {k: h for k, h in self.running.items() if k != run_id}

    def live(self) -> list[tuple[int, Handle]]:
        """Its runs that have started: a handle behind a shut gate does not count."""
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


def live_handles(tables: Iterable[Table]) -> list[Handle]:
    """The handles of every started run of `tables`' entries."""
    return [h for t in tables for s in t.entries.values() for _, h in s.live()]


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


def replace_user(target: Target, user: str) -> Target:
    if user == target.settings.user:
        return target
    return _replace(target, settings=_replace(target.settings, user=user))


# (entry, its jitter, its state in the table now, its next time if new): see `prepare`
Prepared = list[tuple[CronEntry, float, EntryState | None, datetime | None]]


class Tables:
    """Every table by key, the one lock, and per key a count of starts and pauses.

    The count: every run that starts and every pause of an entry of table `key` bumps
    `starts[key]`. A group of firings claimed while its entries were idle, whose key's
    count has not moved by the instant, still has only idle entries (see `handover`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)  # the timer waits on it
        self.finished = threading.Condition(self.lock)  # a run ended (concurrency: replace)
        self.by_key: dict[str, Table] = {}
        self.starts: dict[str, int] = {}
        self.on_entry_gone: list[EntryGone] = []

    def state(self, key: str, entry_id: str) -> EntryState | None:
        table = self.by_key.get(key)
        return table.entries.get(entry_id) if table else None

    def of_env(self, env: str) -> list[Table]:
        with self.lock:
            return sorted(
                (t for t in self.by_key.values() if t.env == env),
                key=lambda t: (t.source == "managed", t.user),
            )

    def find(self, env: str, entry_id: str) -> tuple[Table, EntryState] | None:
        for t in self.of_env(env):
            if entry_id in t.entries:
                return t, t.entries[entry_id]
        return None

    def moved(self, key: str) -> None:
        """An entry of table `key` started a run or was paused. (Lock held.)"""
        self.starts[key] = self.starts.get(key, 0) + 1

    def pause(self, key: str, state: EntryState) -> None:
        """(Lock held.)"""
        state.paused = True
        self.moved(key)

    def set_paused(self, env: str, entry_id: str, paused: bool) -> bool:
        """Pause an entry (it stops firing) or resume it (its failures count again from
        zero). False if it is not there or already so."""
        with self.lock:
            found = self.find(env, entry_id)
            if found is None or found[1].paused == paused:
                return False
            table, state = found
            if paused:
                self.pause(table.key, state)
            else:
                state.paused, state.failures = False, 0
            return True

    def prepare(self, key: str, crontab: Crontab, jitter: float, now: datetime) -> Prepared:
        """The costly part of a swap (next times and jitter of new entries), done before
        the lock is taken, so that a swap landing on an instant does not hold it up."""
        seen = self.by_key.get(key)
        prepared: Prepared = []
        for e in crontab.entries:
            known = seen.entries.get(e.id) if seen else None
            upcoming = next_fire(e, now) if known is None else None
            prepared.append((e, jitter_offset(e.id, jitter), known, upcoming))
        return prepared

    def swap(
        self,
        table: Table,
        prepared: Prepared,
        expires: Mapping[str, datetime],
        now: datetime,
    ) -> tuple[Table | None, list[EntryState]]:
        """Fill `table` from `prepared` and put it in place in one assignment. Returns
        the table it replaced and the states that need a (new) heap item. (Lock held.)"""
        old = self.by_key.get(table.key)
        entries: dict[str, EntryState] = {}
        push: list[EntryState] = []
        for e, offset, known, upcoming in prepared:
            state = old.entries.get(e.id) if old else None
            expires_at = expires.get(e.id)
            if state is None:
                state = EntryState(e, upcoming if known is None else next_fire(e, now), offset)
                push.append(state)
            else:
                if state.offset != offset or state.expires_at != expires_at:
                    push.append(state)  # a new fire time, or a firing held by an expiry
                state.entry, state.offset = e, offset  # same job; maybe moved lines
            state.expires_at = expires_at
            entries[e.id] = state
        table.entries = entries
        self.by_key[table.key] = table  # the swap: one assignment
        return old, push

    def remove_env(self, env: str) -> list[Table]:
        """(Lock held.) A group claimed against a removed table gives its claims back."""
        gone = [self.by_key.pop(k) for k in [k for k, t in self.by_key.items() if t.env == env]]
        for t in gone:
            self.starts.pop(t.key, None)
        return gone

    def remove(self, key: str) -> None:
        """(Lock held.)"""
        self.by_key.pop(key, None)
        self.starts.pop(key, None)

    def drop_entry(self, table: Table, entry_id: str, why: str) -> None:
        """A managed entry leaves by itself (expired, or a one-shot that fired). (Lock
        held.) The table stays the same object: its version tells the groups claimed
        against it."""
        table.entries = {k: s for k, s in table.entries.items() if k != entry_id}
        table.version += 1
        for listener in self.on_entry_gone:
            try:
                listener(table.env, table.user, entry_id, why)
            except Exception:
                log.exception("entry listener failed")
