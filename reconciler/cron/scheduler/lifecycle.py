"""The scheduler's thread and its shutdown: the timer loop that sleeps until the next
thing to do and runs one step, and what `Scheduler.stop()` does once the loop ended."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reconciler.cron.fairpool import FairPool
from reconciler.cron.scheduler.handover import Handover
from reconciler.cron.scheduler.tables import Tables, live_handles
from reconciler.storage.runlog import RunLog

log = logging.getLogger(__name__)


def start(runlog: RunLog, owner: str, loop: Callable[[], None]) -> threading.Thread:
    """Record runs a crash left `running` as interrupted, then start the timer thread."""
    n = runlog.interrupt_running(owner=owner, reason="the scheduler restarted")
    if n:
        log.warning("scheduler: %d run(s) left running by a crash are now interrupted", n)
    thread = threading.Thread(target=loop, name="scheduler", daemon=True)
    thread.start()
    return thread


def run_loop(
    tables: Tables,
    stopping: Callable[[], bool],
    wake_ts: Callable[[], float | None],
    now: Callable[[], float],
    step: Callable[[], int],
) -> None:
    """Sleep on the tables' condition until the next wake-up (or a change), then step."""
    while True:
        with tables.lock:
            if stopping():
                return
            wake, ts = wake_ts(), now()
            if wake is None or wake > ts:
                tables.changed.wait(None if wake is None else wake - ts)
                continue
        try:
            step()
        except Exception:
            log.exception("scheduler: firing step failed; continuing")


def shut_down(
    tables: Tables, handover: Handover, pool: FairPool, runlog: RunLog, owner: str, grace: float
) -> None:
    """After the loop stopped: give back claims, wait up to `grace` for running jobs,
    record what is still running as `interrupted` and stop those jobs."""
    handover.give_back_all()
    pool.drop_queued()
    finished = pool.shutdown(grace)
    runlog.flush()
    # First record what is still running as interrupted (a final status is never
    # overwritten), then stop those jobs' processes so nothing is left behind.
    runlog.interrupt_running(owner=owner, reason="the service shut down")
    if not finished:
        with tables.lock:
            gone = list(tables.by_key.values())
        for h in live_handles(gone):
            h.cancel()
