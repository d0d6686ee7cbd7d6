"""The order of the applier's calls to the Router protocol, over real git and the
in-memory runtime (fast logic; the same behaviour end to end with real Docker and Caddy
is in test_proxy_docker.py): hosts answer "starting" before anything runs, switch only
after every new container is healthy, the old one drains and only then goes, and a
proxy that cannot be told keeps the old version running."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.core.errors import ProxyUnavailable
from reconciler.core.model import DesiredEnvironment, ObservedEnvironment
from reconciler.core.settings import ProxySettings, RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.gitops.records import EnvChange
from reconciler.runtime.memory import MemoryRuntime
from reconciler.serve.feedback import render
from reconciler.storage.store import Store

from .conftest import GitRemote

SPEC = (
    "name: shop\nservices:\n"
    "  web: {{image: busybox:1.36, ports: [8080], env: {{V: '{v}'}}, healthcheck: {{http: /}}}}\n"
    "  worker: {{image: busybox:1.36}}\n"
)


class Recorder:
    """A Router that writes what it is told into the runtime's call log."""

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.fail: set[str] = set()
        self.ready: list[Mapping[str, Mapping[int, int]]] = []

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if what in self.fail:
            raise ProxyUnavailable("caddy admin API unreachable")

    def route_building(self, env: DesiredEnvironment) -> None:
        self._call("route_building")

    def route_ready(self, env: DesiredEnvironment, ports: Mapping[str, Mapping[int, int]]) -> None:
        self._call("route_ready")
        self.ready.append(ports)

    def route_observed(self, env: ObservedEnvironment) -> None:
        self._call("route_observed")

    def route_gone(self, env: str) -> None:
        self._call("route_gone")

    def retain(self, repo: str, envs: set[str]) -> None:
        self._call("retain")

    def heal(self) -> None:
        self._call("heal")


class Changes:
    """A controller listener, as PR feedback is one."""

    def __init__(self, into: list[EnvChange]) -> None:
        self.into = into

    def environment_changed(self, change: EnvChange) -> None:
        self.into.append(change)

    def pull_request_decided(
        self, repo: str, number: int, sha: str, message: str, queued: bool
    ) -> None:
        pass


def make(tmp_path: Path, remote: GitRemote, **settings: object):  # type: ignore[no-untyped-def]
    runtime = MemoryRuntime()
    runtime.images.add("busybox:1.36")
    rec = Recorder(runtime.calls)
    cfg = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
        proxy=ProxySettings(drain=0.25),
        **settings,  # type: ignore[arg-type]
    )
    ctl = Controller(cfg, Store(cfg.database_url), runtime, router=rec)
    ctl.applier.sleep = lambda s: runtime.calls.append(f"sleep {s}")
    return ctl, runtime, rec


def after(calls: list[str], first: str) -> list[str]:
    return calls[calls.index(first) :]


def test_create_update_remove_order(tmp_path: Path, remote: GitRemote) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="1")})
    ctl, rt, rec = make(tmp_path, remote)
    changes: list[EnvChange] = []
    ctl.listeners.append(Changes(changes))
    assert ctl.reconcile("shop").ok
    calls = [c for c in rt.calls if c.startswith(("route", "start", "create", "sleep"))]
    assert calls.index("route_building") < calls.index("create")
    assert calls[-1] == "route_ready"  # after both containers started and were healthy
    web = rt.observe("shop")["main-shop"].service_containers("web")[0]
    assert rec.ready[-1]["web"] == web.ports
    status = ctl.store.environment("main-shop")
    assert status and status["url"] == "http://main-shop.localhost:8088/"
    # What the PR comment and the commit status are made from carries the same URL.
    healthy = next(c for c in changes if c.status == "healthy")
    body, state, _ = render("main-shop", "healthy", healthy.info)
    assert "- URL: http://main-shop.localhost:8088/" in body and state == "success"

    rt.calls.clear()
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="2")})
    assert ctl.reconcile("shop").ok
    seq = [c for c in rt.calls if c.startswith(("route_ready", "sleep", "remove", "rename"))]
    assert seq == ["route_ready", "sleep 0.25", "remove", "rename"]
    new_web = rt.observe("shop")["main-shop"].service_containers("web")[0]
    assert rec.ready[-1]["web"] == new_web.ports != web.ports

    remote.commit("f/x", {}, base="main")
    assert ctl.reconcile("shop").ok
    rt.calls.clear()
    remote.delete_branch("f/x")
    assert ctl.reconcile("shop").ok
    seq = [c for c in rt.calls if c in ("route_gone", "remove")]
    assert seq[0] == "route_gone" and "remove" in seq


def test_an_unhealthy_new_version_never_gets_the_hosts(tmp_path: Path, remote: GitRemote) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="1")})
    ctl, rt, _ = make(tmp_path, remote)
    assert ctl.reconcile("shop").ok
    rt.calls.clear()
    remote.commit(
        "main",
        {".hoody/app.yaml": SPEC.format(v="2").replace("busybox:1.36, ports", "bad:1, ports")},
    )
    rt.images.add("bad:1")
    rt.unhealthy_images.add("bad:1")
    ctl.applier.clock = iter(range(0, 10_000, 100)).__next__  # start_period passes at once
    assert not ctl.reconcile("shop").ok
    assert "route_ready" not in rt.calls


def test_a_proxy_that_cannot_switch_keeps_the_old_version(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="1")})
    ctl, rt, rec = make(tmp_path, remote)
    assert ctl.reconcile("shop").ok
    before = {c.id for c in rt.observe("shop")["main-shop"].containers}
    rec.fail = {"route_ready", "heal"}
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="2")})
    result = ctl.reconcile("shop")
    assert any("unreachable" in e for e in result.errors) and result.retry_after == 10.0
    assert {c.id for c in rt.observe("shop")["main-shop"].containers} == before
    kinds = [e.kind for e in ctl.store.events(repo="shop", limit=50)]
    assert "proxy_unavailable" in kinds
    # Back: the next pass switches (the failure was not remembered as a bad version).
    rec.fail = set()
    assert ctl.reconcile("shop").ok
    assert {c.id for c in rt.observe("shop")["main-shop"].containers} != before


def test_url_template_still_wins_and_no_port_means_no_url(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC.format(v="1")})
    ctl, _, _ = make(tmp_path, remote, url_template="https://{env}.review.example.com")
    assert ctl.reconcile("shop").ok
    assert ctl.store.environment("main-shop")["url"] == "https://main-shop.review.example.com"  # type: ignore[index]
    remote.commit("jobs", {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n"}, base="main")
    ctl2, _, _ = make(tmp_path / "2", remote)
    assert ctl2.reconcile("shop").ok
    assert ctl2.store.environment("jobs-shop")["url"] is None  # type: ignore[index]


def test_a_create_that_never_got_healthy_keeps_answering_starting(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit(
        "main",
        {".hoody/app.yaml": SPEC.format(v="1").replace("busybox:1.36, ports", "bad:1, ports")},
    )
    ctl, rt, _ = make(tmp_path, remote)
    rt.images.add("bad:1")
    rt.unhealthy_images.add("bad:1")
    ctl.applier.clock = iter(range(0, 10_000, 100)).__next__  # start_period passes at once
    assert not ctl.reconcile("shop").ok
    assert "route_building" in rt.calls and "route_ready" not in rt.calls
    rt.calls.clear()
    ctl.reconcile("shop")  # a no-op pass: the failed version's containers run, unhealthy
    assert not any(c.startswith(("route_ready", "route_observed")) for c in rt.calls)
