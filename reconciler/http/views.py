"""Read models shared by the API and the dashboard: what one environment looks like to a
person, assembled from the store (status, events), the runtime (containers, by label)
and the scheduler (entries, next times, last runs). No decisions are made here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from reconciler.core.crontab import explain, next_fires
from reconciler.core.errors import ReconcilerError
from reconciler.core.httpjob import HttpRequest
from reconciler.core.model import ObservedEnvironment
from reconciler.http import leader
from reconciler.storage.runlog import RunRecord

if TYPE_CHECKING:
    from reconciler.serve.service import Service


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _observed(service: Service) -> dict[str, ObservedEnvironment]:
    try:
        return service.runtime.observe()
    except ReconcilerError:
        return {}


def environments(service: Service) -> list[dict[str, Any]]:
    observed = _observed(service)
    rows = {r["name"]: r for r in service.store.environments()}
    suspended = service.store.suspended()
    names = sorted(set(rows) | {n for n, o in observed.items() if o.repo in _repos(service)})
    led_elsewhere = leader.schedules_elsewhere(service, {n: r["repo"] for n, r in rows.items()})
    return [
        _view(service, n, rows.get(n), observed.get(n), n in suspended, led_elsewhere.get(n))
        for n in names
    ]


def environment(service: Service, name: str) -> dict[str, Any] | None:
    row = service.store.environment(name)
    observed = _observed(service).get(name)
    if row is None and observed is None:
        return None
    return _view(service, name, row, observed, name in service.store.suspended())


def _repos(service: Service) -> set[str]:
    return {r.name for r in service.settings.repos}


def _view(
    service: Service,
    name: str,
    row: dict[str, Any] | None,
    observed: ObservedEnvironment | None,
    suspended: bool,
    schedule: dict[str, Any] | None = None,  # the leader's, when another replica leads
) -> dict[str, Any]:
    row = row or {}
    ref = row.get("ref") or (observed.ref if observed else "")
    services = []
    if observed:
        for c in observed.containers:
            if c.role:
                continue
            services.append(
                {
                    "name": c.service,
                    "container": c.name,
                    "state": c.status,
                    "health": "running" if c.running else c.status,
                    "ports": {str(k): v for k, v in c.ports.items()},
                }
            )
    status = row.get("status") or ("healthy" if observed else "pending")
    if status == "healthy" and any(s["state"] != "running" for s in services):
        status = "degraded"
    kind = row.get("kind") or (
        "pr" if ref.startswith("refs/pull/") or ref.startswith("refs/merge-requests/") else "branch"
    )
    if schedule is None:
        schedule = schedule_summary(service, name)
    return {
        "name": name,
        "repo": row.get("repo") or (observed.repo if observed else None),
        "kind": kind,
        "ref": ref,
        "branch": ref[len("refs/heads/") :] if ref.startswith("refs/heads/") else None,
        "pr": _pr_number(ref),
        "commit": row.get("commit") or (observed.commit if observed else None),
        "status": status,
        "url": row.get("url"),
        "services": services,
        "schedule": schedule,
        "last_error": row.get("last_error"),
        "last_output": row.get("last_output"),  # not for anonymous readers (api.py)
        "suspended": suspended,
        "updated_at": iso(row.get("updated_at")),
    }


def _pr_number(ref: str) -> int | None:
    parts = ref.split("/")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def schedule_summary(service: Service, env: str) -> dict[str, Any]:
    repo = leader.elsewhere(service, env)
    if repo is not None:  # the schedule runs on the replica that leads the repo
        body = leader.leader_json(service, repo, f"/environments/{env}")
        if isinstance(body, dict) and isinstance(body.get("schedule"), dict):
            return dict(body["schedule"])
    states = service.scheduler.entries(env)
    now = service.scheduler.clock.now()
    upcoming = [t for s in states if not s.paused and (t := s.upcoming(now)) is not None]
    return {
        "entries": len(states),
        "paused": sum(1 for s in states if s.paused),
        "next_run": min(upcoming).isoformat() if upcoming else None,
        "rejected": service.schedules.errors.get(env),
    }


def cron_entries(service: Service, env: str, n: int = 5) -> list[dict[str, Any]]:
    repo = leader.elsewhere(service, env)
    if repo is not None:  # the schedule runs on the replica that leads the repo
        body = leader.leader_json(service, repo, f"/environments/{env}/cron?n={n}")
        return list(body["entries"]) if isinstance(body, dict) else []
    now = service.scheduler.clock.now()
    out = []
    for table in service.scheduler.tables_of(env):
        for state in table.entries.values():
            e = state.entry
            last = service.store.runs.list(env=env, entry_id=e.id, limit=1)
            times = (
                next_fires(e, now, n)
                if e.kind != "once"
                else ([e.run_at] if e.run_at and e.run_at > now else [])
            )
            out.append(
                {
                    "id": e.id,
                    "user": table.user,
                    "source": table.source,
                    "line": e.line,
                    "schedule": e.raw_schedule,
                    "command": e.command,
                    "job_kind": e.job_kind,
                    "request": request_view(e.request),
                    "timezone": e.timezone,
                    "explain": explain(e),
                    "paused": state.paused,
                    "running": len(state.live()),
                    "next": [t.isoformat() for t in times],
                    "next_local": [t.astimezone(_zone(e.timezone)).isoformat() for t in times],
                    # fires off whole minutes (`@every 30s`): the dashboard shows seconds
                    "show_seconds": e.kind == "every" and (e.every or 60) % 60 != 0,
                    "expires_at": state.expires_at.isoformat() if state.expires_at else None,
                    "last_run": run_view(last[0]) if last else None,
                }
            )
    return out


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def request_view(req: HttpRequest | None) -> dict[str, Any] | None:
    """An HTTP job's request as written (`${VAR}` not expanded: no secret in it)."""
    if req is None:
        return None
    return {
        "method": req.method,
        "url": req.url,
        "headers": dict(req.headers),
        "body": req.body,
        "timeout": req.timeout,
        "expect": list(req.expect),
        "retries": req.retries,
        "retry_backoff": req.retry_backoff,
    }


def run_view(r: RunRecord, output: bool = True) -> dict[str, Any]:
    d: dict[str, Any] = {
        "id": r.id,
        "repo": r.repo,
        "env": r.env,
        "entry": r.entry_id,
        "line": r.line,
        "schedule": r.schedule,
        "command": r.command,
        "trigger": r.trigger,
        "scheduled_for": iso(r.scheduled_for),
        "started_at": iso(r.started_at),
        "finished_at": iso(r.finished_at),
        "status": r.status,
        "exit_code": r.exit_code,
        "attempt": r.attempt,
        "reason": r.reason,
        "duration": (
            round(r.duration, 3)
            if r.duration is not None
            else round(r.finished_at - r.started_at, 3)
            if r.finished_at and r.started_at
            else None
        ),
        "http_status": r.http_status,  # an HTTP job's last response status
        "job_kind": "http" if r.command.startswith("|") else "command",
    }
    if output:
        d["stdout"], d["stderr"] = r.stdout, r.stderr
    return d
