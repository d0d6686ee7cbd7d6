"""The injected clock, the recording runner and the small builders shared by the
scheduler tests (time is moved, never slept)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from reconciler.core.model import CronSettings
from reconciler.cron.jobs import Handle, Job, Outcome
from reconciler.cron.scheduler import Scheduler, Target
from reconciler.storage.store import Store


class Clock:
    def __init__(self, at: str) -> None:
        self.t = datetime.fromisoformat(at).replace(tzinfo=UTC)

    def now(self) -> datetime:
        return self.t

    def set(self, at: str) -> datetime:
        self.t = datetime.fromisoformat(at).replace(tzinfo=UTC)
        return self.t


class Runner:
    """Records jobs; `block` holds them until released; `results` scripts outcomes."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.block: threading.Event | None = None
        self.results: list[str] = []
        self.started = threading.Semaphore(0)

    def run(self, job: Job, handle: Handle) -> Outcome:
        self.jobs.append(job)
        self.started.release()
        if self.block is not None:
            while not self.block.wait(0.01):
                if handle.cancelled.is_set():
                    return Outcome("cancelled", None, "", "", "cancelled")
        status = self.results.pop(0) if self.results else "succeeded"
        return Outcome(status, 0 if status == "succeeded" else 1, f"out {job.command}", "")


def make(
    store: Store, clock: Clock, runner: Runner | None = None, owner: str = "a"
) -> tuple[Scheduler, Runner]:
    runner = runner or Runner()
    return Scheduler(store.runs, runner, clock=clock, owner=owner, backoff=10), runner


def target(**cron: object) -> Target:
    return Target("shop", "main-shop_web", {"BASE": "1"}, CronSettings(**cron))  # type: ignore[arg-type]
