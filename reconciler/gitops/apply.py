"""Carry out one Action against the runtime.

create = network, volumes, containers, wait until healthy.
update = blue/green per changed service: the new container starts under a temporary
         name and must become healthy before the old one is removed and the new one takes
         the canonical name; if it never does, it is removed and the old one keeps running.
remove = containers, network, volumes.

With a `Router` (the proxy), a create's hosts answer "starting" (503) until every service
is healthy; an update switches the hosts to the new containers only once all of them are
healthy, lets the old ones drain for `drain` seconds, then removes them; a remove takes
the hosts down first ("gone", 404) so no request reaches a container being removed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from reconciler.core.errors import (
    HealthTimeout,
    ProxyFailure,
    ProxyUnavailable,
    RuntimeFailure,
    SpecError,
)
from reconciler.core.images import allowed
from reconciler.core.limits import effective_resources
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
    SPEC_FILE,
    DesiredEnvironment,
    DesiredService,
    ObservedEnvironment,
)
from reconciler.core.naming import container_name, network_name, next_container_name, volume_name
from reconciler.core.settings import (
    BuildSettings,
    ImagesSettings,
    LimitsSettings,
    ProxySettings,
    Settings,
)
from reconciler.gitops.git import Mirror
from reconciler.runtime import BuildRequest, ContainerSpec, Progress, Runtime

log = logging.getLogger(__name__)


def env_labels(env: DesiredEnvironment) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_REPO: env.repo,
        LABEL_ENV: env.name,
        LABEL_REF: env.ref.name,
        LABEL_COMMIT: env.commit,
        LABEL_SPEC_HASH: env.spec_hash,
    }


def service_labels(env: DesiredEnvironment, svc: DesiredService) -> dict[str, str]:
    labels = {**env_labels(env), LABEL_SERVICE: svc.name, LABEL_SPEC_HASH: svc.spec_hash}
    if svc.spec.ports:
        labels[LABEL_PORTS] = ",".join(str(p) for p in svc.spec.ports)
        primary = next(s for s in env.services.values() if s.spec.ports)
        if primary.name == svc.name:
            labels[LABEL_PRIMARY] = "true"
    return labels


class Router(Protocol):
    """Stable hosts in front of the environments (reconciler/proxy). Every call returns
    once the proxy serves the change; ProxyUnavailable / ProxyFailure when it cannot."""

    def route_building(self, env: DesiredEnvironment) -> None:
        """The hosts answer 503 "starting" (with Retry-After) until route_ready."""

    def route_ready(self, env: DesiredEnvironment, ports: Mapping[str, Mapping[int, int]]) -> None:
        """The hosts serve these published ports: service -> container port -> host port."""

    def route_observed(self, env: ObservedEnvironment) -> None:
        """The hosts serve what runs, from labels (environments a pass leaves alone)."""

    def route_gone(self, env: str) -> None:
        """The hosts answer 404 "gone"."""

    def retain(self, repo: str, envs: set[str]) -> None:
        """Routes of `repo`'s environments not in `envs` go."""

    def heal(self) -> None:
        """Push every route again if the proxy lost them or a write failed."""


@dataclass(frozen=True)
class ApplyResult:
    url: str | None
    ports: Mapping[str, Mapping[int, int]]  # service -> container port -> host port


