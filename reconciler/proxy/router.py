"""The routing table of one hoody and its writes to Caddy.

The table (environment -> EnvRoute) is what hoody wants Caddy to serve. It is rebuilt
from container labels at start and kept by the applier (`route_building`, `route_ready`,
`route_gone`) and every pass (`route_observed`, `retain`, `heal`). A change is written as
one PATCH of the environment's route by `@id` (or an insert at the front when new); the
table entry moves only once Caddy took it. A write that fails leaves the table as it was
and marks the router dirty, so the next `heal` pushes the whole server again — which is
also how a Caddy that restarted or lost its configuration gets every route back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.core.errors import ProxyFailure, ProxyUnavailable
from reconciler.core.model import DesiredEnvironment, ObservedEnvironment
from reconciler.core.naming import host_labels
from reconciler.core.settings import ProxySettings
from reconciler.proxy import config
from reconciler.proxy.admin import CaddyAdmin, NotFound

log = logging.getLogger(__name__)


def published_of(env: DesiredEnvironment) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, svc.spec.ports) for name, svc in env.services.items() if svc.spec.ports]


def published_observed(env: ObservedEnvironment) -> list[tuple[str, tuple[int, ...]]]:
    """Spec order is not in the engine's listing: the primary service (label) first, then
    by name; ports in the order of the hoody.ports label."""
    live = [c for c in env.containers if not c.role and c.published]
    live.sort(key=lambda c: (not c.primary, c.service))
    return [(c.service, c.published) for c in live]


class CaddyRouter:
    def __init__(
        self,
        proxy: ProxySettings,
        admin: CaddyAdmin,
        publish_host: str = "127.0.0.1",
        ask_url: str = "",
        full_config: Callable[[list[config.EnvRoute]], dict[str, Any]] | None = None,
    ) -> None:
        self.proxy = proxy
        self.admin = admin
        self.ask_url = ask_url
        host = "127.0.0.1" if publish_host in ("0.0.0.0", "") else publish_host
        self.upstream_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        # Set when hoody runs Caddy itself: a heal loads the whole config (admin, storage,
        # TLS); otherwise only hoody's server (and TLS policy) inside someone's Caddy.
        self.full_config = full_config
        self.table: dict[str, config.EnvRoute] = {}
        self.dirty = True  # nothing pushed yet
        self.last_error: str | None = None
        self._lock = threading.RLock()

    # -- what the applier and the controller call ---------------------------------------

    def route_building(self, env: DesiredEnvironment) -> None:
        labels = host_labels(env.name, published_of(env))
        self._set(env.name, env.repo, tuple((label, None) for label, _, _ in labels))

    def route_ready(self, env: DesiredEnvironment, ports: Mapping[str, Mapping[int, int]]) -> None:
        """Point the environment's hosts at these published ports (service -> container
        port -> host port); returns once Caddy serves the new route."""
        self._ready(env.name, env.repo, published_of(env), ports)

    def route_observed(self, env: ObservedEnvironment) -> None:
        ports = {c.service: c.ports for c in env.containers if not c.role and c.running}
        self._ready(env.name, env.repo, published_observed(env), ports)

    def route_gone(self, env: str) -> None:
        with self._lock:
            if env not in self.table:
                return
            try:
                self.admin.request("DELETE", f"/id/{config.route_id(env)}")
            except NotFound:
                pass
            except (ProxyUnavailable, ProxyFailure) as e:
                self._failed(e)
                del self.table[env]  # the next heal pushes the table without it
                raise
            del self.table[env]

    def retain(self, repo: str, envs: set[str]) -> None:
        """Drop the routes of `repo`'s environments that are neither running nor wanted."""
        with self._lock:
            for name in [n for n, r in self.table.items() if r.repo == repo and n not in envs]:
                self.route_gone(name)

    def rebuild(self, observed: Mapping[str, ObservedEnvironment], push: bool = True) -> None:
        """The table from labels alone (at start), then one push of the whole server."""
        with self._lock:
            self.table = {}
            for env in observed.values():
                route = self._route(env.name, env.repo, published_observed(env), self._ports(env))
                if route.hosts:
                    self.table[env.name] = route
            self.dirty = True
        if push:
            self.heal()

    def heal(self) -> None:
        """Push everything again if a write failed or Caddy lost hoody's server (restarted,
        killed, reloaded by someone). One GET when all is well."""
        with self._lock:
            if not self.dirty:
                try:
                    self.admin.get(f"/id/{config.CATCHALL_ID}")
                    self.last_error = None
                    return
                except NotFound:
                    log.warning("caddy has lost hoody's routes; pushing all %d", len(self.table))
                except ProxyUnavailable as e:
                    self._failed(e)
                    raise
            try:
                self._push_all()
            except (ProxyUnavailable, ProxyFailure) as e:
                self._failed(e)
                raise
            self.dirty = False
            self.last_error = None

    def knows(self, host: str) -> bool:
        """True when `host` (as Caddy's on-demand `ask` names it) is a host of a routed
        environment: certificates are issued for those and nothing else."""
        suffix = f".{self.proxy.domain}"
        host = host.lower().rstrip(".")
        if not host.endswith(suffix):
            return False
        label = host[: -len(suffix)]
        with self._lock:
            return any(label in r.labels() for r in self.table.values())

    def check(self) -> None:
        """For /readyz: raise unless Caddy answers and serves hoody's server."""
        try:
            self.admin.get(f"/id/{config.CATCHALL_ID}")
        except NotFound as e:
            raise ProxyFailure(
                "caddy answers but does not serve hoody's routes (restored on the next pass)"
            ) from e

    def locked(self) -> threading.RLock:
        """Hold while replacing Caddy wholesale (no route write in between)."""
        return self._lock

    # -- pieces --------------------------------------------------------------------------

    def _ports(self, env: ObservedEnvironment) -> dict[str, Mapping[int, int]]:
        return {c.service: c.ports for c in env.containers if not c.role and c.running}

    def _route(
        self,
        name: str,
        repo: str,
        published: list[tuple[str, tuple[int, ...]]],
        ports: Mapping[str, Mapping[int, int]],
    ) -> config.EnvRoute:
        hosts = []
        for label, service, port in host_labels(name, published):
            host_port = (ports.get(service) or {}).get(port)
            hosts.append((label, f"{self.upstream_host}:{host_port}" if host_port else None))
        return config.EnvRoute(name, repo, tuple(hosts))

    def _ready(
        self,
        name: str,
        repo: str,
        published: list[tuple[str, tuple[int, ...]]],
        ports: Mapping[str, Mapping[int, int]],
    ) -> None:
        route = self._route(name, repo, published, ports)
        if not route.hosts:  # nothing published: no route, and none left behind
            self.route_gone(name)
            return
        self._set(name, repo, route.hosts)

    def _set(self, name: str, repo: str, hosts: tuple[tuple[str, str | None], ...]) -> None:
        route = config.EnvRoute(name, repo, hosts)
        with self._lock:
            if self.table.get(name) == route and not self.dirty:
                return
            if not hosts:
                self.route_gone(name)
                return
            body = config.env_route(route, self.proxy.domain)
            try:
                try:
                    self.admin.request("PATCH", f"/id/{config.route_id(name)}", body)
                except NotFound:
                    self.admin.request("PUT", f"{config.ROUTES}/0", body)
            except (ProxyUnavailable, ProxyFailure) as e:
                self._failed(e)
                raise
            self.table[name] = route

    def _failed(self, e: Exception) -> None:
        self.dirty = True
        self.last_error = str(e)

    def _push_all(self) -> None:
        routes = list(self.table.values())
        if self.full_config is not None:
            self.admin.request("POST", "/load", self.full_config(routes))
            return
        # Someone else's Caddy: only hoody's server and TLS policy are ours to write.
        self._ensure(
            f"/config/apps/http/servers/{config.SERVER}", config.server(self.proxy, routes)
        )
        if self.proxy.tls != "off":
            policy = config.tls_policy(self.proxy)
            try:
                self.admin.request("PATCH", f"/id/{config.TLS_POLICY_ID}", policy)
            except NotFound:
                self._ensure_in_list("/config/apps/tls/automation/policies", policy)
            # Caddy has one on-demand `ask` for all its policies: it becomes hoody's.
            self._ensure("/config/apps/tls/automation/on_demand", {"ask": self.ask_url})
            if self.proxy.tls == "internal":
                self._ensure("/config/apps/pki/certificate_authorities/local/install_trust", False)

    def _ensure(self, path: str, value: Any) -> None:
        """POST (create or replace) `path`, creating missing parents, never replacing a
        parent that exists."""
        try:
            self.admin.request("POST", path, value)
            return
        except NotFound:
            pass
        parent, _, key = path.rpartition("/")
        if self.admin.get(parent) is not None:
            raise ProxyFailure(f"caddy refused to create {path}")
        self._ensure(parent, {key: value})

    def _ensure_in_list(self, path: str, value: Any) -> None:
        try:
            self.admin.request("PUT", f"{path}/0", value)
        except NotFound:
            self._ensure(path, [value])
