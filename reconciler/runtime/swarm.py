"""The Docker Swarm runtime (`runtime: swarm`): one swarm service per environment
service, an overlay network per environment, the same `hoody.*` labels as the Docker
runtime on services, task containers, networks and volumes.

A new version of a service is the swarm's own rolling update (start-first, rolled back
by the swarm when the new task fails), not a second container: see `swarmspec` for how
the protocol's container handles name versions of one service. Images, volumes and the
commands run in task containers go through this node's engine (the Docker runtime).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.core.errors import RuntimeFailure, RuntimeUnavailable
from reconciler.core.model import (
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_REPO,
    LABEL_SERVICE,
    ObservedEnvironment,
)
from reconciler.core.naming import container_name
from reconciler.core.settings import Settings
from reconciler.runtime import (
    BuildRequest,
    ContainerSpec,
    ContainerState,
    ExecResult,
    Listed,
    Progress,
    Runtime,
    assemble,
)
from reconciler.runtime import swarmops as ops
from reconciler.runtime import swarmspec as ss
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.engine import NOT_FOUND, engine
from reconciler.runtime.isolation import held, http_probe, owns
from reconciler.runtime.swarmjobs import run_once

log = logging.getLogger(__name__)

_SETTLE = 60.0  # seconds a removal or a retired version may take to leave the node
_POLL = 0.1


def runtime_for(settings: Settings) -> Runtime:
    """The runtime `hoody.yaml`'s `runtime:` names."""
    if settings.runtime == "swarm":
        return SwarmRuntime()
    docker = settings.docker
    return DockerRuntime(subnet_pool=docker.subnet_pool, subnet_prefix=docker.subnet_prefix)


