"""Google Cloud Run: a Knative `service.yaml` for the services, and per crontab entry a
Cloud Run Job (`jobs/<job>.yaml`) with a Cloud Scheduler job (`scheduler/<job>.json`)
that runs it on its unix-cron schedule in its time zone.

Every file is rendered `substitutable`: only our `${NAME}` placeholders keep a `$`, for
the `envsubst` command `.env.example` prints. Deploy with
`gcloud run services replace service.yaml`, `gcloud run jobs replace
jobs/<job>.yaml`, and the scheduler JSON as the body of Cloud Scheduler's
`projects.locations.jobs.create`. CPU limits are ones Cloud Run takes (below 1 vCPU
with `containerConcurrency: 1`, above it 2, 4, 6 or 8, at least what the memory needs),
warned when they differ from the spec. Cloud Run runs every service of the environment as
containers of one instance: one of them (the first with a port) receives the traffic,
the others are sidecars reachable on localhost.
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.core.model import ServiceSpec

from . import cloudscheduler
from .base import (
    Collector,
    ExportSource,
    Job,
    cron_settings,
    dns_name,
    env_key,
    image_ref,
    jobs,
    seconds,
    service_env,
)
from .calls import Via, reach_app
from .schedules import Schedule, ambiguous_days, entry_schedule
from .templating import Var, render_template

PLATFORM = "Cloud Run"
MIB = 1024 * 1024
RUN_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def run_name(*parts: str) -> str:
    """Cloud Run names: at most 49 characters, starting with a letter."""
    name = dns_name(*parts, limit=49)
    return name if name[0].isalpha() else dns_name("x", name, limit=49)


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    files: dict[str, str] = {}
    services = list(source.app.services.values())
    ingress = next((s for s in services if s.ports), None)
    if ingress is None:
        out.warn("no service has a port: a Cloud Run service must serve HTTP; none exported")
    else:
        ordered = [ingress, *(s for s in services if s is not ingress)]
        containers = [_container(source, s, s is ingress, out) for s in ordered]
        below_one = [c["name"] for c in containers if needs_one(_cpu(c))]
        if below_one:
            out.warn(
                f"Cloud Run needs containerConcurrency 1 when a container has less than 1 "
                f"vCPU ({', '.join(below_one)}): each instance serves one request at a time"
            )
        if len(services) > 1:
            out.warn(
                "Cloud Run runs all services in one instance: only "
                f"{ingress.name!r} gets traffic; the others reach each other on localhost"
            )
        files["service.yaml"] = render_template(
            "cloudrun-service.yaml.j2",
            substitutable=True,
            name=run_name(source.name),
            containers=containers,
            concurrency=1 if below_one else None,
            volumes=_volumes(services, out),
        )
    for job in jobs(source):
        files.update(_job_files(source, job, out))
    cron_settings(source, out, PLATFORM, {"timeout", "retries"})
    return files


def _cpu(container: dict[str, Any]) -> str | None:
    cpu = container.get("resources", {}).get("limits", {}).get("cpu")
    return str(cpu) if cpu is not None else None


def _volumes(services: list[ServiceSpec], out: Collector) -> list[dict[str, Any]]:
    names = sorted({v for s in services for v in s.volumes})
    if names:
        out.warn(
            "Cloud Run has no named volumes: each becomes an in-memory emptyDir, emptied on "
            "every new instance and not shared with jobs"
        )
    return [{"name": v, "emptyDir": {"medium": "Memory"}} for v in names]


def _container(
    source: ExportSource, svc: ServiceSpec, ingress: bool, out: Collector, job: bool = False
) -> dict[str, Any]:
    """The service's container; `job`: for a Cloud Run Job, which serves no port."""
    c: dict[str, Any] = {"name": svc.name, "image": image_ref(svc, out, PLATFORM)}
    if svc.entrypoint:
        c["command"] = list(svc.entrypoint)
    if svc.command:
        c["args"] = list(svc.command)
    if svc.working_dir:
        c["workingDir"] = svc.working_dir
    if ingress:
        c["ports"] = [{"containerPort": svc.ports[0]}]
        if len(svc.ports) > 1:
            out.warn(f"service {svc.name!r}: Cloud Run serves one port; {svc.ports[1:]} dropped")
    elif svc.ports and not job:
        out.warn(f"service {svc.name!r}: ports {list(svc.ports)} reachable on localhost only")
    env = service_env(source, svc, out)
    if env:
        c["env"] = [{"name": k, "value": v} for k, v in env.items()]
    limits = {}
    if svc.resources.memory:
        limits["memory"] = f"{max(128, math.ceil(svc.resources.memory / MIB))}Mi"
    cpu = cloudrun_cpu(svc, out)
    if cpu is not None:
        limits["cpu"] = cpu
    if limits:
        c["resources"] = {"limits": limits}
    if svc.volumes:
        c["volumeMounts"] = [{"name": v, "mountPath": p} for v, p in svc.volumes.items()]
    hc = svc.healthcheck
    if hc is not None and hc.http is not None:
        period = min(seconds(hc.interval), 240)
        probe = {
            "httpGet": {"path": hc.http, "port": hc.port},
            "periodSeconds": period,
            "timeoutSeconds": min(seconds(hc.timeout), period),
        }
        c["startupProbe"] = {
            **probe,
            "failureThreshold": max(1, seconds(hc.start_period) // period),
        }
        c["livenessProbe"] = {**probe, "failureThreshold": hc.retries}
    elif hc is not None:
        out.warn(f"service {svc.name!r}: Cloud Run probes are HTTP, TCP or gRPC; command dropped")
    if svc.user:
        out.warn(f"service {svc.name!r}: Cloud Run runs the image's user, not {svc.user!r}")
    return c


# Memory above each size (MiB) needs at least that many vCPUs on Cloud Run.
_MEMORY_CPU = ((24 * 1024, 8), (16 * 1024, 6), (8 * 1024, 4), (4 * 1024, 2))
_WHOLE_CPUS = (1, 2, 4, 6, 8)


def cloudrun_cpu(svc: ServiceSpec, out: Collector) -> str | None:
    """A CPU limit Cloud Run takes: 80m-999m (with concurrency 1, see `needs_one`), or
    1, 2, 4, 6 or 8 vCPUs, at least what the memory limit requires. Any change to the
    spec's value is warned."""
    cpus = svc.resources.cpus
    mib = math.ceil(svc.resources.memory / MIB) if svc.resources.memory else 0
    floor = next((n for limit, n in _MEMORY_CPU if mib > limit), 0)
    if mib > 32 * 1024:
        out.warn(f"service {svc.name!r}: Cloud Run allows at most 32 GiB of memory")
    if cpus is None and not floor:
        return None
    wanted = max(cpus or 0, floor)
    if wanted < 1:
        milli = max(80, math.ceil(wanted * 1000))
        if milli != math.ceil(wanted * 1000):
            out.warn(f"service {svc.name!r}: Cloud Run's smallest CPU is 0.08; exported as 80m")
        return f"{milli}m"
    whole = next((n for n in _WHOLE_CPUS if n >= wanted), 8)
    if whole != cpus:
        why = (
            f"{mib} MiB of memory needs at least {floor}"
            if floor > (cpus or 0)
            else ("above 1 vCPU Cloud Run takes 2, 4, 6 or 8" if wanted <= 8 else "8 is the most")
        )
        out.warn(f"service {svc.name!r}: cpus {cpus} exported as {whole} vCPU ({why})")
    return str(whole)


def needs_one(cpu: str | None) -> bool:
    """Cloud Run takes a CPU limit below 1 only with one request at a time per instance."""
    return cpu is not None and cpu.endswith("m")


def _service_url(source: ExportSource, service: str, port: int, out: Collector) -> Via | None:
    """A job reaches the Cloud Run service by its URL (known once deployed), and only the
    container that gets the traffic, on its port."""
    ingress = next((s for s in source.app.services.values() if s.ports), None)
    if ingress is None or service != ingress.name or port != ingress.ports[0]:
        return None
    out.warn(
        "jobs that call the app reach it at the Cloud Run service's URL (CLOUD_RUN_URL): "
        "the service must let them in (allow unauthenticated calls, or send an ID token)"
    )
    url = _run_url(source, out)
    return Via(f"HOODY_URL_{env_key(service)}", url)


def _run_url(source: ExportSource, out: Collector) -> str:
    return out.need(
        "CLOUD_RUN_URL",
        "URL of the Cloud Run service, once deployed: gcloud run services describe "
        f"{run_name(source.name)} --format 'value(status.url)'",
        "https://example-uc.a.run.app",
    )


def _http_job(
    source: ExportSource,
    job: Job,
    schedule: Schedule,
    name: str,
    project: str,
    region: str,
    account: str,
    out: Collector,
) -> dict[str, str]:
    """A Cloud Scheduler HTTP target at the service's URL, when the request goes to the
    container that gets the traffic, on its port."""
    request = job.entry.request
    assert request is not None
    ingress = next((s for s in source.app.services.values() if s.ports), None)
    if ingress is None or (request.service, request.port) != (ingress.name, ingress.ports[0]):
        where = f"{ingress.name}:{ingress.ports[0]}" if ingress else "no service"
        out.warn(
            f"{job.label}: not exported: Cloud Scheduler reaches the Cloud Run service's "
            f"URL, which serves {where}; {request.service}:{request.port} is not reachable "
            "from outside the instance"
        )
        return {}
    url = _run_url(source, out)
    full = Var(f"projects/{project}/locations/{region}/jobs/{name}")
    return cloudscheduler.http_job_files(source, job, schedule, full, url, account, out)


def _job_files(source: ExportSource, job: Job, out: Collector) -> dict[str, str]:
    schedule, problem = entry_schedule(job.entry)
    if schedule is None:
        out.warn(f"{job.label}: not exported: {problem}")
        return {}
    note = ambiguous_days(schedule.fields)
    if note:
        out.warn(f"{job.label}: {note}")
    project = out.need("GCP_PROJECT", "Google Cloud project id")
    region = out.need("GCP_REGION", "Cloud Run region", "europe-west1")
    name = run_name(source.name, job.name)
    account = out.need("SCHEDULER_SERVICE_ACCOUNT", "service account that runs the jobs")
    if job.entry.request is not None:
        return _http_job(source, job, schedule, name, project, region, account, out)
    cron = source.app.cron
    job, via = reach_app(
        job, source.app, PLATFORM, lambda s, p: _service_url(source, s, p, out), out
    )
    container = _container(source, job.service, False, out, job=True)
    for key in ("args", "startupProbe", "livenessProbe", "volumeMounts"):
        container.pop(key, None)
    container.pop("name")
    container["command"] = job.argv
    if via:
        env = container.setdefault("env", [])
        env += [{"name": k, "value": v} for k, v in via.items()]
    return {
        f"jobs/{job.name}.yaml": render_template(
            "cloudrun-job.yaml.j2",
            substitutable=True,
            name=name,
            source=job.label,
            container=container,
            retries=cron.retries,
            timeout=seconds(cron.timeout),
        ),
        f"scheduler/{job.name}.json": render_template(
            "cloudscheduler-job.json.j2",
            substitutable=True,
            name=Var(f"projects/{project}/locations/{region}/jobs/{name}"),
            description=job.label[:500],
            schedule=schedule.fields,
            timezone=schedule.timezone,
            uri=Var(
                f"https://run.googleapis.com/v2/projects/{project}/locations/{region}/jobs/"
                f"{name}:run"
            ),
            account=account,
            scope=RUN_SCOPE,
        ),
    }
