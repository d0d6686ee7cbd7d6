"""Stable preview URLs end to end: the real service (in-process, real socket) with real
git, real Docker and the Caddy it runs itself. Requests go to Caddy on 127.0.0.1 with a
Host header, over HTTPS with SNI trusting Caddy's local CA, and from headless Chromium at
http://<env>.localhost:<port>/ (which resolves to loopback). Never to a container address.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from reconciler.core.settings import ProxySettings, RepoSettings, ServerSettings, Settings
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, cleanup_repo, unique
from .proxy_helpers import fetch, free_port, need_caddy, need_reload_without_resets
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker

WEB = (
    "  web:\n    image: busybox:1.36\n"
    '    command: [sh, -c, \'mkdir -p /www && echo "$GREETING" > /www/index.html'
    " && exec httpd -f -p 8080 -h /www']\n"
    "    env: {{GREETING: '{greeting}'}}\n    ports: [8080]\n"
    "    healthcheck: {{http: /, port: 8080, interval: 1s, start_period: 30s}}\n"
)
WORKER = "  worker:\n    image: busybox:1.36\n    command: [sleep, '3600']\n"


def spec(app: str, greeting: str, worker: bool = True) -> dict[str, str]:
    text = f"name: {app}\nservices:\n" + WEB.format(greeting=greeting) + (WORKER if worker else "")
    return {".hoody/app.yaml": text}


@dataclass
class Setup:
    live: LiveService
    remote: GitRemote
    app: str
    port: int  # Caddy's
    first: str  # the commit main starts at

    def push(self, branch: str, greeting: str, worker: bool = True) -> str:
        sha = self.remote.commit(branch, spec(self.app, greeting, worker), base="main")
        self.live.service.trigger(self.app, "test push")
        return sha

    def status(self, env: str) -> dict[str, Any]:
        return next((r for r in self.live.store.environments() if r["name"] == env), {})

    def wait_healthy(self, env: str, commit: str, timeout: float = 90) -> dict[str, Any]:
        return wait_for(
            lambda: (
                ((s := self.status(env)).get("status") == "healthy" and s.get("commit") == commit)
                and s
            ),
            timeout,
            f"{env} healthy at {commit[:8]}",
        )

    def get(self, env: str, ca: str | None = None) -> tuple[int, str]:
        status, _, body = fetch(self.port, f"{env}.localhost", ca=ca)
        return status, body.strip()


def make_settings(root: Path, app: str, remote: GitRemote, **proxy: Any) -> Settings:
    return Settings(
        state_dir=root / "state",
        server=ServerSettings(port=free_port()),
        repos=(RepoSettings(name=app, url=str(remote.bare), poll_interval=0),),
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port()}", **{"drain": 0.5, **proxy}),
    )


@contextmanager
def running(root: Path, engine: Any, **proxy: Any) -> Iterator[Setup]:
    need_caddy()
    app = unique("px")
    remote = GitRemote(root / "git")
    first = remote.commit("main", spec(app, "main v1"))
    settings = make_settings(root, app, remote, **proxy)
    try:
        with LiveService(settings, DockerRuntime(), port=settings.server.port) as live:
            assert settings.proxy is not None
            yield Setup(live, remote, app, settings.proxy.port, first)
    finally:
        cleanup_repo(engine, app)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, docker_engine: Any) -> Iterator[Setup]:
    with running(tmp_path_factory.mktemp("proxy"), docker_engine) as s:
        s.wait_healthy(f"main-{s.app}", s.first)
        yield s


def envs_cli(s: Setup) -> dict[str, Any]:
    """`hoody envs --json` against the same state and repo, as a person would run it."""
    cfg = s.live.settings
    assert cfg.proxy is not None
    config = cfg.state_dir.parent / "hoody.yaml"
    config.write_text(
        f"state_dir: {cfg.state_dir}\nrepos:\n  - name: {s.app}\n    url: {cfg.repos[0].url}\n"
        f"proxy: {{listen: '{cfg.proxy.listen}'}}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), "envs", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return {e["name"]: e for e in json.loads(out.stdout)}


class ClientLoop:
    """Requests to one URL back to back (a new connection each, like a browser tab being
    reloaded) until stopped; bounded in time."""

    def __init__(self, port: int, host: str, limit: float = 120.0) -> None:
        self.port, self.host, self.limit = port, host, limit
        self.bodies: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                status, _, body = fetch(self.port, self.host)
            except OSError as e:
                self.failures.append(f"connection error: {e}")
                continue
            if status >= 500 or status != 200:
                self.failures.append(f"{status}: {body[:80]}")
            else:
                self.bodies.append(body.strip())

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def changes(self) -> list[str]:
        seen: list[str] = []
        for b in self.bodies:
            if not seen or seen[-1] != b:
                seen.append(b)
        return seen


def test_the_url_stays_and_an_update_drops_no_request(setup: Setup) -> None:
    need_reload_without_resets()
    s, env = setup, f"main-{setup.app}"
    url = f"http://{env}.localhost:{s.port}/"
    assert s.get(env) == (200, "main v1")
    # The URL everyone shows is the stable host: API (and so dashboard, PR comment, status).
    api = requests.get(f"{s.live.url}/api/v1/environments/{env}", timeout=5).json()
    assert api["url"] == url
    assert url in requests.get(f"{s.live.url}/", timeout=5).text
    assert envs_cli(s)[env]["url"] == url  # `hoody envs`
    assert s.get(f"{env}--8080-web") == (200, "main v1")  # the service's own host
    # The worker publishes nothing: no host of its own, and no error anywhere.
    assert fetch(s.port, f"{env}--8080-worker.localhost")[0] == 404
    assert s.status(env).get("last_error") is None

    before = s.live.service.controller.runtime.observe(s.app)[env]
    with ClientLoop(s.port, f"{env}.localhost") as loop:
        time.sleep(0.5)
        sha = s.push("main", "main v2")
        s.wait_healthy(env, sha)
        time.sleep(0.5)
    assert loop.failures == []
    assert loop.changes() == ["main v1", "main v2"]  # old -> new exactly once
    assert len(loop.bodies) > 50
    after = s.live.service.controller.runtime.observe(s.app)[env]
    old_web = next(c for c in before.containers if c.service == "web")
    new_web = next(c for c in after.containers if c.service == "web")
    assert new_web.id != old_web.id and new_web.ports != old_web.ports  # a new host port...
    assert s.get(env) == (200, "main v2")  # ...behind the same URL
    api = requests.get(f"{s.live.url}/api/v1/environments/{env}", timeout=5).json()
    assert api["url"] == url


def test_in_a_browser_the_same_url_serves_the_new_commit(setup: Setup) -> None:
    from .test_dashboard_browser import ARGS, CHROMIUM, missing

    reason = missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    s, env = setup, f"main-{setup.app}"
    url = f"http://{env}.localhost:{s.port}/"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            first = page.locator("body").inner_text().strip()
            assert first.startswith("main v")
            sha = s.push("main", "main from the browser test")
            s.wait_healthy(env, sha)
            page.goto(url)
            expect(page.locator("body")).to_have_text("main from the browser test")
            assert page.url == url
        finally:
            browser.close()


def test_a_deleted_branch_answers_404_naming_it_and_others_are_unaffected(setup: Setup) -> None:
    s, main, gone = setup, f"main-{setup.app}", f"feature-gone-{setup.app}"
    sha = s.push("feature/gone", "feature v1")
    s.wait_healthy(gone, sha)
    assert s.get(gone) == (200, "feature v1")
    s.remote.delete_branch("feature/gone")
    s.live.service.trigger(s.app, "branch deleted")
    wait_for(lambda: not s.status(gone), 60, "the environment removed")
    status, body = s.get(gone)
    assert status == 404
    assert f"{gone} is gone" in body and "removed" in body
    assert s.get(main)[0] == 200


def test_caddy_killed_comes_back_with_every_route(setup: Setup) -> None:
    s, env = setup, f"main-{setup.app}"
    proxy = s.live.service.proxy
    assert proxy is not None and proxy.process is not None
    pid = proxy.process.pid
    assert pid is not None
    expected = s.get(env)
    os.kill(pid, signal.SIGKILL)
    s.live.service.trigger(s.app, "after the kill")  # a pass meanwhile tears nothing down
    got = wait_for(lambda: _try(s, env) == expected, 30, "routes back after SIGKILL")
    assert got
    assert proxy.process.pid != pid
    assert s.get(f"{env}--8080-web") == expected
    s.live.settle()
    assert s.live.service.controller.runtime.observe(s.app)[env].containers  # still there


def _try(s: Setup, env: str) -> tuple[int, str] | None:
    try:
        return s.get(env)
    except OSError:
        return None


def test_tls_internal_serves_https_trusting_caddys_local_ca(
    tmp_path: Path, docker_engine: Any
) -> None:
    with running(tmp_path, docker_engine, tls="internal") as s:
        env = f"main-{s.app}"
        s.wait_healthy(env, s.first)
        url = f"https://{env}.localhost:{s.port}/"
        assert (
            requests.get(f"{s.live.url}/api/v1/environments/{env}", timeout=5).json()["url"] == url
        )
        proxy = s.live.service.proxy
        assert proxy is not None and proxy.process is not None
        root = proxy.process.root_ca
        assert root == s.live.settings.state_dir / "caddy/data/pki/authorities/local/root.crt"
        wait_for(root.exists, 10, "the local CA")
        assert s.get(env, ca=str(root)) == (200, "main v1")
        # The ask endpoint (on-demand TLS): yes for hosts of environments, no otherwise.
        ask = f"{s.live.url}/proxy/ask"
        assert (
            requests.get(ask, params={"domain": f"{env}.localhost"}, timeout=5).status_code == 200
        )
        assert (
            requests.get(
                ask, params={"domain": f"{env}--8080-web.localhost"}, timeout=5
            ).status_code
            == 200
        )
        for other in (f"nope-{s.app}.localhost", f"{env}.example.com", ""):
            assert requests.get(ask, params={"domain": other}, timeout=5).status_code == 404
        with pytest.raises(OSError):  # no certificate for a host of no environment
            fetch(s.port, f"nope-{s.app}.localhost", ca=str(root))


def test_caddy_unreachable_is_reported_and_tears_nothing_down(
    tmp_path: Path, docker_engine: Any
) -> None:
    dead = f"unix/{tmp_path / 'no-caddy.sock'}"
    with running(tmp_path, docker_engine, admin=dead) as s:
        env = f"main-{s.app}"
        first = s.first
        runtime = s.live.service.controller.runtime
        wait_for(lambda: s.status(env).get("status") == "degraded", 60, "env degraded")
        assert "proxy" in s.status(env)["last_error"]
        ready = requests.get(f"{s.live.url}/readyz", timeout=5)
        assert ready.status_code == 503
        assert "unreachable" in ready.json()["checks"]["proxy"]
        kinds = {e.kind for e in s.live.store.events(repo=s.app, limit=100)}
        assert "proxy_unavailable" in kinds
        live_before = {c.id for c in runtime.observe(s.app)[env].containers}
        s.push("main", "main v2")

        def interrupted() -> bool:
            return any(
                "update interrupted" in e.message for e in s.live.store.events(env=env, limit=20)
            )

        wait_for(interrupted, 60, "the update stopped at the route switch")
        after = runtime.observe(s.app)[env]
        assert {c.id for c in after.containers} == live_before  # the old version kept
        assert after.commit == first


def test_a_restarted_hoody_routes_from_labels_alone(tmp_path: Path, docker_engine: Any) -> None:
    """The routes come back from the containers' labels before any pass has run; an
    environment whose containers are gone meanwhile gets no route (its host is 404)."""
    need_caddy()
    app = unique("px")
    remote = GitRemote(tmp_path / "git")
    first = remote.commit("main", spec(app, "main v1"))
    remote.commit("feature/x", spec(app, "feature v1"), base="main")
    settings = make_settings(tmp_path, app, remote)
    assert settings.proxy is not None
    port, main, feature = settings.proxy.port, f"main-{app}", f"feature-x-{app}"
    try:
        with LiveService(settings, DockerRuntime(), port=settings.server.port) as live:
            s = Setup(live, remote, app, port, first)
            s.wait_healthy(main, first)
            wait_for(lambda: s.status(feature).get("status") == "healthy", 90, "feature")
        # hoody (and its Caddy) stopped; the containers still run. Remove one environment's.
        for c in docker_engine.containers.list(
            all=True, filters={"label": [f"hoody.env={feature}"]}
        ):
            c.remove(force=True)
        with pytest.raises(OSError):
            fetch(port, f"{main}.localhost", timeout=1)
        restarted = LiveService(settings, DockerRuntime(), port=settings.server.port)
        try:
            restarted.service._start_proxy()  # what start() does first; no pass has run
            assert fetch(port, f"{main}.localhost")[2].strip() == "main v1"
            assert fetch(port, f"{main}--8080-web.localhost")[2].strip() == "main v1"
            status, _, body = fetch(port, f"{feature}.localhost")
            assert status == 404 and f"{feature} is gone" in body
        finally:
            restarted.server.close()
            restarted.service.stop()
    finally:
        cleanup_repo(docker_engine, app)
