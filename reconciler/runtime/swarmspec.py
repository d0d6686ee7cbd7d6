"""How an environment's service becomes a swarm service, and how a swarm service's tasks
read back as one version of it: pure functions over the docker SDK's types and the
Engine API's JSON, no I/O.

A *version* of a service is its spec hash (`hoody.spec-hash`, on the service and on its
task containers). The runtime protocol speaks of containers; on a swarm the handle of a
"container" is `<service id>:<spec hash>`, so the old and the new version of one service
are two handles while the swarm's rolling update moves the single service from one to
the other. Removing a version the service no longer runs is a no-op, which is what lets
the applier's blue/green steps drive a rolling update unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Healthcheck,
    Mount,
    NetworkAttachmentConfig,
    Placement,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
    UpdateConfig,
)

from reconciler.core.model import LABEL_SPEC_HASH, HealthCheck
from reconciler.runtime import ContainerSpec as Spec

NS = 1_000_000_000  # the Engine API counts durations in nanoseconds
# The swarm's own probe runs no sooner than this after a task starts, so hoody's probe
# (which starts at once) sees the new task healthy and moves the route to it before the
# swarm retires the old task (see docs/architecture.md, "Swarm runtime").
MIN_SWARM_INTERVAL = 2.0
MONITOR = 1.0  # seconds a new task is watched after it runs; a failure then rolls back

# Task states in the order the swarm moves a task through them.
LIVE_STATES = (
    "new",
    "pending",
    "assigned",
    "accepted",
    "preparing",
    "ready",
    "starting",
    "running",
)
UP_STATES = ("starting", "running")  # the task's container runs (healthy or not yet)
FAILED_STATES = ("failed", "rejected", "orphaned", "remove")


NEXT = "next"


def handle(service_id: str, spec_hash: str, rolling: bool = False) -> str:
    """`rolling`: the version an update of the service rolls to (abandoning it rolls
    the service back rather than removing it)."""
    return f"{service_id}:{spec_hash}" + (f":{NEXT}" if rolling else "")


def parse_handle(text: str) -> tuple[str, str | None, bool]:
    """`<service id>:<hash>[:next]` -> (id, hash, rolling); a bare service name or id ->
    (it, None, False)."""
    parts = text.split(":")
    if len(parts) == 1:
        return text, None, False
    return parts[0], parts[1], parts[2:] == [NEXT]


def swarm_healthcheck(hc: HealthCheck | None, ports: Sequence[int]) -> Healthcheck | None:
    """The spec's check as the swarm runs it inside the task: a command as it is; an HTTP
    check as a GET with the image's `wget` or `curl` (an image with neither needs a
    `command` check on a swarm). None: the image's own HEALTHCHECK, if any."""
    if hc is None:
        return None
    if hc.command:
        test = ["CMD", *hc.command]
    else:
        port = hc.port or (ports[0] if ports else 80)
        url = f"http://127.0.0.1:{port}{hc.http or '/'}"
        test = [
            "CMD-SHELL",
            f"wget -q -O /dev/null '{url}' 2>/dev/null || curl -fsS -o /dev/null '{url}'",
        ]
    interval = max(hc.interval, MIN_SWARM_INTERVAL)
    return Healthcheck(
        test=test,
        interval=int(interval * NS),
        timeout=int(hc.timeout * NS),
        retries=hc.retries,
        start_period=int(hc.start_period * NS),
    )


def service_args(spec: Spec, name: str, network_id: str, node: str | None = None) -> dict[str, Any]:
    """One replica on the environment's overlay network, its ports published in host mode
    on a port the engine picks for each task (two tasks of one service run side by side
    during a start-first update, so a fixed host port could not serve both); placed on
    `node` when given (an image built there and nowhere else)."""
    res = spec.resources
    container = ContainerSpec(
        spec.image,
        # the swarm's Command is the image's entrypoint replaced, Args its command
        command=list(spec.entrypoint) if spec.entrypoint else None,
        args=list(spec.command) if spec.command else None,
        env=dict(spec.env),
        labels=dict(spec.labels),
        mounts=[
            Mount(target, source, type="volume", labels=dict(spec.labels))
            for source, target in spec.volumes.items()
        ],
        user=spec.user,
        workdir=spec.working_dir,
        healthcheck=swarm_healthcheck(spec.healthcheck, spec.ports),
        init=True,
        stop_grace_period=10 * NS,
    )
    template = TaskTemplate(
        container,
        resources=Resources(
            cpu_limit=int(res.cpus * NS) if res.cpus else None,
            mem_limit=res.memory,
        ),
        restart_policy=RestartPolicy(condition="any", delay=int(0.5 * NS)),
        networks=[NetworkAttachmentConfig(network_id, aliases=[spec.alias])],
        placement=Placement(constraints=[f"node.id=={node}"]) if node else None,
    )
    if spec.pids:
        # API 1.41 has no pids limit for services; the engine ignores the key before 1.44
        template["ContainerSpec"]["PidsLimit"] = spec.pids
    update = UpdateConfig(
        parallelism=1,
        order="start-first",
        failure_action="rollback",
        monitor=int(MONITOR * NS),
        max_failure_ratio=0,
    )
    rollback = UpdateConfig(parallelism=1, order="start-first", failure_action="pause")
    ports = [{"Protocol": "tcp", "TargetPort": p, "PublishMode": "host"} for p in spec.ports]
    return {
        "task_template": template,
        "name": name,
        "labels": dict(spec.labels),
        "mode": ServiceMode("replicated", replicas=1),
        "update_config": update,
        "rollback_config": rollback,
        "endpoint_spec": EndpointSpec(ports=ports) if ports else EndpointSpec(),
    }


