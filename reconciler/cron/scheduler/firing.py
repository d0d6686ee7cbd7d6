"""One firing from its claim to its end, and the group of one instant and one table it is
handed over with."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.cron.jobs import Flag, Handle, Job
from reconciler.cron.scheduler.tables import EntryState, Table
from reconciler.storage.runlog import Claim


@dataclass(eq=False, slots=True)
class Firing:
    """One claimed firing on its way to the pool."""

    ts: float  # its instant (jitter included)
    key: str  # the table it belongs to
    table: Table  # the table when it was claimed (re-read at the instant)
    state: EntryState
    scheduled: datetime
    trigger: str  # schedule | retry | manual | reboot | catch-up
    attempt: int
    run_id: int = 0
    handle: Handle | None = None
    job: Job | None = None
    call: Callable[[], None] | None = None  # what the pool runs
    previous: list[tuple[int, Handle]] = field(default_factory=list)  # concurrency: replace
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

    def arm(self, run_id: int, run: Callable[[Firing], None]) -> None:
        """Everything it needs to start, built before its instant."""
        self.run_id = run_id
        self.handle = Handle()
        self.job = job_of(self.table, self.state, run_id)
        self.call = functools.partial(run, self)

    def withdraw(self) -> int:
        """It will not run (given back or skipped): its handle, among its entry's runs
        behind a shut gate since the claim, leaves them. Returns its run id. (Lock held.)"""
        self.state.drop_run(self.run_id)
        self.call = None
        return self.run_id


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
        scheduled_for=scheduled.timestamp(),
        attempt=attempt,
        planned_start=at,
    )


def job_of(table: Table, state: EntryState, run_id: int) -> Job:
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
        request=e.request,
        services=target.services,
    )
