"""Attacks through the build and the health check, on the real engine: a Dockerfile that
makes the engine fetch from the host's loopback, a fork PR build that reaches the
network, a container that redirects the health probe to the host."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import requests

from reconciler.core.settings import (
    ApiSettings,
    BuildSettings,
    PullRequestSettings,
    RepoSettings,
    Settings,
)
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import PullRequestState

from .conftest import GitRemote, git, unique
from .hostile_helpers import build_spec, controller, events, recorder
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker


def test_add_from_the_hosts_loopback_is_refused_before_any_build(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    with recorder() as meta:
        remote.commit(
            "main",
            {
                ".hoody/app.yaml": build_spec(app),
                "Dockerfile": f"FROM busybox:1.36\nADD {meta.url}/meta /s\nRUN cat /s && false\n",
            },
        )
        ctl = controller(tmp_path, remote, docker_repo)
        result = ctl.reconcile(docker_repo)

        assert meta.requests == []  # the engine never fetched it
    assert result.actions == []
    said = events(ctl, docker_repo)
    assert f"Dockerfile:2: ADD: {meta.url}/meta: remote sources are not allowed" in said
    assert "metadata-secret-value" not in said
    assert docker_engine.images.list(filters={"label": [f"hoody.repo={docker_repo}"]}) == []
    assert ctl.store.environments(docker_repo) == []


TOKEN = "reader-token-0123456789"
NETS = "FROM busybox:1.36\nRUN ls /sys/class/net > /nets\n"


def _nets(client: docker.DockerClient, repo: str, env: str) -> str:
    (c,) = client.containers.list(filters={"label": [f"hoody.repo={repo}", f"hoody.env={env}"]})
    return c.exec_run(["cat", "/nets"]).output.decode().split()


def test_fork_pull_request_builds_run_without_network(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": build_spec(app), "Dockerfile": NETS})
    # The same RUN step: the fork's build must not reuse main's cached layer.
    remote.commit("fork", {"Dockerfile": NETS + "# from a fork\n"}, base="main")
    git(remote.work, "push", "-q", "-f", "origin", "fork:refs/pull/3/head")
    ctl = controller(
        tmp_path,
        remote,
        docker_repo,
        repo_kw={"pull_requests": PullRequestSettings(enabled=True, forks=True)},
        branches=("main",),
    )
    assert ctl.reconcile(docker_repo).ok  # main first (the PR's state is not known yet)
    assert "eth0" in _nets(docker_engine, docker_repo, f"main-{app}")  # the operator's default
    ctl.store.record_pull_request(docker_repo, PullRequestState(3, "open", is_fork=True))

    result = ctl.reconcile(docker_repo)

    assert result.ok, result.errors
    assert _nets(docker_engine, docker_repo, f"pr-3-{app}") == ["lo"]


def test_the_operator_can_take_the_network_from_branch_builds(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": build_spec(app),
            "Dockerfile": NETS.replace("> /nets", "> /nets && echo none"),
        },
    )
    ctl = controller(tmp_path, remote, docker_repo, build=BuildSettings(network="none"))

    assert ctl.reconcile(docker_repo).ok
    assert _nets(docker_engine, docker_repo, f"main-{app}") == ["lo"]


CGI_REDIRECT = """#!/bin/sh
printf 'Status: 302 Found\\r\\nLocation: {target}\\r\\n\\r\\n'
"""
REDIRECTOR = """FROM busybox:1.36
COPY h /www/cgi-bin/h
RUN chmod +x /www/cgi-bin/h
"""


def test_health_checks_never_follow_a_redirect_to_the_host(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    with recorder() as admin:
        target = f"{admin.url}/admin/delete?all=1"
        remote.commit(
            "main",
            {
                ".hoody/app.yaml": f"""\
name: {app}
services:
  web:
    build: .
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [8080]
    healthcheck: {{http: /cgi-bin/h, port: 8080, start_period: 2s}}
""",
                "Dockerfile": REDIRECTOR,
                "h": CGI_REDIRECT.format(target=target),
            },
        )
        ctl = controller(tmp_path, remote, docker_repo)
        result = ctl.reconcile(docker_repo)

        assert admin.requests == []  # the service never requested the URL
    assert not result.ok
    row = ctl.store.environment(f"main-{app}")
    assert row is not None and row["status"] == "failed"
    assert f"unhealthy: redirect to {target}" in row["last_error"]
    assert "(not followed)" in row["last_error"]


def test_build_output_is_kept_apart_and_only_for_authenticated_readers(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("a")
    hidden = "c2VjcmV0LWJ1aWxkLW91dHB1dA=="  # what the build prints, decoded
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": build_spec(app),
            "Dockerfile": f"FROM busybox:1.36\nRUN echo {hidden} | base64 -d && false\n",
        },
    )
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name=docker_repo, url=str(remote.bare), poll_interval=0),),
        api=ApiSettings(token=TOKEN, public_read=True),
    )
    env = f"main-{app}"
    with LiveService(settings, DockerRuntime()) as live:
        live.settle()
        wait_for(lambda: (live.store.environment(env) or {}).get("status") == "failed", 60, "fail")
        anonymous = requests.get(f"{live.url}/api/v1/environments/{env}", timeout=5).json()
        signed = requests.get(
            f"{live.url}/api/v1/environments/{env}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ).json()
        anonymous_events = requests.get(f"{live.url}/api/v1/events?env={env}", timeout=5).text
        signed_events = requests.get(
            f"{live.url}/api/v1/events?env={env}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5,
        ).text

    assert anonymous["status"] == "failed"
    assert anonymous["last_error"].startswith(f"build of hoody/{docker_repo}-web:")
    assert "returned a non-zero code: 1" in anonymous["last_error"]
    assert "secret-build-output" not in anonymous["last_error"]
    assert "last_output" not in anonymous
    assert "secret-build-output" not in anonymous_events
    assert "secret-build-output" in signed["last_output"]
    assert signed["last_error"] == anonymous["last_error"]
    assert "secret-build-output" in signed_events
