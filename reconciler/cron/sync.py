"""Ties schedules to environments.

When a pass sees an environment converge, its crontab is parsed completely and — only if
valid — swapped in; a bad line keeps the previous schedule running and is reported as
`schedule rejected: .hoody/crontab:<line>: …`. When the environment goes, its schedules
go in the same step. The API may override one user's crontab until the next commit that
changes `.hoody/crontab` (shown as drift, `source: api`), and may add managed entries
that survive commits and go with the environment.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reconciler.core.crontab import CronEntry, Crontab, managed_entry, parse_crontab
from reconciler.core.errors import (
    ReconcilerError,
    RequestProblem,
    SpecError,
    SpecErrors,
    UnknownEnvironment,
)
from reconciler.core.httpjob import make_request, request_line
from reconciler.core.limits import crontab_problems, too_large
from reconciler.core.model import CRONTAB_FILE, DesiredEnvironment
from reconciler.core.naming import container_name
from reconciler.core.settings import LimitsSettings
from reconciler.cron.httpjobs import check_target
from reconciler.cron.scheduler import Scheduler, Target
from reconciler.storage.store import Store

log = logging.getLogger(__name__)
Note = Callable[[str, str | None, str, str, str], None]  # repo, env, kind, message, level


@dataclass
class _Known:
    repo: str
    target: Target
    crontab_sig: str  # of the git crontab text alone: a change drops API overrides
    sig: str  # of everything the git table came from


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


class ScheduleSync:
    def __init__(
        self,
        scheduler: Scheduler,
        note: Note,
        store: Store | None = None,
        limits: LimitsSettings | None = None,
        http_allow: tuple[str, ...] = (),
    ) -> None:
        self.scheduler = scheduler
        self.note = note
        self.store = store
        self.limits = limits or LimitsSettings()
        self.http_allow = http_allow  # cron.http_allow: hosts HTTP jobs may call
        self._known: dict[str, _Known] = {}
        self.errors: dict[str, str] = {}  # env -> the rejection message, while rejected
        self._lock = threading.RLock()
        scheduler.on_entry_gone.append(self._entry_gone)

    # -- from the reconciler -----------------------------------------------------------

    def applied(self, env: DesiredEnvironment, started: frozenset[str] = frozenset()) -> None:
        service = env.app.cron_service
        text = env.crontab or ""
        settings = env.app.cron
        crontab_sig = _digest(text)
        sig = _digest(text, repr(settings), env.services[service].spec_hash)
        target = Target(
            env.repo,
            container_name(env.name, service),
            env.services[service].env,
            settings,
            {name: container_name(env.name, name) for name in env.services},
        )
        with self._lock:
            known = self._known.get(env.name)
            if known is not None and known.sig == sig:
                changed = False
            else:
                changed = True
                first = known is None
                self._known[env.name] = _Known(env.repo, target, crontab_sig, sig)
        if changed:
            if known is not None and known.crontab_sig != crontab_sig:
                self._drop_overrides(env)
            self._swap(env, text, target)
            if first:
                self._load_managed(env.name)
        if service in started:
            self.scheduler.reboot(env.name)

    def parse(self, text: str, timezone: str, services: frozenset[str] = frozenset()) -> Crontab:
        """The whole crontab within the server's limits, or SpecErrors naming the lines:
        over `limits.max_crontab_bytes`, `max_cron_entries` or `min_every`, or an HTTP
        job to a host that is not one of `services` nor allowed, nothing of it is used."""
        data = text.encode("utf-8", "surrogateescape")
        if len(data) > self.limits.max_crontab_bytes:
            prefix = data[: self.limits.max_crontab_bytes].decode("utf-8", "replace")
            raise too_large(CRONTAB_FILE, len(data), prefix, self.limits, "max_crontab_bytes")
        if not text.strip():
            return Crontab((), ())
        tab = parse_crontab(text, CRONTAB_FILE, timezone)
        problems = crontab_problems(tab, self.limits, CRONTAB_FILE)
        for e in tab.entries:
            refused = e.request and check_target(e.request, services, self.http_allow)
            if refused:
                problems.append(SpecError(CRONTAB_FILE, e.line, "url", refused))
        if problems:
            raise SpecErrors(problems)
        return tab

    def _swap(self, env: DesiredEnvironment, text: str, target: Target) -> None:
        settings = env.app.cron
        try:
            if env.crontab_error:
                raise SpecError(CRONTAB_FILE, None, None, env.crontab_error)
            tab = self.parse(text, settings.timezone, frozenset(target.services))
        except SpecError as e:
            msg = f"schedule rejected: {e}; the previous schedule keeps running"
            self.errors[env.name] = msg
            self.note(env.repo, env.name, "schedule_rejected", msg, "error")
            return
        overridden = any(
            t.source == "api" and t.user == settings.user
            for t in self.scheduler.tables_of(env.name)
        )
        if not overridden:
            self.scheduler.replace(env.name, target, tab, "git", text=text)
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

    def _drop_overrides(self, env: DesiredEnvironment) -> None:
        for t in self.scheduler.tables_of(env.name):
            if t.source == "api":
                self.scheduler.remove_table(t.key)
                self.note(
                    env.repo,
                    env.name,
                    "schedule_override_dropped",
                    f"API crontab of {t.user} dropped: .hoody/crontab changed in git",
                    "info",
                )

    def removed(self, env: str) -> None:
        with self._lock:
            self._known.pop(env, None)
        self.errors.pop(env, None)
        stopped = self.scheduler.remove(env)
        if self.store is not None:
            self.store.delete_managed_entries(env)
        if stopped:
            log.info("[%s] schedule removed; %d running job(s) cancelled", env, stopped)

    def release(self, repo: str) -> None:
        """Another replica leads `repo` now: drop its environments' tables here without
        stopping what runs (those runs are claimed; the new leader's catch-up skips them)."""
        with self._lock:
            gone = [env for env, known in self._known.items() if known.repo == repo]
            for env in gone:
                del self._known[env]
        for env in gone:
            self.errors.pop(env, None)
            for table in self.scheduler.tables_of(env):
                self.scheduler.remove_table(table.key)

    # -- from the API --------------------------------------------------------------------

    def _target(self, env: str) -> _Known:
        known = self._known.get(env)
        if known is None:
            raise UnknownEnvironment(f"no environment {env!r} with a schedule")
        return known

    def users(self, env: str) -> list[dict[str, Any]]:
        known = self._target(env)
        users = {known.target.settings.user} | {t.user for t in self.scheduler.tables_of(env)}
        out = []
        for user in sorted(users):
            tables = [t for t in self.scheduler.tables_of(env) if t.user == user]
            crontab = next((t for t in tables if t.source != "managed"), None)
            out.append(
                {
                    "user": user,
                    "source": crontab.source if crontab else None,
                    "entries": sum(len(t.entries) for t in tables),
                }
            )
        return out

    def get_crontab(self, env: str, user: str) -> tuple[str, str]:
        self._target(env)
        for t in self.scheduler.tables_of(env):
            if t.user == user and t.source != "managed":
                return t.text or "", t.source
        return "", "none"

    def put_crontab(self, env: str, user: str, text: str) -> Crontab:
        """Replace one user's schedule atomically, with the same validation as git."""
        known = self._target(env)
        services = frozenset(known.target.services)
        tab = self.parse(text, known.target.settings.timezone, services)  # SpecErrors
        self.scheduler.replace(env, known.target, tab, "api", user=user, text=text)
        self.note(
            known.repo,
            env,
            "schedule_override",
            f"crontab of {user} replaced through the API ({len(tab.entries)} entries); "
            "git takes over again at the next commit that changes .hoody/crontab",
            "warning",
        )
        return tab

    def add_entry(
        self, env: str, user: str, body: dict[str, Any], entry_id: str | None = None
    ) -> CronEntry:
        known = self._target(env)
        if self.store is None:
            raise ReconcilerError("managed entries need a store")
        entry_id = entry_id or str(uuid.uuid4())
        run_at = _when(body.get("run_at"), "run_at")
        expires = _when(body.get("expires_at"), "expires_at")
        entry = managed_entry(
            entry_id,
            self._command(body, known.target),
            body.get("schedule"),
            run_at,
            known.target.settings.timezone,
        )
        self.store.save_managed_entry(
            {
                "id": entry_id,
                "repo": known.repo,
                "env": env,
                "user": user,
                "schedule": body.get("schedule"),
                "command": entry.command,
                "run_at": run_at.timestamp() if run_at else None,
                "expires_at": expires.timestamp() if expires else None,
            }
        )
        self._sync_managed(env, user)
        return entry

    def _command(self, body: dict[str, Any], target: Target) -> str:
        """The entry's command: `command`, or the crontab form of `request` (an HTTP job);
        exactly one of them. SpecError names the field."""
        command, request = body.get("command"), body.get("request")
        if (command in (None, "")) == (request is None):
            raise SpecError("api", None, "command", "give exactly one of command or request")
        options = {k: body[k] for k in _REQUEST_TOP if body.get(k) is not None}
        if request is None:
            if options:
                raise SpecError("api", None, next(iter(options)), "only for an HTTP job (request)")
            return str(command)
        if not isinstance(request, dict):
            raise SpecError("api", None, "request", "expected an object {method, url, ...}")
        for key in request:
            if key not in _REQUEST_KEYS:
                known = ", ".join(_REQUEST_KEYS)
                raise SpecError("api", None, f"request.{key}", f"unknown; use {known}")
            if key in options:
                raise SpecError("api", None, key, f"given twice (also as request.{key})")
        try:
            req = make_request(**{**request, **options})
        except RequestProblem as e:
            where = e.field if e.field in options else f"request.{e.field}"
            raise SpecError("api", None, where, str(e)) from e
        refused = check_target(req, target.services, self.http_allow)
        if refused:
            raise SpecError("api", None, "request.url", refused)
        return request_line(req)

    def delete_entry(self, env: str, entry_id: str) -> bool:
        self._target(env)
        assert self.store is not None
        rows = [r for r in self.store.managed_entries(env) if r["id"] == entry_id]
        if not rows:
            return False
        self.store.delete_managed_entries(env, entry_id)
        self._sync_managed(env, rows[0]["user"])
        return True

    def managed(self, env: str) -> list[dict[str, Any]]:
        return self.store.managed_entries(env) if self.store is not None else []

    def _load_managed(self, env: str) -> None:
        for user in {r["user"] for r in self.managed(env)}:
            self._sync_managed(env, user)

    def _sync_managed(self, env: str, user: str) -> None:
        known = self._target(env)
        entries, expires = [], {}
        for r in self.managed(env):
            if r["user"] != user:
                continue
            run_at = datetime.fromtimestamp(r["run_at"], UTC) if r["run_at"] else None
            try:
                entries.append(
                    managed_entry(
                        r["id"], r["command"], r["schedule"], run_at, known.target.settings.timezone
                    )
                )
            except SpecError as e:
                log.warning("[%s] managed entry %s is invalid: %s", env, r["id"], e)
                continue
            if r["expires_at"]:
                expires[r["id"]] = datetime.fromtimestamp(r["expires_at"], UTC)
        self.scheduler.replace(
            env, known.target, Crontab(tuple(entries), ()), "managed", user=user, expires=expires
        )

    def _entry_gone(self, env: str, user: str, entry_id: str, why: str) -> None:
        if self.store is not None:
            self.store.delete_managed_entries(env, entry_id)
        known = self._known.get(env)
        if known is not None:
            self.note(known.repo, env, "entry_removed", f"managed entry {entry_id} {why}", "info")


_REQUEST_TOP = ("retries", "retry_backoff", "timeout", "expect")
_REQUEST_KEYS = ("method", "url", "headers", "body", *_REQUEST_TOP)


def _when(value: Any, name: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as e:
        raise SpecError("api", None, name, f"not an ISO 8601 time: {value!r}") from e
    if t.tzinfo is None:
        raise SpecError("api", None, name, "needs a time zone offset (e.g. Z)")
    return t
