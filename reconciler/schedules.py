"""Ties schedules to environments: when a pass sees an environment converge, its crontab
is parsed completely and — only if valid — swapped in; when the environment goes, its
schedule goes in the same step. A bad line keeps the previous schedule running and is
reported as `schedule rejected: .hoody/crontab:<line>: …`."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from .crontab import Crontab, parse_crontab
from .errors import SpecError
from .model import CRONTAB_FILE, DesiredEnvironment
from .naming import container_name
from .scheduler import Scheduler, Target

log = logging.getLogger(__name__)
Note = Callable[[str, str | None, str, str, str], None]  # repo, env, kind, message, level


class ScheduleSync:
    def __init__(self, scheduler: Scheduler, note: Note) -> None:
        self.scheduler = scheduler
        self.note = note
        self._applied: dict[str, str] = {}  # env -> signature of what its table came from
        self.errors: dict[str, str] = {}  # env -> the rejection message, while rejected
        self._lock = threading.Lock()

    def applied(self, env: DesiredEnvironment, started: frozenset[str] = frozenset()) -> None:
        service = env.app.cron_service
        text = env.crontab or ""
        settings = env.app.cron
        sig = hashlib.sha256(
            f"{text}\0{settings!r}\0{env.services[service].spec_hash}".encode()
        ).hexdigest()
        with self._lock:
            changed = self._applied.get(env.name) != sig
            if changed:
                self._applied[env.name] = sig
        if changed:
            self._swap(env, text)
        if service in started:
            self.scheduler.reboot(env.name)

    def _swap(self, env: DesiredEnvironment, text: str) -> None:
        settings = env.app.cron
        try:
            tab = (
                parse_crontab(text, CRONTAB_FILE, settings.timezone)
                if text.strip()
                else Crontab((), ())
            )
        except SpecError as e:
            msg = f"schedule rejected: {e}; the previous schedule keeps running"
            self.errors[env.name] = msg
            self.note(env.repo, env.name, "schedule_rejected", msg, "error")
            return
        service = env.app.cron_service
        target = Target(
            env.repo, container_name(env.name, service), env.services[service].env, settings
        )
        self.scheduler.replace(env.name, target, tab)
        self.errors.pop(env.name, None)
        for w in tab.warnings:
            self.note(env.repo, env.name, "schedule_warning", w, "warning")
        self.note(
            env.repo,
            env.name,
            "schedule_replaced",
            f"schedule at {env.commit[:12]}: {len(tab.entries)} entries",
            "info",
        )

    def removed(self, env: str) -> None:
        with self._lock:
            self._applied.pop(env, None)
        self.errors.pop(env, None)
        stopped = self.scheduler.remove(env)
        if stopped:
            log.info("[%s] schedule removed; %d running job(s) cancelled", env, stopped)
