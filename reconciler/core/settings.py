"""Server configuration (`hoody.yaml`), parsed and validated once at the edge.

Grouped frozen dataclasses with defaults; the parser (`sections.read_section`) reads each
section by its dataclass's fields, so a new key or section is a new field or dataclass and
nothing else. Every error names the key path (`repos[0].branches`). `${VAR}` expands from
the process environment and a missing variable is an error at load.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import yaml

from reconciler.core.errors import ConfigError
from reconciler.core.naming import valid_app_name
from reconciler.core.sections import (
    Between,
    Bytes,
    Check,
    Each,
    Floor,
    OneOf,
    Seconds,
    read_section,
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PROVIDERS = ("github", "gitlab", "gitea", "generic")
RUNTIMES = ("docker", "swarm")
_DATABASE_URL = re.compile(r"^(sqlite|postgres(ql)?(\+psycopg)?)://")


MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: Annotated[int, Between(0, 65535)] = 8080
    # Largest request body (webhooks included), refused with 413 from Content-Length
    # before it is read; 25 MiB is GitHub's own cap on a delivery.
    max_body: Annotated[int, Floor(1)] = 25 * MiB
    max_parse: Annotated[int, Floor(1)] = 5 * MiB  # a larger webhook: verified, not parsed
    threads: Annotated[int, Floor(1)] = 8  # waitress worker threads
    connection_limit: Annotated[int, Floor(1)] = 500  # open connections, idle ones too
    channel_timeout: Seconds = 30.0  # an idle connection is closed after this


@dataclass(frozen=True)
class MetricsSettings:
    token: str | None = None  # Bearer token for /metrics; None: api.public_read decides


@dataclass(frozen=True)
class RetentionSettings:
    events_max_age: Seconds = 90 * 86400.0  # older events are deleted
    events_max_count: Annotated[int, Floor(1)] = 100_000  # the newest are kept
    # Delivery ids and body digests; the age is also the window in which a redelivery or
    # an identical body is dropped as a duplicate.
    deliveries_max_age: Seconds = 7 * 86400.0
    deliveries_max_count: Annotated[int, Floor(1)] = 100_000


def _subnet_pool_ok(value: str | None) -> bool:
    if value is None:
        return True
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError:
        return False
    return net.version == 4 and net.is_private


@dataclass(frozen=True)
class DockerSettings:
    publish_host: str = "127.0.0.1"  # host address that service ports are published on
    # Where environment networks take their subnets from: null leaves it to the engine
    # (its default address pools hold about 30 bridge networks, one per environment);
    # a private range such as 10.213.0.0/16 is cut into /subnet_prefix networks.
    subnet_pool: Annotated[
        str | None, Check(_subnet_pool_ok, "expected a private IPv4 network, e.g. 10.213.0.0/16")
    ] = None
    subnet_prefix: Annotated[
        int, Check(lambda n: 16 <= n <= 28, "expected a prefix length from 16 to 28")
    ] = 24


@dataclass(frozen=True)
class SchedulerSettings:
    workers: Annotated[int, Floor(1)] = 8  # jobs running at once, all environments together
    per_env: Annotated[int, Floor(1)] = 2  # jobs running at once in one environment
    shutdown_grace: Seconds = 30.0  # seconds running jobs get to finish at shutdown
    kill_grace: Seconds = 5.0  # seconds between TERM and KILL for a job being stopped
    # seconds before an instant that its firings are claimed
    claim_ahead: Annotated[
        Seconds, Check(lambda s: s <= 60, "at most 60s (a claim is a row of the run log)")
    ] = 1.0


_HTTP_ALLOW = re.compile(r"^[A-Za-z0-9._-]+(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$")


def _allow_ok(value: str) -> bool:
    return bool(_HTTP_ALLOW.match(value))


@dataclass(frozen=True)
class CronServerSettings:
    """`cron:` in hoody.yaml: what the operator allows the branches' schedules."""

    # Hosts an HTTP job may call besides the environment's own services: `host` (any
    # port) or `host:port`, e.g. `hooks.example.com`, `10.0.0.5:9000`. Empty: none.
    http_allow: Annotated[
        tuple[str, ...], Each(Check(_allow_ok, "expected host or host:port"))
    ] = ()


@dataclass(frozen=True)
class ReplicaSettings:
    """Several `hoody serve` on one database: each repo is led by one of them."""

    # a replica that stops renewing (killed, cut off) is taken over after this
    lease_ttl: Annotated[Seconds, Check(lambda s: s >= 1, "at least 1s")] = 10.0
    renew_every: Seconds = 2.0  # how often leases are renewed and free ones taken
    wake_poll: Seconds = 0.5  # how often a leader looks for webhooks other replicas took


PROXY_TLS = ("off", "internal", "acme")
_DOMAIN_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,200}}$){_DOMAIN_LABEL}(\.{_DOMAIN_LABEL})*$")
_LISTEN = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):([0-9]{1,5})$")


def _admin_ok(value: str) -> bool:
    return bool(re.match(r"^(https?://|unix//)", value))


