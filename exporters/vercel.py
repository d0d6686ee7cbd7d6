"""Vercel: `vercel.json` with `crons` for the jobs Vercel can run.

Vercel runs no containers and a Vercel cron is a GET request to a path of the deployed
app. So a crontab entry is exported only when its whole command is one HTTP GET to the
app itself — `curl` or `wget` with harmless flags and one URL on localhost (or a service
of the app), or an HTTP job (`CronEntry.request`) whose method is GET — and it becomes
`{"path": "/that/path", "schedule": ...}`; an HTTP job's headers, body, retries and
accepted statuses cannot be carried (warned). Every other job,
and every service, is listed as not exportable. Vercel reads schedules in UTC (`crons[]`
has no time zone: neither Vercel's published schema nor its CLI's, 64.0.2, takes one;
the CLI's newer `schedules[].timezone` is not in the published schema, which forbids
unknown keys, so it is not used), takes numbers only (no MON, JAN) and never both day
fields at once.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from .base import Collector, ExportSource, Job, jobs, service_env, utc_fields
from .httpjobs import not_carried
from .schedules import numeric_fields, split_days
from .templating import render_template

PLATFORM = "Vercel"
SCHEMA = "https://openapi.vercel.sh/vercel.json"
_LOCAL = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}
# Flags that change neither the request nor where it goes, and those taking a value.
_CURL_FLAGS = {"-s", "-S", "-f", "-L", "-sS", "-fs", "-fsS", "-sSf", "-fsSL", "-sSL", "-q"}
_CURL_FLAGS |= {"--silent", "--show-error", "--fail", "--location", "--compressed"}
_CURL_VALUE = {"-o", "--output", "-m", "--max-time", "--retry", "--connect-timeout"}
_WGET_FLAGS = {"-q", "--quiet", "-qO-", "-O-", "--spider", "-nv"}
_WGET_VALUE = {"-O", "-qO", "--output-document", "-T", "--timeout", "-t", "--tries"}


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    out.warn(
        "Vercel runs no containers: the services are not exported; deploy the app to "
        "Vercel yourself (the crons below call paths of that deployment)"
    )
    hosts = _LOCAL | set(source.app.services)
    crons: list[dict[str, str]] = []
    for job in jobs(source):
        path = (
            _request_path(job, out)
            if job.entry.request is not None
            else http_path(job.entry.command, hosts)
        )
        if path is None or job.entry.stdin is not None:
            if job.entry.request is None:
                out.warn(f"{job.label}: not exportable: Vercel crons only call the app over HTTP")
            continue
        fields = utc_fields(job, out, PLATFORM, _no_zone)
        if fields is None:
            continue
        schedules, problem = split_days(numeric_fields(fields))
        if schedules is None:
            out.warn(f"{job.label}: not exported: {problem}")
            continue
        crons += [{"path": path, "schedule": s} for s in schedules]
    for svc in source.app.services.values():
        service_env(source, svc, out)  # the variables the deployed app needs: .env.example
    if source.app.cron.timeout and crons:
        out.warn("cron.timeout: Vercel stops a cron call at the function's maxDuration")
    return {"vercel.json": render_template("vercel.json.j2", schema=SCHEMA, crons=crons)}


def _request_path(job: Job, out: Collector) -> str | None:
    """An HTTP job's path, when it is a GET; what a Vercel cron cannot send is warned."""
    request = job.entry.request
    assert request is not None
    if request.method != "GET":
        out.warn(
            f"{job.label}: not exported: a Vercel cron is a GET request, and this job "
            f"is a {request.method}"
        )
        return None
    lost = not_carried(request, {"headers": True, "body": True, "retries": True, "expect": True})
    if lost:
        out.warn(
            f"{job.label}: a Vercel cron sends a GET to the path and nothing else: "
            f"{', '.join(lost)} not carried (to keep the path private, check the "
            "Authorization: Bearer <CRON_SECRET> header Vercel adds when CRON_SECRET is set)"
        )
    return request.path if len(request.path) <= 512 else None


def _no_zone(zone: str, problem: str) -> str:
    return (
        f"Vercel crons take no time zone (crons[] has only path and schedule, in Vercel's "
        f"published schema and in its CLI's, 64.0.2) and read schedules in UTC, and "
        f"{problem}; exported as written, so it fires at those times in UTC, not {zone}"
    )


def http_path(command: str, hosts: set[str]) -> str | None:
    """The path (and query) that `command` GETs from the app, if that is all it does."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or any(ch in command for ch in ";|&<>`$()\n"):
        return None
    tool = words[0].rsplit("/", 1)[-1]
    flags, takes_value = {
        "curl": (_CURL_FLAGS, _CURL_VALUE),
        "wget": (_WGET_FLAGS, _WGET_VALUE),
    }.get(tool, (set(), set()))
    if not flags:
        return None
    urls: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        if word in flags:
            continue
        if word in takes_value:
            if next(rest, None) is None:
                return None
            continue
        if word.startswith("-"):
            return None
        urls.append(word)
    if len(urls) != 1:
        return None
    url = urlsplit(urls[0])
    if url.scheme not in ("http", "https") or url.hostname not in hosts:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return path if len(path) <= 512 else None
