"""Jobs that call the app reach it, on the real engine: each platform's job script runs in
a container of its own (as every platform but Compose runs jobs) on a network where the
app's services answer to that platform's names for them; the script as hoody runs it
(inside the service's container) reaches nothing there."""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from exporters import ExportSource, render
from exporters.base import jobs
from reconciler.core.crontab import parse_crontab
from reconciler.core.spec import parse_app_spec

from .conftest import RUN_ID
from .export_schemas import railway_graph
from .test_export_envsubst import kubelet_expand
from .test_export_support import MULTI_SPEC

CRONTAB = """*/10 * * * * wget -q -O- http://localhost:8080/tasks/expire
0 3 * * * wget -q -O- 'http://api:9090/nightly?full=1'
"""
# what each platform calls the services, as network aliases of the app's containers
ALIASES = {
    "web": ["main-shop-web", "web.railway.internal", "web-address"],
    "api": ["main-shop-api", "api.railway.internal", "api-address"],
}
# what the deployer sets the address placeholders to (Cloud Run, ECS)
ADDRESSES = {
    "CLOUD_RUN_URL": "http://web-address:8080",
    "WEB_URL": "http://web-address:8080",
    "API_URL": "http://api-address:9090",
}


def source() -> ExportSource:
    app = parse_app_spec(MULTI_SPEC, ".hoody/app.yaml", "shop")
    tab = parse_crontab(CRONTAB, ".hoody/crontab", "UTC")
    return ExportSource("main-shop", app, tab, {}, False, CRONTAB)


def fill(value: str) -> str:
    for name, address in ADDRESSES.items():
        value = value.replace("${" + name + "}", address)
    return value


def job_runs(fmt: str) -> dict[str, tuple[str, dict[str, str]]]:
    """job name -> (script, the job container's variables) in the `fmt` export."""
    files = render(fmt, source()).files
    runs: dict[str, tuple[str, dict[str, str]]] = {}
    if fmt == "kubernetes":
        for path, text in files.items():
            if path.startswith("cronjob-"):
                spec = yaml.safe_load(text)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                runs[path[8:-5]] = (kubelet_expand(spec["containers"][0]["command"][2], {}), {})
    elif fmt == "cloudrun":
        for path, text in files.items():
            if path.startswith("jobs/"):
                doc = yaml.safe_load(text)["spec"]["template"]["spec"]["template"]["spec"]
                (c,) = doc["containers"]
                env = {e["name"]: fill(e["value"]) for e in c.get("env", [])}
                runs[path[5:-5]] = (c["command"][2], env)
    elif fmt == "ecs":
        import json

        for path, text in files.items():
            if path.endswith(".task-definition.json") and path.startswith("cron/"):
                (c,) = json.loads(text)["containerDefinitions"]
                env = {e["name"]: fill(e["value"]) for e in c.get("environment", [])}
                runs[path[5 : -len(".task-definition.json")]] = (c["entryPoint"][2], env)
    elif fmt == "render":
        blueprint = yaml.safe_load(files["render.yaml"])
        for svc in blueprint["services"]:
            if svc["type"] == "cron":
                env = {
                    e["key"]: e["fromService"]["name"]  # the internal host: the service name
                    for e in svc.get("envVars", [])
                    if "fromService" in e
                }
                runs[svc["name"].removeprefix("main-shop-")] = (
                    shlex.split(svc["dockerCommand"])[2],
                    env,
                )
    elif fmt == "railway":
        graph = railway_graph(files[".railway/railway.py"], "railway.py")
        for node in graph["resources"]:
            if node["name"].startswith("cron-"):
                command = shlex.split(node["deploy"]["startCommand"])
                runs[node["name"].removeprefix("cron-")] = (command[2], {})
    return runs


@pytest.fixture(scope="module")
def app_network(docker_engine: Any) -> Iterator[str]:
    name = f"hoodycalls{RUN_ID}{uuid.uuid4().hex[:6]}"
    network = docker_engine.networks.create(name, labels={"hoody.test": RUN_ID})
    containers = []
    try:
        for svc, port, path, body in (
            ("web", 8080, "tasks/expire", "web-ok"),
            ("api", 9090, "nightly", "api-ok"),
        ):
            script = (
                f"mkdir -p /www/$(dirname {path}) && echo {body} > /www/{path} && "
                f"exec httpd -f -p {port} -h /www"
            )
            c = docker_engine.containers.create(
                "busybox:1.36",
                ["sh", "-c", script],
                labels={"hoody.test": RUN_ID},
                name=f"{name}-{svc}",
            )
            containers.append(c)
            network.connect(c, aliases=ALIASES[svc])
            c.start()
        for c, url in zip(containers, ("8080/tasks/expire", "9090/nightly"), strict=True):
            deadline = time.monotonic() + 30
            while c.exec_run(["wget", "-q", "-O-", f"http://127.0.0.1:{url}"]).exit_code:
                assert time.monotonic() < deadline, c.logs()
                time.sleep(0.2)
        yield name
    finally:
        for c in containers:
            c.remove(force=True)
        network.remove()


def run_in_own_container(docker_engine: Any, network: str, script: str, env: dict) -> str:
    import docker

    try:
        out = docker_engine.containers.run(
            "busybox:1.36",
            ["sh", "-c", script],
            environment=env,
            network=network,
            remove=True,
            labels={"hoody.test": RUN_ID},
        )
    except docker.errors.ContainerError:
        return "<failed>"
    return str(out.decode().strip())


@pytest.mark.docker
@pytest.mark.timeout(180)
@pytest.mark.parametrize("fmt", ["kubernetes", "railway", "render", "ecs", "cloudrun"])
def test_jobs_that_call_the_app_reach_it(fmt: str, docker_engine: Any, app_network: str) -> None:
    originals = {j.name: j.script for j in jobs(source())}
    runs = job_runs(fmt)
    assert set(runs) == set(originals), fmt
    expected = {
        next(
            n for n in originals if n.startswith("wget") and "localhost" in originals[n]
        ): "web-ok",
        next(n for n in originals if "api:9090" in originals[n]): "api-ok",
    }
    if fmt == "cloudrun":  # api is a sidecar of the Cloud Run service: warned, unreachable
        warnings = render(fmt, source()).warnings
        assert any("gives service 'api' no name" in w for w in warnings)
        expected = {n: v for n, v in expected.items() if v == "web-ok"}
    for name, body in expected.items():
        script, env = runs[name]
        assert script != originals[name]
        assert run_in_own_container(docker_engine, app_network, script, env) == body, (fmt, name)
        # as hoody runs it, inside the service's container: nothing there in a job's own
        assert run_in_own_container(docker_engine, app_network, originals[name], {}) == "<failed>"
