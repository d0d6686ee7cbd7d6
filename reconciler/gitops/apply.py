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
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from reconciler.core.errors import (
    ProxyFailure,
    ProxyUnavailable,
    RuntimeFailure,
    Superseded,
)
from reconciler.core.limits import effective_resources
from reconciler.core.model import DesiredEnvironment, DesiredService, ObservedEnvironment
from reconciler.core.naming import container_name, network_name, next_container_name, volume_name
from reconciler.core.settings import (
    BuildSettings,
    ImagesSettings,
    LimitsSettings,
    ProxySettings,
    Settings,
)
from reconciler.gitops.git import Mirror
from reconciler.gitops.health import UNWATCHED, Watch, wait_healthy
from reconciler.gitops.imagecheck import ImageCheck
from reconciler.gitops.labels import env_labels, service_labels
from reconciler.gitops.router import Router
from reconciler.runtime import ContainerSpec, Progress, Runtime

log = logging.getLogger(__name__)
__all__ = ["Applier", "ApplyResult", "Router", "env_labels", "service_labels"]


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
        sleep: Callable[[float], None] | None = None,  # None: the watch's pause
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
        self.images = ImageCheck(
            runtime, mirrors, self.limits, build or BuildSettings(), images or ImagesSettings()
        )

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

    def create(
        self, env: DesiredEnvironment, progress: Progress, watch: Watch = UNWATCHED
    ) -> ApplyResult:
        if self.router is not None:
            try:
                self.router.route_building(env)
            except (ProxyUnavailable, ProxyFailure) as e:  # route_ready below says it again
                progress(f"proxy: {e}")
        self._prepare(env, list(env.services), progress, watch)
        started: dict[str, str] = {}
        try:
            for svc in env.services.values():
                watch.check()
                cid = self.runtime.create_container(
                    self._container(env, svc, container_name(env.name, svc.name))
                )
                started[svc.name] = cid
                self.runtime.start_container(cid)
            for name, cid in started.items():
                self.wait_healthy(env, env.services[name], cid, progress, watch)
        except Superseded:
            # Nothing of this version ever served: its containers go, the newer one next.
            progress("superseded by a newer version: removing this one's containers")
            for cid in started.values():
                self._quietly_remove(cid)
            raise
        ports = self._ports(started)  # every service's container is one of these
        if self.router is not None:
            self.router.route_ready(env, ports)
            progress(f"proxy: serving at {self.url_for(env.name, env, {})}")
        return ApplyResult(self.url_for(env.name, env, ports), ports)

    def update(
        self,
        env: DesiredEnvironment,
        observed: ObservedEnvironment,
        services: list[str],
        progress: Progress,
        watch: Watch = UNWATCHED,
    ) -> ApplyResult:
        # Leftovers of an interrupted swap go first: they are never the live version.
        for c in observed.containers:
            if c.role:
                progress(f"removing leftover container {c.name}")
                self.runtime.remove_container(c.id)
        self._prepare(env, services, progress, watch)
        restarted, fresh = [], {}
        try:
            for name in services:
                watch.check()
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
                self.wait_healthy(env, svc, cid, progress, watch)
            for name, cid in fresh.items():
                self.wait_healthy(env, env.services[name], cid, progress, watch)
            watch.check()  # the last step before the switch: nothing is retired yet
            if self.router is not None:
                # Every new version is healthy: the hosts move to them now, in one change.
                serving = {c.service: c.id for c in observed.containers if not c.role and c.running}
                serving.update({svc.name: cid for svc, cid in restarted})
                serving.update(fresh)
                self.router.route_ready(env, self._ports(serving))
                progress(f"proxy: {self.url_for(env.name, env, {})} serves the new version")
        except Exception as e:
            for name, cid in fresh.items():
                # the old one keeps serving; a superseded version never served at all
                if observed.service_containers(name) or isinstance(e, Superseded):
                    self._quietly_remove(cid)
            raise
        # All new versions are healthy: retire the old ones, then take the names.
        retiring = any(not old.role for name in fresh for old in observed.service_containers(name))
        if self.router is not None and retiring and self.drain > 0:
            progress(f"draining the previous version for {self.drain:g}s")
            (self.sleep or time.sleep)(self.drain)
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

    def _prepare(
        self, env: DesiredEnvironment, services: list[str], progress: Progress, watch: Watch
    ) -> None:
        # The network and volumes are made while the images are checked, pulled or built
        # (a new network costs the engine about 100 ms; a build, minutes).
        labels = env_labels(env)
        failed: list[BaseException] = []

        def storage() -> None:
            try:
                if self.network(env) == network_name(env.name):
                    self.runtime.ensure_network(network_name(env.name), labels)
                else:
                    self.runtime.ensure_shared_network()
                for svc in env.services.values():
                    for vol in svc.spec.volumes:
                        self.runtime.ensure_volume(volume_name(env.name, vol), labels)
            except BaseException as e:  # noqa: BLE001 - raised in the applying thread
                failed.append(e)

        aside = threading.Thread(target=storage, name=f"prepare {env.name}", daemon=True)
        aside.start()
        try:
            for name in services:
                self.ensure_image(env, env.services[name], progress, watch)
        finally:
            aside.join()
        if failed:
            raise failed[0]

    def ensure_image(
        self,
        env: DesiredEnvironment,
        svc: DesiredService,
        progress: Progress,
        watch: Watch = UNWATCHED,
    ) -> None:
        """The image of `svc`, pulled or built (in one of the watch's build slots)."""
        self.images.refuse_for_fork(env, svc)
        if self.images.present(svc):
            return
        watch.check()
        with watch.building():
            watch.check()

            def step(msg: str) -> None:  # each build step is a step of the work
                progress(msg)
                watch.check()

            self.images.fetch(env, svc, step)

    def network(self, env: DesiredEnvironment) -> str:
        """An environment of one service needs no network of its own (nothing in it to
        reach by name): it joins the runtime's shared network, where no container reaches
        another, and skips the engine's ~70 ms for a new bridge, which the engine makes
        one at a time. Several services get their own network, with the service names."""
        shared = self.runtime.shared_network
        return shared if shared and len(env.services) == 1 else network_name(env.name)

    def _container(self, env: DesiredEnvironment, svc: DesiredService, name: str) -> ContainerSpec:
        spec = svc.spec
        network = self.network(env)
        shared = network != network_name(env.name)
        return ContainerSpec(
            name=name,
            image=svc.image,
            labels=service_labels(env, svc),
            network=network,
            alias=None if shared else svc.name,
            # no raw sockets beside other environments' containers (no ARP spoofing)
            cap_drop=("NET_RAW",) if shared else (),
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
        self,
        env: DesiredEnvironment,
        svc: DesiredService,
        cid: str,
        progress: Progress,
        watch: Watch = UNWATCHED,
    ) -> None:
        wait_healthy(
            self.runtime,
            svc,
            cid,
            progress,
            publish_host=self.publish_host,
            clock=self.clock,
            sleep=self.sleep,
            watch=watch,
        )

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
