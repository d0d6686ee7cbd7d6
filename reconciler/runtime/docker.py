"""The Docker Engine runtime (docker SDK, low-level API for one-call listings).

Only objects labelled `hoody.managed=true` are observed, and a name held by an object
without our labels is a NameConflict, never a takeover. Connection failures become
RuntimeUnavailable so callers know to tear nothing down.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import docker
from docker.types import IPAMConfig, IPAMPool, Mount

from reconciler.core.errors import BuildFailed, NameConflict, RuntimeFailure
from reconciler.core.model import (
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
from reconciler.runtime.engine import CONFLICT, NOT_FOUND, engine
from reconciler.runtime.isolation import Anonymous, held, http_probe, owns, taken
from reconciler.runtime.subnets import Subnet, SubnetPool, engine_subnets, with_pool_hint

log = logging.getLogger(__name__)
T = TypeVar("T")

SHARED_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}


_BUILD_TAIL = 20  # lines of build output kept for the error


class DockerRuntime:
    def __init__(
        self,
        base_url: str | None = None,
        timeout: float = 120.0,
        subnet_pool: str | None = None,
        subnet_prefix: int = 24,
    ) -> None:
        self._base_url = base_url
        self._timeout = timeout
        self._subnets = SubnetPool(subnet_pool, subnet_prefix) if subnet_pool else None
        self._client: docker.DockerClient | None = None
        self._anonymous: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._shared_lock = threading.Lock()

    shared_network: str | None = SHARED_NETWORK

    @property
    def api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                with engine("connect"):
                    if self._base_url:
                        self._client = docker.DockerClient(
                            base_url=self._base_url, timeout=int(self._timeout)
                        )
                    else:
                        self._client = docker.from_env(timeout=int(self._timeout))
            return self._client.api

    @property
    def anonymous_api(self) -> docker.APIClient:
        api = self.api
        with self._lock:
            if self._anonymous is None:
                # the same engine as `api` (DOCKER_HOST and its TLS settings, as from_env)
                where = {"base_url": self._base_url} if self._base_url else None
                with engine("connect"):
                    self._anonymous = Anonymous(
                        timeout=int(self._timeout),
                        version=api.api_version,
                        **(where or docker.utils.kwargs_from_env()),
                    )
            return self._anonymous

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with engine(what):
            return fn()

    def ping(self) -> None:
        self._call("ping", lambda: self.api.ping())

    # -- observation -------------------------------------------------------------------

    def observe(self, repo: str | None = None) -> dict[str, ObservedEnvironment]:
        filters = [f"{LABEL_MANAGED}=true"] + ([f"{LABEL_REPO}={repo}"] if repo else [])
        containers = self._call(
            "list containers", lambda: self.api.containers(all=True, filters={"label": filters})
        )
        networks = self._call(
            "list networks", lambda: self.api.networks(filters={"label": filters})
        )
        volumes = self._call("list volumes", lambda: self.api.volumes(filters={"label": filters}))
        return assemble(
            [
                Listed(
                    name=(c.get("Names") or ["/"])[0].lstrip("/"),
                    labels=c.get("Labels") or {},
                    id=c["Id"],
                    running=c.get("State") == "running",
                    status=c.get("State", "unknown"),
                    ports={
                        int(p["PrivatePort"]): int(p["PublicPort"])
                        for p in c.get("Ports") or []
                        if p.get("PublicPort") and p.get("Type", "tcp") == "tcp"
                    },
                )
                for c in containers
            ],
            [Listed(n["Name"], n.get("Labels") or {}) for n in networks],
            [
                Listed(v["Name"], v.get("Labels") or {})
                for v in (volumes or {}).get("Volumes") or []
            ],
        )

    # -- images ------------------------------------------------------------------------

    def has_image(self, image: str) -> bool:
        try:
            self._call("inspect image", lambda: self.api.inspect_image(image))
            return True
        except RuntimeFailure:
            return False

    def pull_image(self, image: str, progress: Progress, anonymous: bool = False) -> None:
        progress(f"pulling {image}" + (" (without registry credentials)" if anonymous else ""))
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        if anonymous:  # an explicit empty auth config: nothing is read from the host's config
            api = self.anonymous_api
            self._call(f"pull {image}", lambda: api.pull(repo, tag=tag or "latest", auth_config={}))
        else:
            self._call(f"pull {image}", lambda: self.api.pull(repo, tag=tag or "latest"))

    def build_image(self, tag: str, request: BuildRequest, progress: Progress) -> None:
        progress(f"building {tag}" + (f" (network {request.network})" if request.network else ""))
        api = self.anonymous_api if request.anonymous else self.api
        with request.context() as context, engine(f"build {tag}"):
            stream = api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                dockerfile=request.dockerfile,
                buildargs=dict(request.args),
                labels=dict(request.labels),
                rm=True,
                forcerm=True,
                pull=False,
                # A fork's build never reuses cached layers: a trusted build's RUN step with
                # the same text may have fetched something over the network.
                nocache=request.anonymous,
                decode=True,
                network_mode=request.network,
                container_limits={"memory": request.memory} if request.memory else None,
                use_config_proxy=not request.anonymous,
            )
            tail: collections.deque[str] = collections.deque(maxlen=_BUILD_TAIL)
            for chunk in stream:
                if "error" in chunk:
                    raise BuildFailed(
                        f"build of {tag} failed: {chunk['error'].strip().splitlines()[0][:300]}",
                        output="".join(tail).strip(),
                    )
                line = chunk.get("stream")
                if line:
                    tail.append(line[:500])
                    if line.startswith("Step "):
                        progress(f"{tag}: {line.strip()[:200]}")

    # -- networks and volumes ----------------------------------------------------------

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None:
        try:
            existing = self._call("inspect network", lambda: self.api.inspect_network(name))
        except RuntimeFailure:
            try:
                self._create_network(name, labels)
                return
            except RuntimeFailure as refused:  # created by someone else in between?
                try:
                    existing = self._call("inspect network", lambda: self.api.inspect_network(name))
                except RuntimeFailure:
                    raise refused from None  # no: the engine's own reason
        if not owns(existing.get("Labels"), labels):
            raise NameConflict(taken("network", name, existing.get("Labels"), labels))

    def ensure_shared_network(self) -> None:
        """The bridge single-service environments share, with traffic between its
        containers dropped by the engine (`enable_icc=false`): each reaches the outside
        and is reached on its published ports, never another environment's container."""
        existing = self._inspect_shared()
        if existing is None:
            # one creation at a time in this process (the engine's duplicate check is
            # not atomic)
            with self._shared_lock:
                existing = self._inspect_shared()
                if existing is None:
                    try:
                        self._create_network(SHARED_NETWORK, SHARED_LABELS, shared=True)
                        return
                    except RuntimeFailure as refused:  # another process made it since?
                        existing = self._inspect_shared()
                        if existing is None:
                            raise refused from None
        options = existing.get("Options") or {}
        if any(options.get(k) != v for k, v in SHARED_OPTIONS.items()):
            raise NameConflict(
                f"network name {SHARED_NETWORK} is held by a network that lets its "
                "containers reach one another (not hoody's shared network); it is left alone"
            )

    def _inspect_shared(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._call(
                "inspect network", lambda: self.api.inspect_network(SHARED_NETWORK)
            )
        except RuntimeFailure as e:
            if e.status == NOT_FOUND:
                return None
            raise
        return found

    def _create_network(self, name: str, labels: Mapping[str, str], shared: bool = False) -> None:
        """`shared`: the shared network's options, and a wider block of the subnet pool."""
        what = f"create network {name}"

        def create(ipam: IPAMConfig | None = None) -> object:
            return self.api.create_network(
                name,
                driver="bridge",
                labels=dict(labels),
                options=dict(SHARED_OPTIONS) if shared else None,
                ipam=ipam,
                check_duplicate=True,
            )

        if self._subnets is None:
            try:
                self._call(what, create)
            except RuntimeFailure as e:
                hinted = with_pool_hint(e)
                if hinted is e:
                    raise
                raise hinted from e
            return
        tried: set[Subnet] = set()
        used = lambda: engine_subnets(self._call("list networks", lambda: self.api.networks()))  # noqa: E731
        prefix = self._subnets.shared_prefix if shared else None
        while True:
            with self._subnets.chosen(used, tried, prefix) as subnet:
                try:
                    with engine(what):
                        create(ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]))
                    return
                except RuntimeFailure as e:
                    if "overlap" not in str(e).lower() or len(tried) >= 16:
                        raise
                    tried.add(subnet)  # taken in between (another process): the next one

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None:
        try:
            existing = self._call("inspect volume", lambda: self.api.inspect_volume(name))
        except RuntimeFailure:
            self._call(
                f"create volume {name}", lambda: self.api.create_volume(name, labels=dict(labels))
            )
            return
        if not owns(existing.get("Labels"), labels):
            raise NameConflict(taken("volume", name, existing.get("Labels"), labels))

    # -- containers --------------------------------------------------------------------

    def create_container(self, spec: ContainerSpec) -> str:
        api = self.api
        res = spec.resources
        host_config = api.create_host_config(
            port_bindings={p: (spec.publish_host,) for p in spec.ports},
            mounts=[
                Mount(target, source, type="volume") for source, target in spec.volumes.items()
            ],
            mem_limit=res.memory,
            memswap_limit=res.memory,  # no swap on top of the memory limit
            nano_cpus=int(res.cpus * 1e9) if res.cpus else None,
            pids_limit=spec.pids,
            restart_policy={"Name": "unless-stopped"},
            network_mode=spec.network,
            init=True,
            cap_drop=list(spec.cap_drop) or None,
        )
        aliases = [spec.alias] if spec.alias else None
        networking = api.create_networking_config(
            {spec.network: api.create_endpoint_config(aliases=aliases)}
        )
        try:
            with engine(f"create container {spec.name}"):
                created = api.create_container(
                    spec.image,
                    command=list(spec.command) if spec.command else None,
                    entrypoint=list(spec.entrypoint) if spec.entrypoint else None,
                    environment=dict(spec.env),
                    labels=dict(spec.labels),
                    name=spec.name,
                    ports=list(spec.ports),
                    host_config=host_config,
                    networking_config=networking,
                    user=spec.user,
                    working_dir=spec.working_dir,
                    detach=True,
                )
        except RuntimeFailure as e:
            if e.status == CONFLICT:  # the name is in use
                raise self._conflict(spec.name, spec.labels) from e
            raise
        return str(created["Id"])

    def _conflict(self, name: str, want: Mapping[str, str]) -> RuntimeFailure:
        try:
            other = self._call("inspect container", lambda: self.api.inspect_container(name))
        except RuntimeFailure:
            return RuntimeFailure(f"container name {name} is in use")
        have = other["Config"].get("Labels") or {}
        if owns(have, want):
            return RuntimeFailure(f"container name {name} is held by another hoody container")
        return held("container", "container", name, have, want)

    def start_container(self, container_id: str) -> None:
        self._call("start container", lambda: self.api.start(container_id))

    def inspect_container(self, container_id: str) -> ContainerState:
        info = self._call("inspect container", lambda: self.api.inspect_container(container_id))
        state = info.get("State") or {}
        ports: dict[int, int] = {}
        for key, bindings in ((info.get("NetworkSettings") or {}).get("Ports") or {}).items():
            port, _, proto = key.partition("/")
            if proto == "tcp" and bindings:
                ports[int(port)] = int(bindings[0]["HostPort"])
        nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)
        return ContainerState(
            id=info["Id"],
            name=info["Name"].lstrip("/"),
            running=bool(state.get("Running")),
            status=state.get("Status", "unknown"),
            exit_code=state.get("ExitCode"),
            ports=ports,
            ip=ip,
        )

    def rename_container(self, container_id: str, name: str) -> None:
        self._call("rename container", lambda: self.api.rename(container_id, name))

    def remove_container(self, container_id: str) -> None:
        try:
            self._call(
                "remove container",
                lambda: self.api.remove_container(container_id, force=True, v=False),
            )
        except RuntimeFailure as e:
            if e.status != NOT_FOUND:
                raise

    def remove_network(self, name: str) -> None:
        try:
            self._call("remove network", lambda: self.api.remove_network(name))
        except RuntimeFailure as e:
            if e.status != NOT_FOUND:
                raise

    def remove_volume(self, name: str) -> None:
        try:
            self._call("remove volume", lambda: self.api.remove_volume(name, force=True))
        except RuntimeFailure as e:
            if e.status != NOT_FOUND:
                raise

    def exec(
        self, container_id: str, command: list[str], timeout: float = 30.0, user: str | None = None
    ) -> ExecResult:
        with engine("exec"):
            ex = self.api.exec_create(
                container_id, command, stdout=True, stderr=True, user=user or ""
            )
            output = self.api.exec_start(ex["Id"])
            code = self.api.exec_inspect(ex["Id"]).get("ExitCode")
        return ExecResult(code if code is not None else -1, output or b"")

    def exec_stream(
        self,
        container: str,
        command: list[str],
        env: Mapping[str, str],
        user: str | None,
        on_output: Callable[[int, bytes], None],
    ) -> int:
        with engine("exec"):
            ex = self.api.exec_create(
                container,
                command,
                environment=dict(env),
                user=user or "",
                stdout=True,
                stderr=True,
            )
            for out, err in self.api.exec_start(ex["Id"], stream=True, demux=True):
                if out:
                    on_output(1, out)
                if err:
                    on_output(2, err)
            code = self.api.exec_inspect(ex["Id"]).get("ExitCode")
        return int(code) if code is not None else -1

    def logs(self, container_id: str, tail: int = 20) -> str:
        try:
            data = self._call("logs", lambda: self.api.logs(container_id, tail=tail))
        except RuntimeFailure:
            return ""
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    def probe_http(
        self, state: ContainerState, port: int, path: str, timeout: float, publish_host: str
    ) -> tuple[bool, str]:
        """Through the published port when there is one, else the container's address;
        one request on one connection to that address, never anywhere else: no redirect
        is followed (a 3xx is unhealthy) and no proxy is used."""
        if not state.running:
            return False, f"container {state.status}"
        if port in state.ports:
            host = "127.0.0.1" if publish_host in ("0.0.0.0", "") else publish_host
            target = (host, state.ports[port])
        elif state.ip:
            target = (state.ip, port)
        else:
            return False, "container has no address"
        return http_probe(target[0], target[1], path, timeout)
