"""`docker.subnet_pool`: environment networks take their subnets from a private range of
the operator's, so a host holds more environments than the engine's default address
pools (about 30 bridge networks) allow. Real engine; every network carries this run's
repo label and is removed by it."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.errors import ConfigError, RuntimeFailure
from reconciler.core.settings import DockerSettings, RepoSettings, Settings, parse_settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.swarm import runtime_for
from reconciler.storage.store import Store

from .conftest import GitRemote, cleanup_repo, unique
from .test_reconcile_docker import app_yaml, get

pytestmark = pytest.mark.docker


def a_free_pool(client: Any, prefix: int) -> ipaddress.IPv4Network:
    """A 10.x range no network on the engine touches (tests share the engine)."""
    used = [
        ipaddress.ip_network(c["Subnet"])
        for n in client.api.networks()
        for c in (n.get("IPAM") or {}).get("Config") or []
        if "Subnet" in c and ":" not in c["Subnet"]
    ]
    for _ in range(100):
        pool = ipaddress.IPv4Network(
            f"10.{random.randint(100, 250)}.{random.randrange(0, 256, 4)}.0/{prefix}"
        )
        if not any(pool.overlaps(u) for u in used):
            return pool
    pytest.skip("no free 10.x range on this engine")


def subnet_of(client: Any, name: str) -> ipaddress.IPv4Network:
    (cfg,) = client.networks.get(name).attrs["IPAM"]["Config"]
    return ipaddress.IPv4Network(cfg["Subnet"])


def test_networks_take_free_subnets_of_the_pool_until_it_is_full(
    docker_engine: Any, docker_repo: str
) -> None:
    pool = a_free_pool(docker_engine, 22)  # four /24s
    first, *rest = pool.subnets(new_prefix=24)
    labels = {"hoody.managed": "true", "hoody.repo": docker_repo}
    # a network someone else holds in the pool: its subnet is skipped, never shared
    docker_engine.networks.create(
        f"{docker_repo}-other",
        labels={"hoody.repo": docker_repo},
        ipam={"Driver": "default", "Config": [{"Subnet": str(first)}]},
    )
    runtime = DockerRuntime(subnet_pool=str(pool), subnet_prefix=24)
    names = [f"e{i}-{docker_repo}" for i in range(3)]
    for name in names:
        runtime.ensure_network(name, {**labels, "hoody.env": name})
    got = [subnet_of(docker_engine, n) for n in names]
    assert got == rest  # the free ones, in order, each once
    runtime.ensure_network(names[0], {**labels, "hoody.env": names[0]})  # already there: kept
    with pytest.raises(RuntimeFailure) as e:
        runtime.ensure_network(f"e9-{docker_repo}", {**labels, "hoody.env": "e9"})
    assert f"no free /24 subnet left in docker.subnet_pool {pool}" in str(e.value)


def test_an_environment_on_a_pool_network_is_healthy_and_serves(
    tmp_path: Path, docker_engine: Any, remote: GitRemote
) -> None:
    app = unique("sp")
    pool = a_free_pool(docker_engine, 24)
    # two services: an environment network of its own (one service joins the shared one)
    worker = "  worker:\n    image: busybox:1.36\n    command: [sleep, '3600']\n"
    remote.commit("main", {".hoody/app.yaml": app_yaml(app, "pooled", worker)})
    settings = Settings(
        state_dir=tmp_path / "state",
        docker=DockerSettings(subnet_pool=str(pool), subnet_prefix=26),
        repos=(RepoSettings(name=app, url=str(remote.bare), poll_interval=0),),
    )
    try:
        ctl = Controller(settings, Store(settings.database_url), runtime_for(settings))
        result = ctl.reconcile(app)
        assert result.ok, result.errors
        env = f"main-{app}"
        net = subnet_of(docker_engine, env)
        assert net.prefixlen == 26 and net.subnet_of(pool)
        (c,) = docker_engine.containers.list(
            filters={"label": [f"hoody.env={env}", "hoody.service=web"]}
        )
        addr = c.attrs["NetworkSettings"]["Networks"][env]["IPAddress"]
        assert ipaddress.ip_address(addr) in net
        port = c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        assert get(f"http://127.0.0.1:{port}/") == "pooled"
    finally:
        cleanup_repo(docker_engine, app)


@pytest.mark.parametrize(
    ("docker", "field", "message"),
    [
        ({"subnet_pool": "8.8.8.0/24"}, "docker.subnet_pool", "private IPv4 network"),
        ({"subnet_pool": "10.1.2.3/16"}, "docker.subnet_pool", "private IPv4 network"),
        ({"subnet_pool": "fd00::/64"}, "docker.subnet_pool", "private IPv4 network"),
        ({"subnet_prefix": 30}, "docker.subnet_prefix", "from 16 to 28"),
    ],
)
def test_a_bad_pool_is_refused_naming_the_field(
    tmp_path: Path, docker: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({"docker": docker}, tmp_path)
    assert field in str(e.value) and message in str(e.value)


def test_a_prefix_wider_than_the_pool_is_refused() -> None:
    with pytest.raises(ConfigError) as e:
        DockerRuntime(subnet_pool="10.213.0.0/24", subnet_prefix=20)
    assert "docker.subnet_prefix" in str(e.value)


def test_the_shared_network_takes_a_wider_block_that_no_environment_network_overlaps() -> None:
    from reconciler.runtime.subnets import Subnet, SubnetPool

    assert SubnetPool("10.213.0.0/16", 26).shared_prefix == 20  # 64 networks' worth
    assert SubnetPool("10.213.0.0/20", 26).shared_prefix == 22  # a quarter of the pool
    assert SubnetPool("10.213.0.0/24", 24).shared_prefix == 24
    pool = SubnetPool("10.213.0.0/16", 26)
    with pool.chosen(lambda: [], set(), pool.shared_prefix) as shared:
        assert shared == Subnet("10.213.0.0/20")
        with pool.chosen(lambda: [], set()) as env:  # chosen while the shared one is made
            assert env == Subnet("10.213.16.0/26")
    with pool.chosen(lambda: [Subnet("10.213.0.0/20")], set()) as env:
        assert env == Subnet("10.213.16.0/26")
