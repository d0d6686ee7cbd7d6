"""On the real engine: environments of one service share `hoody_shared`, where no
container reaches another's, while one of several services keeps a network of its own
with its service names as aliases; teardown leaves the shared network, and a network of
that name that lets containers talk is refused, not joined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from reconciler.core.errors import NameConflict
from reconciler.core.naming import SHARED_NETWORK
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import Store

from .conftest import GitRemote, unique
from .test_reconcile_docker import WEB, app_yaml, get

pytestmark = pytest.mark.docker

API = f"""\
  api:
    image: busybox:1.36
    command: ["sh", "-c", '{WEB}']
    env: {{GREETING: api}}
"""


def attrs(client: docker.DockerClient, name: str) -> dict[str, Any]:
    return client.api.inspect_container(name)  # type: ignore[no-any-return]


def fetch_inside(client: docker.DockerClient, name: str, ip: str) -> str:
    """An HTTP GET of ip:8080 from inside a container (busybox nc; its static wget
    crashes): the body's last line, or "unreachable"."""
    res = client.containers.get(name).exec_run(
        ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080 | tail -n 1"],
        stderr=False,
    )
    return res.output.decode().strip() or "unreachable"


def test_single_service_environments_share_a_network_and_cannot_reach_each_other(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": app_yaml(app, "hello-main")})
    remote.commit("feature/x", {".hoody/app.yaml": app_yaml(app, "hello-x")})
    remote.commit("feature/duo", {".hoody/app.yaml": app_yaml(app, "front", API)})
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name=docker_repo, url=str(remote.bare), branches=("*", "*/*")),),
    )
    ctl = Controller(settings, Store(settings.database_url), DockerRuntime())
    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    main, x, duo = f"main-{app}", f"feature-x-{app}", f"feature-duo-{app}"
    status = {e["name"]: e for e in ctl.store.environments()}
    assert {status[n]["status"] for n in (main, x, duo)} == {"healthy"}
    assert get(status[main]["url"]) == "hello-main"  # published ports answer the host
    assert get(status[x]["url"]) == "hello-x"

    own = {
        n.name for n in docker_engine.networks.list(filters={"label": f"hoody.repo={docker_repo}"})
    }
    assert own == {duo}  # no bridge of their own for the single-service two
    shared = docker_engine.api.inspect_network(SHARED_NETWORK)
    assert shared["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    assert shared["Labels"] == {"hoody.shared-network": "true"}

    m, f = attrs(docker_engine, f"{main}_web"), attrs(docker_engine, f"{x}_web")
    assert set(m["NetworkSettings"]["Networks"]) == {SHARED_NETWORK}
    assert m["HostConfig"]["CapDrop"] == ["NET_RAW"]
    assert "web" not in (m["NetworkSettings"]["Networks"][SHARED_NETWORK].get("Aliases") or [])
    x_ip = f["NetworkSettings"]["Networks"][SHARED_NETWORK]["IPAddress"]
    main_ip = m["NetworkSettings"]["Networks"][SHARED_NETWORK]["IPAddress"]
    # The engine drops traffic between containers of the shared bridge, both ways; the
    # host still reaches each at its address.
    assert fetch_inside(docker_engine, f"{main}_web", x_ip) == "unreachable"
    assert fetch_inside(docker_engine, f"{x}_web", main_ip) == "unreachable"
    assert get(f"http://{x_ip}:8080/") == "hello-x"
    assert (
        "Operation not permitted"
        in docker_engine.containers.get(f"{main}_web")
        .exec_run(["arping", "-c1", "-w1", x_ip])
        .output.decode()
    )

    # Several services: a network of their own, where they reach each other by name.
    d = attrs(docker_engine, f"{duo}_web")
    assert set(d["NetworkSettings"]["Networks"]) == {duo}
    assert d["HostConfig"]["CapDrop"] in (None, [])
    api = attrs(docker_engine, f"{duo}_api")["NetworkSettings"]["Networks"][duo]
    assert "api" in api["Aliases"]  # its name there
    assert fetch_inside(docker_engine, f"{duo}_web", api["IPAddress"]) == "api"
    duo_ip = d["NetworkSettings"]["Networks"][duo]["IPAddress"]
    assert fetch_inside(docker_engine, f"{main}_web", duo_ip) == "unreachable"

    # Teardown removes what the environments own and leaves the shared network.
    remote.delete_branch("feature/x")
    remote.delete_branch("feature/duo")
    result = ctl.reconcile(docker_repo)
    assert result.ok, result.errors
    left = {
        c.name
        for c in docker_engine.containers.list(
            all=True, filters={"label": f"hoody.repo={docker_repo}"}
        )
    }
    assert left == {f"{main}_web"}
    assert not docker_engine.networks.list(filters={"label": f"hoody.repo={docker_repo}"})
    assert docker_engine.api.inspect_network(SHARED_NETWORK)["Id"] == shared["Id"]
    assert get(status[main]["url"]) == "hello-main"


def test_a_shared_network_name_that_lets_containers_talk_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = DockerRuntime()

    class Api:
        def inspect_network(self, name: str) -> dict[str, Any]:
            return {"Name": name, "Labels": {}, "Options": {}}

    monkeypatch.setattr(DockerRuntime, "api", property(lambda self: Api()))
    with pytest.raises(NameConflict, match="hoody_shared is held by a network that lets"):
        runtime.ensure_shared_network()
