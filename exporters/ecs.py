"""Amazon ECS on Fargate: a task definition for the services, and for each crontab entry
a task definition of its own plus EventBridge Scheduler schedules that run it.

Files are the request bodies of `aws ecs register-task-definition --cli-input-json` and
`aws scheduler create-schedule --cli-input-json`. Schedules use AWS's own
`cron(min hour dom month dow year)` (see `schedules.aws_cron`) in the entry's time zone
(`ScheduleExpressionTimezone`). Account, region, cluster, roles and network are
placeholders listed in `.env.example`, like every environment value, filled in with the
`envsubst` command it prints (files rendered `substitutable`: no other `$`). Every task, the
services' and each job's, gets the smallest valid Fargate CPU/memory pair that holds its
containers' reservations (RegisterTaskDefinition refuses any other pair, and a task
smaller than its containers).
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.core.model import ServiceSpec

from .base import (
    Collector,
    ExportSource,
    Job,
    cron_settings,
    dns_name,
    env_key,
    http_probe_command,
    image_ref,
    jobs,
    seconds,
    service_env,
)
from .calls import Via, reach_app
from .httpjobs import CLIENT_IMAGE, client_note, request_job
from .schedules import aws_cron, entry_schedule
from .templating import Var, render_template

PLATFORM = "ECS (EventBridge Scheduler)"
MIB = 1024 * 1024
# Fargate's task sizes (Linux): CPU units -> the memory values (MiB) it takes.
FARGATE: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    aws = _aws_placeholders(out)
    family = dns_name(source.name)
    services = list(source.app.services.values())
    containers = [_container(source, svc, svc.name, out) for svc in services]
    if len(services) > 1:
        out.warn(
            "all services share one Fargate task: they reach each other on localhost, not "
            "by service name, and must listen on different ports"
        )
    files = {"task-definition.json": _task(family, containers, services, aws, out)}
    for job in jobs(source):
        files.update(_job_files(source, job, family, aws, out))
    cron_settings(source, out, PLATFORM, {"user"})
    return files


def _aws_placeholders(out: Collector) -> dict[str, str]:
    return {
        "region": out.need("AWS_REGION", "AWS region", "us-east-1"),
        "account": out.need("AWS_ACCOUNT_ID", "AWS account id", "123456789012"),
        "cluster": out.need("ECS_CLUSTER", "ECS cluster name"),
        "execution_role": out.need("ECS_EXECUTION_ROLE_ARN", "task execution role ARN"),
    }


def _task(
    family: str,
    containers: list[dict[str, Any]],
    services: list[ServiceSpec],
    aws: dict[str, str],
    out: Collector,
) -> str:
    volumes = sorted({v for svc in services for v in svc.volumes})
    if volumes:
        out.warn(
            "named volumes become Fargate task storage, which is lost when the task stops; "
            "add an efsVolumeConfiguration to keep the data"
        )
    cpu, memory = sized(services, "the services' task", out)
    return render_template(
        "ecs-task-definition.json.j2",
        substitutable=True,
        family=family,
        cpu=str(cpu),
        memory=str(memory),
        execution_role=aws["execution_role"],
        containers=containers,
        volumes=[{"name": v} for v in volumes],
    )


def fargate_size(services: list[ServiceSpec]) -> tuple[int, int] | None:
    """The smallest Fargate (CPU units, MiB) that holds every container's limits, or None
    when even the largest does not."""
    cpu = sum(math.ceil((s.resources.cpus or 0) * 1024) for s in services)
    memory = sum(_mib(s) for s in services)
    for units, memories in FARGATE.items():
        fits = [m for m in memories if m >= memory]
        if units >= cpu and fits:
            return units, fits[0]
    return None


def sized(services: list[ServiceSpec], what: str, out: Collector) -> tuple[int, int]:
    size = fargate_size(services)
    if size is None:
        out.warn(
            f"{what} needs more than Fargate's largest size (16 vCPU, 120 GiB): exported "
            "at that size, which RegisterTaskDefinition refuses while the containers "
            "reserve more; lower services' resources"
        )
        return 16384, 122880
    return size


def _mib(svc: ServiceSpec) -> int:
    return max(6, math.ceil(svc.resources.memory / MIB)) if svc.resources.memory else 0


def _container(source: ExportSource, svc: ServiceSpec, name: str, out: Collector) -> dict[str, Any]:
    env = service_env(source, svc, out)
    c: dict[str, Any] = {"name": name, "image": image_ref(svc, out, PLATFORM), "essential": True}
    if svc.entrypoint:
        c["entryPoint"] = list(svc.entrypoint)
    if svc.command:
        c["command"] = list(svc.command)
    if env:
        c["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    if svc.ports:
        c["portMappings"] = [{"containerPort": p, "protocol": "tcp"} for p in svc.ports]
    if svc.volumes:
        c["mountPoints"] = [{"sourceVolume": v, "containerPath": p} for v, p in svc.volumes.items()]
    if svc.resources.memory:
        c["memory"] = _mib(svc)
    if svc.resources.cpus:
        c["cpu"] = math.ceil(svc.resources.cpus * 1024)
    if svc.user:
        c["user"] = svc.user
    if svc.working_dir:
        c["workingDirectory"] = svc.working_dir
    hc = svc.healthcheck
    if hc is not None:
        if hc.command is not None:
            test = ["CMD", *hc.command]
        else:
            assert hc.http is not None and hc.port is not None
            test = ["CMD-SHELL", http_probe_command(hc.http, hc.port)]
            out.warn(f"service {svc.name!r}: the ECS health check needs wget or curl in the image")
        c["healthCheck"] = {
            "command": test,
            "interval": _clamp(seconds(hc.interval), 5, 300, "interval", svc.name, out),
            "timeout": _clamp(seconds(hc.timeout), 2, 60, "timeout", svc.name, out),
            "retries": _clamp(hc.retries, 1, 10, "retries", svc.name, out),
            "startPeriod": _clamp(int(hc.start_period), 0, 300, "start_period", svc.name, out),
        }
    return c


def _clamp(value: int, low: int, high: int, what: str, service: str, out: Collector) -> int:
    clamped = min(max(value, low), high)
    if clamped != value:
        out.warn(
            f"service {service!r}: healthcheck.{what} {value} is outside ECS's {low}-{high}; "
            f"exported as {clamped}"
        )
    return clamped


def _service_url(service: str, port: int, out: Collector) -> Via:
    """ECS gives a scheduled task no name for the services' task: a placeholder."""
    var = f"{env_key(service)}_URL"
    out.warn(
        f"jobs call service {service!r} (port {port}), but ECS gives a scheduled task no "
        f"name for it: set {var} to an address they can reach (a load balancer, Service "
        f"Connect), e.g. http://internal-lb:{port}"
    )
    value = out.need(var, f"base URL of service {service!r} reachable from scheduled tasks")
    return Via(f"HOODY_URL_{env_key(service)}", value)


