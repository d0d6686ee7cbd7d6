"""The container runtime seen by the reconciler: a small protocol of primitives.

`docker.py` implements it on the Docker Engine API; `memory.py` is an in-memory runtime
for fast tests of pure logic. Everything above this layer (apply, controller, scheduler)
is written against the protocol and never imports the docker SDK.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from reconciler.core.model import (
    LABEL_COMMIT,
    LABEL_ENV,
    LABEL_MANAGED,
    LABEL_PORTS,
    LABEL_PRIMARY,
    LABEL_REF,
    LABEL_REPO,
    LABEL_SERVICE,
    LABEL_SPEC_HASH,
    HealthCheck,
    ObservedContainer,
    ObservedEnvironment,
    Resources,
)
from reconciler.core.naming import container_name

Progress = Callable[[str], None]

# The shared network's labels: not hoody.managed, so it is no environment's object.
SHARED_LABELS = {"hoody.shared-network": "true"}


@dataclass(frozen=True)
class BuildRequest:
    context: Callable[[], IO[bytes]]  # opens a tarball of the build context
    dockerfile: str
    args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None  # network of the RUN steps: None = the engine's default
    anonymous: bool = False  # no registry credentials, no cached layers (fork PRs)
    memory: int | None = None  # memory limit of each RUN step


@dataclass(frozen=True)
class ContainerSpec:
    name: str
    image: str
    labels: Mapping[str, str]
    network: str
    alias: str | None  # the service name on the environment's own network; none on the shared one
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    publish_host: str = "127.0.0.1"
    volumes: Mapping[str, str] = field(default_factory=dict)  # volume name -> mount path
    resources: Resources = field(default_factory=Resources)  # the limits in effect
    pids: int | None = None  # most processes the container may run
    user: str | None = None
    working_dir: str | None = None
    # the spec's check, for a runtime that probes by itself too (a swarm's rolling update)
    healthcheck: HealthCheck | None = None
    cap_drop: tuple[str, ...] = ()  # kernel capabilities taken away (NET_RAW on the shared network)


@dataclass(frozen=True)
class ContainerState:
    id: str
    name: str
    running: bool
    status: str
    exit_code: int | None = None
    ports: Mapping[int, int] = field(default_factory=dict)  # container port -> host port
    ip: str | None = None  # address on the environment network


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: bytes


def container_role(name: str, labels: Mapping[str, str]) -> str:
    """ "" for a container under its canonical name, "next" for any other (a new version
    being started, or one left behind by a crash mid-swap). Labels cannot change after
    creation, so the name carries this."""
    canonical = container_name(labels.get(LABEL_ENV, ""), labels.get(LABEL_SERVICE, ""))
    return "" if name == canonical else "next"


@dataclass(frozen=True)
class Listed:
    """One object as an engine lists it: enough to rebuild observed state from labels."""

    name: str
    labels: Mapping[str, str]
    id: str = ""
    running: bool = False
    status: str = ""
    ports: Mapping[int, int] = field(default_factory=dict)


def _ports_label(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(",") if p.isdigit())


def assemble(
    containers: list[Listed], networks: list[Listed], volumes: list[Listed]
) -> dict[str, ObservedEnvironment]:
    """Group labelled objects into environments. Objects without `hoody.managed=true`
    (or without an environment label) are not ours and are ignored."""
    envs: dict[str, dict[str, list[Any]]] = {}
    heads: dict[str, Mapping[str, str]] = {}

    def slot(obj: Listed) -> dict[str, list[Any]] | None:
        env = obj.labels.get(LABEL_ENV)
        if obj.labels.get(LABEL_MANAGED) != "true" or not env:
            return None
        heads.setdefault(env, obj.labels)
        return envs.setdefault(env, {"c": [], "n": [], "v": []})

    for c in containers:
        s = slot(c)
        if s is None:
            continue
        role = container_role(c.name, c.labels)
        if not role:  # the live version says which ref and commit run
            heads[c.labels[LABEL_ENV]] = c.labels
        s["c"].append(
            ObservedContainer(
                id=c.id,
                name=c.name,
                env=c.labels[LABEL_ENV],
                service=c.labels.get(LABEL_SERVICE, ""),
                ref=c.labels.get(LABEL_REF, ""),
                commit=c.labels.get(LABEL_COMMIT, ""),
                spec_hash=c.labels.get(LABEL_SPEC_HASH, ""),
                running=c.running,
                status=c.status,
                role=role,
                ports=dict(c.ports),
                published=_ports_label(c.labels.get(LABEL_PORTS, "")) or tuple(sorted(c.ports)),
                primary=c.labels.get(LABEL_PRIMARY) == "true",
            )
        )
    for key, objs in (("n", networks), ("v", volumes)):
        for o in objs:
            s = slot(o)
            if s is not None:
                s[key].append(o.name)
    return {
        env: ObservedEnvironment(
            name=env,
            repo=heads[env].get(LABEL_REPO, ""),
            ref=heads[env].get(LABEL_REF, ""),
            commit=heads[env].get(LABEL_COMMIT, ""),
            containers=tuple(sorted(s["c"], key=lambda c: c.name)),
            networks=tuple(sorted(s["n"])),
            volumes=tuple(sorted(s["v"])),
        )
        for env, s in envs.items()
    }


class Runtime(Protocol):
    def ping(self) -> None:
        """Raise RuntimeUnavailable if the engine cannot be reached."""

    def observe(self, repo: str | None = None) -> dict[str, ObservedEnvironment]:
        """Managed environments, rebuilt from labels alone (optionally one repo's)."""

    def has_image(self, image: str) -> bool: ...

    def pull_image(self, image: str, progress: Progress, anonymous: bool = False) -> None:
        """Pull `image`; `anonymous` sends no stored registry credentials (fork PRs)."""

    def build_image(self, tag: str, request: BuildRequest, progress: Progress) -> None: ...

    def ensure_network(self, name: str, labels: Mapping[str, str]) -> None: ...

    # The name of a network that containers of any environment share without reaching one
    # another (no traffic between its containers), or None when this runtime has none
    # (every environment then gets a network of its own).
    shared_network: str | None

    def ensure_shared_network(self) -> None:
        """Create `shared_network` if it does not exist."""

    def ensure_volume(self, name: str, labels: Mapping[str, str]) -> None: ...

    def create_container(self, spec: ContainerSpec) -> str: ...

    def start_container(self, container_id: str) -> None: ...

    def inspect_container(self, container_id: str) -> ContainerState: ...

    def rename_container(self, container_id: str, name: str) -> None: ...

    def remove_container(self, container_id: str) -> None: ...

    def remove_network(self, name: str) -> None: ...

    def remove_volume(self, name: str) -> None: ...

    def exec(
        self, container_id: str, command: list[str], timeout: float = 30.0, user: str | None = None
    ) -> ExecResult:
        """Run a command in a container and wait for it (health probes)."""

    def exec_stream(
        self,
        container: str,
        command: list[str],
        env: Mapping[str, str],
        user: str | None,
        on_output: Callable[[int, bytes], None],
    ) -> int:
        """Run a job in a container (by name or id), feeding its output as it comes
        (1 = stdout, 2 = stderr); returns the exit code."""

    def probe_http(
        self, state: ContainerState, port: int, path: str, timeout: float, publish_host: str
    ) -> tuple[bool, str]:
        """GET `path` on `port` of the container as `inspect_container` just read it (its
        published port or its own address, nothing else; a redirect is not followed but
        unhealthy); (ok, what happened)."""

    def logs(self, container_id: str, tail: int = 20) -> str: ...
