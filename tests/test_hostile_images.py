"""Image attacks on the real engine: an image outside `images.allow`, a fork PR naming an
image it would have to pull, and a pull for a fork PR that must not carry the host's
stored registry credentials (a loopback registry records what it is sent)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import docker
import pytest

from reconciler.core.settings import ImagesSettings, PullRequestSettings
from reconciler.storage.store import PullRequestState

from .conftest import GitRemote, git, unique
from .hostile_helpers import controller, events, recorder

pytestmark = pytest.mark.docker


def image_spec(app: str, image: str) -> str:
    return f"""\
name: {app}
services:
  web:
    image: {image}
    command: ["sleep", "3600"]
"""


def _pr(remote: GitRemote, number: int, branch: str, spec: str) -> None:
    remote.commit(branch, {".hoody/app.yaml": spec}, base="main")
    git(remote.work, "push", "-q", "-f", "origin", f"{branch}:refs/pull/{number}/head")


def _envs(client: docker.DockerClient, repo: str) -> set[str]:
    found = client.containers.list(all=True, filters={"label": [f"hoody.repo={repo}"]})
    return {c.labels["hoody.env"] for c in found}


def test_an_image_outside_the_allow_list_is_refused_naming_the_field(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    with recorder() as registry:
        private = f"127.0.0.1:{registry.port}/team/app:1"
        remote.commit("main", {".hoody/app.yaml": image_spec(app, "busybox:1.36")})
        remote.commit("other", {".hoody/app.yaml": image_spec(app, private)}, base="main")
        remote.commit(
            "built",
            {
                ".hoody/app.yaml": f"name: {app}\nservices: {{web: {{build: .}}}}\n",
                "Dockerfile": f"FROM {private}\n",
            },
            base="main",
        )
        ctl = controller(tmp_path, remote, docker_repo, images=ImagesSettings(allow=("busybox:*",)))
        result = ctl.reconcile(docker_repo)

        assert registry.requests == []
    assert result.ok, result.errors
    assert _envs(docker_engine, docker_repo) == {f"main-{app}"}
    said = events(ctl, docker_repo)
    refused = f"image {private!r} is not allowed by the server's images.allow (busybox:*)"
    assert f".hoody/app.yaml: services.web.image: {refused}" in said
    assert f"Dockerfile:1: FROM: {refused}" in said


def test_fork_pull_requests_may_only_use_local_images_by_default(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    with recorder() as registry:
        remote.commit("main", {".hoody/app.yaml": image_spec(app, "busybox:1.36")})
        _pr(remote, 4, "fork", image_spec(app, f"127.0.0.1:{registry.port}/team/app:1"))
        _pr(remote, 5, "local", image_spec(app, "busybox:1.36"))
        ctl = controller(
            tmp_path,
            remote,
            docker_repo,
            repo_kw={"pull_requests": PullRequestSettings(enabled=True, forks=True)},
            branches=("main",),
        )
        for n in (4, 5):
            ctl.store.record_pull_request(docker_repo, PullRequestState(n, "open", is_fork=True))
        result = ctl.reconcile(docker_repo)

        assert registry.requests == []  # nothing was pulled for the fork
    assert _envs(docker_engine, docker_repo) == {f"main-{app}", f"pr-5-{app}"}
    (error,) = result.errors
    assert error.startswith(f"pr-4-{app}: ")
    assert "services.web.image: image" in error
    assert "is not present on the engine; pull requests from forks may only use" in error


def test_pulls_for_fork_pull_requests_never_carry_stored_credentials(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    docker_engine: docker.DockerClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = unique("a")
    challenge = {"WWW-Authenticate": 'Basic realm="hoody-test"'}
    with recorder(status=401, headers=challenge, body=b"{}") as registry:
        where = f"127.0.0.1:{registry.port}"
        secret = base64.b64encode(b"hoody:stored-password").decode()
        config = tmp_path / "docker-config"
        config.mkdir()
        (config / "config.json").write_text(json.dumps({"auths": {where: {"auth": secret}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        remote.commit("main", {".hoody/app.yaml": image_spec(app, f"{where}/team/app:1")})
        _pr(remote, 6, "fork", image_spec(app, f"{where}/team/app:2"))
        ctl = controller(
            tmp_path,
            remote,
            docker_repo,
            repo_kw={"pull_requests": PullRequestSettings(enabled=True, forks=True)},
            branches=("main",),
            images=ImagesSettings(allow=("busybox:*", "127.0.0.1:*/team/*")),
        )
        ctl.store.record_pull_request(docker_repo, PullRequestState(6, "open", is_fork=True))
        result = ctl.reconcile(docker_repo)

    assert len(result.errors) == 2  # the registry refuses both pulls
    pings = [auth for _, path, auth in registry.requests if path == "/v2/"]
    assert len(pings) == 2  # both pulls reached the registry
    with_auth = {path for _, path, auth in registry.requests if auth}
    # The branch's pull used the stored credentials (so the check sees what is sent)...
    assert f"Basic {secret}" in {auth for _, _, auth in registry.requests}
    # ...and no request ever carried them for the fork's image.
    assert with_auth and all("/team/app/manifests/1" in path for path in with_auth)
    assert all(auth is None for _, path, auth in registry.requests if "manifests/2" in path)
