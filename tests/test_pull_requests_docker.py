"""Pull-request previews end to end: real GitHub payloads, signed with real HMAC, sent
over a real socket to the real app; a real git remote that holds the PR refs; the real
Docker engine."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import docker
import pytest

from reconciler.core.settings import PullRequestSettings, RepoSettings, Settings
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, git, unique
from .webhook_helpers import LiveService, fixture, github_post, wait_for

pytestmark = [pytest.mark.docker]
SECRET = "It's a Secret to Everybody"
WEB = 'mkdir -p /www && echo "$GREETING $TOKEN" > /www/index.html && exec httpd -f -p 8080 -h /www'


def spec(app: str, greeting: str) -> str:
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", '{WEB}']
    env: {{GREETING: {greeting}}}
    ports: [8080]
    healthcheck: {{http: /, port: 8080, start_period: 15s}}
preview: {{env: {{GREETING: preview-{greeting}}}}}
"""


def settings(tmp_path: Path, repo: str, remote: GitRemote, **pr: object) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(
                name=repo,
                url=str(remote.bare),
                provider="github",
                branches=("main",),
                poll_interval=0,
                env={"TOKEN": "sekrit-token"},
                webhook_secret=SECRET,
                repository="Codertocat/Hello-World",
                pull_requests=PullRequestSettings(enabled=True, **pr),  # type: ignore[arg-type]
            ),
        ),
    )


def push_pr(remote: GitRemote, number: int, branch: str) -> str:
    git(remote.work, "push", "-q", "-f", "origin", f"{branch}:refs/pull/{number}/head")
    return git(remote.work, "rev-parse", branch)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode().strip()


def pr_containers(client: docker.DockerClient, repo: str, env: str) -> list:
    return client.containers.list(
        all=True, filters={"label": [f"hoody.repo={repo}", f"hoody.env={env}"]}
    )


def test_pull_request_lifecycle_over_signed_webhooks(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": spec(app, "main")})
    remote.commit("changes", {".hoody/app.yaml": spec(app, "v1")}, base="main")
    sha1 = push_pr(remote, 2, "changes")
    cfg = settings(tmp_path, docker_repo, remote)
    env = f"pr-2-{app}"
    runtime = DockerRuntime()

    with LiveService(cfg, runtime) as live:
        live.settle()
        # No webhook yet: a PR ref alone says nothing about whether the PR is open.
        assert live.store.environment(env) is None

        status, body = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.opened.json"),
            SECRET,
        )
        assert (status, body["accepted"]) == (202, True)
        live.settle()
        row = wait_for(lambda: live.store.environment(env), what="pr env")
        assert row["status"] == "healthy" and row["commit"] == sha1
        # preview.env applies; the repo's secret env is injected for a same-repo PR.
        assert page(row["url"]) == "preview-v1 sekrit-token"

        # synchronize moves it to the new head (the sha in the payload is never used).
        remote.commit("changes", {".hoody/app.yaml": spec(app, "v2")})
        sha2 = push_pr(remote, 2, "changes")
        delivery = "sync-delivery-1"
        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.synchronize.json"),
            SECRET,
            delivery=delivery,
        )
        assert status == 202
        live.settle()
        row = live.store.environment(env)
        assert row["commit"] == sha2 and page(row["url"]) == "preview-v2 sekrit-token"

        # The same delivery again is acknowledged and not processed twice.
        passes = dict(live.service.passes)
        status, body = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.synchronize.json"),
            SECRET,
            delivery=delivery,
        )
        assert (status, body) == (200, {"duplicate": True})
        live.settle()
        assert live.service.passes == passes

        # A forged close is refused and changes nothing.
        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.closed.json"),
            SECRET,
            bad_signature=True,
        )
        assert status == 401
        status, _ = github_post(
            live.url, docker_repo, "pull_request", fixture("github/pull_request.closed.json"), None
        )
        assert status == 401
        live.settle()
        assert live.store.pull_requests(docker_repo)[2].open
        assert pr_containers(docker_engine, docker_repo, env)

        # A tag push is ignored.
        status, body = github_post(
            live.url, docker_repo, "push", fixture("github/push.json"), SECRET
        )
        assert status == 202 and "tag" in body["ignored"]

    # Restart between open and close: the closed event still tears the environment down.
    with LiveService(cfg, DockerRuntime()) as live:
        live.settle()
        assert live.store.environment(env)["status"] == "healthy"
        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.closed.json"),
            SECRET,
        )
        assert status == 202
        live.settle()
        assert live.store.environment(env) is None
        assert pr_containers(docker_engine, docker_repo, env) == []
        assert live.store.events(env=env, kind="removed")

        # Replays after the close bring nothing back: the captured "opened" with a new
        # delivery id is an identical body (a duplicate), and a "reopened" older than the
        # close (the fixture's updated_at is) is stale.
        status, body = github_post(
            live.url, docker_repo, "pull_request", fixture("github/pull_request.opened.json"),
            SECRET,
        )  # fmt: skip
        assert (status, body) == (200, {"duplicate": True})
        status, body = github_post(
            live.url, docker_repo, "pull_request", fixture("github/pull_request.reopened.json"),
            SECRET,
        )  # fmt: skip
        assert status == 202 and "older than the state already recorded" in body["ignored"]
        live.settle()
        assert live.store.environment(env) is None
        assert pr_containers(docker_engine, docker_repo, env) == []

        # Reopened for real (GitHub's reopen carries a newer updated_at): back, same name.
        def reopened_now(d: dict) -> None:
            d["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"

        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.reopened.json", reopened_now),
            SECRET,
        )
        assert status == 202
        live.settle()
        row = live.store.environment(env)
        assert row["status"] == "healthy" and page(row["url"]) == "preview-v2 sekrit-token"


def test_fork_pull_request_gets_no_environment_unless_approved(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": spec(app, "main")})
    remote.commit("fork-work", {".hoody/app.yaml": spec(app, "fork")}, base="main")
    push_pr(remote, 3, "fork-work")

    def from_fork(d: dict) -> None:
        d["number"] = d["pull_request"]["number"] = 3
        d["pull_request"]["head"]["repo"]["full_name"] = "mallory/Hello-World"

    def labelled(d: dict) -> None:
        from_fork(d)
        d["pull_request"]["labels"] = [
            {
                "name": "preview",
                "id": 1,
                "node_id": "x",
                "url": "u",
                "color": "fff",
                "default": False,
            }
        ]

    cfg = settings(tmp_path, docker_repo, remote, approve_label="preview")
    env = f"pr-3-{app}"
    with LiveService(cfg, DockerRuntime()) as live:
        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.opened.json", from_fork),
            SECRET,
        )
        assert status == 202
        live.settle()
        assert live.store.environment(env) is None
        assert pr_containers(docker_engine, docker_repo, env) == []
        decision = live.store.events(repo=docker_repo, kind="pull_request")[0].message
        assert "PR #3" in decision and "fork" in decision and "`preview`" in decision

        # A maintainer adds the label: a preview, but never with the repo's secrets.
        status, _ = github_post(
            live.url,
            docker_repo,
            "pull_request",
            fixture("github/pull_request.labeled.json", labelled),
            SECRET,
        )
        assert status == 202
        live.settle()
        row = live.store.environment(env)
        assert row["status"] == "healthy"
        assert page(row["url"]) == "preview-fork"
