"""The dashboard (server-rendered HTML). Being built: see create_dashboard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, redirect

if TYPE_CHECKING:
    from ..service import Service


def create_dashboard(service: Service) -> Blueprint:
    bp = Blueprint("dashboard", __name__)

    @bp.get("/")
    def index():  # type: ignore[no-untyped-def]
        return redirect("/api/v1/environments")

    return bp
