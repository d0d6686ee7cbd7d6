"""An in-memory runtime: the same primitives as Docker, kept in dicts.

For fast tests of the apply/controller logic and for benchmarks that must not measure
the engine. `unhealthy_images` and `fail_start` let tests stage failures; `unavailable`
makes every call raise RuntimeUnavailable, like an engine that went away.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from reconciler.core.errors import NameConflict, RuntimeFailure, RuntimeUnavailable
from reconciler.core.model import (
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_REPO,
    ObservedEnvironment,
)
from reconciler.core.naming import SHARED_NETWORK
from reconciler.runtime import (
    SHARED_LABELS,
    BuildRequest,
    ContainerSpec,
    ContainerState,
    ExecResult,
    Listed,
    Progress,
    assemble,
)


@dataclass
class _Container:
    id: str
    spec: ContainerSpec
    name: str
    running: bool = False
    status: str = "created"
    ports: dict[int, int] = field(default_factory=dict)


class MemoryRuntime:
    def __init__(self) -> None:
        self.containers: dict[str, _Container] = {}
        self.networks: dict[str, dict[str, str]] = {}
        self.volumes: dict[str, dict[str, str]] = {}
        self.images: set[str] = set()
        self.unhealthy_images: set[str] = set()
        self.fail_build: set[str] = set()
        self.unavailable = False
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self._ports = itertools.count(40000)
        self._lock = threading.RLock()
        self.job_handler: Callable[[list[str], dict[str, str]], tuple[int, bytes, bytes]] = (
            lambda _cmd, _env: (0, b"", b"")
        )

    def _enter(self, what: str) -> None:
        if self.unavailable:
            raise RuntimeUnavailable(f"memory runtime unavailable during {what}")
        self.calls.append(what)

    def ping(self) -> None:
        self._enter("ping")

    def observe(self, repo: str | None = None) -> dict[str, ObservedEnvironment]:
        self._enter("observe")
        with self._lock:
            mine = [
                c
                for c in self.containers.values()
                if repo is None or c.spec.labels.get(LABEL_REPO) == repo
            ]
            return assemble(
                [Listed(c.name, c.spec.labels, c.id, c.running, c.status, c.ports) for c in mine],
                [
                    Listed(n, labels)
                    for n, labels in self.networks.items()
                    if repo is None or labels.get(LABEL_REPO) == repo
                ],
                [
                    Listed(v, labels)
                    for v, labels in self.volumes.items()
                    if repo is None or labels.get(LABEL_REPO) == repo
                ],
            )

    def has_image(self, image: str) -> bool:
        self._enter("has_image")
        return image in self.images

    def pull_image(self, image: str, progress: Progress, anonymous: bool = False) -> None:
        self._enter("pull")
        raise RuntimeFailure(f"pull {image}: no registry in the memory runtime")

    def build_image(self, tag: str, request: BuildRequest, progress: Progress) -> None:
        self._enter("build")
        with request.context() as ctx:
            ctx.read()
        if tag.rpartition(":")[0] in self.fail_build or tag in self.fail_build:
            raise RuntimeFailure(f"build of {tag} failed")
        self.images.add(tag)

    def _ensure(
        self, table: dict[str, dict[str, str]], kind: str, name: str, labels: Mapping[str, str]
    ) -> None:
        with self._lock:
            have = table.get(name)
            if have is None:
                table[name] = dict(labels)
            elif have.get(LABEL_MANAGED) != "true" or have.get(LABEL_ENV) != labels[LABEL_ENV]:
                raise NameConflict(f"{kind} {name} exists and was not created by hoody")

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        self._enter("ensure_network")
        self._ensure(self.networks, "network", name, labels)

    shared_network: str | None = SHARED_NETWORK

    def ensure_shared_network(self) -> None:
        self._enter("ensure_shared_network")
        with self._lock:
            self.networks.setdefault(SHARED_NETWORK, dict(SHARED_LABELS))

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self._enter("ensure_volume")
        self._ensure(self.volumes, "volume", name, labels)

    def create_container(self, spec: ContainerSpec) -> str:
        self._enter("create")
        with self._lock:
            clash = next((c for c in self.containers.values() if c.name == spec.name), None)
            if clash is not None:
                if clash.spec.labels.get(LABEL_MANAGED) != "true":
                    raise NameConflict(
                        f"container name {spec.name} is held by a container "
                        "hoody did not create; it is left alone"
                    )
                raise RuntimeFailure(f"container name {spec.name} is in use", status=409)
            if spec.image not in self.images:
                raise RuntimeFailure(f"no such image {spec.image}", status=404)
            cid = f"mem{next(self._ids):08d}"
            self.containers[cid] = _Container(cid, spec, spec.name)
            return cid

    def add_unmanaged(self, name: str, image: str = "busybox:1.36") -> str:
        """A container someone else created (no hoody labels)."""
        spec = ContainerSpec(name=name, image=image, labels={}, network="bridge", alias=name)
        cid = f"ext{next(self._ids):08d}"
        self.containers[cid] = _Container(cid, spec, name, running=True, status="running")
        return cid

    def _get(self, cid: str) -> _Container:
        c = self.containers.get(cid) or next(
            (c for c in self.containers.values() if c.name == cid), None
        )
        if c is None:
            raise RuntimeFailure(f"no such container {cid}", status=404)
        return c

    def start_container(self, container_id: str) -> None:
        self._enter("start")
        with self._lock:
            c = self._get(container_id)
            c.running, c.status = True, "running"
            c.ports = {p: next(self._ports) for p in c.spec.ports}

    def stop(self, container_id: str) -> None:
        c = self._get(container_id)
        c.running, c.status = False, "exited"

    def inspect_container(self, container_id: str) -> ContainerState:
        self._enter("inspect")
        c = self._get(container_id)
        return ContainerState(c.id, c.name, c.running, c.status, None, dict(c.ports), "10.0.0.2")

    def rename_container(self, container_id: str, name: str) -> None:
        self._enter("rename")
        with self._lock:
            c = self._get(container_id)
            if any(o.name == name for o in self.containers.values() if o is not c):
                raise RuntimeFailure(f"container name {name} is in use", status=409)
            c.name = name
            c.spec = replace(c.spec, name=name)

    def remove_container(self, container_id: str) -> None:
        self._enter("remove")
        with self._lock:
            self.containers.pop(container_id, None)

    def remove_network(self, name: str) -> None:
        self._enter("remove_network")
        self.networks.pop(name, None)

    def remove_volume(self, name: str) -> None:
        self._enter("remove_volume")
        self.volumes.pop(name, None)

    def exec(
        self, container_id: str, command: list[str], timeout: float = 30.0, user: str | None = None
    ) -> ExecResult:
        self._enter("exec")
        c = self._get(container_id)
        healthy = c.running and c.spec.image not in self.unhealthy_images
        return ExecResult(0 if healthy else 1, b"")

    def exec_stream(
        self,
        container: str,
        command: list[str],
        env: Mapping[str, str],
        user: str | None,
        on_output: Callable[[int, bytes], None],
    ) -> int:
        """Runs `job_handler` (tests set it); by default a job succeeds silently."""
        self._enter("exec_stream")
        c = self._get(container)
        if not c.running:
            raise RuntimeFailure(f"container {c.name} is not running")
        code, out, err = self.job_handler(command, dict(env))
        if out:
            on_output(1, out)
        if err:
            on_output(2, err)
        return code

    def logs(self, container_id: str, tail: int = 20) -> str:
        return ""

    def probe_http(
        self, state: ContainerState, port: int, path: str, timeout: float, publish_host: str
    ) -> tuple[bool, str]:
        self._enter("probe_http")
        c = self.containers.get(state.id)
        ok = c is not None and c.running and c.spec.image not in self.unhealthy_images
        return ok, "200 OK" if ok else "connection refused"
