"""Railway: the whole environment as Infrastructure as Code, `.railway/railway.py`.

Railway's `railway.json` (Config as Code) configured one service's deploy and held no
variables or volumes; Railway's docs deprecated it (new services could not opt in) and
retired it on 2026-12-01. Its replacement is one program per project, written with the
`railway` SDK (TypeScript, `.railway/railway.ts`) or `railway-sdk` (Python,
`.railway/railway.py`, on PyPI), which the Railway CLI evaluates, plans and applies. It
holds every service, volume and variable, so it is what this export writes, in Python:
the test suite evaluates it with `railway-sdk` itself, offline.

Each service is `service(name, source=image(...) | github(...), build=..., deploy=...)`
with the same `deploy` fields railway.json had (`startCommand`, `healthcheckPath`,
`restartPolicyType`, `limitOverride`, `cronSchedule`); each crontab entry is a service of
its own with `deploy.cronSchedule` (UTC, at least five minutes apart) and
`startCommand: sh -c '<script>'`. Variables are references to Railway shared variables
(`ctx.shared["NAME"]`, set once in the project from `.env.example`), or with
`--include-spec-values` the committed text. A named volume becomes one Railway volume per
service mounting it (a Railway volume attaches to one service). Jobs reach services at
`<service>.railway.internal` (Railway's private network). Every value is written with
`ascii()`, so no text from the branch can leave its Python string literal.
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
    jobs,
    seconds,
    service_env,
    shared_volumes,
    utc_fields,
)
from .calls import reach_app
from .httpjobs import CLIENT_IMAGE, client_note, request_job
from .schedules import min_gap_minutes
from .templating import Var, render_template

PLATFORM = "Railway"
FILE = ".railway/railway.py"
PRIVATE_NETWORK = (
    "jobs reach services at <service>.railway.internal, Railway's private network: the "
    "services must listen on it (on ::, as it may be IPv6 only)"
)


class Code(str):
    """Python source written as is (a shared-variable reference, a name in the file)."""

    __slots__ = ()


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    volumes: dict[str, tuple[str, str]] = {}  # python key -> (railway volume name, note)
    services: list[dict[str, Any]] = []
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
        limits = _limits(svc)
        if limits:
            deploy["limitOverride"] = {"containers": limits}
        _service_notes(svc, out)
        mounts = {}
        for vol, path in svc.volumes.items():
            key = f"{svc.name}/{vol}"
            volumes[key] = (dns_name(source.name, svc.name, vol), path)
            mounts[path] = Code(f"volumes[{key!a}]")
        services.append(_service(source, svc, svc.name, deploy, mounts, out))
    for vol, names in shared_volumes(source).items():
        out.warn(
            f"volume {vol!r} is shared by services {', '.join(names)}: a Railway volume "
            "attaches to one service, so each gets a volume of its own and they share nothing"
        )
    for job in jobs(source):
        fields = utc_fields(job, out, PLATFORM)
        if fields is None:
            continue
        if min_gap_minutes(fields) < 5:
            out.warn(f"{job.label}: not exported: Railway runs crons at most every 5 minutes")
            continue
        if job.entry.request is not None:
            services.append(_http_service(source, job, fields, out))
            continue
        rewritten, _ = reach_app(job, source.app, PLATFORM, _private_host(source), out)
        if rewritten is not job:
            out.warn(PRIVATE_NETWORK)
        job = rewritten
        deploy = {
            "cronSchedule": fields,
            "startCommand": shlex.join(job.argv),
            "restartPolicyType": "NEVER",
        }
        services.append(_service(source, job.service, f"cron-{job.name}", deploy, {}, out))
        if job.service.volumes:
            out.warn(f"{job.label}: a Railway cron service cannot mount another's volume")
    cron_settings(source, out, PLATFORM, {"forbid"})
    text = render_template(
        "railway.py.j2",
        name=source.name,
        project=py(source.name),
        volumes={py(k): py(name) for k, (name, _) in volumes.items()},
        services=[py(s, 8) for s in services],
    )
    return {FILE: text}


def _http_service(source: ExportSource, job: Job, fields: str, out: Collector) -> dict[str, Any]:
    """An HTTP job: a cron service running curl in the client image, at the service's
    private host."""
    script, env = request_job(source, job, PLATFORM, _private_host(source), out)
    out.warn(client_note("as Railway cron services of their own"))
    out.warn(PRIVATE_NETWORK)
    node: dict[str, Any] = {
        "name": f"cron-{job.name}",
        "source": Code(f"image({CLIENT_IMAGE!a})"),
        "deploy": {
            "cronSchedule": fields,
            "startCommand": shlex.join(["/bin/sh", "-c", script]),
            "restartPolicyType": "NEVER",
        },
    }
    variables = {
        k: Code(f"ctx.shared[{v[2:-1]!a}]") if isinstance(v, Var) else v for k, v in env.items()
    }
    if variables:
        node["variables"] = variables
    return node


def _private_host(source: ExportSource) -> Any:
    def host(service: str, port: int) -> str | None:
        return f"{service}.railway.internal" if source.app.services[service].ports else None

    return host


def _service(
    source: ExportSource,
    svc: ServiceSpec,
    name: str,
    deploy: dict[str, Any],
    mounts: dict[str, Code],
    out: Collector,
) -> dict[str, Any]:
    node: dict[str, Any] = {"name": name}
    if svc.build is not None:
        context = posixpath.normpath(svc.build.context)
        repo = out.need("RAILWAY_GITHUB_REPO", "GitHub repository Railway builds from", "org/app")
        branch = out.need("RAILWAY_GITHUB_BRANCH", "branch Railway builds", "main")
        options = f", rootDirectory={context!a}" if context != "." else ""
        node["source"] = Code(f"github({py(repo)}, branch={py(branch)}{options})")
        node["build"] = {"builder": "DOCKERFILE", "dockerfilePath": svc.build.dockerfile}
        if svc.build.args:
            out.warn(f"service {svc.name!r}: Railway passes variables, not build args, to builds")
    else:
        node["source"] = Code(f"image({svc.image!a})")
    node["deploy"] = deploy
    variables: dict[str, str] = {}
    for key, value in service_env(source, svc, out).items():
        if isinstance(value, Var):
            variables[key] = Code(f"ctx.shared[{value[2:-1]!a}]")
        else:
            variables[key] = value
    if variables:
        node["variables"] = variables
    if mounts:
        node["volumeMounts"] = mounts
    return node


def _limits(svc: ServiceSpec) -> dict[str, float | int]:
    limits: dict[str, float | int] = {}
    if svc.resources.cpus:
        limits["cpu"] = svc.resources.cpus
    if svc.resources.memory:
        limits["memoryBytes"] = svc.resources.memory
    return limits


def _service_notes(svc: ServiceSpec, out: Collector) -> None:
    if svc.entrypoint:
        out.warn(f"service {svc.name!r}: Railway cannot replace the image's entrypoint")
    if len(svc.ports) > 1:
        out.warn(f"service {svc.name!r}: Railway exposes one port (PORT); set it to one of them")
    if svc.user or svc.working_dir:
        out.warn(f"service {svc.name!r}: Railway has no user or working_dir setting")


def py(value: Any, indent: int = 0) -> str:
    """Python source for `value`: `ascii()` literals (pure ASCII, exactly the value),
    dicts and lists laid out one item a line, `Code` as is, a `Var` placeholder as
    `env("NAME")` (read from the environment of whoever runs the Railway CLI)."""
    pad = " " * indent
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, Var):
        return f"env({value[2:-1]!a})"
    if isinstance(value, dict) and value:
        items = [f"{pad}    {str(k)!a}: {py(v, indent + 4)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple) and value:
        items = [f"{pad}    {py(v, indent + 4)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, bool | int | float | str) or value is None:
        return ascii(value)
    if isinstance(value, dict | list | tuple):
        return "{}" if isinstance(value, dict) else "[]"
    raise TypeError(f"no Python literal for {type(value).__name__}")
