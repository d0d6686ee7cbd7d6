"""Failure and recovery notifications through Apprise URLs (`notify:` in hoody.yaml).

A job's first failure after a success, its pause after repeated failures and its
recovery each send one notification; repeated failures in a row do not. Delivery happens
on a background thread so a slow endpoint never holds a job or a pass.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from reconciler.core.crontab import CronEntry
from reconciler.cron.jobs import Outcome

log = logging.getLogger(__name__)
FAILED = ("failed", "timed_out", "error")


class Notifier:
    def __init__(self, urls: Sequence[str]) -> None:
        self.urls = list(urls)
        self._failing: set[tuple[str, str]] = set()
        self._queue: queue.Queue[tuple[str, str, str] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.sent = 0

    def start(self) -> None:
        if self.urls:
            self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join(10)

    def run_finished(
        self, repo: str, env: str, entry: CronEntry, trigger: str, outcome: Outcome
    ) -> None:
        key = (env, entry.id)
        where = f"{repo}/{env} .hoody/crontab:{entry.line} `{entry.command}`"
        if outcome.status in FAILED and key not in self._failing:
            self._failing.add(key)
            detail = outcome.reason or f"exit code {outcome.exit_code}"
            tail = (outcome.stderr or outcome.stdout or "").strip()[-500:]
            self.send(
                "failure",
                f"hoody: job failed in {env}",
                f"{where} {outcome.status} ({detail})" + (f"\n\n{tail}" if tail else ""),
            )
        elif outcome.status == "succeeded" and key in self._failing:
            self._failing.discard(key)
            self.send("success", f"hoody: job recovered in {env}", f"{where} succeeded again")

    def event(self, repo: str, env: str | None, kind: str, message: str, level: str) -> None:
        if kind == "job_paused":
            self.send("warning", f"hoody: job paused in {env}", f"{repo}/{env}: {message}")

    def send(self, kind: str, title: str, body: str) -> None:
        if self.urls:
            self._queue.put((kind, title, body))

    def _run(self) -> None:
        import apprise

        while (item := self._queue.get()) is not None:
            kind, title, body = item
            a = apprise.Apprise()
            for url in self.urls:
                a.add(url)
            try:
                ok = a.notify(
                    title=title,
                    body=body,
                    notify_type={
                        "failure": apprise.NotifyType.FAILURE,
                        "success": apprise.NotifyType.SUCCESS,
                    }.get(kind, apprise.NotifyType.WARNING),
                )
                self.sent += 1
                if not ok:
                    log.warning("notification %r was not delivered to every URL", title)
            except Exception:
                log.exception("notification %r failed", title)