class Applier:
    def __init__(
        self,
        runtime: Runtime,
        mirrors: Callable[[str], Mirror],
        publish_host: str = "127.0.0.1",
        url_template: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        limits: LimitsSettings | None = None,
        build: BuildSettings | None = None,
        images: ImagesSettings | None = None,
        router: Router | None = None,
        proxy: ProxySettings | None = None,
    ) -> None:
        self.runtime = runtime
        self.mirrors = mirrors
        self.publish_host = publish_host
        self.url_template = url_template
        self.router = router
        self.proxy = proxy  # the URLs are the proxy's hosts whenever it is configured
        self.drain = proxy.drain if proxy else 0.0
        self.sleep = sleep
        self.clock = clock
        self.limits = limits or LimitsSettings()
        self.build = build or BuildSettings()
        self.images = images or ImagesSettings()

    @classmethod
    def for_settings(
        cls,
        runtime: Runtime,
        mirrors: Callable[[str], Mirror],
        settings: Settings,
        router: Router | None = None,
    ) -> Applier:
        return cls(
            runtime,
            mirrors,
            settings.docker.publish_host,
            settings.url_template,
            limits=settings.limits,
            build=settings.build,
            images=settings.images,
            router=router,
            proxy=settings.proxy,
        )

    # -- the three operations --------------------------------------------------------

    def create(self, env: DesiredEnvironment, progress: Progress) -> ApplyResult:
        if self.router is not None:
            try:
                self.router.route_building(env)
            except (ProxyUnavailable, ProxyFailure) as e:  # route_ready below says it again
                progress(f"proxy: {e}")
        self._prepare(env, list(env.services), progress)
        started = {}
        for svc in env.services.values():
            cid = self.runtime.create_container(
                self._container(env, svc, container_name(env.name, svc.name))
            )
            self.runtime.start_container(cid)
            started[svc.name] = cid
        for name, cid in started.items():
            self.wait_healthy(env, env.services[name], cid, progress)
        if self.router is not None:
            self.router.route_ready(env, self._ports(started))
            progress(f"proxy: serving at {self.url_for(env.name, env, {})}")
        return self.result(env)

    def update(
        self,
        env: DesiredEnvironment,
        observed: ObservedEnvironment,
        services: list[str],
        progress: Progress,
    ) -> ApplyResult:
        # Leftovers of an interrupted swap go first: they are never the live version.
        for c in observed.containers:
            if c.role:
                progress(f"removing leftover container {c.name}")
                self.runtime.remove_container(c.id)
        self._prepare(env, services, progress)
        restarted, fresh = [], {}
        try:
            for name in services:
                svc = env.services[name]
                live = [c for c in observed.service_containers(name) if not c.role]
                if len(live) == 1 and live[0].spec_hash == svc.spec_hash:
                    progress(f"{name}: starting stopped container {live[0].name}")
                    self.runtime.start_container(live[0].id)
                    restarted.append((svc, live[0].id))
                    continue
                if not live:  # nothing to keep running: start under the canonical name
                    cname = container_name(env.name, name)
                else:
                    cname = next_container_name(env.name, name, svc.spec_hash)
                cid = self.runtime.create_container(self._container(env, svc, cname))
                fresh[name] = cid
                self.runtime.start_container(cid)
            for svc, cid in restarted:
                self.wait_healthy(env, svc, cid, progress)
            for name, cid in fresh.items():
                self.wait_healthy(env, env.services[name], cid, progress)
            if self.router is not None:
                # Every new version is healthy: the hosts move to them now, in one change.
                serving = {c.service: c.id for c in observed.containers if not c.role and c.running}
                serving.update({svc.name: cid for svc, cid in restarted})
                serving.update(fresh)
                self.router.route_ready(env, self._ports(serving))
                progress(f"proxy: {self.url_for(env.name, env, {})} serves the new version")
        except Exception:
            for name, cid in fresh.items():
                if observed.service_containers(name):  # the old one keeps serving
                    self._quietly_remove(cid)
            raise
        # All new versions are healthy: retire the old ones, then take the names.
        retiring = any(not old.role for name in fresh for old in observed.service_containers(name))
        if self.router is not None and retiring and self.drain > 0:
            progress(f"draining the previous version for {self.drain:g}s")
            self.sleep(self.drain)
        for name, cid in fresh.items():
            for old in observed.service_containers(name):
                if not old.role:
                    progress(f"{name}: removing previous container {old.id[:12]}")
                    self.runtime.remove_container(old.id)
            canonical = container_name(env.name, name)
            if self.runtime.inspect_container(cid).name != canonical:
                self.runtime.rename_container(cid, canonical)
        for c in observed.containers:
            if c.service not in env.services and not c.role:
                progress(f"removing container {c.name}: service {c.service} is gone")
                self.runtime.remove_container(c.id)
        return self.result(env)

    def remove(self, observed: ObservedEnvironment, progress: Progress) -> None:
        if self.router is not None:
            try:
                self.router.route_gone(observed.name)
            except (ProxyUnavailable, ProxyFailure) as e:
                # The proxy gets the table without this environment when it is back.
                progress(f"proxy: {e}; its route goes at the next heal")
        for c in observed.containers:
            progress(f"removing container {c.name}")
            self.runtime.remove_container(c.id)
        for n in observed.networks:
            self.runtime.remove_network(n)
        for v in observed.volumes:
            progress(f"removing volume {v}")
            self.runtime.remove_volume(v)

    # -- pieces ------------------------------------------------------------------------

    def _prepare(self, env: DesiredEnvironment, services: list[str], progress: Progress) -> None:
        for name in services:
            self.ensure_image(env, env.services[name], progress)
        labels = env_labels(env)
        self.runtime.ensure_network(network_name(env.name), labels)
        for svc in env.services.values():
            for vol in svc.spec.volumes:
                self.runtime.ensure_volume(volume_name(env.name, vol), labels)

    def ensure_image(
        self, env: DesiredEnvironment, svc: DesiredService, progress: Progress
    ) -> None:
        """The image of `svc`, pulled or built. A fork pull request gets no network in its
        build and no registry credentials, and without `images.allow` it may only use
        images already on the engine (its `image:` and its Dockerfile's FROM images)."""
        build = svc.spec.build
        if env.fork:
            for image, field in self._untrusted_images(svc):
                if not self._usable_by_fork(image):
                    raise SpecError(
                        SPEC_FILE,
                        None,
                        field,
                        f"image {image!r} is not present on the engine; pull requests from "
                        "forks may only use local images unless the server's images.allow "
                        "lists them",
                    )
        if self.runtime.has_image(svc.image):
            return
        if build is None:
            self.runtime.pull_image(svc.image, progress, anonymous=env.fork)
            return
        mirror = self.mirrors(env.repo)
        commit, context = env.commit, build.context
        network = "none" if env.fork or self.build.network == "none" else None
        request = BuildRequest(
            context=lambda: mirror.archive(commit, context),
            dockerfile=build.dockerfile,
            args=build.args,
            labels={LABEL_MANAGED: "true", LABEL_REPO: env.repo, LABEL_COMMIT: commit},
            network=network,
            anonymous=env.fork,
            memory=self.limits.max_memory,
        )
        self.runtime.build_image(svc.image, request, progress)

    @staticmethod
    def _untrusted_images(svc: DesiredService) -> list[tuple[str, str]]:
        field = f"services.{svc.name}"
        if svc.spec.build is None:
            return [(svc.image, f"{field}.image")]
        return [(image, f"{field}.build (FROM {image})") for image in svc.base_images]

    def _usable_by_fork(self, image: str) -> bool:
        if self.images.allow is not None:
            return allowed(image, self.images.allow)  # pulled without credentials if missing
        return self.runtime.has_image(image)

    def _container(self, env: DesiredEnvironment, svc: DesiredService, name: str) -> ContainerSpec:
        spec = svc.spec
        return ContainerSpec(
            name=name,
            image=svc.image,
            labels=service_labels(env, svc),
            network=network_name(env.name),
            alias=svc.name,
            command=spec.command,
            entrypoint=spec.entrypoint,
            env=svc.env,
            ports=spec.ports,
            publish_host=self.publish_host,
            volumes={volume_name(env.name, v): path for v, path in spec.volumes.items()},
            resources=effective_resources(spec.resources, self.limits),
            pids=self.limits.pids,
            user=spec.user,
            working_dir=spec.working_dir,
            healthcheck=spec.healthcheck,
        )

    def wait_healthy(
        self, env: DesiredEnvironment, svc: DesiredService, cid: str, progress: Progress
    ) -> None:
        """Probe fast at first (a container is often ready in milliseconds), backing off to
        the check's interval; fail early when the container exits."""
        hc = svc.spec.healthcheck
        start_period = hc.start_period if hc else 30.0
        deadline = self.clock() + start_period
        delay, last = 0.02, "not probed yet"
        progress(f"{svc.name}: waiting until healthy")
        while True:
            state = self.runtime.inspect_container(cid)
            if not state.running:
                logs = self.runtime.logs(cid, tail=10).strip()
                raise HealthTimeout(
                    f"{svc.name}: container {state.status} (exit code {state.exit_code})",
                    output=logs,
                )
            if hc is None:
                ok, last = True, "running"
            elif hc.command:
                res = self.runtime.exec(cid, list(hc.command), timeout=hc.timeout)
                ok, last = res.exit_code == 0, f"command exited {res.exit_code}"
            else:
                port = hc.port or (svc.spec.ports[0] if svc.spec.ports else 80)
                ok, last = self.runtime.probe_http(
                    cid, port, hc.http or "/", hc.timeout, self.publish_host
                )
            if ok:
                progress(f"{svc.name}: healthy ({last})")
                return
            if self.clock() >= deadline:
                raise HealthTimeout(
                    f"{svc.name}: not healthy after {start_period:.0f}s; last probe: {last}"
                )
            self.sleep(delay)
            delay = min(delay * 1.5, hc.interval if hc else 1.0)

    def _ports(self, containers: Mapping[str, str]) -> dict[str, dict[int, int]]:
        """service -> container id  =>  service -> container port -> host port."""
        return {
            name: dict(self.runtime.inspect_container(cid).ports)
            for name, cid in containers.items()
        }

    def reroute(self, env: DesiredEnvironment | None, observed: ObservedEnvironment) -> None:
        """Keep the hosts of an environment a pass leaves as it is on what runs."""
        if self.router is None:
            return
        if env is None:
            self.router.route_observed(observed)
            return
        ports = {c.service: c.ports for c in observed.containers if not c.role and c.running}
        self.router.route_ready(env, ports)

    def result(self, env: DesiredEnvironment) -> ApplyResult:
        observed = self.runtime.observe(env.repo).get(env.name)
        ports: dict[str, dict[int, int]] = {}
        if observed:
            for c in observed.containers:
                if not c.role:
                    ports[c.service] = dict(c.ports)
        return ApplyResult(self.url_for(env.name, env, ports), ports)

    def url_for(
        self, name: str, env: DesiredEnvironment | None, ports: Mapping[str, Mapping[int, int]]
    ) -> str | None:
        if self.url_template:
            return self.url_template.format(env=name)
        if self.proxy is not None:
            exposed = (
                any(s.spec.ports for s in env.services.values()) if env else any(ports.values())
            )
            return self.proxy.url(name) if exposed else None
        order = list(env.services) if env else sorted(ports)
        for svc in order:
            published = ports.get(svc) or {}
            spec_ports = env.services[svc].spec.ports if env else tuple(sorted(published))
            for p in spec_ports:
                if p in published:
                    host = (
                        "127.0.0.1" if self.publish_host in ("0.0.0.0", "") else self.publish_host
                    )
                    return f"http://{host}:{published[p]}"
        return None

    def _quietly_remove(self, cid: str) -> None:
        try:
            self.runtime.remove_container(cid)
        except RuntimeFailure as e:
            log.warning("could not remove failed new container %s: %s", cid[:12], e)