def _listen_ok(value: str) -> bool:
    m = _LISTEN.match(value)
    return bool(m) and 1 <= int(m.group(2)) <= 65535  # type: ignore[union-attr]


@dataclass(frozen=True)
class ProxySettings:
    """`proxy:` — stable preview URLs through Caddy (unset: host ports, as before)."""

    # hosts are <env>.<domain>
    domain: Annotated[str, Check(_DOMAIN.match, "not a lower-case domain name")] = "localhost"
    # where Caddy serves
    listen: Annotated[str, Check(_listen_ok, "expected host:port (e.g. 127.0.0.1:8088)")] = (
        "127.0.0.1:8088"
    )
    # None: hoody runs its own Caddy; else the admin URL of an existing one
    admin: Annotated[
        str | None,
        Check(_admin_ok, "expected http://host:port or unix//path/to/socket"),
    ] = None
    # off | internal (Caddy's local CA) | acme (on-demand, asked of hoody)
    tls: Annotated[str, OneOf(PROXY_TLS)] = "off"
    drain: Seconds = 2.0  # seconds an old container keeps serving after the route switched
    caddy: str = "caddy"  # the binary hoody starts when admin is None

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def url(self, label: str) -> str:
        """The public URL of one host label."""
        scheme = "http" if self.tls == "off" else "https"
        default = 80 if self.tls == "off" else 443
        port = "" if self.port == default else f":{self.port}"
        return f"{scheme}://{label}.{self.domain}{port}/"


@dataclass(frozen=True)
class ApiSettings:
    token: str | None = None  # Bearer token for every mutating call (none set: refused)
    public_read: bool = True  # reads open to anyone who reaches the server, else token-only


@dataclass(frozen=True)
class DatabaseSettings:
    # SQLAlchemy URL; None = SQLite in state_dir
    url: Annotated[
        str | None,
        Check(
            _DATABASE_URL.match, "expected sqlite:///<path> or postgresql://user:password@host/db"
        ),
    ] = None


MiB = 1024 * 1024


@dataclass(frozen=True)
class LimitsSettings:
    """What one branch or pull request may take of the host (rules may not use module
    names: the annotations are evaluated in the class's namespace). A container whose spec sets
    no `resources` gets `memory` / `cpus`; every container gets `pids`; a spec asking for
    more than a maximum, or a crontab over its limits, is refused."""

    memory: Annotated[Bytes, Check(lambda b: b >= 4 << 20, "at least 4m")] = 512 * MiB
    cpus: Annotated[float, Check(lambda c: c > 0, "must be above 0")] = 1.0
    pids: Annotated[int, Check(lambda n: n >= 16, "at least 16")] = 512  # processes
    max_memory: Annotated[Bytes, Check(lambda b: b >= 4 << 20, "at least 4m")] = 4096 * MiB
    max_cpus: Annotated[float, Check(lambda c: c > 0, "must be above 0")] = 4.0
    # environments of one repo (branches and pull requests); beyond it, refs wait
    max_environments_per_repo: Annotated[int, Floor(1)] = 50
    max_cron_entries: Annotated[int, Floor(1)] = 200  # entries of one crontab
    min_every: Seconds = 10.0  # the shortest `@every` a crontab may use
    max_spec_bytes: Annotated[Bytes, Floor(1024)] = 256 * 1024  # .hoody/app.yaml, Dockerfiles
    max_crontab_bytes: Annotated[Bytes, Floor(1024)] = 256 * 1024  # .hoody/crontab


BUILD_NETWORKS = ("default", "none")


@dataclass(frozen=True)
class BuildSettings:
    # network of the build's RUN steps for branches: `default` (the engine's bridge, so
    # `RUN pip install` works) or `none`; builds of fork pull requests always get none
    network: Annotated[str, OneOf(BUILD_NETWORKS)] = "default"


@dataclass(frozen=True)
class ImagesSettings:
    # glob patterns of the images a spec may name (`busybox:*`, `registry.example.com/team/*`)
    # and a Dockerfile may start FROM; None: any image for branches, and only images
    # already present on the engine for fork pull requests
    allow: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PruneSettings:
    # a pass may remove at most this fraction of a repo's envs...
    max_fraction: Annotated[float, Between(0, 1)] = 0.5
    min_count: int = 2  # ...unless it removes at most this many


@dataclass(frozen=True)
class PullRequestSettings:
    enabled: bool = False
    forks: bool = False
    drafts: bool = True
    approve_label: str | None = None
    expire_after: Seconds | None = None  # seconds since the last commit
    max_environments: int | None = None


