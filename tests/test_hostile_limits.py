"""Resource attacks on the real engine: every container is limited, a spec asking for more
than the server's maxima is refused, a fork bomb stops at the pids limit, and a repo's
branches beyond its environment limit wait."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from reconciler.core.settings import LimitsSettings

from .conftest import GitRemote, unique
from .hostile_helpers import controller, events, web_spec

pytestmark = pytest.mark.docker
MiB = 1024 * 1024


def _container(client: docker.DockerClient, repo: str, env: str):  # type: ignore[no-untyped-def]
    (c,) = client.containers.list(filters={"label": [f"hoody.repo={repo}", f"hoody.env={env}"]})
    return c


def test_every_container_gets_memory_cpu_and_pids_limits(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": web_spec(app)})
    remote.commit(
        "sized",
        {
            ".hoody/app.yaml": web_spec(
                app, service_extra="    resources: {memory: 96m, cpus: 0.5}\n"
            )
        },
        base="main",
    )
    limits = LimitsSettings(memory=64 * MiB, cpus=0.25, pids=32)
    ctl = controller(tmp_path, remote, docker_repo, limits=limits)

    assert ctl.reconcile(docker_repo).ok

    plain = _container(docker_engine, docker_repo, f"main-{app}").attrs["HostConfig"]
    assert (plain["Memory"], plain["NanoCpus"], plain["PidsLimit"]) == (64 * MiB, 25 * 10**7, 32)
    assert plain["MemorySwap"] == 64 * MiB  # no swap on top
    sized = _container(docker_engine, docker_repo, f"sized-{app}").attrs["HostConfig"]
    assert (sized["Memory"], sized["NanoCpus"], sized["PidsLimit"]) == (96 * MiB, 5 * 10**8, 32)

    # A fork bomb stops at the pids limit.
    c = _container(docker_engine, docker_repo, f"main-{app}")
    bomb = c.exec_run(["sh", "-c", "for i in $(seq 60); do sleep 20 & done; wait"], demux=False)
    out = bomb.output.decode(errors="replace")
    assert "can't fork" in out or "Resource temporarily unavailable" in out, out
    c.exec_run(["killall", "sleep"])


def test_a_spec_over_the_maxima_is_refused_naming_the_field_and_the_limit(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    greedy = web_spec(app, service_extra="    resources: {memory: 100t, cpus: 100000}\n")
    remote.commit("main", {".hoody/app.yaml": greedy})
    ctl = controller(tmp_path, remote, docker_repo)

    result = ctl.reconcile(docker_repo)

    assert result.actions == []
    said = events(ctl, docker_repo)
    assert (
        "services.web.resources.memory: 100t is above the server's limit of 4g "
        "(limits.max_memory)" in said
    )
    assert (
        "services.web.resources.cpus: 100000 is above the server's limit of 4 (limits.max_cpus)"
        in said
    )
    assert (
        docker_engine.containers.list(all=True, filters={"label": [f"hoody.repo={docker_repo}"]})
        == []
    )


def test_branches_beyond_the_repo_limit_wait_in_the_queue(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": web_spec(app)})
    for b in ("b1", "b2", "b3"):
        remote.commit(b, {}, base="main")
    ctl = controller(
        tmp_path, remote, docker_repo, limits=LimitsSettings(max_environments_per_repo=2)
    )

    result = ctl.reconcile(docker_repo)

    assert result.ok, result.errors
    running = {
        c.labels["hoody.env"]
        for c in docker_engine.containers.list(filters={"label": [f"hoody.repo={docker_repo}"]})
    }
    assert running == {f"b1-{app}", f"b2-{app}"}
    said = events(ctl, docker_repo)
    for waiting in (f"b3-{app}", f"main-{app}"):
        assert f"{waiting}: queued: the repo runs its maximum of 2 environments" in said

    # When one goes, the next in the queue gets its place.
    remote.delete_branch("b1")
    assert ctl.reconcile(docker_repo).ok
    running = {
        c.labels["hoody.env"]
        for c in docker_engine.containers.list(filters={"label": [f"hoody.repo={docker_repo}"]})
    }
    assert running == {f"b2-{app}", f"b3-{app}"}
