"""Render: a `render.yaml` Blueprint (the `render` format; this module is not called
`render.py` so that it cannot shadow `exporters.render()`).

The first service with a port is a `web` service, other services with ports are private
services (`pserv`), the rest are `worker`s. Services with a build keep it (`runtime:
docker`: Render builds the Dockerfile from the repository), the others run their image
(`runtime: image`). Each crontab entry becomes a `type: cron` service with the cron
service's image or build and `dockerCommand: sh -c '<script>'`. Render reads schedules in
UTC. Environment values are `sync: false` entries, which Render asks for when the
Blueprint is created, unless `--include-spec-values` gives the committed value.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from reconciler.core.model import ServiceSpec

from .base import (
    Collector,
    ExportSource,
    Job,
    cron_settings,
    dns_name,
    env_key,
    jobs,
    service_env,
    shared_volumes,
    utc_fields,
)
from .calls import Via, reach_app
from .httpjobs import CLIENT_IMAGE, client_note, request_job
from .templating import Var, render_template

PLATFORM = "Render"


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    services: list[dict[str, Any]] = []
    first_web = next((s for s in source.app.services.values() if s.ports), None)
    for svc in source.app.services.values():
        kind = "web" if svc is first_web else "pserv" if svc.ports else "worker"
        entry = _base(source, svc, dns_name(source.name, svc.name), kind, out)
        if svc.command:
            entry["dockerCommand"] = shlex.join(svc.command)
        if svc.entrypoint:
            out.warn(f"service {svc.name!r}: Render cannot replace the image's entrypoint")
        if kind == "web" and svc.healthcheck is not None and svc.healthcheck.http:
            entry["healthCheckPath"] = svc.healthcheck.http
        elif svc.healthcheck is not None:
            out.warn(f"service {svc.name!r}: Render health checks are HTTP paths of web services")
        if svc.volumes:
            (vol, path), *rest = svc.volumes.items()
            entry["disk"] = {"name": vol, "mountPath": path, "sizeGB": 1}
            out.warn(f"service {svc.name!r}: volume {vol!r} is a 1 GB disk; adjust sizeGB")
            if rest:
                out.warn(f"service {svc.name!r}: Render has one disk per service; {rest} dropped")
        if svc.resources.memory or svc.resources.cpus:
            out.warn(f"service {svc.name!r}: resource limits are Render plans; pick a plan")
        if svc.user or svc.working_dir:
            out.warn(f"service {svc.name!r}: Render has no user or working_dir setting")
        services.append(entry)
    for job in jobs(source):
        fields = utc_fields(job, out, PLATFORM)
        if fields is None:
            continue
        if job.entry.request is not None:
            services.append(_http_cron(source, job, fields, out))
            continue
        job, via = reach_app(job, source.app, PLATFORM, lambda s, p: _service_host(source, s), out)
        entry = _base(source, job.service, dns_name(source.name, job.name), "cron", out)
        if via:
            entry["envVars"] = [*entry.get("envVars", []), *via.values()]
        entry["schedule"] = fields
        entry["dockerCommand"] = shlex.join(job.argv)
        services.append(entry)
        if job.service.volumes:
            out.warn(f"{job.label}: Render cron jobs cannot mount the service's disk")
    for vol, names in shared_volumes(source).items():
        out.warn(
            f"volume {vol!r} is shared by services {', '.join(names)}: a Render disk "
            "attaches to one service, so each gets a disk of its own and they share nothing"
        )
    cron_settings(source, out, PLATFORM, {"forbid"})
    return {"render.yaml": render_template("render.yaml.j2", name=source.name, services=services)}


def _http_cron(source: ExportSource, job: Job, fields: str, out: Collector) -> dict[str, Any]:
    """An HTTP job: a cron service running curl in the client image, at the service's
    internal host (a `fromService` variable)."""
    address = lambda s, p: _service_host(source, s)  # noqa: E731
    script, env = request_job(source, job, PLATFORM, address, out)
    out.warn(client_note("as Render cron services of their own"))
    env_vars = [
        value
        if isinstance(value, dict)
        else {"key": key, "sync": False}
        if isinstance(value, Var)
        else {"key": key, "value": value}
        for key, value in env.items()
    ]
    entry: dict[str, Any] = {
        "type": "cron",
        "name": dns_name(source.name, job.name),
        "runtime": "image",
        "image": {"url": CLIENT_IMAGE},
    }
    if env_vars:
        entry["envVars"] = env_vars
    entry["schedule"] = fields
    entry["dockerCommand"] = shlex.join(["/bin/sh", "-c", script])
    return entry


def _service_host(source: ExportSource, service: str) -> Via | None:
    """A Render service with a port has an internal host name: a `fromService` variable."""
    svc = source.app.services[service]
    if not svc.ports:
        return None
    first_web = next(s for s in source.app.services.values() if s.ports)
    ref = {
        "type": "web" if svc is first_web else "pserv",
        "name": dns_name(source.name, service),
        "property": "host",
    }
    name = f"HOODY_HOST_{env_key(service)}"
    return Via(name, {"key": name, "fromService": ref}, host_only=True)


def _base(
    source: ExportSource, svc: ServiceSpec, name: str, kind: str, out: Collector
) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": kind, "name": name}
    if svc.build is not None:
        context = posixpath.normpath(svc.build.context)
        entry["runtime"] = "docker"
        entry["dockerContext"] = "." if context == "." else f"./{context}"
        entry["dockerfilePath"] = f"{entry['dockerContext']}/{svc.build.dockerfile}"
        if svc.build.args:
            out.warn(f"service {svc.name!r}: Render passes env vars, not build args, to builds")
    else:
        entry["runtime"] = "image"
        entry["image"] = {"url": svc.image}
    env = service_env(source, svc, out)
    if kind == "web" and "PORT" not in env:
        env = {**env, "PORT": str(svc.ports[0])}
    env_vars = [
        {"key": k, "sync": False} if isinstance(v, Var) else {"key": k, "value": v}
        for k, v in env.items()
    ]
    if env_vars:
        entry["envVars"] = env_vars
    return entry
