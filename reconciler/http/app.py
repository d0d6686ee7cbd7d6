"""Wiring: `create_app(settings, service)` builds the one Flask app that `hoody serve`
runs — webhooks, the API, the dashboard, metrics and health. No logic lives here.

`/metrics` is a read: open with `api.public_read`, else it needs `metrics.token` (or the
API token) as a Bearer token; HEAD is answered exactly like GET (Flask runs the GET view).
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from reconciler.core.errors import ReconcilerError
from reconciler.core.settings import Settings
from reconciler.http import forward
from reconciler.http.api import create_api, error_response
from reconciler.http.openapi import document
from reconciler.proxy import ASK_PATH
from reconciler.serve.intake import WebhookIntake
from reconciler.serve.metrics import CONTENT_TYPE
from reconciler.serve.service import Service
from webhooks import create_blueprint


def create_app(settings: Settings, service: Service) -> Flask:
    app = Flask("hoody")
    app.config["HOODY_SETTINGS"] = settings
    # Bodies beyond this are refused from Content-Length before they are read (waitress
    # enforces the same limit itself; this covers any other WSGI server and chunked bodies).
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body
    app.extensions["hoody"] = service
    app.json.sort_keys = False  # type: ignore[attr-defined]

    app.register_blueprint(
        create_blueprint(WebhookIntake(settings, service.store, service.trigger))
    )
    app.register_blueprint(create_api(service))
    from reconciler.http.dashboard import create_dashboard

    app.register_blueprint(create_dashboard(service))
    forward.install(app, service)  # schedule calls on a replica that does not run them

    @app.after_request
    def count_deliveries(resp: Response) -> Response:
        if request.path.startswith("/webhooks/"):
            repo = settings.repo(request.path.split("/")[2])
            provider = repo.provider if repo else "unknown"
            service.metrics.deliveries.labels(provider, str(resp.status_code)).inc()
        return resp

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Any:
        return error_response(
            e.code or 500, (e.name or "error").lower().replace(" ", "_"), e.description or ""
        )

    @app.get("/api/v1/openapi.json")
    def openapi() -> Any:
        return jsonify(document())

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Any:
        checks: dict[str, str] = {}
        try:
            service.store.ping()
            checks["store"] = "ok"
        except Exception as e:  # noqa: BLE001 — reported, not raised
            checks["store"] = f"failed: {e}"
        try:
            service.runtime.ping()
            checks["docker"] = "ok"
        except ReconcilerError as e:
            checks["docker"] = f"failed: {e}"
        if service.proxy is not None:
            try:
                service.proxy.router.check()
                checks["proxy"] = "ok"
            except ReconcilerError as e:
                checks["proxy"] = f"failed: {e}"
        lead = service.replicas.leadership
        checks["leases"] = "ok" if lead.last_error is None else f"failed: {lead.last_error}"
        led = service.replicas.led()
        bad = [r for r, res in service.last_result.items() if not res.ok and r in led]
        checks["last_pass"] = "ok" if not bad else f"failed for {', '.join(sorted(bad))}"
        ok = all(v == "ok" for v in checks.values())
        body = {
            "status": "ready" if ok else "not ready",
            "checks": checks,
            "time": time.time(),
            # which repos this replica reconciles; the others are led by another replica
            "replica": {"id": lead.holder, "leads": sorted(led), "replicas": lead.replicas},
        }
        return jsonify(body), (200 if ok else 503)

    def metrics_allowed() -> bool:
        if settings.api.public_read:
            return True
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer "):
            return False
        tokens = [t for t in (settings.metrics.token, settings.api.token) if t]
        return any(hmac.compare_digest(given[7:].encode(), t.encode()) for t in tokens)

    @app.get(ASK_PATH)
    def proxy_ask() -> Any:
        """Caddy's on-demand TLS asks here before it gets a certificate for a host: yes
        (200) only for hosts of environments hoody routes."""
        domain = request.args.get("domain", "")
        if service.proxy is not None and service.proxy.router.knows(domain):
            return jsonify({"allowed": True})
        return jsonify({"allowed": False}), 404

    @app.get("/metrics")
    def metrics() -> Response:
        if not metrics_allowed():
            return error_response(
                401, "unauthorized", "metrics need Authorization: Bearer <metrics.token>"
            )
        return Response(
            service.metrics.render(), mimetype=None, headers={"Content-Type": CONTENT_TYPE}
        )

    return app
