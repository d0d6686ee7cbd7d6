"""One environment never waits for another (issue 12), on the real engine and real git,
through the serve loop (`Service`, in-process): a pass hands each environment to the
per-environment queue, a newer commit supersedes work in flight, a restart resumes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.core.settings import RepoSettings, Settings
from reconciler.runtime.docker import DockerRuntime
from reconciler.serve.service import Service
from reconciler.storage.store import Store

from .conftest import GitRemote, unique

pytestmark = pytest.mark.docker

WEB = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


def spec(app: str, path: str = "/", start: str = "60s", before: str = "") -> str:
    """A web service; `path` /missing never passes its health check (404)."""
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", '{before}{WEB}']
    ports: [8080]
    healthcheck: {{http: {path}, port: 8080, interval: 1s, start_period: {start}}}
"""


def build_spec(app: str) -> str:
    return f"""\
name: {app}
services:
  web:
    build: {{context: .}}
    command: ["sh", "-c", '{WEB}']
    ports: [8080]
    healthcheck: {{http: /, port: 8080, start_period: 20s}}
"""


def settings(tmp_path: Path, repo: str, remote: GitRemote) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(
                name=repo, url=str(remote.bare), branches=("main", "p/*"), poll_interval=0
            ),
        ),
        min_pass_interval=0.0,
    )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Settings], Service]]:
    started: list[Service] = []

    def start(s: Settings) -> Service:
        svc = Service(s, Store(s.database_url), DockerRuntime())
        svc.start(watch=False)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop(timeout=5)


def status(svc: Service, env: str) -> dict[str, Any]:
    return svc.store.environment(env) or {}


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def containers(client: docker.DockerClient, repo: str, **labels: str) -> list[Any]:
    wanted = [f"hoody.repo={repo}", *(f"hoody.{k}={v}" for k, v in labels.items())]
    return client.containers.list(all=True, filters={"label": wanted})


def test_a_branch_stuck_in_its_health_wait_never_holds_back_another(
    tmp_path: Path, remote: GitRemote, docker_repo: str, serve: Callable[[Settings], Service]
) -> None:
    app = unique("a")
    a_env, b_env = f"main-{app}", f"p-b0-{app}"
    remote.commit("main", {".hoody/app.yaml": spec(app, "/missing", "60s")})
    svc = serve(settings(tmp_path, docker_repo, remote))
    wait_for(lambda: status(svc, a_env).get("status") == "building", 30, "A building")

    remote.commit("p/b0", {".hoody/app.yaml": spec(app)}, base="main")
    pushed = time.monotonic()
    svc.trigger(docker_repo, "push of p/b0")
    wait_for(lambda: status(svc, b_env).get("status") == "healthy", 15, "B healthy")
    took = time.monotonic() - pushed
    assert took < 10, f"B took {took:.1f}s"
    assert status(svc, a_env)["status"] == "building"  # A still waits for its health

    failed = wait_for(
        lambda: (s := status(svc, a_env)).get("status") == "failed" and s, 80, "A failed"
    )
    assert "not healthy after 60s; last probe:" in failed["last_error"]
    assert "404" in failed["last_error"]
    assert status(svc, b_env)["status"] == "healthy"


def test_a_build_never_holds_back_another_branch(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    docker_engine: docker.DockerClient,
    serve: Callable[[Settings], Service],
) -> None:
    app = unique("b")
    a_env, b_env = f"main-{app}", f"p-b0-{app}"
    dockerfile = f"FROM busybox:1.36\nRUN echo {docker_repo} && sleep 60\n"
    remote.commit("main", {".hoody/app.yaml": build_spec(app), "Dockerfile": dockerfile})
    svc = serve(settings(tmp_path, docker_repo, remote))
    wait_for(lambda: status(svc, a_env).get("status") == "building", 30, "A building")
    started = time.monotonic()

    remote.commit("p/b0", {".hoody/app.yaml": spec(app), "Dockerfile": ""}, base="main")
    svc.trigger(docker_repo, "push of p/b0")
    wait_for(lambda: status(svc, b_env).get("status") == "healthy", 15, "B healthy")
    assert time.monotonic() - started < 15  # A's build takes 60 s
    assert status(svc, a_env)["status"] == "building"
    assert not containers(docker_engine, docker_repo, env=a_env)
    # A's build ends; A then starts as usual (bounded: the build sleeps 60 s)
    wait_for(lambda: status(svc, a_env).get("status") == "healthy", 90, "A healthy")


def test_a_newer_commit_supersedes_a_version_stuck_in_its_health_wait(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    docker_engine: docker.DockerClient,
    serve: Callable[[Settings], Service],
) -> None:
    app = unique("s")
    env = f"main-{app}"
    first = remote.commit("main", {".hoody/app.yaml": spec(app, "/missing", "60s")})
    svc = serve(settings(tmp_path, docker_repo, remote))
    wait_for(lambda: containers(docker_engine, docker_repo, commit=first), 30, "commit 1 up")
    time.sleep(3)
    second = remote.commit("main", {".hoody/app.yaml": spec(app)})
    pushed = time.monotonic()
    svc.trigger(docker_repo, "push of a fix")
    wait_for(
        lambda: (s := status(svc, env)).get("status") == "healthy" and s["commit"] == second,
        15,
        "commit 2 healthy",
    )
    assert time.monotonic() - pushed < 10
    assert not containers(docker_engine, docker_repo, commit=first)
    live = containers(docker_engine, docker_repo, env=env)
    assert [c.name for c in live] == [f"{env}_web"]
    kinds = [e.kind for e in svc.store.events(env=env, repo=docker_repo)]
    assert "superseded" in kinds


def test_a_restart_mid_build_and_mid_health_wait_resumes_without_duplicates_or_orphans(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    docker_engine: docker.DockerClient,
    serve: Callable[[Settings], Service],
) -> None:
    app = unique("r")
    waiting, building = f"main-{app}", f"p-b1-{app}"
    # main: ready about 8 s after it starts; p/b1: a build that takes about 8 s
    remote.commit("main", {".hoody/app.yaml": spec(app, "/", "40s", before="sleep 8; ")})
    dockerfile = f"FROM busybox:1.36\nRUN echo {docker_repo} && sleep 8\n"
    remote.commit(
        "p/b1", {".hoody/app.yaml": build_spec(app), "Dockerfile": dockerfile}, base="main"
    )
    s = settings(tmp_path, docker_repo, remote)
    first = serve(s)
    wait_for(lambda: containers(docker_engine, docker_repo, env=waiting), 30, "container up")
    assert status(first, waiting)["status"] == "building"
    assert status(first, building)["status"] == "building"
    assert not containers(docker_engine, docker_repo, env=building)  # still building
    first.stop(timeout=5)
    before = [c.id for c in containers(docker_engine, docker_repo, env=waiting)]
    assert len(before) == 1  # a stop leaves what it started as it is

    second = serve(s)
    for env in (waiting, building):
        wait_for(lambda env=env: status(second, env).get("status") == "healthy", 60, env)
    after = containers(docker_engine, docker_repo, env=waiting)
    assert [c.id for c in after] == before  # resumed, not started twice
    for env in (waiting, building):
        assert [c.name for c in containers(docker_engine, docker_repo, env=env)] == [f"{env}_web"]
    assert len(containers(docker_engine, docker_repo)) == 2  # nothing else of the repo
