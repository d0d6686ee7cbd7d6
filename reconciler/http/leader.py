"""Reads answered by the replica that leads a repo (see `serve/replicas.py`): an
environment's schedule lives in its leader's scheduler, so another replica's dashboard
asks the leader's API for it instead of showing an empty schedule."""

from __future__ import annotations

import json
import logging
import urllib.request
from typing import TYPE_CHECKING, Any

from flask import has_request_context, request

if TYPE_CHECKING:
    from reconciler.serve.service import Service

log = logging.getLogger(__name__)
FORWARDED = "X-Hoody-Forwarded-By"
TIMEOUT = 10.0


def elsewhere(service: Service, env: str) -> str | None:
    """The repo of `env` when another replica leads it (None: ours, or not known)."""
    if not service.replicas.enabled:
        return None
    row = service.store.environment(env)
    if row is None or service.replicas.leads(row["repo"]):
        return None
    return str(row["repo"])


def schedules_elsewhere(service: Service, repos: dict[str, str]) -> dict[str, Any]:
    """The schedule summaries of the environments in `repos` (env -> repo) whose repo
    another replica leads: one `GET /environments` per leader, not one call per env."""
    if not service.replicas.enabled:
        return {}
    theirs = {r for r in set(repos.values()) if not service.replicas.leads(r)}
    found: dict[str, Any] = {}
    for address in {a for r in sorted(theirs) if (a := service.replicas.leader_address(r))}:
        body = leader_json(service, "", "/environments", address)
        for view in body.get("environments", []) if isinstance(body, dict) else []:
            if repos.get(view.get("name")) in theirs and isinstance(view.get("schedule"), dict):
                found[view["name"]] = view["schedule"]
    return found


def leader_json(service: Service, repo: str, path: str, address: str | None = None) -> Any:
    """GET `path` (under /api/v1) from `repo`'s leader (or `address`); None when it
    cannot answer."""
    if has_request_context() and request.headers.get(FORWARDED):
        return None  # a call from another replica: answer from our own, never ask back
    address = address or service.replicas.leader_address(repo)
    if not address:
        return None
    headers = {FORWARDED: service.replicas.leadership.holder}
    if service.settings.api.token:  # the same hoody.yaml: reads pass with public_read off
        headers["Authorization"] = f"Bearer {service.settings.api.token}"
    req = urllib.request.Request(address.rstrip("/") + "/api/v1" + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return json.loads(r.read())
    except (OSError, ValueError) as e:
        log.warning("[%s] the leader at %s did not answer %s: %s", repo, address, path, e,
                    extra={"repo": repo})  # fmt: skip
        return None
