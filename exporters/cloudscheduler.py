"""Cloud Scheduler HTTP targets for HTTP jobs of a Cloud Run export: the request goes
straight to the Cloud Run service's URL (`CLOUD_RUN_URL` + the request's path), with no
Cloud Run Job in between.

Carried: the method, the headers (but those Cloud Scheduler sets or ignores itself:
Host, Content-Length, User-Agent, X-Google-*, X-AppEngine-*, X-CloudScheduler*), the
body (POST, PUT and PATCH only, base64 as the API takes it), the timeout as
`attemptDeadline` (15 s to 30 min) and the retries as `retryConfig`: `retryCount`
retries (at most 5), the first after `minBackoffDuration` = retry_backoff, doubled
`maxDoublings` = retries - 1 times up to `maxBackoffDuration`, which is exactly hoody's
backoff. Cloud Scheduler counts any 2xx as success: `expect` is not carried (warned).
The call carries an OIDC token of the scheduler's service account for the Cloud Run
service (which then needs roles/run.invoker for it), unless the request sets its own
Authorization header (then the service must allow unauthenticated calls: warned).

A `${VAR}` of a header stays a `${VAR}` placeholder in the JSON (`Joined`: only it keeps
its `$` for envsubst). A body that holds one cannot be base64 in the file before it is
substituted: it is written to `scheduler/<job>.body` (every `$` that is not a
placeholder's as `${HOODY_DOLLAR}`, envsubst having no escape) and the warning gives the
command that substitutes, encodes and puts it in place.
"""

from __future__ import annotations

import base64
from typing import Any

from .base import Collector, ExportSource, Job, seconds
from .httpjobs import pieces, request_env
from .schedules import Schedule
from .templating import Joined, Var, render_template

_SET_BY_SCHEDULER = ("host", "content-length", "user-agent")
_RESERVED_PREFIXES = ("x-google-", "x-appengine-", "x-cloudscheduler")
_BODY_METHODS = ("POST", "PUT", "PATCH")


def http_job_files(
    source: ExportSource,
    job: Job,
    schedule: Schedule,
    name: Var,
    url: str,
    account: str,
    out: Collector,
) -> dict[str, str]:
    """`scheduler/<job>.json` (and `.body` when needed) for HTTP job `job`; `url` is the
    `${CLOUD_RUN_URL}` placeholder, `name` the job's full resource name."""
    request = job.entry.request
    assert request is not None
    values = request_env(source, job, out)

    def text(raw: str) -> str:
        parts = [values.get(var, part) if var else part for part, var in pieces(raw)]
        return Joined(*parts) if any(isinstance(p, Var) for p in parts) else "".join(parts)

    headers: dict[str, str] = {}
    for header, value in request.headers:
        low = header.lower()
        if low in _SET_BY_SCHEDULER or low.startswith(_RESERVED_PREFIXES):
            out.warn(f"{job.label}: header {header} dropped: Cloud Scheduler sets or ignores it")
            continue
        key = next((k for k in headers if k.lower() == low), header)
        if key in headers:
            out.warn(f"{job.label}: header {header} repeated: sent once, values joined by ', '")
            headers[key] = Joined(headers[key], ", ", text(value))
        else:
            headers[key] = text(value)
    target: dict[str, Any] = {"uri": Joined(url, request.path), "httpMethod": request.method}
    if headers:
        target["headers"] = headers
    if not any(k.lower() == "authorization" for k in headers):
        target["oidcToken"] = {"serviceAccountEmail": account, "audience": url}
        out.warn(
            "HTTP jobs are Cloud Scheduler HTTP targets at the Cloud Run service's URL with "
            "an OIDC token of SCHEDULER_SERVICE_ACCOUNT: grant it roles/run.invoker on the "
            "service"
        )
    else:
        out.warn(
            f"{job.label}: the request sends its own Authorization header, so Cloud "
            "Scheduler sends no OIDC token: the Cloud Run service must allow "
            "unauthenticated calls"
        )
    files: dict[str, str] = {}
    if request.body is not None and request.method not in _BODY_METHODS:
        out.warn(
            f"{job.label}: body dropped: Cloud Scheduler sends a body with POST, PUT and "
            f"PATCH only, not {request.method}"
        )
    elif request.body is not None:
        body = text(request.body)
        if isinstance(body, Joined):
            files[f"scheduler/{job.name}.body"] = _body_file(body)
            names = sorted({p[2:-1] for p in body.parts if isinstance(p, Var)})
            listed = " ".join(f"${n}" for n in ["HOODY_DOLLAR", *names])
            out.warn(
                f"{job.label}: the body uses variables, so Cloud Scheduler's base64 body "
                "is made after substitution (every other $ is written ${HOODY_DOLLAR}): "
                f"jq --arg b \"$(HOODY_DOLLAR='$' envsubst '{listed}' < "
                f"scheduler/{job.name}.body | base64 -w0)\" '.httpTarget.body = $b' "
                f"scheduler/{job.name}.json"
            )
        else:
            target["body"] = base64.b64encode(body.encode()).decode()
    if request.expect:
        codes = ", ".join(map(str, request.expect))
        out.warn(
            f"{job.label}: expect {codes} not carried: Cloud Scheduler counts a 2xx status "
            "as success and any other as a failure"
        )
    doc = {
        "name": name,
        "description": job.label[:500],
        "schedule": schedule.fields,
        "timeZone": schedule.timezone,
        "attemptDeadline": f"{_deadline(job, request.timeout, out)}s",
        "retryConfig": _retry(job, request.retries, request.retry_backoff, out),
        "httpTarget": target,
    }
    files[f"scheduler/{job.name}.json"] = render_template(
        "cloudscheduler-http-job.json.j2", substitutable=True, job=doc
    )
    return files


def _body_file(body: Joined) -> str:
    """The body for envsubst: placeholders as they are, every other `$` as
    `${HOODY_DOLLAR}` (envsubst has no escape of its own)."""
    return "".join(
        p if isinstance(p, Var) else p.replace("$", "${HOODY_DOLLAR}") for p in body.parts
    )


def _deadline(job: Job, timeout: float, out: Collector) -> int:
    wanted = seconds(timeout)
    deadline = min(max(wanted, 15), 1800)
    if deadline != wanted:
        out.warn(
            f"{job.label}: timeout {timeout:g}s is outside Cloud Scheduler's attempt "
            f"deadline of 15 s to 30 min: exported as {deadline}s"
        )
    return deadline


def _retry(job: Job, retries: int, backoff: float, out: Collector) -> dict[str, Any]:
    count = min(retries, 5)
    if count != retries:
        out.warn(f"{job.label}: {retries} retries: Cloud Scheduler retries at most 5 times")
    if not count:
        return {"retryCount": 0}
    first = min(backoff, 3600.0)
    return {
        "retryCount": count,
        "minBackoffDuration": _duration(first),
        "maxBackoffDuration": _duration(min(first * 2 ** (count - 1), 3600.0)),
        "maxDoublings": count - 1,
    }


def _duration(value: float) -> str:
    """google-duration text: `1s`, `2.5s`."""
    return f"{value:.3f}".rstrip("0").rstrip(".") + "s"