def spec_hash(labels: Mapping[str, str] | None) -> str:
    return (labels or {}).get(LABEL_SPEC_HASH, "")


def task_hash(task: Mapping[str, Any]) -> str:
    spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
    return spec_hash(spec.get("Labels"))


def task_state(task: Mapping[str, Any]) -> str:
    return str((task.get("Status") or {}).get("State", "unknown"))


def container_id(task: Mapping[str, Any]) -> str:
    return str(((task.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID") or "")


def task_ports(task: Mapping[str, Any]) -> dict[int, int]:
    """target port -> published host port, as the swarm reports a running task's (host
    mode binds IPv4 and IPv6 on two ports, IPv4's first)."""
    out: dict[int, int] = {}
    for p in ((task.get("Status") or {}).get("PortStatus") or {}).get("Ports") or []:
        if p.get("Protocol", "tcp") == "tcp" and p.get("PublishedPort") and p.get("TargetPort"):
            out.setdefault(int(p["TargetPort"]), int(p["PublishedPort"]))
    return out


def version_tasks(tasks: Sequence[Mapping[str, Any]], spec_hash_: str) -> list[Mapping[str, Any]]:
    """The tasks of one version the swarm still wants running, the most advanced first."""
    live = [t for t in tasks if task_hash(t) == spec_hash_ and t.get("DesiredState") == "running"]
    rank = {s: i for i, s in enumerate(LIVE_STATES)}
    live.sort(key=lambda t: (-rank.get(task_state(t), -1), str(t.get("CreatedAt", ""))))
    return live


def last_failure(
    tasks: Sequence[Mapping[str, Any]], spec_hash_: str, since: str
) -> Mapping[str, Any] | None:
    """The newest task of this version that failed after `since` (the service's last
    change, an RFC 3339 time that sorts as text), if any."""
    failed = [
        t
        for t in tasks
        if task_hash(t) == spec_hash_
        and task_state(t) in FAILED_STATES
        and str(t.get("CreatedAt", "")) >= since
    ]
    return max(failed, key=lambda t: str(t.get("CreatedAt", "")), default=None)


def update_state(service: Mapping[str, Any]) -> tuple[str, str]:
    """(state, message) of the service's last rolling update: "" when none ran."""
    status = service.get("UpdateStatus") or {}
    return str(status.get("State") or ""), str(status.get("Message") or "")


def rolled_back(service: Mapping[str, Any]) -> bool:
    return update_state(service)[0].startswith("rollback")


def rolling_to(service: Mapping[str, Any]) -> bool:
    """A rolling update to the service's current spec is under way (it has a previous
    spec to go back to): the swarm says "updating", or its update status is still the
    one of an earlier update (started before the spec last changed: the updater of this
    one has not reported yet, and a task that exits at once can fail before it does)."""
    if not service.get("PreviousSpec"):
        return False
    state = update_state(service)[0]
    if state == "updating":
        return True
    started = str((service.get("UpdateStatus") or {}).get("StartedAt") or "")
    return state in ("", "completed") and started < str(service.get("UpdatedAt", ""))


def version_state(
    svc: Mapping[str, Any], h: str, tasks: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | tuple[bool, str, int | None]:
    """The task that stands for version `h` of the service, or, when none does,
    (running, status, exit code): a version whose newest task failed is not running
    (like a container that exited); a current version without a task yet is pending."""
    current = spec_hash(svc["Spec"].get("Labels")) == h
    failed = last_failure(tasks, h, str(svc.get("UpdatedAt", "")))
    live = version_tasks(tasks, h)
    if failed is not None and not any(task_state(t) == "running" for t in live):
        status = failed.get("Status") or {}
        code = (status.get("ContainerStatus") or {}).get("ExitCode")
        what = status.get("Err") or task_state(failed)
        if not current and rolled_back(svc):
            what = f"{what}; rolled back by the swarm ({update_state(svc)[1]})"
        elif current and rolling_to(svc):
            # Caught before the swarm's own monitor: the update is rolled back all the
            # same, by the swarm (failure action) or by the apply that abandons it.
            what = f"{what}; the update is rolled back to the previous version"
        return False, f"task {what}", code
    if live:
        return live[0]
    if current and not rolled_back(svc):  # the orchestrator has not placed it yet
        return True, "pending", None
    message = update_state(svc)[1]
    return False, (f"rolled back by the swarm: {message}" if rolled_back(svc) else "retired"), None
