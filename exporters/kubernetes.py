"""Kubernetes: plain manifests any cluster applies with `kubectl apply -f <dir>`.

Per service a Deployment (and a Service when it has ports), an Ingress for the first
published port, a PersistentVolumeClaim per named volume, a Secret holding every
`${NAME}` placeholder (substituted with the `envsubst` command `.env.example` prints,
which names exactly our placeholders), and one
`batch/v1` CronJob per crontab entry: the cron service's image running `sh -c <script>`,
in the entry's `timeZone`, with `concurrencyPolicy`, `activeDeadlineSeconds` and
`backoffLimit` from the spec's `cron:` settings. A CronJob runs in a new pod, not in the
running service's container, so it gets the same environment and volumes, and its
URLs of the app (`localhost`, a service name) are rewritten to the service's Service.

Every file is rendered `substitutable` (a `$` that is not one of our placeholders is
written `\\u0024`), and in commands, args and env values every `$` is doubled first,
because the kubelet expands `$(NAME)` there and reads `$$` as a literal `$`.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.core.model import HealthCheck, ServiceSpec

from .base import (
    Collector,
    ExportSource,
    Job,
    cron_settings,
    dns_name,
    image_ref,
    jobs,
    seconds,
    service_env,
)
from .calls import reach_app
from .httpjobs import CLIENT_IMAGE, attempts_seconds, client_note, request_job
from .schedules import ambiguous_days, entry_schedule
from .templating import Var, render_template

PLATFORM = "Kubernetes"
_CONCURRENCY = {"forbid": "Forbid", "allow": "Allow", "replace": "Replace"}
_UID = re.compile(r"(\d+)(?::(\d+))?")


def render(source: ExportSource, out: Collector) -> dict[str, str]:
    files: dict[str, str] = {}
    secret = dns_name(source.name, "env")
    volumes = sorted({v for svc in source.app.services.values() for v in svc.volumes})
    claims = {v: dns_name(source.name, v) for v in volumes}
    for svc in source.app.services.values():
        container = _container(source, svc, svc.name, secret, out)
        pod = _pod(svc, container, claims)
        name = dns_name(source.name, svc.name)
        labels = _labels(source, svc.name)
        files[f"deployment-{svc.name}.yaml"] = render_template(
            "k8s-deployment.yaml.j2",
            substitutable=True,
            name=name,
            labels=labels,
            recreate=bool(svc.volumes),
            pod=pod,
        )
        if svc.ports:
            ports = [{"name": f"p{p}", "port": p, "targetPort": p} for p in svc.ports]
            files[f"service-{svc.name}.yaml"] = render_template(
                "k8s-service.yaml.j2", substitutable=True, name=name, labels=labels, ports=ports
            )
    published = next((s for s in source.app.services.values() if s.ports), None)
    if published is not None:
        files["ingress.yaml"] = render_template(
            "k8s-ingress.yaml.j2",
            substitutable=True,
            name=dns_name(source.name),
            labels=_labels(source, published.name),
            service=dns_name(source.name, published.name),
            port=published.ports[0],
        )
    for vol, claim in claims.items():
        files[f"pvc-{vol}.yaml"] = render_template(
            "k8s-pvc.yaml.j2", substitutable=True, name=claim, labels=_labels(source, None)
        )
    if claims:
        out.warn(
            "each named volume becomes a 1Gi ReadWriteOnce PersistentVolumeClaim: adjust the "
            "size and storage class; pods sharing one (services, CronJobs) must run on one node"
        )
    for job in jobs(source):
        cronjob = _cronjob(source, job, secret, claims, out)
        if cronjob is not None:
            files[f"cronjob-{job.name}.yaml"] = render_template(
                "k8s-cronjob.yaml.j2", substitutable=True, **cronjob
            )
    cron_settings(source, out, PLATFORM, {"timeout", "retries", "forbid", "replace", "user"})
    placeholders = {p: Var("${" + p + "}") for p in sorted(out.placeholders)}
    secret_keys = {p: v for p, v in placeholders.items() if not p.startswith("IMAGE_")}
    if secret_keys:
        files["secret.yaml"] = render_template(
            "k8s-secret.yaml.j2",
            substitutable=True,
            name=secret,
            labels=_labels(source, None),
            data=secret_keys,
        )
    return files


def _labels(source: ExportSource, service: str | None) -> dict[str, str]:
    labels = {"app.kubernetes.io/instance": dns_name(source.name)}
    if service is not None:
        labels["app.kubernetes.io/name"] = service
    return labels


def _container(
    source: ExportSource, svc: ServiceSpec, name: str, secret: str, out: Collector
) -> dict[str, Any]:
    env = [_env_var(key, value, secret) for key, value in service_env(source, svc, out).items()]
    container: dict[str, Any] = {"name": name, "image": image_ref(svc, out, PLATFORM)}
    if svc.entrypoint:
        container["command"] = [kubelet_literal(a) for a in svc.entrypoint]
    if svc.command:
        container["args"] = [kubelet_literal(a) for a in svc.command]
    if svc.working_dir:
        container["workingDir"] = svc.working_dir
    if svc.ports:
        container["ports"] = [{"containerPort": p} for p in svc.ports]
    if env:
        container["env"] = env
    if svc.volumes:
        container["volumeMounts"] = [{"name": v, "mountPath": p} for v, p in svc.volumes.items()]
    limits: dict[str, str] = {}
    if svc.resources.memory:
        limits["memory"] = str(svc.resources.memory)
    if svc.resources.cpus:
        limits["cpu"] = f"{round(svc.resources.cpus * 1000)}m"
    if limits:
        container["resources"] = {"limits": limits}
    if svc.healthcheck is not None:
        container.update(_probes(svc.healthcheck))
    context = _run_as(svc.user, f"service {svc.name!r}", out)
    if context:
        container["securityContext"] = context
    return container


def _env_var(key: str, value: str, secret: str) -> dict[str, Any]:
    """A container variable: a placeholder is a key of the environment's Secret."""
    if isinstance(value, Var):
        return {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": value[2:-1]}}}
    return {"name": key, "value": kubelet_literal(value)}


def kubelet_literal(text: str) -> str:
    """`text` as the kubelet passes it on: it expands `$(NAME)` in commands, args and env
    values, and reads `$$` as `$`."""
    return text.replace("$", "$$")


def _run_as(user: str | None, what: str, out: Collector) -> dict[str, int]:
    if user is None:
        return {}
    match = _UID.fullmatch("0" if user == "root" else user)
    if match is None:
        out.warn(f"{what}: user {user!r} is a name; Kubernetes needs a numeric uid")
        return {}
    context = {"runAsUser": int(match[1])}
    if match[2] is not None:
        context["runAsGroup"] = int(match[2])
    return context


def _probes(hc: HealthCheck) -> dict[str, Any]:
    if hc.http is not None:
        check: dict[str, Any] = {"httpGet": {"path": hc.http, "port": hc.port}}
    else:
        assert hc.command is not None
        check = {"exec": {"command": list(hc.command)}}
    period, timeout = seconds(hc.interval), seconds(hc.timeout)
    probe = {**check, "periodSeconds": period, "timeoutSeconds": timeout}
    startup_failures = max(1, seconds(hc.start_period) // period)
    return {
        "startupProbe": {**probe, "failureThreshold": startup_failures},
        "readinessProbe": {**probe, "failureThreshold": hc.retries},
        "livenessProbe": {**probe, "failureThreshold": hc.retries},
    }


def _pod(svc: ServiceSpec, container: dict[str, Any], claims: dict[str, str]) -> dict[str, Any]:
    pod: dict[str, Any] = {"containers": [container]}
    if svc.volumes:
        pod["volumes"] = [
            {"name": v, "persistentVolumeClaim": {"claimName": claims[v]}} for v in svc.volumes
        ]
    return pod


def _service_host(source: ExportSource, service: str, port: int) -> str | None:
    """The Kubernetes Service of `service`, when it exposes `port` (same namespace)."""
    return dns_name(source.name, service) if port in source.app.services[service].ports else None


def _cronjob(
    source: ExportSource, job: Job, secret: str, claims: dict[str, str], out: Collector
) -> dict[str, Any] | None:
    schedule, problem = entry_schedule(job.entry)
    if schedule is None:
        out.warn(f"{job.label}: not exported: {problem}")
        return None
    note = ambiguous_days(schedule.fields)
    if note:
        out.warn(f"{job.label}: {note}")
    cron = source.app.cron
    retries, timeout = cron.retries, seconds(cron.timeout)
    if job.entry.request is not None:
        pod = _http_pod(source, job, secret, out)
        retries, timeout = 0, seconds(attempts_seconds(job.entry.request)) + 60
    else:
        pod = _command_pod(source, job, secret, claims, out)
    return {
        "name": dns_name(source.name, job.name, limit=52),
        "labels": {**_labels(source, job.service.name), "hoody.cron/line": str(job.entry.line)},
        "schedule": schedule.fields,
        "timezone": schedule.timezone,
        "concurrency": _CONCURRENCY[cron.concurrency],
        "deadline": seconds(cron.starting_deadline),
        "retries": retries,
        "timeout": timeout,
        "pod": pod,
        "source": job.label,
    }


def _http_pod(source: ExportSource, job: Job, secret: str, out: Collector) -> dict[str, Any]:
    """An HTTP job: curl in the client image, at the service's Service; the request's
    `${VAR}`s come from the environment's Secret (or are committed values)."""
    address = lambda s, p: _service_host(source, s, p)  # noqa: E731
    script, variables = request_job(source, job, PLATFORM, address, out)
    out.warn(client_note("as CronJobs of their own (no volume of the app)"))
    env = [_env_var(key, value, secret) for key, value in variables.items()]
    container: dict[str, Any] = {
        "name": "job",
        "image": CLIENT_IMAGE,
        "command": [kubelet_literal(a) for a in ("/bin/sh", "-c", script)],
    }
    if env:
        container["env"] = env
    return {"containers": [container], "restartPolicy": "Never"}


def _command_pod(
    source: ExportSource, job: Job, secret: str, claims: dict[str, str], out: Collector
) -> dict[str, Any]:
    cron = source.app.cron
    job, _ = reach_app(job, source.app, PLATFORM, lambda s, p: _service_host(source, s, p), out)
    container = _container(source, job.service, "job", secret, out)
    for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe", "args"):
        container.pop(key, None)
    container["command"] = [kubelet_literal(a) for a in job.argv]
    context = _run_as(cron.user, "cron.user", out)
    if context:
        container["securityContext"] = context
    else:
        container.pop("securityContext", None)
    pod = _pod(job.service, container, claims)
    pod["restartPolicy"] = "Never"
    return pod
