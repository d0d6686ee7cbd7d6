"""`/api/v1`: JSON over HTTP for environments, repos, plans, events, schedules and runs.

Errors are always `{"error": {"code", "message", "details"}}` with the right status —
never an HTML page or a stack trace. Mutations need `Authorization: Bearer <api.token>`
(refused with 403 when no token is configured); so does `GET /plan`, which fetches.
Reads are open unless `api.public_read: false`; HEAD is a read like GET everywhere.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from reconciler.core.crontab import CronEntry
from reconciler.core.errors import ApiError, ReconcilerError, SpecError, UnknownEnvironment
from reconciler.core.httpjob import parse_request_line as request_of
from reconciler.core.naming import is_dns_label
from reconciler.core.plan import action_json
from reconciler.core.redact import scrub
from reconciler.http import views

if TYPE_CHECKING:
    from reconciler.serve.service import Service

log = logging.getLogger(__name__)
REQUEST_TOP = ("retries", "retry_backoff", "timeout", "expect")  # HTTP job options


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    resp = jsonify({"error": {"code": code, "message": message, "details": details}})
    resp.status_code = status
    return resp


def create_api(service: Service) -> Blueprint:
    bp = Blueprint("api", __name__, url_prefix="/api/v1")
    api = service.settings.api

    def authorized() -> bool:
        header = request.headers.get("Authorization", "")
        if not api.token or not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].encode(), api.token.encode())

    def mutation(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not api.token:
                raise ApiError(
                    403,
                    "forbidden",
                    "mutations are disabled: set api.token in "
                    "hoody.yaml and send it as a Bearer token",
                )
            if not request.headers.get("Authorization"):
                raise ApiError(401, "unauthorized", "missing Authorization: Bearer <token>")
            if not authorized():
                raise ApiError(403, "forbidden", "invalid token")
            return fn(*args, **kwargs)

        return wrapper

    @bp.before_request
    def reads() -> None:
        if request.method in ("GET", "HEAD") and not api.public_read and not authorized():
            raise ApiError(401, "unauthorized", "reads need Authorization: Bearer <token>")

    @bp.errorhandler(ApiError)
    def on_api_error(e: ApiError) -> Response:
        return error_response(e.status, e.code, e.message, e.details)

    @bp.errorhandler(HTTPException)
    def on_http(e: HTTPException) -> Response:
        return error_response(
            e.code or 500, (e.name or "error").lower().replace(" ", "_"), e.description or ""
        )

    @bp.errorhandler(Exception)
    def on_error(e: Exception) -> Response:
        log.exception("api: unexpected error")
        return error_response(500, "internal", "internal error; see the service log")

    def private(view: dict[str, Any]) -> dict[str, Any]:
        """Build and container output comes from a branch's own commands: with public
        reads, only an authenticated reader gets it (the status line stays public)."""
        if api.public_read and not authorized():
            view = {k: v for k, v in view.items() if k != "last_output"}
            if isinstance(view.get("details"), dict) and "output" in view["details"]:
                view["details"] = {**view["details"], "output": "(sign in to see the output)"}
        return view

    def env_or_404(name: str) -> dict[str, Any]:
        view = views.environment(service, name) if is_dns_label(name) else None
        if view is None:
            raise ApiError(404, "not_found", f"no environment {name!r}")
        return view

    def int_arg(name: str, default: int, lo: int = 1, hi: int = 1000) -> int:
        raw = request.args.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError as e:
            raise ApiError(400, "bad_request", f"{name} must be an integer") from e
        if not lo <= value <= hi:
            raise ApiError(400, "bad_request", f"{name} must be between {lo} and {hi}")
        return value

    # -- environments ------------------------------------------------------------------

    @bp.get("/environments")
    def list_environments() -> Any:
        return jsonify({"environments": [private(v) for v in views.environments(service)]})

    @bp.get("/environments/<env>")
    def get_environment(env: str) -> Any:
        return jsonify(private(env_or_404(env)))

    @bp.post("/environments/<env>/reconcile")
    @mutation
    def reconcile_environment(env: str) -> Any:
        view = env_or_404(env)
        service.trigger(view["repo"], f"API: reconcile {env}")
        return jsonify({"queued": view["repo"]}), 202

    # -- repos, plan, events -----------------------------------------------------------

    @bp.get("/repos")
    def list_repos() -> Any:
        out = []
        for r in service.settings.repos:
            last = service.last_result.get(r.name)
            out.append(
                {
                    "name": r.name,
                    "url": scrub(r.url),
                    "provider": r.provider,
                    "branches": list(r.branches),
                    "poll_interval": r.poll_interval,
                    "pull_requests": r.pull_requests.enabled,
                    "passes": service.passes.get(r.name, 0),
                    "last_pass": None
                    if last is None
                    else {"ok": last.ok, "errors": last.errors, "fetch_error": last.fetch_error},
                }
            )
        return jsonify({"repos": out})

    @bp.post("/repos/<name>/sync")
    @mutation
    def sync_repo(name: str) -> Any:
        if service.settings.repo(name) is None:
            raise ApiError(404, "not_found", f"no repo {name!r}")
        service.trigger(name, "API: sync")
        return jsonify({"queued": name}), 202

    @bp.get("/plan")
    @mutation  # it fetches from every remote: not a read anyone may trigger
    def plan() -> Any:
        repo = request.args.get("repo")
        names = [repo] if repo else [r.name for r in service.settings.repos]
        out = []
        for name in names:
            if service.settings.repo(name) is None:
                raise ApiError(404, "not_found", f"no repo {name!r}")
            result = service.controller.reconcile(name, dry_run=True)
            out.append(
                {
                    "repo": name,
                    "actions": [action_json(a) for a in result.actions],
                    "errors": result.errors,
                    "fetch_error": result.fetch_error,
                }
            )
        return jsonify({"plan": out})

    @bp.get("/events")
    def events() -> Any:
        limit = int_arg("limit", 100)
        found = service.store.events(
            env=request.args.get("env") or None, repo=request.args.get("repo") or None, limit=limit
        )
        return jsonify({"events": [private({**e.as_dict(), "ts": views.iso(e.ts)}) for e in found]})

    # -- schedules and runs ------------------------------------------------------------

    @bp.get("/environments/<env>/cron")
    def cron(env: str) -> Any:
        view = env_or_404(env)
        n = int_arg("n", 5, 1, 50)
        return jsonify(
            {
                "environment": env,
                "schedule": view["schedule"],
                "entries": views.cron_entries(service, env, n),
            }
        )

    @bp.post("/environments/<env>/cron/<entry>/trigger")
    @mutation
    def trigger(env: str, entry: str) -> Any:
        env_or_404(env)
        if service.scheduler.find(env, entry) is None:
            raise ApiError(404, "not_found", f"no entry {entry!r} in {env}")
        run_id = service.scheduler.trigger(env, entry)
        if run_id is None:
            skipped = service.store.runs.list(env=env, entry_id=entry, limit=1)
            return jsonify(
                {
                    "run": None,
                    "skipped": True,
                    "run_record": views.run_view(skipped[0]) if skipped else None,
                }
            ), 409
        return jsonify({"run": run_id}), 202

    @bp.post("/environments/<env>/cron/<entry>/resume")
    @mutation
    def resume(env: str, entry: str) -> Any:
        env_or_404(env)
        if service.scheduler.find(env, entry) is None:
            raise ApiError(404, "not_found", f"no entry {entry!r} in {env}")
        return jsonify({"resumed": service.scheduler.resume(env, entry)})

    @bp.get("/environments/<env>/runs")
    def env_runs(env: str) -> Any:
        env_or_404(env)
        found = service.store.runs.list(
            env=env,
            entry_id=request.args.get("entry") or None,
            status=request.args.get("status") or None,
            limit=int_arg("limit", 50),
        )
        return jsonify({"runs": [views.run_view(r) for r in found]})

    @bp.get("/runs")
    def all_runs() -> Any:
        found = service.store.runs.list(
            status=request.args.get("status") or None, limit=int_arg("limit", 50)
        )
        return jsonify({"runs": [views.run_view(r, output=False) for r in found]})

    @bp.get("/runs/<int:run_id>")
    def one_run(run_id: int) -> Any:
        r = service.store.runs.get(run_id) if 0 < run_id < 2**63 else None
        if r is None:
            raise ApiError(404, "not_found", f"no run {run_id}")
        return jsonify(views.run_view(r))

    # -- per-user crontabs and managed entries (the Hoody Cron API) ----------------------

    def schedules(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except UnknownEnvironment as e:
            raise ApiError(404, "not_found", str(e)) from e
        except SpecError as e:
            errors = [x.render() for x in getattr(e, "errors", [e])]
            raise ApiError(
                400, "invalid", "the schedule is invalid; nothing changed", {"errors": errors}
            ) from e
        except ReconcilerError as e:
            raise ApiError(400, "invalid", str(e)) from e

    @bp.get("/environments/<env>/users")
    def users(env: str) -> Any:
        return jsonify({"users": schedules(lambda: service.schedules.users(env))})

    @bp.get("/environments/<env>/users/<user>/crontab")
    def get_crontab(env: str, user: str) -> Any:
        text, source = schedules(lambda: service.schedules.get_crontab(env, user))
        return Response(text, mimetype="text/plain", headers={"X-Hoody-Source": source})

    @bp.put("/environments/<env>/users/<user>/crontab")
    @mutation
    def put_crontab(env: str, user: str) -> Any:
        if request.mimetype not in ("text/plain", ""):
            raise ApiError(415, "unsupported_media_type", "send the crontab as text/plain")
        text = request.get_data(as_text=True)
        tab = schedules(lambda: service.schedules.put_crontab(env, user, text))
        return jsonify(
            {
                "source": "api",
                "user": user,
                "warnings": list(tab.warnings),
                "entries": [
                    {"id": e.id, "line": e.line, "schedule": e.raw_schedule, "command": e.command}
                    for e in tab.entries
                ],
            }
        )

    @bp.post("/environments/<env>/users/<user>/entries")
    @mutation
    def add_entry(env: str, user: str) -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "send a JSON object {schedule | run_at, command}")
        entry = schedules(lambda: service.schedules.add_entry(env, user, body))
        return jsonify(entry_view(entry)), 201

    @bp.patch("/environments/<env>/users/<user>/entries/<entry_id>")
    @mutation
    def patch_entry(env: str, user: str, entry_id: str) -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "send a JSON object")
        current = next((r for r in service.schedules.managed(env) if r["id"] == entry_id), None)
        if current is None or current["user"] != user:
            raise ApiError(404, "not_found", f"no managed entry {entry_id!r}")
        merged = {k: current.get(k) for k in ("schedule", "command")}
        if "request" in body:  # an HTTP job's request replaces the command
            merged.pop("command")
        elif "command" not in body and str(current.get("command")).startswith("|"):
            merged.pop("command")  # the stored request, re-read with the changed options
            merged["request"] = views.request_view(request_of(current["command"]))
        for k in ("schedule", "run_at", "command", "expires_at", "request", *REQUEST_TOP):
            if k in body:
                merged[k] = body[k]
        req = merged.get("request")
        if isinstance(req, dict):  # options given at the top level win
            merged["request"] = {
                k: v for k, v in req.items() if k not in REQUEST_TOP or k not in body
            }
        if body.get("run_at"):
            merged["schedule"] = None
        elif current.get("run_at") and "schedule" not in body:
            merged.setdefault("run_at", views.iso(current["run_at"]))
        if current.get("expires_at") and "expires_at" not in body:
            merged["expires_at"] = views.iso(current["expires_at"])
        entry = schedules(lambda: service.schedules.add_entry(env, user, merged, entry_id))
        return jsonify(entry_view(entry))

    def entry_view(entry: CronEntry) -> dict[str, Any]:
        return {
            "id": entry.id,
            "schedule": entry.raw_schedule,
            "command": entry.command,
            "job_kind": entry.job_kind,
            "request": views.request_view(entry.request),
        }

    @bp.delete("/environments/<env>/users/<user>/entries/<entry_id>")
    @mutation
    def delete_entry(env: str, user: str, entry_id: str) -> Any:
        if not schedules(lambda: service.schedules.delete_entry(env, entry_id)):
            raise ApiError(404, "not_found", f"no managed entry {entry_id!r}")
        return "", 204

    from exporters.api import create_blueprint as create_export_blueprint
    from reconciler.gitops.exporting import export_source

    bp.register_blueprint(
        create_export_blueprint(
            lambda env: export_source(service.store, service.controller.sources, env), url_prefix=""
        )
    )
    return bp