class SwarmRuntime:
    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        local_exec: bool = True,
    ) -> None:
        self.engine = DockerRuntime(base_url, timeout)
        self.sleep = sleep
        self.clock = clock
        # False: cron jobs always run as one-off services (the path for a task on a node
        # whose engine this process cannot reach)
        self.local_exec = local_exec
        self._node: str | None = None

    @property
    def api(self) -> Any:
        return self.engine.api

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        with engine(what):
            return fn()

    def ping(self) -> None:
        info = self._call("info", lambda: self.api.info())
        swarm = info.get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            raise RuntimeUnavailable(
                "runtime: swarm needs this engine to be a swarm manager (its swarm state is "
                f"{swarm.get('LocalNodeState') or 'unknown'}; `docker swarm init` makes one)"
            )

    @property
    def node(self) -> str:
        if self._node is None:
            info = self._call("info", lambda: self.api.info())
            self._node = str((info.get("Swarm") or {}).get("NodeID") or "")
        return self._node

    # -- observation -------------------------------------------------------------------

    def observe(self, repo: str | None = None) -> dict[str, ObservedEnvironment]:
        filters = [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_REPO}={repo}"] if repo else [])
        services = self._call(
            "list services", lambda: self.api.services(filters={"label": filters})
        )
        tasks = self._tasks({"desired-state": "running"}) if services else []
        by_service: dict[str, list[Mapping[str, Any]]] = {}
        for t in tasks:
            by_service.setdefault(str(t.get("ServiceID")), []).append(t)
        ports = ops.task_container_ports(self.api, filters) if services else {}
        networks = self._call(
            "list networks", lambda: self.api.networks(filters={"label": filters})
        )
        volumes = self._call("list volumes", lambda: self.api.volumes(filters={"label": filters}))
        return assemble(
            [self._listed(s, by_service.get(s["ID"], []), ports) for s in services],
            [Listed(n["Name"], n.get("Labels") or {}) for n in networks],
            [
                Listed(v["Name"], v.get("Labels") or {})
                for v in (volumes or {}).get("Volumes") or []
            ],
        )

    def _listed(
        self,
        service: Mapping[str, Any],
        tasks: list[Mapping[str, Any]],
        ports: Mapping[str, Mapping[int, int]],
    ) -> Listed:
        spec = service.get("Spec") or {}
        labels = spec.get("Labels") or {}
        h = ss.spec_hash(labels)
        live = ss.version_tasks(tasks, h)
        running = [t for t in live if ss.task_state(t) in ss.UP_STATES]
        state, message = ss.update_state(service)
        if ss.rolled_back(service):
            status = f"rolled back by the swarm: {message}" if message else "rolled back"
        elif state == "updating":
            status = "updating"
        else:
            status = ss.task_state(live[0]) if live else "no task"
        return Listed(
            name=str(spec.get("Name", "")),
            labels=labels,
            id=ss.handle(service["ID"], h),
            running=bool(running),
            status=status,
            ports=(
                dict(ports.get(ss.container_id(running[0])) or ss.task_ports(running[0]))
                if running
                else {}
            ),
        )

    def _tasks(self, filters: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return list(self._call("list tasks", lambda: self.api.tasks(filters=dict(filters))) or [])

    def _service(self, ref: str) -> Mapping[str, Any] | None:
        """The service by id or exact name; None when there is none."""
        try:
            found = self._call("inspect service", lambda: self.api.inspect_service(ref))
        except RuntimeFailure as e:
            if e.status == NOT_FOUND:
                return None
            raise
        return dict(found)

    # -- images, networks, volumes: this node's engine -----------------------------------

    def has_image(self, image: str) -> bool:
        return self.engine.has_image(image)

    def pull_image(self, image: str, progress: Progress, anonymous: bool = False) -> None:
        self.engine.pull_image(image, progress, anonymous)

    def build_image(self, tag: str, request: BuildRequest, progress: Progress) -> None:
        self.engine.build_image(tag, request, progress)

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        ops.ensure_overlay(self.api, name, labels)

    # An overlay network has no switch for traffic between its tasks: every environment
    # gets an overlay of its own.
    shared_network: str | None = None

    def ensure_shared_network(self) -> None:
        raise RuntimeFailure("the swarm runtime has no shared network")

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self.engine.ensure_volume(name, labels)

    def remove_volume(self, name: str) -> None:
        self._settle(f"remove volume {name}", lambda: self.engine.remove_volume(name))

    def remove_network(self, name: str) -> None:
        self._settle(f"remove network {name}", lambda: self.engine.remove_network(name))

    def _settle(self, what: str, fn: Callable[[], None]) -> None:
        """Retry while the swarm is still taking a removed service's tasks down (the
        network has endpoints, the volume is in use), for a bounded time."""
        deadline = self.clock() + _SETTLE
        while True:
            try:
                fn()
                return
            except RuntimeFailure as e:
                if e.status not in (403, 409) or self.clock() >= deadline:
                    raise
            self.sleep(0.25)

    # -- services as containers --------------------------------------------------------

    def create_container(self, spec: ContainerSpec) -> str:
        """Create the service, or roll it to this version if it exists (the protocol's
        "next" name of a blue/green swap is the same service here)."""
        name = container_name(spec.labels.get(LABEL_ENV, ""), spec.labels.get(LABEL_SERVICE, ""))
        net = self._call("inspect network", lambda: self.api.inspect_network(spec.network))
        args = ss.service_args(spec, name, net["Id"], self.node if self._built_here(spec) else None)
        return ops.read_and_write(name, lambda: self._create_or_roll(name, spec, args))

    def _built_here(self, spec: ContainerSpec) -> bool:
        """An image hoody built from a Dockerfile is on this node's engine only (no
        registry holds it): its tasks are placed on this node. Other images are pulled
        by whichever node runs the task."""
        try:
            image = self.api.inspect_image(spec.image)
        except Exception:  # noqa: BLE001 - not here: the node that runs it pulls it
            return False
        labels = (image.get("Config") or {}).get("Labels") or {}
        return labels.get(LABEL_MANAGED) == "true"

    def _create_or_roll(self, name: str, spec: ContainerSpec, args: Mapping[str, Any]) -> str:
        existing = self._service(name)
        if existing is not None and existing.get("Spec", {}).get("Name") != name:
            existing = None  # an id prefix matched, not the name
        if existing is None:
            created = self._call(f"create service {name}", lambda: self.api.create_service(**args))
            return ss.handle(created["ID"], ss.spec_hash(spec.labels))
        have = (existing.get("Spec") or {}).get("Labels") or {}
        if not owns(have, spec.labels):
            raise held("service", "swarm service", name, have, spec.labels)
        version = existing["Version"]["Index"]
        self._call(
            f"update service {name}",
            lambda: self.api.update_service(existing["ID"], version=version, **args),
        )
        return ss.handle(existing["ID"], ss.spec_hash(spec.labels), rolling=True)

    def start_container(self, container_id: str) -> None:
        """A new service starts by itself; a version with no task left is forced to
        start a new one."""
        sid, h, rolling = ss.parse_handle(container_id)
        if rolling:
            # A rolling update starts its own tasks. Forcing one during it would also make
            # the failing spec the one the swarm rolls back to (its previous spec).
            return
        svc = self._service(sid)
        if svc is None or h is None or ss.spec_hash(svc["Spec"].get("Labels")) != h:
            return
        tasks = [t for t in self._tasks({"service": sid}) if ss.task_hash(t) == h]
        if not tasks or ss.version_tasks(tasks, h):  # not placed yet, or live
            return
        ops.force_restart(self.api, svc)

    def _version(self, ref: str) -> tuple[Mapping[str, Any], str, list[Mapping[str, Any]]]:
        """(service, version hash, all its tasks) of a handle or a service name."""
        sid, h, _ = ss.parse_handle(ref)
        svc = self._service(sid)
        if svc is None:
            raise RuntimeFailure(f"service {sid} not found", status=NOT_FOUND)
        return (
            svc,
            h or ss.spec_hash(svc["Spec"].get("Labels")),
            self._tasks({"service": svc["ID"]}),
        )

    def inspect_container(self, container_id: str) -> ContainerState:
        svc, h, tasks = self._version(container_id)
        name = str(svc["Spec"].get("Name", ""))
        handle = ss.handle(svc["ID"], h)
        settled = ss.version_state(svc, h, tasks)
        if isinstance(settled, tuple):
            return ContainerState(handle, name, settled[0], settled[1], exit_code=settled[2])
        task = settled
        ports, ip = ss.task_ports(task), None
        cid = ss.container_id(task)
        if cid and self._local(task):
            try:  # a starting task's ports are known to its engine before the swarm says
                inner = self.engine.inspect_container(cid)
                ports, ip = dict(inner.ports) or ports, inner.ip
            except RuntimeFailure:
                pass
        return ContainerState(handle, name, True, ss.task_state(task), ports=ports, ip=ip)

    def _local(self, task: Mapping[str, Any]) -> bool:
        return str(task.get("NodeID", "")) == self.node

    def rename_container(self, container_id: str, name: str) -> None:
        """A service keeps its name across versions: nothing to rename."""

    def remove_container(self, container_id: str) -> None:
        """The service's current version: the service goes (and its tasks, waited for).
        A version the service has moved past: wait until the swarm retired its task. A
        version being rolled to that is abandoned: the swarm rolls back to the previous."""
        sid, h, rolling = ss.parse_handle(container_id)
        svc = self._service(sid)
        if svc is None:
            return
        name = str(svc["Spec"].get("Name", ""))
        current = ss.spec_hash(svc["Spec"].get("Labels"))
        if rolling and h == current:
            if not svc.get("PreviousSpec"):
                # nothing to roll back to: the service stays as it is, never removed (it
                # served before this update)
                log.warning("%s: the abandoned update has no previous spec to go back to", name)
                return
            ops.rollback(self.api, svc)
            self._wait(lambda: not ss.version_tasks(self._tasks({"service": sid}), h), name)
            return
        if h is not None and h != current:
            self._wait(lambda: self._retired(sid, h, name), name)
            return
        self._call(f"remove service {name}", lambda: self.api.remove_service(sid))
        self._wait(lambda: not ops.containers_of(self.api, sid), name)

    def _retired(self, sid: str, h: str, name: str) -> bool:
        svc = self._service(sid)
        if svc is None:
            return True
        if ss.spec_hash(svc["Spec"].get("Labels")) == h and ss.rolled_back(svc):
            raise RuntimeFailure(
                f"{name}: the swarm rolled the update back ({ss.update_state(svc)[1]})"
            )
        return not ss.version_tasks(self._tasks({"service": sid}), h) and (
            ss.update_state(svc)[0] != "updating"
        )

    def _wait(self, done: Callable[[], bool], name: str) -> None:
        deadline = self.clock() + _SETTLE
        while not done():
            if self.clock() >= deadline:
                raise RuntimeFailure(f"{name}: the swarm did not settle within {_SETTLE:.0f}s")
            self.sleep(_POLL)

    # -- commands in task containers ---------------------------------------------------

    def _task_container(self, ref: str) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
        """(service, its task whose container runs on this node, or None when the task
        runs on another node); RuntimeFailure when no task of it runs anywhere."""
        svc, h, tasks = self._version(ref)
        up = [t for t in ss.version_tasks(tasks, h) if ss.task_state(t) in ss.UP_STATES]
        if not up:
            raise RuntimeFailure(f"{svc['Spec'].get('Name')}: no running task", status=409)
        local = next((t for t in up if ss.container_id(t) and self._local(t)), None)
        return svc, local

    def exec(
        self, container_id: str, command: list[str], timeout: float = 30.0, user: str | None = None
    ) -> ExecResult:
        svc, task = self._task_container(container_id)
        if task is None:
            raise RuntimeFailure(f"{svc['Spec'].get('Name')}: its task runs on another node")
        return self.engine.exec(ss.container_id(task), command, timeout, user)

    def exec_stream(
        self,
        container: str,
        command: list[str],
        env: Mapping[str, str],
        user: str | None,
        on_output: Callable[[int, bytes], None],
    ) -> int:
        """In the running task container through this node's engine; without one here
        (the task runs on another node) as a one-off service with the job's command."""
        svc, task = self._task_container(container)
        if task is not None and self.local_exec:
            return self.engine.exec_stream(ss.container_id(task), command, env, user, on_output)
        return run_once(self.api, svc, command, env, user, on_output, self.sleep, self.clock)

    def logs(self, container_id: str, tail: int = 20) -> str:
        try:
            _, h, tasks = self._version(container_id)
        except RuntimeFailure:
            return ""
        mine = [t for t in tasks if ss.task_hash(t) == h and ss.container_id(t) and self._local(t)]
        if not mine:
            return ""
        newest = max(mine, key=lambda t: str(t.get("CreatedAt", "")))
        return self.engine.logs(ss.container_id(newest), tail)

    def probe_http(
        self, state: ContainerState, port: int, path: str, timeout: float, publish_host: str
    ) -> tuple[bool, str]:
        """Through the task's host-mode published port on this node, nothing else."""
        if not state.running:
            return False, f"service {state.status}"
        if port not in state.ports:
            return False, f"task {state.status}: port {port} not published yet"
        host = "127.0.0.1" if publish_host in ("0.0.0.0", "") else publish_host
        return http_probe(host, state.ports[port], path, timeout)
