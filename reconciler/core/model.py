"""Frozen value types shared by every layer. Nothing here does I/O.

The flow is: `Ref` (what git says) + `AppSpec` (what the branch asks for) →
`DesiredEnvironment` (desired.py) ; `ObservedEnvironment` (rebuilt from runtime labels) ;
`plan.diff(desired, observed) -> list[Action]`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# Labels carried by every object the service creates. Observed state is rebuilt from
# these alone; an object without LABEL_MANAGED=true is never modified or removed.
LABEL_MANAGED = "hoody.managed"
LABEL_REPO = "hoody.repo"
LABEL_ENV = "hoody.env"
LABEL_SERVICE = "hoody.service"
LABEL_REF = "hoody.ref"
LABEL_COMMIT = "hoody.commit"
LABEL_SPEC_HASH = "hoody.spec-hash"
# Read by the proxy's route rebuild: the service's ports in spec order ("8080,9090"), and
# "true" on the environment's first service with ports (its plain `<env>` host).
LABEL_PORTS = "hoody.ports"
LABEL_PRIMARY = "hoody.primary"

SPEC_FILE = ".hoody/app.yaml"
CRONTAB_FILE = ".hoody/crontab"

RefKind = Literal["branch", "pr"]


@dataclass(frozen=True, order=True)
class Ref:
    """A git ref that may get an environment: a branch or a pull request head."""

    name: str  # full ref name: refs/heads/feature/x, refs/pull/7/head
    commit: str
    kind: RefKind = "branch"
    pr_number: int | None = None

    @property
    def short(self) -> str:
        if self.name.startswith("refs/heads/"):
            return self.name[len("refs/heads/") :]
        return self.name


@dataclass(frozen=True)
class BuildSpec:
    context: str = "."
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthCheck:
    """Probed by the reconciler itself: an HTTP GET or a command run in the container."""

    http: str | None = None  # path, e.g. "/"
    port: int | None = None
    command: tuple[str, ...] | None = None
    interval: float = 2.0  # seconds between probes once healthy
    timeout: float = 2.0  # seconds for one probe
    retries: int = 3  # consecutive failures before unhealthy
    start_period: float = 60.0  # how long a new container may take to become healthy


@dataclass(frozen=True)
class Resources:
    memory: int | None = None  # bytes
    cpus: float | None = None


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str | None = None
    build: BuildSpec | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    volumes: Mapping[str, str] = field(default_factory=dict)  # volume name -> mount path
    healthcheck: HealthCheck | None = None
    resources: Resources = field(default_factory=Resources)
    user: str | None = None
    working_dir: str | None = None


ConcurrencyPolicy = Literal["forbid", "allow", "replace"]


@dataclass(frozen=True)
class CronSettings:
    service: str | None = None  # None: the first service
    user: str = "root"
    timezone: str = "UTC"
    timeout: float = 3600.0
    concurrency: ConcurrencyPolicy = "forbid"
    retries: int = 0
    jitter: float = 0.0
    pause_after_failures: int | None = None
    starting_deadline: float = 300.0
    history: int = 100


@dataclass(frozen=True)
class PreviewSettings:
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AppSpec:
    name: str
    services: Mapping[str, ServiceSpec]
    cron: CronSettings = field(default_factory=CronSettings)
    preview: PreviewSettings = field(default_factory=PreviewSettings)

    @property
    def cron_service(self) -> str:
        return self.cron.service or next(iter(self.services))


@dataclass(frozen=True)
class DesiredService:
    """A service with everything resolved: the image to run and the final env."""

    spec: ServiceSpec
    image: str  # image reference to run (for builds: the tag we build)
    env: Mapping[str, str]
    spec_hash: str
    base_images: tuple[str, ...] = ()  # for builds: the images its Dockerfile starts from

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class DesiredEnvironment:
    name: str
    repo: str
    ref: Ref
    app: AppSpec
    services: Mapping[str, DesiredService]
    spec_hash: str
    crontab: str | None = None  # the raw .hoody/crontab text at this commit
    secret_keys: frozenset[str] = frozenset()  # env names whose values are secrets
    crontab_error: str | None = None  # the crontab could not be read (over its size limit)
    fork: bool = False  # a pull request from a fork: no network for builds, no credentials

    @property
    def commit(self) -> str:
        return self.ref.commit


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str
    env: str
    service: str
    ref: str
    commit: str
    spec_hash: str
    running: bool
    status: str  # engine's word: running, exited, created, ...
    role: str = ""  # "next": not under its canonical name (a blue/green start in flight)
    ports: Mapping[int, int] = field(default_factory=dict)  # container port -> host port
    published: tuple[int, ...] = ()  # the spec's ports in order (label hoody.ports)
    primary: bool = False  # label hoody.primary: the first service with ports


@dataclass(frozen=True)
class ObservedEnvironment:
    name: str
    repo: str
    ref: str
    commit: str
    containers: tuple[ObservedContainer, ...] = ()
    networks: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()

    def service_containers(self, service: str) -> list[ObservedContainer]:
        return [c for c in self.containers if c.service == service]


class ActionOp(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REMOVE = "remove"
    NOOP = "noop"


class Reason(StrEnum):
    """Why an action was planned, as a value to branch on (`Action.reason` is its text)."""

    NEW = "new"  # create: the ref has no environment yet
    DRIFT = "drift"  # update: what runs differs from the spec
    IN_SYNC = "in_sync"  # noop: nothing to do
    SUSPENDED = "suspended"  # noop: an operator suspended the environment
    HELD = "held"  # noop, kept: its ref's spec cannot be used
    UNTRUSTED = "untrusted"  # noop, kept: the ref listing cannot be trusted (failed fetch)
    MASS_PRUNE = "mass_prune"  # noop, kept: the pass would remove too much of the repo
    GONE = "gone"  # remove: its ref is gone or no longer selected

    @property
    def kept(self) -> bool:
        """A removal that a guard turned into a no-op (invariant 2)."""
        return self in (Reason.HELD, Reason.UNTRUSTED, Reason.MASS_PRUNE)


@dataclass(frozen=True)
class Action:
    op: ActionOp
    env: str
    reason: str  # for people: events, `hoody plan`, the API
    desired: DesiredEnvironment | None = None
    observed: ObservedEnvironment | None = None
    services: tuple[str, ...] = ()  # services to (re)start on update
    why: Reason = field(kw_only=True)

    def describe(self) -> str:
        extra = f" [{', '.join(self.services)}]" if self.services else ""
        return f"{self.op.value:<6} {self.env}{extra}: {self.reason}"
