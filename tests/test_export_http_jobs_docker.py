"""HTTP jobs' client scripts, on the real engine: for each platform that runs them in the
curl client image, the exported script (taken from the platform's file as the platform
reads it, its variables filled in as the deployer's would be) runs in a container of
curl on a network where a busybox httpd answers to the platform's name for the service,
and that server sees the method, query, headers and body the crontab asked for, with the
retries, backoff and accepted statuses of the job. For Compose it is what ofelia would
do: `docker exec` of the label's command in the export's client service, whose
environment `docker-compose config` resolves from a `.env` file.

The client image is built here from the local Debian base (curl from Debian's packages;
nothing is pulled from a registry) and stands in for the exported `curlimages/curl`."""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters import ExportSource, render
from exporters.compose import HTTP_CLIENT
from exporters.httpjobs import CLIENT_IMAGE
from reconciler.core.crontab import Crontab
from reconciler.core.spec import parse_app_spec

from .conftest import RUN_ID
from .export_schemas import railway_graph
from .test_export_compose import gobs_args
from .test_export_envsubst import kubelet_expand
from .test_export_http_jobs_support import DIGEST_BODY, http_entry
from .test_export_support import MULTI_SPEC

BASE = "hoody-base:bookworm"
HEADERS = (
    ("Authorization", "Bearer ${API_TOKEN}"),
    ("X-Report", "${REPORT_DIR} costs $5 ${NOT_SET}"),
)
ENTRIES = [
    http_entry(
        1,
        "*/10 * * * *",
        "POST",
        "http://web:8080/cgi-bin/record?day=1",
        headers=HEADERS,
        body=DIGEST_BODY,
        expect=(200,),
        timeout=10.0,
    ),
    http_entry(
        2, "0 3 * * *", "GET", "http://web:8080/cgi-bin/flaky", retries=3, retry_backoff=0.2
    ),
    http_entry(3, "0 4 * * *", "PATCH", "http://web:8080/cgi-bin/flaky", retries=1),
    http_entry(4, "0 5 * * *", "GET", "http://web:8080/cgi-bin/gone", expect=(404,)),
    http_entry(5, "0 6 * * *", "DELETE", "http://web:8080/cgi-bin/gone"),
]
VALUES = {"API_TOKEN": "tok-123", "REPORT_DIR": "/reports", "WEB_URL": "http://web-address:8080"}
ALIASES = ["web", "main-shop-web", "web.railway.internal", "web-address"]
# CGI scripts: `record` keeps what it was sent; `flaky` fails with 503 twice, then 200;
# `gone` answers 404.
CGI = {
    "record": (
        'printf "%s\\n" "$REQUEST_METHOD" "$QUERY_STRING" "$HTTP_AUTHORIZATION" '
        '"$HTTP_X_REPORT" "${CONTENT_TYPE-none}" > /tmp/request; '
        'head -c "${CONTENT_LENGTH:-0}" > /tmp/body; '
        'printf "Content-Type: text/plain\\r\\n\\r\\nok"'
    ),
    "flaky": (
        "n=$(( $(cat /tmp/count 2>/dev/null || echo 0) + 1 )); echo $n > /tmp/count; "
        'echo "$REQUEST_METHOD $(cut -d " " -f 1 /proc/uptime)" >> /tmp/attempts; '
        'if [ $n -le 2 ]; then printf "Status: 503 Busy\\r\\n\\r\\n"; '
        'else printf "Content-Type: text/plain\\r\\n\\r\\nok"; fi'
    ),
    "gone": 'printf "Status: 404 Not Found\\r\\n\\r\\n"',
}


def source() -> ExportSource:
    app = parse_app_spec(MULTI_SPEC, ".hoody/app.yaml", "shop")
    return ExportSource("main-shop", app, Crontab(tuple(ENTRIES), ()), {"API_TOKEN": "x"})


def name_of(entry_index: int) -> str:
    entry = ENTRIES[entry_index]
    return f"{entry.request.url.rsplit('/', 1)[-1].split('?')[0]}-{entry.id[:6]}"  # type: ignore[union-attr]


