"""End to end on the real engine: git branches become Docker environments."""

from __future__ import annotations

import urllib.request
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from reconciler.core.errors import GitError, RuntimeUnavailable
from reconciler.core.model import ActionOp
from reconciler.core.naming import SHARED_NETWORK
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import Store

from .conftest import RUN_ID, GitRemote, unique

pytestmark = pytest.mark.docker

WEB = 'mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p 8080 -h /www'


def app_yaml(app: str, greeting: str = "hello", extra: str = "") -> str:
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", '{WEB}']
    env: {{GREETING: {greeting}}}
    ports: [8080]
    volumes: {{data: /data}}
    healthcheck: {{http: /, port: 8080, start_period: 15s}}
{extra}"""


def make(tmp_path: Path, repo: str, remote: GitRemote, **kw: object) -> Controller:
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(name=repo, url=str(remote.bare), branches=("main", "feature/*"), **kw),
        ),  # type: ignore[arg-type]
    )
    return Controller(settings, Store(settings.database_url), DockerRuntime())


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode().strip()


def containers(
    client: docker.DockerClient, repo: str
) -> dict[str, docker.models.containers.Container]:
    found = client.containers.list(all=True, filters={"label": [f"hoody.repo={repo}"]})
    return {c.name: c for c in found}


def test_branches_become_healthy_environments_and_commits_change_only_their_own(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app, "hello-main")})
    remote.commit("feature/billing-v2", {".hoody/app.yaml": app_yaml(app, "hello-feature")})
    remote.commit("other", {".hoody/app.yaml": app_yaml(app, "not-selected")})
    ctl = make(tmp_path, docker_repo, remote)

    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    main_env, feat_env = f"main-{app}", f"feature-billing-v2-{app}"
    assert sorted(a.env for a in result.actions if a.op is ActionOp.CREATE) == [feat_env, main_env]
    status = {e["name"]: e for e in ctl.store.environments()}
    assert status[main_env]["status"] == status[feat_env]["status"] == "healthy"
    assert get(status[main_env]["url"]) == "hello-main"
    assert get(status[feat_env]["url"]) == "hello-feature"

    # Every object carries the labels; network and volume exist per environment.
    before = containers(docker_engine, docker_repo)
    main_c = before[f"{main_env}_web"]
    for key in (
        "hoody.managed",
        "hoody.repo",
        "hoody.env",
        "hoody.service",
        "hoody.ref",
        "hoody.commit",
        "hoody.spec-hash",
    ):
        assert key in main_c.labels
    assert set(main_c.attrs["NetworkSettings"]["Networks"]) == {SHARED_NETWORK}  # one service
    assert docker_engine.volumes.get(f"{main_env}_data").attrs["Labels"]["hoody.env"] == main_env

    # A second pass right after does nothing.
    again = ctl.reconcile(docker_repo)
    assert {a.op for a in again.actions} == {ActionOp.NOOP}

    # A commit on the feature branch changes only that environment.
    remote.commit("feature/billing-v2", {".hoody/app.yaml": app_yaml(app, "feature-v2")})
    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    ops = {a.env: a.op for a in result.actions}
    assert ops == {main_env: ActionOp.NOOP, feat_env: ActionOp.UPDATE}
    after = containers(docker_engine, docker_repo)
    assert after[f"{main_env}_web"].id == main_c.id
    assert after[f"{feat_env}_web"].id != before[f"{feat_env}_web"].id
    assert len(after) == 2
    assert get(ctl.store.environment(feat_env)["url"]) == "feature-v2"

    # A restart of the service adopts what runs: no duplicates, nothing recreated.
    fresh = Controller(ctl.settings, Store(ctl.settings.database_url), DockerRuntime())
    adopted = fresh.reconcile(docker_repo)
    assert {a.op for a in adopted.actions} == {ActionOp.NOOP}
    assert {c.id for c in containers(docker_engine, docker_repo).values()} == {
        c.id for c in after.values()
    }


def test_invalid_spec_keeps_the_old_version_and_reports_file_and_line(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app)})
    ctl = make(tmp_path, docker_repo, remote)
    assert ctl.reconcile(docker_repo).ok
    running = containers(docker_engine, docker_repo)[f"main-{app}_web"]

    remote.commit("main", {".hoody/app.yaml": app_yaml(app, extra="    privileged: true\n")})
    result = ctl.reconcile(docker_repo)
    assert [a.op for a in result.actions] == [ActionOp.NOOP]
    still = containers(docker_engine, docker_repo)[f"main-{app}_web"]
    assert still.id == running.id and still.status == "running"
    events = ctl.store.events(env=f"main-{app}", kind="spec_invalid")
    assert events and ".hoody/app.yaml:" in events[0].message
    assert "privileged" in events[0].message


def test_hostile_spec_is_refused(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    hostile = f"""\
name: {app}
image: busybox:1.36
command: ["sleep", "600"]
privileged: true
volumes: {{"/": /host}}
"""
    remote.commit("main", {".hoody/app.yaml": hostile})
    ctl = make(tmp_path, docker_repo, remote)
    result = ctl.reconcile(docker_repo)
    assert [a for a in result.actions if a.op is not ActionOp.NOOP] == []
    assert containers(docker_engine, docker_repo) == {}
    message = ctl.store.events(repo=docker_repo, kind="spec_invalid")[0].message
    assert "privileged" in message and "bind mount" in message


def test_deleting_a_branch_removes_containers_network_and_volumes(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app)})
    remote.commit("feature/gone", {".hoody/app.yaml": app_yaml(app, "bye")})
    ctl = make(tmp_path, docker_repo, remote)
    assert ctl.reconcile(docker_repo).ok
    env = f"feature-gone-{app}"
    assert f"{env}_web" in containers(docker_engine, docker_repo)

    remote.delete_branch("feature/gone")
    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    assert {a.env: a.op for a in result.actions}[env] is ActionOp.REMOVE
    assert f"{env}_web" not in containers(docker_engine, docker_repo)
    assert f"main-{app}_web" in containers(docker_engine, docker_repo)
    with pytest.raises(docker.errors.NotFound):
        docker_engine.networks.get(env)
    with pytest.raises(docker.errors.NotFound):
        docker_engine.volumes.get(f"{env}_data")
    assert ctl.store.environment(env) is None
    assert ctl.store.events(env=env, kind="removed")


def test_unreachable_remote_or_engine_removes_nothing(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app)})
    remote.commit("feature/x", {".hoody/app.yaml": app_yaml(app)})
    ctl = make(tmp_path, docker_repo, remote)
    assert ctl.reconcile(docker_repo).ok
    ids = {c.id for c in containers(docker_engine, docker_repo).values()}

    broken = replace(
        ctl.settings, repos=(replace(ctl.settings.repos[0], url=str(tmp_path / "nowhere.git")),)
    )
    offline = Controller(broken, ctl.store, DockerRuntime())
    result = offline.reconcile(docker_repo)
    assert result.fetch_error and result.retry_after == GitError.retry_after
    assert all(a.op is ActionOp.NOOP for a in result.actions)
    assert {c.id for c in containers(docker_engine, docker_repo).values()} == ids
    assert ctl.store.events(repo=docker_repo, kind="fetch_failed")

    no_engine = Controller(
        ctl.settings, ctl.store, DockerRuntime(base_url="unix:///nonexistent/docker.sock")
    )
    remote.delete_branch("feature/x")
    result = no_engine.reconcile(docker_repo)
    assert result.errors and result.retry_after == RuntimeUnavailable.retry_after
    assert {c.id for c in containers(docker_engine, docker_repo).values()} == ids
    assert ctl.store.events(repo=docker_repo, kind="runtime_unavailable")


def test_unmanaged_container_with_colliding_name_is_left_alone(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    squatter = docker_engine.containers.run(
        "busybox:1.36",
        ["sleep", "600"],
        name=f"main-{app}_web",
        detach=True,
        labels={"hoody-test-run": RUN_ID},
    )
    try:
        remote.commit("main", {".hoody/app.yaml": app_yaml(app)})
        ctl = make(tmp_path, docker_repo, remote)
        result = ctl.reconcile(docker_repo)
        assert result.errors
        squatter.reload()
        assert squatter.status == "running"
        assert "hoody.managed" not in squatter.labels
        status = ctl.store.environment(f"main-{app}")
        assert status["status"] == "failed"
        assert "did not create" in status["last_error"]
    finally:
        squatter.remove(force=True)


def test_stopped_container_is_brought_back_and_suspend_leaves_it_alone(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app)})
    ctl = make(tmp_path, docker_repo, remote)
    assert ctl.reconcile(docker_repo).ok
    name = f"main-{app}_web"

    ctl.store.suspend(f"main-{app}")
    containers(docker_engine, docker_repo)[name].stop(timeout=1)
    result = ctl.reconcile(docker_repo)
    assert [a.reason for a in result.actions] == ["suspended"]
    assert containers(docker_engine, docker_repo)[name].status == "exited"

    ctl.store.resume(f"main-{app}")
    result = ctl.reconcile(docker_repo)
    assert result.ok and result.actions[0].op is ActionOp.UPDATE
    assert "exited" in result.actions[0].reason
    assert containers(docker_engine, docker_repo)[name].status == "running"
    assert get(ctl.store.environment(f"main-{app}")["url"]) == "hello"

    containers(docker_engine, docker_repo)[name].remove(force=True)
    assert ctl.reconcile(docker_repo).ok
    assert containers(docker_engine, docker_repo)[name].status == "running"


def test_failed_update_keeps_the_old_version_serving(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app, "v1")})
    ctl = make(tmp_path, docker_repo, remote)
    assert ctl.reconcile(docker_repo).ok
    old = containers(docker_engine, docker_repo)[f"main-{app}_web"]

    broken = (
        app_yaml(app, "v2")
        .replace("start_period: 15s", "start_period: 2s")
        .replace("-p 8080", "-p 9999")
    )
    remote.commit("main", {".hoody/app.yaml": broken})
    result = ctl.reconcile(docker_repo)
    assert result.errors
    now = containers(docker_engine, docker_repo)
    assert list(now) == [f"main-{app}_web"] and now[f"main-{app}_web"].id == old.id
    status = ctl.store.environment(f"main-{app}")
    assert status["status"] == "failed" and "not healthy" in status["last_error"]
    assert (
        get(
            status["url"]
            or ctl.applier.result(
                next(iter(ctl.desired(ctl.settings.repos[0])[0].environments.values()))
            ).url
        )
        == "v1"
    )


def test_build_from_dockerfile_streams_the_commit_without_checkout(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    spec = f"""\
name: {app}
services:
  web:
    build: {{context: site}}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [8080]
    healthcheck: {{http: /index.html}}
"""
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": spec,
            "site/Dockerfile": "FROM busybox:1.36\nCOPY index.html /www/index.html\n",
            "site/index.html": "built-from-git\n",
        },
    )
    ctl = make(tmp_path, docker_repo, remote)
    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    assert get(ctl.store.environment(f"main-{app}")["url"]) == "built-from-git"
    image = containers(docker_engine, docker_repo)[f"main-{app}_web"].image
    assert any(t.startswith(f"hoody/{docker_repo}-web:") for t in image.tags)

    # A commit outside the build context reuses the image and redeploys nothing.
    remote.commit("main", {"README.md": "docs only\n"})
    result = ctl.reconcile(docker_repo)
    assert [a.op for a in result.actions] == [ActionOp.NOOP]
