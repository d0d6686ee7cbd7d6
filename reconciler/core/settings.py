"""Server configuration (`hoody.yaml`), parsed and validated once at the edge.

Grouped dataclasses with defaults; every error names the key path (`repos[0].branches`).
`${VAR}` expands from the process environment and a missing variable is an error at load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.core.errors import ConfigError
from reconciler.core.naming import valid_app_name

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
PROVIDERS = ("github", "gitlab", "gitea", "generic")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body: int = 5 * 1024 * 1024  # largest webhook body accepted (413 beyond)


@dataclass(frozen=True)
class DockerSettings:
    publish_host: str = "127.0.0.1"  # host address that service ports are published on


@dataclass(frozen=True)
class SchedulerSettings:
    workers: int = 8  # jobs running at once, all environments together
    per_env: int = 2  # jobs running at once in one environment
    shutdown_grace: float = 30.0  # seconds running jobs get to finish at shutdown
    kill_grace: float = 5.0  # seconds between TERM and KILL for a job being stopped
    claim_ahead: float = 1.0  # seconds before an instant that its firings are claimed


@dataclass(frozen=True)
class ApiSettings:
    token: str | None = None  # Bearer token for every mutating call (none set: refused)
    public_read: bool = True  # reads open to anyone who reaches the server, else token-only


@dataclass(frozen=True)
class PruneSettings:
    max_fraction: float = 0.5  # a pass may remove at most this fraction of a repo's envs...
    min_count: int = 2  # ...unless it removes at most this many


@dataclass(frozen=True)
class PullRequestSettings:
    enabled: bool = False
    forks: bool = False
    drafts: bool = True
    approve_label: str | None = None
    expire_after: float | None = None  # seconds since the last commit
    max_environments: int | None = None


@dataclass(frozen=True)
class RepoSettings:
    name: str  # unique; used in labels and names
    url: str  # any git URL or local path
    provider: str = "generic"
    branches: tuple[str, ...] = ("*",)  # glob patterns of branches that get an environment
    poll_interval: float = 60.0  # seconds, 0 = off
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
    state_dir: Path = Path(".hoody-state")
    server: ServerSettings = field(default_factory=ServerSettings)
    docker: DockerSettings = field(default_factory=DockerSettings)
    repos: tuple[RepoSettings, ...] = ()
    workers: int = 4  # parallel environment applies within one pass
    # A repo's passes start at least this far apart (the first at once): a push storm
    # costs one pass per interval, and the last push is always deployed.
    min_pass_interval: float = 2.5
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    notify: tuple[str, ...] = ()  # Apprise URLs for job failure / recovery notifications
    url_template: str | None = None
    public_url: str | None = None  # where this service is reachable (links in PR statuses)
    database: str | None = None  # SQLAlchemy URL; None = SQLite in state_dir

    def repo(self, name: str) -> RepoSettings | None:
        return next((r for r in self.repos if r.name == name), None)

    @property
    def database_url(self) -> str:
        return self.database or f"sqlite:///{self.state_dir / 'hoody.db'}"


def _expand(value: Any, path: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in environ:
                raise ConfigError(path, f"environment variable {m.group(1)} is not set")
            return environ[m.group(1)]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", environ) for i, v in enumerate(value)]
    return value


class _Reader:
    """Typed access to one mapping that remembers which keys were used."""

    def __init__(self, data: Any, path: str) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(
                path or "(top level)", f"expected a mapping, got {type(data).__name__}"
            )
        self.data = data
        self.path = path

    def key(self, k: str) -> str:
        return f"{self.path}.{k}" if self.path else k

    def get(self, k: str, types: type | tuple[type, ...], default: Any = None) -> Any:
        if k not in self.data or self.data[k] is None:
            return default
        v = self.data[k]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ConfigError(self.key(k), f"expected {_tname(types)}, got a boolean")
        if not isinstance(v, types):
            raise ConfigError(self.key(k), f"expected {_tname(types)}, got {type(v).__name__}")
        return v

    def sub(self, k: str) -> _Reader:
        return _Reader(self.data.get(k), self.key(k))

    def check_unknown(self, known: tuple[str, ...]) -> None:
        for k in self.data:
            if k not in known:
                raise ConfigError(self.key(str(k)), f"unknown key (known: {', '.join(known)})")


def _tname(types: type | tuple[type, ...]) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(
        {
            "str": "a string",
            "int": "an integer",
            "float": "a number",
            "bool": "a boolean",
            "dict": "a mapping",
            "list": "a list",
        }.get(t.__name__, t.__name__)
        for t in ts
    )


def _duration(r: _Reader, k: str, default: float | None) -> float | None:
    v = r.get(k, (int, float, str), default)
    if v is None or isinstance(v, int | float):
        return None if v is None else float(v)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*", v)
    if not m:
        raise ConfigError(r.key(k), f"not a duration: {v!r} (e.g. 30s, 5m, 72h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
    return float(m.group(1)) * scale


def _str_map(r: _Reader, k: str) -> dict[str, str]:
    raw = r.get(k, dict, {})
    out = {}
    for name, v in raw.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(r.key(f"{k}.{name}"), "not a valid variable name")
        if isinstance(v, bool) or v is None or isinstance(v, dict | list):
            raise ConfigError(r.key(f"{k}.{name}"), "expected a string or a number")
        out[name] = str(v)
    return out


def _repo(r: _Reader) -> RepoSettings:
    r.check_unknown(
        (
            "name",
            "url",
            "provider",
            "branches",
            "poll_interval",
            "env",
            "prune",
            "webhook_secret",
            "allow_unsigned_webhooks",
            "repository",
            "api_url",
            "api_token",
            "pull_requests",
        )
    )
    name = r.get("name", str)
    if not name:
        raise ConfigError(r.key("name"), "required")
    if not valid_app_name(name):
        raise ConfigError(r.key("name"), "must be lower-case letters, digits and single hyphens")
    url = r.get("url", str)
    if not url:
        raise ConfigError(r.key("url"), "required")
    provider = r.get("provider", str, "generic")
    if provider not in PROVIDERS:
        raise ConfigError(r.key("provider"), f"must be one of {', '.join(PROVIDERS)}")
    branches = r.get("branches", (list, str), ["*"])
    if isinstance(branches, str):
        branches = [branches]
    for i, b in enumerate(branches):
        if not isinstance(b, str) or not b:
            raise ConfigError(r.key(f"branches[{i}]"), "expected a non-empty glob pattern")
    poll = _duration(r, "poll_interval", 60.0)
    prune_r = r.sub("prune")
    prune_r.check_unknown(("max_fraction", "min_count"))
    frac = float(prune_r.get("max_fraction", (int, float), 0.5))
    if not 0 <= frac <= 1:
        raise ConfigError(prune_r.key("max_fraction"), "must be between 0 and 1")
    pr_r = r.sub("pull_requests")
    pr_r.check_unknown(
        ("enabled", "forks", "drafts", "approve_label", "expire_after", "max_environments")
    )
    return RepoSettings(
        name=name,
        url=url,
        provider=provider,
        branches=tuple(branches),
        poll_interval=poll or 0.0,
        env=_str_map(r, "env"),
        prune=PruneSettings(max_fraction=frac, min_count=int(prune_r.get("min_count", int, 2))),
        webhook_secret=r.get("webhook_secret", str),
        allow_unsigned_webhooks=r.get("allow_unsigned_webhooks", bool, False),
        repository=r.get("repository", str),
        api_url=r.get("api_url", str),
        api_token=r.get("api_token", str),
        pull_requests=PullRequestSettings(
            enabled=pr_r.get("enabled", bool, False),
            forks=pr_r.get("forks", bool, False),
            drafts=pr_r.get("drafts", bool, True),
            approve_label=pr_r.get("approve_label", str),
            expire_after=_duration(pr_r, "expire_after", None),
            max_environments=pr_r.get("max_environments", int),
        ),
    )


def parse_settings(data: Any, base_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from loaded YAML. Relative paths resolve against `base_dir`."""
    data = _expand(data, "", os.environ if environ is None else environ)
    top = _Reader(data, "")
    top.check_unknown(
        (
            "state_dir",
            "server",
            "docker",
            "repos",
            "workers",
            "url_template",
            "public_url",
            "scheduler",
            "api",
            "notify",
            "min_pass_interval",
            "database",
        )
    )
    database = top.sub("database")
    database.check_unknown(("url",))
    db_url = database.get("url", str)
    if db_url is not None and not re.match(r"^(sqlite|postgres(ql)?(\+psycopg)?)://", db_url):
        raise ConfigError(
            "database.url", "expected sqlite:///<path> or postgresql://user:password@host/db"
        )
    server = top.sub("server")
    server.check_unknown(("host", "port", "max_body"))
    docker = top.sub("docker")
    docker.check_unknown(("publish_host",))
    api = top.sub("api")
    api.check_unknown(("token", "public_read"))
    notify = top.get("notify", (list, str), [])
    notify = [notify] if isinstance(notify, str) else notify
    for i, url in enumerate(notify):
        if not isinstance(url, str) or "://" not in url:
            raise ConfigError(f"notify[{i}]", "expected an Apprise URL such as json://host/path")
    sched = top.sub("scheduler")
    sched.check_unknown(("workers", "per_env", "shutdown_grace", "kill_grace", "claim_ahead"))
    repos_raw = top.get("repos", list, [])
    repos = []
    seen: set[str] = set()
    for i, raw in enumerate(repos_raw):
        repo = _repo(_Reader(raw, f"repos[{i}]"))
        if repo.name in seen:
            raise ConfigError(f"repos[{i}].name", f"duplicate repo name {repo.name!r}")
        seen.add(repo.name)
        if repo.is_local and not Path(repo.url).is_absolute():
            repo = _replace_url(repo, str((base_dir / repo.url).resolve()))
        repos.append(repo)
    state_dir = Path(top.get("state_dir", str, ".hoody-state"))
    port = server.get("port", int, 8080)
    if not 0 <= port <= 65535:
        raise ConfigError("server.port", "must be between 0 and 65535")
    return Settings(
        state_dir=state_dir if state_dir.is_absolute() else (base_dir / state_dir).resolve(),
        server=ServerSettings(
            host=server.get("host", str, "127.0.0.1"),
            port=port,
            max_body=server.get("max_body", int, 5 * 1024 * 1024),
        ),
        docker=DockerSettings(publish_host=docker.get("publish_host", str, "127.0.0.1")),
        repos=tuple(repos),
        workers=max(1, top.get("workers", int, 4)),
        url_template=top.get("url_template", str),
        public_url=top.get("public_url", str),
        database=db_url,
        min_pass_interval=_duration(top, "min_pass_interval", 2.5) or 0.0,
        api=ApiSettings(
            token=api.get("token", str), public_read=api.get("public_read", bool, True)
        ),
        notify=tuple(notify),
        scheduler=SchedulerSettings(
            workers=max(1, sched.get("workers", int, 8)),
            per_env=max(1, sched.get("per_env", int, 2)),
            shutdown_grace=_duration(sched, "shutdown_grace", 30.0) or 0.0,
            kill_grace=_duration(sched, "kill_grace", 5.0) or 0.0,
            claim_ahead=_claim_ahead(sched),
        ),
    )


def _claim_ahead(sched: _Reader) -> float:
    value = _duration(sched, "claim_ahead", 1.0) or 0.0
    if value > 60:
        raise ConfigError("scheduler.claim_ahead", "at most 60s (a claim is a row of the run log)")
    return value


def _replace_url(repo: RepoSettings, url: str) -> RepoSettings:
    from dataclasses import replace

    return replace(repo, url=url)


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