def _command_container(source: ExportSource, job: Job, out: Collector) -> dict[str, Any]:
    """The job's script in the cron service's image, as the cron user."""
    job, via = reach_app(job, source.app, PLATFORM, lambda s, p: _service_url(s, p, out), out)
    container = _container(source, job.service, "job", out)
    for key in ("portMappings", "healthCheck", "command"):
        container.pop(key, None)
    if via:
        env = container.setdefault("environment", [])
        env += [{"name": k, "value": v} for k, v in via.items()]
    container["entryPoint"] = job.argv  # replaces the image's entrypoint, as `docker exec`
    container["user"] = source.app.cron.user
    return container


def _http_container(source: ExportSource, job: Job, out: Collector) -> dict[str, Any]:
    """An HTTP job: curl in the client image, at the service's address placeholder (an
    EventBridge API destination would reach public endpoints only, within 5 seconds:
    `exporters.httpjobs`)."""
    address = lambda s, p: _service_url(s, p, out)  # noqa: E731
    script, env = request_job(source, job, PLATFORM, address, out)
    out.warn(
        client_note("as scheduled Fargate tasks of their own")
        + ", not as EventBridge API destinations (public HTTPS endpoints only, 5-second "
        "answers, a rule and a connection per job)"
    )
    container: dict[str, Any] = {
        "name": "job",
        "image": CLIENT_IMAGE,
        "essential": True,
        "entryPoint": ["/bin/sh", "-c", script],
    }
    if env:
        container["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    return container


def _job_files(
    source: ExportSource, job: Job, family: str, aws: dict[str, str], out: Collector
) -> dict[str, str]:
    schedule, problem = entry_schedule(job.entry)
    expressions: list[str] | None = None
    if schedule is not None:
        expressions, problem = aws_cron(schedule.fields)
    if schedule is None or expressions is None:
        out.warn(f"{job.label}: not exported: {problem}")
        return {}
    cron = source.app.cron
    if job.entry.request is not None:
        container, volumes = _http_container(source, job, out), []
        cpu, memory = 256, 512  # curl alone: Fargate's smallest task
    else:
        container = _command_container(source, job, out)
        volumes = [{"name": v} for v in sorted(job.service.volumes)]
        cpu, memory = sized([job.service], f"{job.label}: its task", out)
    job_family = dns_name(family, "cron", job.name, limit=255)
    files = {
        f"cron/{job.name}.task-definition.json": render_template(
            "ecs-task-definition.json.j2",
            substitutable=True,
            family=job_family,
            cpu=str(cpu),
            memory=str(memory),
            execution_role=aws["execution_role"],
            containers=[container],
            volumes=volumes,
        )
    }
    suffixes = ["-dom", "-dow"] if len(expressions) == 2 else [""]
    if len(expressions) == 2:
        out.warn(
            f"{job.label}: cron ORs its day-of-month and day-of-week; AWS cannot, so it "
            "is two schedules"
        )
    arn = f"arn:aws:ecs:{aws['region']}:{aws['account']}"
    for suffix, expression in zip(suffixes, expressions, strict=True):
        name = dns_name(source.name, job.name, limit=64 - len(suffix)) + suffix
        files[f"cron/{job.name}{suffix}.schedule.json"] = render_template(
            "ecs-schedule.json.j2",
            substitutable=True,
            name=name,
            description=job.label[:512],
            expression=expression,
            timezone=schedule.timezone,
            cluster_arn=Var(f"{arn}:cluster/{aws['cluster']}"),
            task_arn=Var(f"{arn}:task-definition/{job_family}"),
            role=out.need("SCHEDULER_ROLE_ARN", "role EventBridge Scheduler runs tasks with"),
            subnet=out.need("ECS_SUBNET_ID", "subnet the scheduled tasks run in"),
            security_group=out.need("ECS_SECURITY_GROUP_ID", "security group of scheduled tasks"),
            max_age=min(max(seconds(cron.starting_deadline), 60), 86400),
        )
    return files
