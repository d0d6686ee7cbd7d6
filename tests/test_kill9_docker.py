"""`kill -9` of `hoody serve` in the middle of applying (issue 12): one environment in its
first health wait, another mid blue/green update (its new version started beside the
live one). The next `hoody serve` converges: every environment healthy at its newest
commit, one container per environment under its canonical name, nothing half-started
left, and the live version of the update served until the new one took over. Real
process (SIGKILL: no handler, no clean-up), real engine, real git."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from reconciler.core.naming import container_name

from .conftest import GitRemote, unique
from .test_perenv_docker import containers, wait_for
from .test_serve import free_port, hoody

pytestmark = pytest.mark.docker


def spec(app: str, text: str, before: str = "") -> str:
    web = f"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www"
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", '{before}{web}']
    ports: [8080]
    healthcheck: {{http: /, port: 8080, interval: 1s, start_period: 60s}}
"""


def served(client: docker.DockerClient, repo: str, env: str) -> str:
    """What the environment's live container answers on its published port."""
    (c,) = [c for c in containers(client, repo, env=env) if c.name == container_name(env, "web")]
    c.reload()
    port = c.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return str(r.read().decode().strip())


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: Path) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"serve-{len(procs)}.log").open("wb")
        cmd = [sys.executable, "-m", "reconciler.cli.main", "--config", str(config)]
        proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(free_port())], stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_kill_9_mid_apply_then_a_restart_converges_without_duplicates_or_orphans(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    docker_engine: docker.DockerClient,
    serve: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    app = unique("k")
    main, waiting = f"main-{app}", f"p-a-{app}"
    remote.commit("main", {".hoody/app.yaml": spec(app, "v1")})
    config = tmp_path / "hoody.yaml"
    config.write_text(
        json.dumps(
            {
                "state_dir": str(tmp_path / "state"),
                "min_pass_interval": 0,
                "repos": [
                    {
                        "name": docker_repo,
                        "url": str(remote.bare),
                        "branches": ["main", "p/*"],
                        "poll_interval": 0,
                    }
                ],
            }
        )
    )
    first = serve(config)

    def healthy(env: str, commit: str | None = None) -> bool:
        out = hoody(config, "envs", "--json")
        if out.returncode != 0:
            return False
        row = {e["name"]: e for e in json.loads(out.stdout)}.get(env, {})
        return row.get("status") == "healthy" and commit in (None, row.get("commit"))

    wait_for(lambda: healthy(main), 90, "main healthy at v1")
    live = [c.id for c in containers(docker_engine, docker_repo, env=main)]
    assert len(live) == 1

    # main: v2 ready ~8 s after start (blue/green: it starts beside v1, which keeps serving);
    # p/a: a first version in the same kind of health wait
    v2 = remote.commit("main", {".hoody/app.yaml": spec(app, "v2", before="sleep 8; ")})
    pa = remote.commit("p/a", {".hoody/app.yaml": spec(app, "pa", before="sleep 8; ")}, base="main")
    wait_for(
        lambda: (
            len(containers(docker_engine, docker_repo, env=main)) == 2
            and containers(docker_engine, docker_repo, env=waiting)
        ),
        60,
        "main's new version beside the old one, and p/a's container",
    )
    assert served(docker_engine, docker_repo, main) == "v1"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    # nothing was cleaned up on the way out: v1 still serves, the half-started versions stay
    assert served(docker_engine, docker_repo, main) == "v1"
    assert len(containers(docker_engine, docker_repo, env=main)) == 2

    serve(config)
    wait_for(lambda: healthy(main, v2) and healthy(waiting, pa), 120, "both healthy")
    wait_for(lambda: len(containers(docker_engine, docker_repo, env=main)) == 1, 30, "v1 retired")
    for env in (main, waiting):
        names = [c.name for c in containers(docker_engine, docker_repo, env=env)]
        assert names == [container_name(env, "web")], (env, names)
    assert served(docker_engine, docker_repo, main) == "v2"
    assert served(docker_engine, docker_repo, waiting) == "pa"
    assert [c.id for c in containers(docker_engine, docker_repo, env=main)] != live
    assert len(containers(docker_engine, docker_repo)) == 2  # nothing else of the repo
    # one service each: both on the shared network, none of their own
    assert not docker_engine.networks.list(filters={"label": f"hoody.repo={docker_repo}"})