def fill(value: str) -> str:
    for name, text in VALUES.items():
        value = value.replace("${" + name + "}", text)
    return value


@pytest.fixture(scope="module")
def curl_image(docker_engine: Any) -> Iterator[str]:
    import docker

    try:
        docker_engine.images.get(BASE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"no local {BASE} (scripts/setup-base-image)")
    tag = f"hoody-test-curl:{RUN_ID}"
    dockerfile = (
        f"FROM {BASE}\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends"
        " curl >/dev/null && rm -rf /var/lib/apt/lists/*\n"
    )
    docker_engine.images.build(
        fileobj=io.BytesIO(dockerfile.encode()), tag=tag, labels={"hoody.test": RUN_ID}, rm=True
    )
    try:
        yield tag
    finally:
        docker_engine.images.remove(tag, force=True)


@pytest.fixture(scope="module")
def server(docker_engine: Any) -> Iterator[tuple[str, Any]]:
    name = f"hoodyhttp{RUN_ID}{uuid.uuid4().hex[:6]}"
    network = docker_engine.networks.create(name, labels={"hoody.test": RUN_ID})
    setup = ["mkdir -p /www/cgi-bin"]
    for script, body in CGI.items():
        path = f"/www/cgi-bin/{script}"
        setup += [f"printf '%s\\n' '#!/bin/sh' {shlex.quote(body)} > {path}", f"chmod +x {path}"]
    container = docker_engine.containers.create(
        "busybox:1.36",
        ["sh", "-c", " && ".join([*setup, "exec httpd -f -p 8080 -h /www"])],
        labels={"hoody.test": RUN_ID},
        name=f"{name}-web",
    )
    try:
        network.connect(container, aliases=ALIASES)
        container.start()
        deadline = time.monotonic() + 30
        while container.exec_run(
            ["wget", "-q", "-O-", "http://127.0.0.1:8080/cgi-bin/record"]
        ).exit_code:
            assert time.monotonic() < deadline, container.logs()
            time.sleep(0.2)
        yield name, container
    finally:
        container.remove(force=True)
        network.remove()


