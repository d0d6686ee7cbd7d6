"""Compose: `docker-compose.yml` for any Docker host, the schedule as ofelia labels.

Services keep their build (context, Dockerfile, args) or image, named volumes, one
network, ports (published on host ports Docker picks), health checks and resource
limits. The crontab becomes `ofelia.job-exec.<job>.*` labels on the cron service, which
an ofelia container (mcuadros/ofelia, `daemon --docker`) started next to the project
runs in that service's container, as hoody does; `x-hoody-crontab` keeps the original.

Build contexts are written relative to the folder the file is written to
(`ExportSource.repo_root`: the CLI computes it from `--dir`/`--repo` and `-o`), because
Compose resolves them from the file's own folder.

ofelia's cron (robfig/cron v1) wants six fields with seconds first and reads them in the
ofelia container's local time (UTC unless its TZ is set); its `command` is split into
words by gobs/args, not a shell, so the job is `sh -c "<script>"` with `\\` and `"`
escaped for that splitter. Every `$` is written `$$` (the `cy` template filter) so Compose
does not interpolate it; only the deliberate `${NAME}` placeholders are interpolated.
"""

from __future__ import annotations

import posixpath
from typing import Any

from reconciler.core.model import ServiceSpec

from .base import (
    Collector,
    ExportSource,
    Job,
    build_args,
    cron_settings,
    duration,
    http_probe_command,
    jobs,
    service_env,
    utc_fields,
)
from .templating import render_template

PLATFORM = "Compose (ofelia)"


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    services = [_service(source, svc, out) for svc in source.app.services.values()]
    labels = _ofelia_labels(source, out)
    if labels:
        cron = next(s for s in services if s["name"] == source.app.cron_service)
        cron["labels"] = labels
        out.warn(
            "the schedule runs only if an ofelia container runs next to this project: "
            "`docker run -d -v /var/run/docker.sock:/var/run/docker.sock:ro "
            "mcuadros/ofelia:latest daemon --docker`"
        )
    cron_settings(source, out, PLATFORM, {"forbid", "user"})
    volumes = sorted({v for svc in source.app.services.values() for v in svc.volumes})
    text = render_template(
        "docker-compose.yml.j2",
        name=source.name,
        services=services,
        volumes=volumes,
        crontab=source.crontab_text,
        repo_root=source.repo_root if any(s["build"] for s in services) else None,
    )
    return {"docker-compose.yml": text}


def _service(source: ExportSource, svc: ServiceSpec, out: Collector) -> dict[str, Any]:
    build = None
    if svc.build is not None:
        build = {
            "context": posixpath.normpath(posixpath.join(source.repo_root, svc.build.context)),
            "dockerfile": svc.build.dockerfile,
            "args": build_args(source, svc, out),
        }
    health = None
    if svc.healthcheck is not None:
        hc = svc.healthcheck
        if hc.command is not None:
            test = ["CMD", *hc.command]
        else:
            assert hc.http is not None and hc.port is not None
            test = ["CMD-SHELL", http_probe_command(hc.http, hc.port)]
            out.warn(
                f"service {svc.name!r}: Compose health checks run inside the container, so "
                "the HTTP check needs wget or curl in the image"
            )
        health = {
            "test": test,
            "interval": duration(hc.interval),
            "timeout": duration(hc.timeout),
            "retries": hc.retries,
            "start_period": duration(hc.start_period),
        }
    return {
        "name": svc.name,
        "image": svc.image,
        "build": build,
        "command": list(svc.command) if svc.command else None,
        "entrypoint": list(svc.entrypoint) if svc.entrypoint else None,
        "env": service_env(source, svc, out),
        "ports": [str(p) for p in svc.ports],
        "volumes": dict(svc.volumes),
        "health": health,
        "memory": svc.resources.memory,
        "cpus": svc.resources.cpus,
        "user": svc.user,
        "working_dir": svc.working_dir,
        "labels": {},
    }


def _ofelia_labels(source: ExportSource, out: Collector) -> dict[str, str]:
    labels: dict[str, str] = {}
    for job in jobs(source):
        spec = _schedule(job, out)
        if spec is None:
            continue
        prefix = f"ofelia.job-exec.{job.name}"
        labels[f"{prefix}.schedule"] = spec
        labels[f"{prefix}.command"] = ofelia_command(job.argv)
        labels[f"{prefix}.user"] = source.app.cron.user
        if source.app.cron.concurrency == "forbid":
            labels[f"{prefix}.no-overlap"] = "true"
    if labels:
        labels["ofelia.enabled"] = "true"
    return labels


def _schedule(job: Job, out: Collector) -> str | None:
    entry = job.entry
    if entry.kind == "every" and entry.every is not None and entry.every == int(entry.every):
        # ofelia has @every itself; it counts from its own start, not from the epoch.
        return f"@every {int(entry.every)}s"
    fields = utc_fields(
        job,
        out,
        "ofelia",
        lambda zone, problem: (
            f"ofelia reads schedules in its own local time, and {problem}; "
            f"exported as written: run ofelia with TZ={zone}"
        ),
    )
    return None if fields is None else f"0 {fields}"


def ofelia_command(argv: list[str]) -> str:
    """Words for gobs/args (ofelia's splitter): double quotes, `\\` escapes `\\` and `"`."""
    return " ".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in argv)
