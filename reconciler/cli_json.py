"""JSON shapes shared by the CLI and the API."""

from __future__ import annotations

from typing import Any

from .model import Action


def action_json(a: Action) -> dict[str, Any]:
    return {
        "op": a.op.value,
        "env": a.env,
        "reason": a.reason,
        "services": list(a.services),
        "ref": a.desired.ref.name if a.desired else (a.observed.ref if a.observed else None),
        "commit": a.desired.commit if a.desired else None,
    }