def scripts(fmt: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """job name -> (argv of the client container, its variables) in the `fmt` export."""
    files = render(fmt, source()).files
    runs: dict[str, tuple[list[str], dict[str, str]]] = {}
    if fmt == "kubernetes":
        for path, text in files.items():
            if path.startswith("cronjob-"):
                pod = yaml.safe_load(text)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
                (c,) = pod["containers"]
                assert c["image"] == CLIENT_IMAGE
                env = (
                    {e["name"]: VALUES[e["valueFrom"]["secretKeyRef"]["key"]] for e in c["env"]}
                    if "env" in c
                    else {}
                )
                runs[path[8:-5]] = ([kubelet_expand(a, env) for a in c["command"]], env)
    elif fmt == "ecs":
        for path, text in files.items():
            if path.startswith("cron/") and path.endswith(".task-definition.json"):
                (c,) = json.loads(text)["containerDefinitions"]
                env = {e["name"]: fill(e["value"]) for e in c.get("environment", [])}
                runs[path[5 : -len(".task-definition.json")]] = (c["entryPoint"], env)
    elif fmt == "render":
        for svc in yaml.safe_load(files["render.yaml"])["services"]:
            if svc["type"] == "cron":
                env = {
                    e["key"]: e["fromService"]["name"] if "fromService" in e else VALUES[e["key"]]
                    for e in svc.get("envVars", [])
                }
                runs[svc["name"].removeprefix("main-shop-")] = (
                    shlex.split(svc["dockerCommand"]),
                    env,
                )
    elif fmt == "railway":
        graph = railway_graph(files[".railway/railway.py"], "railway.py")
        for node in graph["resources"]:
            if node["name"].startswith("cron-"):
                env = {k: VALUES[v["name"]] for k, v in node.get("variables", {}).items()}
                runs[node["name"][5:]] = (shlex.split(node["deploy"]["startCommand"]), env)
    return runs


def run(docker_engine: Any, image: str, network: str, argv: list[str], env: dict[str, str]) -> int:
    container = docker_engine.containers.run(
        image, argv, environment=env, network=network, detach=True, labels={"hoody.test": RUN_ID}
    )
    try:
        return int(container.wait(timeout=60)["StatusCode"])
    finally:
        container.remove(force=True)


def reset(web: Any) -> None:
    assert (
        web.exec_run(
            ["rm", "-f", "/tmp/count", "/tmp/attempts", "/tmp/request", "/tmp/body"]
        ).exit_code
        == 0
    )


def read(web: Any, path: str) -> str:
    result = web.exec_run(["cat", path])
    return str(result.output.decode()) if result.exit_code == 0 else ""


def check_runs(web: Any, runner: Any) -> None:
    """Each job, run by `runner(job name) -> exit code`, as hoody makes it."""
    reset(web)
    assert runner(name_of(0)) == 0
    method, query, auth, report, ctype = read(web, "/tmp/request").split("\n")[:5]
    assert (method, query, auth) == ("POST", "day=1", "Bearer tok-123")
    assert report == "/reports costs $5 ${NOT_SET}"  # a variable no one set stays text
    assert ctype == "none"  # hoody sends no Content-Type unless the job says so
    assert read(web, "/tmp/body") == '{"dir": "/reports", "price": "$5", "token": "tok-123"}'
    reset(web)
    assert runner(name_of(1)) == 0  # 503, 503, then 200: within 3 retries
    attempts = read(web, "/tmp/attempts").split("\n")[:3]
    times = [float(a.split()[1]) for a in attempts]
    assert len(times) == 3 and times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4
    reset(web)
    assert runner(name_of(2)) == 1  # 503 twice: one retry is not enough
    assert [a.split()[0] for a in read(web, "/tmp/attempts").split()[::2]] == ["PATCH", "PATCH"]
    assert runner(name_of(3)) == 0  # 404 is the accepted status
    assert runner(name_of(4)) == 1  # 404 is not a 2xx


@pytest.mark.docker
@pytest.mark.timeout(300)
@pytest.mark.parametrize("fmt", ["kubernetes", "ecs", "render", "railway"])
def test_the_exported_request_reaches_the_service_as_hoody_makes_it(
    fmt: str, docker_engine: Any, curl_image: str, server: tuple[str, Any]
) -> None:
    network, web = server
    runs = scripts(fmt)
    assert {name_of(i) for i in range(len(ENTRIES))} <= set(runs), (fmt, set(runs))
    check_runs(web, lambda job: run(docker_engine, curl_image, network, *runs[job]))


COMPOSE = shutil.which("docker-compose")


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_compose_http_jobs_are_what_ofelia_runs_in_the_client_service(
    docker_engine: Any, curl_image: str, server: tuple[str, Any], tmp_path: Path
) -> None:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    network, web = server
    files = render("compose", source()).files
    (tmp_path / "docker-compose.yml").write_text(files["docker-compose.yml"])
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:1.36\n")
    others = {"WEB_BUILD_VERSION": "1", "DATABASE_URL": "db", "QUEUE": "q"}
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in {**VALUES, **others}.items()))
    out = subprocess.run(
        [COMPOSE, "-p", f"hoodyhttp{RUN_ID}", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    client = yaml.safe_load(out.stdout)["services"][HTTP_CLIENT]
    assert client["image"] == CLIENT_IMAGE
    assert client["environment"] == {"API_TOKEN": "tok-123", "REPORT_DIR": "/reports"}
    # `config` writes `$` as `$$` again; ofelia reads the labels from the running container
    labels = {k: v.replace("$$", "$") for k, v in client["labels"].items()}
    entrypoint = [w.replace("$$", "$") for w in client["entrypoint"]]
    container = docker_engine.containers.run(
        curl_image,
        entrypoint=entrypoint,
        environment=client["environment"],
        network=network,
        detach=True,
        labels={"hoody.test": RUN_ID},
    )
    try:

        def runner(job: str) -> int:
            argv = gobs_args(labels[f"ofelia.job-exec.{job}.command"])
            return int(container.exec_run(argv).exit_code)

        check_runs(web, runner)
    finally:
        container.remove(force=True)
