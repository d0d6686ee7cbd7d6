"""Wiring: `create_app(settings)` builds the one Flask app that `hoody serve` runs.

The webhook, API and dashboard blueprints mount here; this module holds no logic.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from .service import Service
from .settings import Settings


def create_app(settings: Settings, service: Service) -> Flask:
    app = Flask("hoody")
    app.config["HOODY_SETTINGS"] = settings
    app.extensions["hoody"] = service

    from webhooks import create_blueprint

    from .intake import WebhookIntake

    app.register_blueprint(
        create_blueprint(WebhookIntake(settings, service.store, service.trigger))
    )

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    return app
