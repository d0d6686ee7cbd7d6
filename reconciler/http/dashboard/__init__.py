"""The dashboard: server-rendered HTML over the same read models as the API (`views`).

Pages: `/` (environments), `/environments/<env>` (services, schedule, recent runs, events),
`/runs` (all runs, `?status=`), `/runs/<id>`, `/login`, `/logout`. One mutation, "Run now"
(POST `/environments/<env>/cron/<entry>/run`), answered Post/Redirect/Get with a flash.
A GET with `X-Partial: 1` returns only the page's main region: static/dashboard.js swaps
it in every few seconds. Everything a page loads is served from static/ (and a CSP tells
the browser so). Sign-in and CSRF: see auth.py.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from flask import (
    Blueprint,
    Response,
    abort,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException

from reconciler.core.naming import is_dns_label
from reconciler.http import views
from reconciler.http.dashboard import format as fmt
from reconciler.http.dashboard.auth import FLASH, Auth, safe_next
from reconciler.storage.runlog import FINAL

if TYPE_CHECKING:
    from reconciler.serve.service import Service

STATUSES = ("running", *FINAL)
RECENT_RUNS, EVENTS, ALL_RUNS = 20, 30, 100
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)


def create_dashboard(service: Service) -> Blueprint:
    bp = Blueprint(
        "dashboard",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static/dashboard",
    )
    auth = Auth(service.settings.api.token, service.settings.api.public_read)
    public = {"dashboard.login", "dashboard.logout", "dashboard.static"}

    def partial() -> bool:
        return request.headers.get("X-Partial") == "1"

    def read_flash() -> dict[str, Any] | None:
        kind, _, arg = request.cookies.get(FLASH, "").partition(":")
        run = int(arg) if arg.isdigit() else None
        messages = {
            "run": ("ok", f"Run #{run} started."),
            "skipped": ("warn", "Skipped by the overlap policy: the previous run is still running"),
            "login": ("ok", "Signed in."),
            "logout": ("ok", "Signed out."),
        }
        if kind not in messages or (kind == "run" and run is None):
            return None
        level, text = messages[kind]
        return {"kind": kind, "level": level, "text": text, "run": run}

    def flash(resp: Response, value: str) -> Response:
        resp.set_cookie(FLASH, value, max_age=60, path="/", httponly=True, samesite="Strict")
        return resp

    def page(template: str, code: int = 200, **ctx: Any) -> Response:
        message = None if partial() else read_flash()
        html = render_template(f"dashboard/{template}", partial=partial(), flash=message, **ctx)
        resp = make_response(html, code)
        if request.cookies.get(FLASH) and not partial():
            resp.delete_cookie(FLASH, path="/", httponly=True, samesite="Strict")
        return resp

    def see_other(target: str) -> Response:
        return redirect(target, 303)  # type: ignore[return-value]

    @bp.context_processor
    def common() -> dict[str, Any]:
        return {
            "token_set": auth.token is not None,
            "public_read": auth.public_read,
            "logged_in": auth.logged_in(request),
            "csrf": auth.csrf(request),
            "here": safe_next(request.full_path.rstrip("?")),
            "statuses": STATUSES,
            **fmt.FILTERS,
        }

    @bp.before_request
    def reads() -> Response | None:
        if request.endpoint in public or auth.can_read(request):
            return None
        if partial():
            return Response("sign in again", 401, mimetype="text/plain")
        return see_other(url_for(".login", next=safe_next(request.full_path.rstrip("?"))))

    @bp.after_request
    def headers(resp: Response) -> Response:
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "dashboard.static":
            resp.headers["Cache-Control"] = "no-store"
            resp.vary.add("X-Partial")
            resp.vary.add("Cookie")
        return resp

    @bp.errorhandler(HTTPException)
    def error(e: HTTPException) -> Response:
        return page("error.html", code=e.code or 500, error=e)

    def link_ref(env: dict[str, Any]) -> dict[str, Any]:
        env["ref_url"] = fmt.ref_link(service.settings.repo(env.get("repo") or ""), env)
        return env

    # -- pages ---------------------------------------------------------------------------

    @bp.get("/")
    def index() -> Response:
        envs = [link_ref(e) for e in views.environments(service)]
        counts = Counter(e["status"] for e in envs)
        return page("index.html", envs=envs, counts=sorted(counts.items()))

    @bp.get("/environments/<env>")
    def environment(env: str) -> Response:
        view = views.environment(service, env) if is_dns_label(env) else None
        if view is None:
            abort(404, f"There is no environment named “{env}”.")
        runs = service.store.runs.list(env=env, limit=RECENT_RUNS)
        events = service.store.events(env=env, limit=EVENTS)
        return page(
            "environment.html",
            env=link_ref(view),
            entries=views.cron_entries(service, env, 3),
            runs=[views.run_view(r) for r in runs],
            events=[{**e.as_dict(), "ts": views.iso(e.ts)} for e in events],
        )

    @bp.get("/runs")
    def runs() -> Response:
        status = request.args.get("status") or None
        if status is not None and status not in STATUSES:
            abort(400, f"Unknown run status “{status}”: use one of {', '.join(STATUSES)}.")
        env = request.args.get("env") or None
        if env is not None and not is_dns_label(env):
            abort(400, "That is not an environment name.")
        found = service.store.runs.list(env=env, status=status, limit=ALL_RUNS)
        return page(
            "runs.html",
            runs=[views.run_view(r, output=False) for r in found],
            status_filter=status,
            env_filter=env,
        )

    @bp.get("/runs/<int:run_id>")
    def run(run_id: int) -> Response:
        record = service.store.runs.get(run_id) if 0 < run_id < 2**63 else None
        if record is None:
            abort(404, f"There is no run #{run_id}.")
        return page("run.html", run=views.run_view(record))

    # -- the one mutation ----------------------------------------------------------------

    @bp.post("/environments/<env>/cron/<entry>/run")
    def run_now(env: str, entry: str) -> Response:
        back = url_for(".environment", env=env)
        if auth.token is None:
            abort(403, "Run now is disabled: set api.token in hoody.yaml to enable it.")
        if not auth.logged_in(request):
            return see_other(url_for(".login", next=back))
        if not (auth.same_origin(request) and auth.check_csrf(request)):
            abort(403, "This form is stale or came from another site: reload and try again.")
        if not is_dns_label(env) or views.environment(service, env) is None:
            abort(404, f"There is no environment named “{env}”.")
        if service.scheduler.find(env, entry) is None:
            abort(404, f"There is no schedule entry {entry} in {env}.")
        run_id = service.scheduler.trigger(env, entry)
        if run_id is None:  # the skip itself is recorded as a run
            last = service.store.runs.list(env=env, entry_id=entry, limit=1)
            return flash(see_other(back), f"skipped:{last[0].id if last else ''}")
        return flash(see_other(back), f"run:{run_id}")

    # -- signing in ----------------------------------------------------------------------

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        target = safe_next(request.values.get("next"))
        if request.method == "GET":
            return page("login.html", next=target)
        if not auth.same_origin(request):
            abort(403, "This form came from another site.")
        address = request.remote_addr or "unknown"
        wait = auth.login_blocked(address)
        if wait is not None:
            problem = f"Too many failed sign-ins from your address: try again in {wait} s."
            resp = page("login.html", code=429, next=target, problem=problem)
            resp.headers["Retry-After"] = str(wait)
            return resp
        if not auth.check_token(request.form.get("token", "")):
            auth.login_failed(address)
            problem = "That is not the api.token." if auth.token else "No api.token is set."
            return page("login.html", code=403, next=target, problem=problem)
        resp = see_other(target)
        auth.set_cookie(request, resp)
        return flash(resp, "login")

    @bp.route("/logout", methods=["GET", "POST"])
    def logout() -> Response:
        if request.method == "GET":
            return page("login.html", next="/")
        if auth.logged_in(request) and not (auth.same_origin(request) and auth.check_csrf(request)):
            abort(403, "This form is stale or came from another site: reload and try again.")
        auth.end_session(request)
        resp = see_other(url_for(".index"))
        auth.clear_cookie(resp)
        return flash(resp, "logout")

    return bp
