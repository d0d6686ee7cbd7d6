"""A started firing's job on a pool worker, and what its end means for its entry.

The job itself runs through the `Runner` (its timeout is in the `Job`: the runner stops
every process of the run when it passes). Then: the outcome is written (by the run
log's batching writer), the run leaves its entry's `running`, and the policies apply:
a failure counts towards `pause_after_failures`, a retry is scheduled with exponential
backoff (`backoff * 2 ** (attempt - 1)`, only if it comes before the next scheduled firing),
the first success after failures is announced."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from reconciler.core.crontab import CronEntry
from reconciler.cron.jobs import Outcome
from reconciler.cron.jobs import Runner as Runner
from reconciler.cron.scheduler.clock import Clock
from reconciler.cron.scheduler.firing import Firing
from reconciler.cron.scheduler.tables import Tables
from reconciler.cron.scheduler.timer import Timer
from reconciler.storage.runlog import RunLog

log = logging.getLogger(__name__)
Notify = Callable[[str, str, str, str, str], None]  # repo, env, kind, message, level
RunFinished = Callable[[str, str, CronEntry, str, Outcome], None]  # repo, env, entry, trigger


class Execution:
    def __init__(
        self,
        tables: Tables,
        timer: Timer,
        runner: Runner,
        runlog: RunLog,
        clock: Clock,
        notify: Notify,
        backoff: float,
    ) -> None:
        self.tables = tables
        self.timer = timer
        self.runner = runner
        self.runlog = runlog
        self.clock = clock
        self.notify = notify
        self.backoff = backoff  # seconds before the first retry; doubled for each next one
        self.on_run_finished: list[RunFinished] = []

    def run(self, f: Firing) -> None:
        """The pool's task for one started firing."""
        state, table = f.state, f.table
        e, target = state.entry, table.target
        handle = f.handle
        assert handle is not None and f.job is not None
        if f.previous:  # concurrency: replace — the old run stops before the new one starts
            previous = {rid for rid, _ in f.previous}
            with self.tables.finished:
                self.tables.finished.wait_for(
                    lambda: not previous & state.running.keys(), timeout=60
                )
        started_at = time.time()
        started = time.monotonic()
        try:
            o = self.runner.run(f.job, handle)
            outcome = Outcome(
                o.status,
                o.exit_code,
                o.stdout,
                o.stderr,
                o.reason,
                time.monotonic() - started,
                o.http_status,
            )
        except Exception as ex:
            log.exception("[%s/%s] job %s crashed", target.repo, table.env, e.id)
            outcome = Outcome("error", None, "", "", f"{type(ex).__name__}: {ex}")
        if handle.cancelled.is_set() and outcome.status not in ("timed_out", "error"):
            reason = outcome.reason or "cancelled"
            outcome = Outcome(
                "cancelled",
                outcome.exit_code,
                outcome.stdout,
                outcome.stderr,
                reason,
                outcome.duration,
                outcome.http_status,
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
                outcome.http_status,
                round(outcome.duration, 6),
            )
            # Trimming costs a query: do it every tenth run of an entry, so the history
            # holds between `history` and `history + 9` runs.
            state.finished += 1
            if state.finished % 10 == 0:
                runlog.trim_later(table.env, e.id, target.settings.history)
        except Exception:
            log.exception("[%s/%s] could not record run %d", target.repo, table.env, f.run_id)
        f.call = None  # it referred back to `f`: without the cycle, `f` is freed at once
        for note in self._finished(f, outcome):
            self.notify(*note)
        self._report(f, outcome)

    def _finished(self, f: Firing, outcome: Outcome) -> list[tuple[str, str, str, str, str]]:
        """The run leaves its entry's runs; failures, pause and retries are counted. The
        notes it returns are sent once the lock is released (they write to the store)."""
        table, state, attempt = f.table, f.state, f.attempt
        target, e = table.target, state.entry
        notes: list[tuple[str, str, str, str, str]] = []
        with self.tables.lock:
            state.drop_run(f.run_id)
            self.tables.finished.notify_all()
            if outcome.status == "succeeded":
                if state.failures:
                    msg = f"job {e.id} (line {e.line}) succeeded again"
                    notes.append((target.repo, table.env, "job_recovered", msg, "info"))
                state.failures = 0
            elif outcome.status in ("failed", "timed_out", "error"):
                state.failures += 1
                limit = target.settings.pause_after_failures
                if limit and state.failures >= limit and not state.paused:
                    self.tables.pause(f.key, state)
                    msg = (
                        f"job {e.id} (line {e.line}) paused after {state.failures} "
                        "consecutive failures; `hoody cron resume` to resume"
                    )
                    notes.append((target.repo, table.env, "job_paused", msg, "error"))
                elif attempt <= target.settings.retries and f.trigger != "manual":
                    delay = self.backoff * 2 ** (attempt - 1)
                    when = self.clock.now() + timedelta(seconds=delay)
                    nxt = state.fire_at()
                    if nxt is None or when < nxt:
                        state.retry = (when, attempt + 1, f.scheduled)
                        self.timer.push(table.key, state, "retry")
                        self.tables.changed.notify_all()
        return notes

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
