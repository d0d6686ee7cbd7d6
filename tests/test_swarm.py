"""`runtime: swarm` end to end on a real single-node swarm: the real service in-process
(real socket), real git, the Caddy it runs itself, the engine's swarm mode. The swarm is
created here when the engine is not in one, and left at the end only then. Requests go
to Caddy on 127.0.0.1 with a Host header, or to a task's host-mode published port on
127.0.0.1; never to an overlay address (the ingress routing mesh does not answer here).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.settings import (
    LimitsSettings,
    ProxySettings,
    RepoSettings,
    SchedulerSettings,
    ServerSettings,
    Settings,
)
from reconciler.runtime.swarm import SwarmRuntime, runtime_for

from .conftest import GitRemote, cleanup_repo, unique
from .proxy_helpers import fetch, free_port, need_caddy, need_reload_without_resets
from .test_proxy_docker import ClientLoop
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker

WEB = (
    "  web:\n    image: busybox:1.36\n"
    '    command: [sh, -c, \'mkdir -p /www && echo "$GREETING" > /www/index.html'
    " && exec httpd -f -p 8080 -h /www']\n"
    "    env: {{GREETING: '{greeting}'}}\n    ports: [8080]\n"
    "    volumes: {{data: /data}}\n"
    "    healthcheck: {{http: /, port: 8080, interval: 1s, start_period: 20s}}\n"
)
BROKEN = (  # serves nothing: it exits at once
    "  web:\n    image: busybox:1.36\n    command: [sh, -c, 'echo broken; exit 3']\n"
    "    ports: [8080]\n    volumes: {data: /data}\n"
    "    healthcheck: {http: /, port: 8080, interval: 1s, start_period: 20s}\n"
)
CRONTAB = "@every 1s cat /www/index.html; hostname\n"


def spec(app: str, greeting: str) -> str:
    return f"name: {app}\nservices:\n" + WEB.format(greeting=greeting)


def swarm_state() -> str:
    out = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def swarm(docker_engine: Any) -> Iterator[Any]:
    """A single-node swarm on this engine: created (and left at the end) only if the
    engine is not in one already."""
    created = False
    if swarm_state() != "active":
        subprocess.run(
            ["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        created = True
    try:
        yield docker_engine
    finally:
        if created:
            subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, timeout=60)


def cleanup_swarm(client: Any, repo: str) -> None:
    """Exactly the services, then the containers, networks and volumes of `repo`."""
    label = {"label": [f"hoody.repo={repo}"]}
    for s in client.services.list(filters=label):
        s.remove()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and client.containers.list(all=True, filters=label):
        for c in client.containers.list(all=True, filters=label):
            with contextlib.suppress(Exception):  # the swarm may be removing it too
                c.remove(force=True)
        time.sleep(0.2)
    for _ in range(50):
        try:
            cleanup_repo(client, repo)
            return
        except Exception:  # noqa: BLE001 - a network still has an endpoint going away
            time.sleep(0.2)


@dataclass
class Setup:
    live: LiveService
    remote: GitRemote
    app: str
    port: int  # Caddy's
    client: Any

    @property
    def runtime(self) -> Any:
        return self.live.service.controller.runtime

    def push(self, branch: str, files: dict[str, str]) -> str:
        sha = self.remote.commit(branch, files, base="main")
        self.live.service.trigger(self.app, "test push")
        return sha

    def status(self, env: str) -> dict[str, Any]:
        return next((r for r in self.live.store.environments() if r["name"] == env), {})

    def wait_healthy(self, env: str, commit: str, timeout: float = 120) -> dict[str, Any]:
        return wait_for(
            lambda: (
                ((s := self.status(env)).get("status") == "healthy" and s.get("commit") == commit)
                and s
            ),
            timeout,
            f"{env} healthy at {commit[:8]}",
        )

    def get(self, env: str) -> tuple[int, str]:
        status, _, body = fetch(self.port, f"{env}.localhost")
        return status, body.strip()

    def service(self, env: str) -> Any:
        found = self.client.services.list(filters={"name": f"{env}_web"})
        return next((s for s in found if s.name == f"{env}_web"), None)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, swarm: Any) -> Iterator[Setup]:
    need_caddy()
    root = tmp_path_factory.mktemp("swarm")
    app = unique("sw")
    remote = GitRemote(root / "git")
    first = remote.commit(
        "main", {".hoody/app.yaml": spec(app, "main v1"), ".hoody/crontab": CRONTAB}
    )
    settings = Settings(
        state_dir=root / "state",
        server=ServerSettings(port=free_port()),
        runtime="swarm",
        repos=(
            RepoSettings(
                name=app, url=str(remote.bare), branches=("main", "feature/*"), poll_interval=0
            ),
        ),
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port()}", drain=0.5),
        scheduler=SchedulerSettings(shutdown_grace=0.5, kill_grace=1.0),
        limits=LimitsSettings(min_every=1.0),
    )
    runtime = runtime_for(settings)
    assert isinstance(runtime, SwarmRuntime)
    try:
        with LiveService(settings, runtime, port=settings.server.port) as live:
            assert settings.proxy is not None
            s = Setup(live, remote, app, settings.proxy.port, swarm)
            s.wait_healthy(f"main-{app}", first)
            yield s
    finally:
        cleanup_swarm(swarm, app)


def test_a_branch_is_a_healthy_swarm_service_answering_through_its_url(setup: Setup) -> None:
    s, env = setup, f"main-{setup.app}"
    assert s.get(env) == (200, "main v1")
    svc = s.service(env)
    assert svc is not None, "one swarm service per environment service"
    spec = svc.attrs["Spec"]
    assert spec["Labels"]["hoody.env"] == env and spec["Labels"]["hoody.repo"] == s.app
    assert spec["UpdateConfig"]["Order"] == "start-first"
    assert spec["UpdateConfig"]["FailureAction"] == "rollback"
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert [p["PublishMode"] for p in spec["EndpointSpec"]["Ports"]] == ["host"]
    net = s.client.networks.get(env)
    assert net.attrs["Driver"] == "overlay" and net.attrs["Attachable"] is True
    assert net.attrs["Labels"]["hoody.repo"] == s.app
    assert s.client.volumes.get(f"{env}_data").attrs["Labels"]["hoody.env"] == env
    # The service's task answers on its own published port, on loopback.
    observed = s.runtime.observe(s.app)[env]
    (web,) = observed.containers
    assert web.running and web.name == f"{env}_web"
    status, _, body = fetch(web.ports[8080], "localhost")
    assert (status, body.strip()) == (200, "main v1")


def test_a_commit_rolls_the_service_with_no_failed_request(setup: Setup) -> None:
    need_reload_without_resets()
    s, env = setup, f"main-{setup.app}"
    before = s.runtime.observe(s.app)[env].containers[0]
    with ClientLoop(s.port, f"{env}.localhost") as loop:
        time.sleep(0.5)
        sha = s.push("main", {".hoody/app.yaml": spec(s.app, "main v2")})
        s.wait_healthy(env, sha)
        wait_for(
            lambda: (s.service(env).attrs.get("UpdateStatus") or {}).get("State") == "completed",
            60,
            "the swarm's rolling update completed",
        )
        time.sleep(0.5)
    assert loop.failures == []
    assert loop.changes() == ["main v1", "main v2"]
    assert len(loop.bodies) > 50
    after = s.runtime.observe(s.app)[env].containers[0]
    assert after.name == before.name  # the same service, rolled to a new task
    assert after.ports != before.ports and after.spec_hash != before.spec_hash
    assert s.get(env) == (200, "main v2")


def test_a_bad_version_is_rolled_back_and_the_old_one_keeps_serving(setup: Setup) -> None:
    s, env = setup, f"main-{setup.app}"
    good = s.runtime.observe(s.app)[env].containers[0]
    s.push("main", {".hoody/app.yaml": f"name: {s.app}\nservices:\n" + BROKEN})
    wait_for(
        lambda: "rolled back" in (s.status(env).get("last_error") or ""),
        90,
        "the failed update reported as rolled back",
    )
    svc = s.service(env)
    assert (svc.attrs.get("UpdateStatus") or {}).get("State", "").startswith("rollback")
    assert svc.attrs["Spec"]["Labels"]["hoody.spec-hash"] == good.spec_hash
    assert s.get(env) == (200, "main v2")
    events = s.live.store.events(env=env, limit=50)
    assert any("rolled back" in (e.message or "") for e in events)
    # A good commit after it rolls forward again.
    sha = s.push("main", {".hoody/app.yaml": spec(s.app, "main v3"), ".hoody/crontab": CRONTAB})
    s.wait_healthy(env, sha)
    assert s.get(env) == (200, "main v3")


def test_a_cron_job_runs_in_the_task_container_and_its_output_is_recorded(
    setup: Setup,
) -> None:
    s, env = setup, f"main-{setup.app}"

    def ok_runs() -> list[Any]:
        return [r for r in s.live.store.runs.list(env=env, limit=50) if r.status == "succeeded"]

    wait_for(lambda: any("main v3" in r.stdout for r in ok_runs()), 60, "a job run of v3")
    run = next(r for r in ok_runs() if "main v3" in r.stdout)
    hostname = run.stdout.strip().splitlines()[-1]
    tasks = s.service(env).tasks(filters={"desired-state": "running"})
    (task,) = tasks
    assert task["Status"]["ContainerStatus"]["ContainerID"].startswith(hostname)


def test_a_job_runs_as_a_one_off_swarm_service_when_no_task_is_local(setup: Setup) -> None:
    s, env = setup, f"main-{setup.app}"
    runtime = SwarmRuntime(local_exec=False)
    out: list[tuple[int, bytes]] = []
    code = runtime.exec_stream(
        f"{env}_web",
        ["sh", "-c", "echo out $JOBVAR; echo err >&2; ls /data >/dev/null; exit 4"],
        {"JOBVAR": "set"},
        None,
        lambda stream, data: out.append((stream, data)),
    )
    assert code == 4
    assert b"".join(d for st, d in out if st == 1).strip() == b"out set"
    assert b"".join(d for st, d in out if st == 2).strip() == b"err"
    jobs = s.client.services.list(filters={"label": [f"hoody.repo={s.app}", "hoody.job"]})
    assert jobs == []  # removed after the run


def test_a_deleted_branch_removes_its_services_network_and_volumes(setup: Setup) -> None:
    s = setup
    env = f"feature-x-{s.app}"
    sha = s.push("feature/x", {".hoody/app.yaml": spec(s.app, "feature")})
    s.wait_healthy(env, sha)
    assert s.get(env) == (200, "feature")
    assert s.service(env) is not None
    s.remote.delete_branch("feature/x")
    s.live.service.trigger(s.app, "branch deleted")
    label = {"label": [f"hoody.env={env}"]}
    wait_for(
        lambda: (
            not s.client.services.list(filters=label)
            and not s.client.networks.list(filters=label)
            and not s.client.volumes.list(filters=label)
            and not s.client.containers.list(all=True, filters=label)
        ),
        90,
        "services, network, volumes and task containers of the deleted branch gone",
    )
    assert fetch(s.port, f"{env}.localhost")[0] == 404
    # the other environment is untouched
    assert s.get(f"main-{s.app}") == (200, "main v3")


def test_a_restarted_hoody_adopts_the_swarm_services_from_their_labels(setup: Setup) -> None:
    s, env = setup, f"main-{setup.app}"
    fresh = SwarmRuntime().observe(s.app)
    assert list(fresh) == [env]
    (web,) = fresh[env].containers
    assert web.running and web.commit == s.status(env)["commit"]
    assert fresh[env].networks == (env,) and fresh[env].volumes == (f"{env}_data",)


def test_settings_choose_the_runtime(tmp_path: Path) -> None:
    from reconciler.core.errors import ConfigError
    from reconciler.core.settings import load_settings
    from reconciler.runtime.docker import DockerRuntime

    cfg = tmp_path / "hoody.yaml"
    cfg.write_text("runtime: swarm\n")
    assert isinstance(runtime_for(load_settings(cfg)), SwarmRuntime)
    assert isinstance(runtime_for(replace(load_settings(cfg), runtime="docker")), DockerRuntime)
    cfg.write_text("{}\n")
    assert load_settings(cfg).runtime == "docker"
    cfg.write_text("runtime: kubernetes\n")
    with pytest.raises(ConfigError) as e:
        load_settings(cfg)
    assert "runtime" in str(e.value)


def test_a_service_name_held_by_a_foreign_service_is_left_alone(
    tmp_path: Path, remote: GitRemote, swarm: Any
) -> None:
    from reconciler.gitops.controller import Controller
    from reconciler.storage.store import Store

    app = unique("sf")
    env = f"main-{app}"
    remote.commit("main", {".hoody/app.yaml": spec(app, "mine")})
    # someone's service under the name the environment's would take (labelled with the
    # repo only, for the cleanup: hoody never created it)
    foreign = swarm.services.create(
        "busybox:1.36", ["sleep", "3600"], name=f"{env}_web", labels={"hoody.repo": app}
    )
    settings = Settings(
        state_dir=tmp_path / "state",
        runtime="swarm",
        repos=(RepoSettings(name=app, url=str(remote.bare), poll_interval=0),),
    )
    version = swarm.services.get(foreign.id).attrs["Version"]["Index"]
    try:
        ctl = Controller(settings, Store(settings.database_url), SwarmRuntime())
        result = ctl.reconcile(app)
        assert not result.ok
        text = " ".join(str(e) for e in result.errors)
        assert f"service name {env}_web is held by a swarm service hoody did not create" in text
        foreign.reload()
        assert foreign.attrs["Spec"]["Labels"] == {"hoody.repo": app}  # untouched
        assert foreign.attrs["Version"]["Index"] == version  # never updated
    finally:
        cleanup_swarm(swarm, app)


def test_a_service_of_an_image_built_here_is_placed_on_this_node(setup: Setup) -> None:
    """No registry holds an image hoody built: its tasks run on the node that built it;
    an image any node can pull goes wherever the swarm puts it."""
    import io

    from reconciler.runtime import ContainerSpec
    from reconciler.runtime import swarmspec as ss

    tag = f"hoody-built-{setup.app}:1"
    dockerfile = f"FROM busybox:1.36\nLABEL hoody.managed=true hoody.repo={setup.app}\n"
    setup.client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    runtime = SwarmRuntime()

    def spec_of(image: str) -> ContainerSpec:
        return ContainerSpec(name="x", image=image, labels={}, network="n", alias="web")

    assert runtime._built_here(spec_of(tag))
    assert not runtime._built_here(spec_of("busybox:1.36"))
    assert not runtime._built_here(spec_of("registry.example.com/nowhere:1"))
    args = ss.service_args(spec_of(tag), "env_web", "netid", runtime.node)
    node = setup.client.info()["Swarm"]["NodeID"]
    assert args["task_template"]["Placement"]["Constraints"] == [f"node.id=={node}"]
    assert "Placement" not in ss.service_args(spec_of("busybox:1.36"), "e", "n")["task_template"]
