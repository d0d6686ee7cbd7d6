"""API calls about an environment's schedule, answered by the replica that runs it.

With several replicas (see `serve/replicas.py`), an environment's schedule lives in the
scheduler of the replica that leads its repo: the others have no tables for it. So a call
under `/api/v1/environments/<env>/cron` or `/users` that reaches another replica is
forwarded to the leader, at the address it registered (`public_url`, else its listen
address), and the leader's answer is returned as it is; the caller's credentials go with
it and the leader checks them again. Like a standby server forwarding to its leader: the
caller may use any replica. Answers 503 with `Retry-After` while the repo has no leader
or the leader does not answer, and never forwards twice (a leadership move in between is
a 503, not a loop). Everything else (environments, runs, events, metrics) is read from the
shared database by any replica itself.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from flask import Flask, Response, request

from reconciler.http import leader
from reconciler.http.api import error_response
from reconciler.http.leader import FORWARDED

if TYPE_CHECKING:
    from reconciler.serve.service import Service

log = logging.getLogger(__name__)
_SCHEDULE_PATH = re.compile(r"^/api/v1/environments/([^/]+)/(?:cron|users)(?:/|$)")
_PASSED = ("Authorization", "Content-Type", "Accept")
_TIMEOUT = 10.0


def install(app: Flask, service: Service) -> None:
    @app.before_request
    def to_the_leader() -> Response | None:
        match = _SCHEDULE_PATH.match(request.path)
        repo = leader.elsewhere(service, match.group(1)) if match else None
        if repo is None:
            return None  # ours, or unknown (the API answers 404 itself)
        if request.headers.get(FORWARDED):
            return unavailable(f"{repo} is changing leader; retry")
        address = service.replicas.leader_address(repo)
        if not address:
            return unavailable(f"no replica leads {repo} right now; retry")
        return forward(address, service.replicas.leadership.holder, repo)


def forward(address: str, holder: str, repo: str) -> Response:
    query = request.query_string.decode()
    url = address.rstrip("/") + request.path + (f"?{query}" if query else "")
    headers = {k: v for k in _PASSED if (v := request.headers.get(k)) is not None}
    headers[FORWARDED] = holder
    body = request.get_data() if request.method in ("POST", "PUT", "PATCH") else None
    req = urllib.request.Request(url, data=body, headers=headers, method=request.method)
    try:
        with urllib.request.urlopen(req, timeout=_TIMEOUT) as r:
            status, data, kind = r.status, r.read(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        status, data, kind = e.code, e.read(), e.headers.get("Content-Type")
    except OSError as e:
        log.warning("[%s] the leader at %s did not answer: %s", repo, address, e,
                    extra={"repo": repo})  # fmt: skip
        return unavailable(f"the replica that leads {repo} did not answer; retry")
    return Response(data, status=status, content_type=kind or "application/json")


def unavailable(message: str) -> Response:
    resp = error_response(503, "not_leader", message)
    resp.headers["Retry-After"] = "2"
    return resp
