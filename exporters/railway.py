"""Railway: config-as-code, one `railway.json` per Railway service.

`<service>/railway.json` for each service and `cron-<job>/railway.json` for each crontab
entry: a service of its own with `deploy.cronSchedule` (UTC, at least five minutes
apart) and `deploy.startCommand: sh -c '<script>'`, restarting never. railway.json holds
no variables, volumes or image source: those are set on the Railway service, and the
warnings say which.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from reconciler.core.model import ServiceSpec

from .base import Collector, ExportSource, cron_settings, jobs, seconds, service_env, utc_fields
from .schedules import min_gap_minutes
from .templating import render_template

PLATFORM = "Railway"
SCHEMA = "https://railway.com/railway.schema.json"


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    files: dict[str, str] = {}
    for svc in source.app.services.values():
        deploy: dict[str, Any] = {"numReplicas": 1, "restartPolicyType": "ON_FAILURE"}
        if svc.command:
            deploy["startCommand"] = shlex.join(svc.command)
        hc = svc.healthcheck
        if hc is not None and hc.http is not None:
            deploy["healthcheckPath"] = hc.http
            deploy["healthcheckTimeout"] = seconds(hc.start_period)
        elif hc is not None:
            out.warn(f"service {svc.name!r}: Railway health checks are HTTP paths only")
        _service_notes(svc, out)
        files[f"{svc.name}/railway.json"] = _config(svc, deploy, out)
    for job in jobs(source):
        fields = utc_fields(job, out, PLATFORM)
        if fields is None:
            continue
        if min_gap_minutes(fields) < 5:
            out.warn(f"{job.label}: not exported: Railway runs crons at most every 5 minutes")
            continue
        deploy = {
            "cronSchedule": fields,
            "startCommand": shlex.join(job.argv),
            "restartPolicyType": "NEVER",
        }
        files[f"cron-{job.name}/railway.json"] = _config(job.service, deploy, out)
    variables = sorted(
        {k for s in source.app.services.values() for k in service_env(source, s, out)}
    )
    if variables:
        out.warn(
            "railway.json holds no variables: set them on each Railway service "
            f"({', '.join(variables)}; see .env.example)"
        )
    cron_settings(source, out, PLATFORM, {"forbid"})
    return files


def _config(svc: ServiceSpec, deploy: dict[str, Any], out: Collector) -> str:
    build: dict[str, Any] | None = None
    if svc.build is not None:
        context = posixpath.normpath(svc.build.context)
        build = {"builder": "DOCKERFILE", "dockerfilePath": svc.build.dockerfile}
        if context != ".":
            out.warn(f"service {svc.name!r}: set the Railway service's root directory to {context}")
        if svc.build.args:
            out.warn(f"service {svc.name!r}: Railway passes variables, not build args, to builds")
    else:
        out.warn(f"service {svc.name!r}: set the Railway service's source to image {svc.image}")
    return render_template("railway.json.j2", schema=SCHEMA, build=build, deploy=deploy)


def _service_notes(svc: ServiceSpec, out: Collector) -> None:
    if svc.entrypoint:
        out.warn(f"service {svc.name!r}: Railway cannot replace the image's entrypoint")
    if svc.volumes:
        out.warn(
            f"service {svc.name!r}: attach a Railway volume at "
            f"{', '.join(svc.volumes.values())} (one volume per service)"
        )
    if len(svc.ports) > 1:
        out.warn(f"service {svc.name!r}: Railway exposes one port (PORT); set it to one of them")
    if svc.resources.memory or svc.resources.cpus or svc.user or svc.working_dir:
        out.warn(f"service {svc.name!r}: resources, user and working_dir are not in railway.json")