@dataclass(frozen=True)
class RepoSettings:
    # unique; used in labels and names
    name: Annotated[
        str, Check(valid_app_name, "must be lower-case letters, digits and single hyphens")
    ]
    url: str  # any git URL or local path
    provider: Annotated[str, OneOf(PROVIDERS)] = "generic"
    # glob patterns of branches that get an environment
    branches: Annotated[tuple[str, ...], Each(Check(bool, "expected a non-empty glob pattern"))] = (
        "*",
    )
    poll_interval: Seconds = 60.0  # seconds, 0 = off
    env: Mapping[str, str] = field(default_factory=dict)  # injected everywhere; secret
    prune: PruneSettings = field(default_factory=PruneSettings)
    webhook_secret: str | None = None
    allow_unsigned_webhooks: bool = False
    repository: str | None = None
    api_url: str | None = None
    api_token: str | None = None
    pull_requests: PullRequestSettings = field(default_factory=PullRequestSettings)

    @property
    def is_local(self) -> bool:
        """A local path (watched with watchfiles) rather than a remote URL."""
        return "://" not in self.url and not re.match(r"^[\w.-]+@[\w.-]+:", self.url)


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(".hoody-state")  # relative to the directory of hoody.yaml
    server: ServerSettings = field(default_factory=ServerSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    # what runs the environments: this host's Docker engine, or the swarm it manages
    runtime: Annotated[str, OneOf(RUNTIMES)] = "docker"
    repos: tuple[RepoSettings, ...] = ()
    # Environments building or pulling an image at once (CPU, disk, network), all repos.
    workers: Annotated[int, Floor(1)] = 4
    # Environments being applied at once (building, starting, waiting for health); a
    # health wait is nearly free, so this is far above `workers`.
    in_flight: Annotated[int, Floor(1)] = 32
    # A repo's passes start at least this far apart (the first at once): a push storm
    # costs one pass per interval, and the last push is always deployed.
    min_pass_interval: Seconds = 2.5
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    cron: CronServerSettings = field(default_factory=CronServerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    # Apprise URLs for job failure / recovery notifications
    notify: Annotated[
        tuple[str, ...],
        Each(Check(lambda u: "://" in u, "expected an Apprise URL such as json://host/path")),
    ] = ()
    url_template: str | None = None
    public_url: str | None = None  # where this service is reachable (links in PR statuses)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    limits: LimitsSettings = field(default_factory=LimitsSettings)
    build: BuildSettings = field(default_factory=BuildSettings)
    images: ImagesSettings = field(default_factory=ImagesSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    # Every value that came from a `${VAR}` expansion (masked in job output); set by the
    # parser, not a key of hoody.yaml
    expanded: tuple[str, ...] = field(default=(), repr=False, metadata={"key": False})
    proxy: ProxySettings | None = None  # stable URLs through Caddy; None = host ports
    replicas: ReplicaSettings = field(default_factory=ReplicaSettings)

    def repo(self, name: str) -> RepoSettings | None:
        return next((r for r in self.repos if r.name == name), None)

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.state_dir / 'hoody.db'}"


def _expand(
    value: Any, path: str, environ: Mapping[str, str], seen: list[str] | None = None
) -> Any:
    """`value` with `${VAR}` expanded; each expanded value is appended to `seen`."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in environ:
                raise ConfigError(path, f"environment variable {m.group(1)} is not set")
            if seen is not None:
                seen.append(environ[m.group(1)])
            return environ[m.group(1)]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _expand(v, f"{path}.{k}" if path else str(k), environ, seen)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", environ, seen) for i, v in enumerate(value)]
    return value


def parse_settings(data: Any, base_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from loaded YAML. Relative paths resolve against `base_dir`."""
    expanded: list[str] = []
    data = _expand(data, "", os.environ if environ is None else environ, expanded)
    proxy = data.get("proxy") if isinstance(data, dict) else None
    if isinstance(proxy, dict) and proxy.get("tls") is False:  # YAML 1.1 reads `off` as false
        data = {**data, "proxy": {**proxy, "tls": "off"}}
    settings = read_section(Settings, data)
    repos = []
    seen: set[str] = set()
    for i, repo in enumerate(settings.repos):
        if repo.name in seen:
            raise ConfigError(f"repos[{i}].name", f"duplicate repo name {repo.name!r}")
        seen.add(repo.name)
        if repo.is_local and not Path(repo.url).is_absolute():
            repo = replace(repo, url=str((base_dir / repo.url).resolve()))
        repos.append(repo)
    limits = settings.limits
    if limits.memory > limits.max_memory:
        raise ConfigError("limits.memory", "must not be above limits.max_memory")
    if limits.cpus > limits.max_cpus:
        raise ConfigError("limits.cpus", "must not be above limits.max_cpus")
    if settings.replicas.renew_every * 2 >= settings.replicas.lease_ttl:
        raise ConfigError("replicas.renew_every", "must be less than half of replicas.lease_ttl")
    state_dir = settings.state_dir
    return replace(
        settings,
        state_dir=state_dir if state_dir.is_absolute() else (base_dir / state_dir).resolve(),
        repos=tuple(repos),
        expanded=tuple(dict.fromkeys(expanded)),
    )


def load_settings(path: str | Path, environ: Mapping[str, str] | None = None) -> Settings:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError("", f"cannot read: {e.strerror}", file=str(p)) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError("", f"{line}invalid YAML: {getattr(e, 'problem', e)}", file=str(p)) from e
    try:
        return parse_settings(data, p.resolve().parent, environ)
    except ConfigError as e:
        raise ConfigError(e.path, e.message, file=str(p)) from e
