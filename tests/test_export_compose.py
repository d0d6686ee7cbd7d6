"""Compose export: the Compose Specification schema, `docker-compose config`, and a real
`docker-compose up -d` on the engine that must come up healthy and run a job the way an
ofelia container would (its label command split the way ofelia splits it)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporters import render, source_from_dir
from exporters.base import ExportSource
from exporters.compose import ofelia_command
from reconciler.core.crontab import parse_crontab
from reconciler.core.spec import parse_app_spec
from tests.export_schemas import check_compose
from tests.test_export_support import DEMO, hostile_source

COMPOSE = shutil.which("docker-compose")


def validate_schema(text: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    check_compose(doc, "docker-compose.yml")
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize("values", [False, True])
def test_compose_files_match_the_compose_specification(values: bool) -> None:
    for source in (source_from_dir(DEMO, values), hostile_source(values)):
        doc = validate_schema(render("compose", source).files["docker-compose.yml"])
        assert doc["x-hoody-crontab"].replace("$$", "$") == source.crontab_text


def test_hostile_values_survive_compose_interpolation(tmp_path: Path) -> None:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    source = hostile_source(include_spec_values=True)
    result = render("compose", source)
    (tmp_path / "docker-compose.yml").write_text(result.files["docker-compose.yml"])
    (tmp_path / "Dockerfile").write_text("FROM busybox:1.36\n")
    env = {"PATH": "/usr/bin:/bin", "DB_PASSWORD": "x", "API_TOKEN": "y", "QUOTES": "q"}
    env["WORKER_BUILD_TOKEN_ARG"] = "arg"
    out = subprocess.run(
        [COMPOSE, "-p", "hoodycheck", "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    config = yaml.safe_load(out.stdout)
    web = config["services"]["web"]
    spec = source.app.services["web"]
    for name, value in spec.env.items():
        if name not in source.secret_env:  # `config` writes a valid file again: `$` as `$$`
            assert web["environment"][name].replace("$$", "$") == value, name
    assert [w.replace("$$", "$") for w in web["command"]] == list(spec.command or ())
    labels = web["labels"]
    assert labels["ofelia.enabled"] == "true"
    commands = [v for k, v in labels.items() if k.endswith(".command")]
    assert commands and all(gobs_args(c)[:2] == ["/bin/sh", "-c"] for c in commands)


def gobs_args(line: str) -> list[str]:
    """What ofelia (github.com/gobs/args) makes of a command line, for the cases our
    exporter writes: double-quoted words in which a backslash escapes the next character."""
    words, i = [], 0
    while i < len(line):
        if line[i].isspace():
            i += 1
            continue
        assert line[i] == '"', line[i:]
        i, word = i + 1, []
        while line[i] != '"':
            if line[i] == "\\":
                i += 1
            word.append(line[i])
            i += 1
        words.append("".join(word))
        i += 1
    return words


def test_ofelia_command_round_trips() -> None:
    argv = ["/bin/sh", "-c", "echo \"a\\b\" 'c' $X ✓", ""]
    assert gobs_args(ofelia_command(argv)) == argv


UP_SPEC = """
name: upcheck
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /www && echo \\"$GREETING\\" > /www/index.html \
      && exec httpd -f -p 8080 -h /www"]
    env: {GREETING: "committed", LITERAL: "it's \\"q\\" $HOME ${X:-y} \\u2713"}
    ports: [8080]
    volumes: {data: /data}
    healthcheck: {http: /, interval: 1s, timeout: 1s, start_period: 10s}
    resources: {memory: 64m, cpus: 0.5}
"""
UP_CRONTAB = (
    'NOTE=\'it is "q"\'\n*/5 * * * * echo "job says $GREETING $NOTE" > /data/out; cat /data/out\n'
)


@pytest.mark.docker
@pytest.mark.timeout(120)
def test_compose_up_runs_healthy_and_the_job_runs(tmp_path: Path, docker_engine: Any) -> None:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    app = parse_app_spec(UP_SPEC, ".hoody/app.yaml", "upcheck")
    tab = parse_crontab(UP_CRONTAB, ".hoody/crontab", "UTC")
    secrets = {"GREETING": "never-in-the-export"}
    source = ExportSource("main-upcheck", app, tab, secrets, True, UP_CRONTAB)
    result = render("compose", source)
    for path, text in result.files.items():
        (tmp_path / path).write_text(text)
    (tmp_path / ".env").write_text("GREETING=from-dot-env\n")
    project = f"hoodyexport{uuid.uuid4().hex[:10]}"

    def compose(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMPOSE), "-p", project, *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        ids = compose("ps", "-q", "web").stdout.split()
        assert len(ids) == 1
        container = docker_engine.containers.get(ids[0])
        deadline = time.monotonic() + 60
        status = ""
        while time.monotonic() < deadline:
            container.reload()
            status = container.attrs["State"].get("Health", {}).get("Status", "")
            if status == "healthy":
                break
            time.sleep(0.5)
        assert status == "healthy", container.logs().decode()[-2000:]
        page = container.exec_run(["wget", "-q", "-O-", "http://127.0.0.1:8080/"])
        assert page.output.decode().strip() == "from-dot-env"
        env = dict(e.split("=", 1) for e in container.attrs["Config"]["Env"])
        assert env["LITERAL"] == app.services["web"].env["LITERAL"]
        labels = container.labels
        (command,) = [v for k, v in labels.items() if k.endswith(".command")]
        (user,) = [v for k, v in labels.items() if k.endswith(".user")]
        run = container.exec_run(gobs_args(command), user=user)
        assert run.exit_code == 0, run.output
        assert run.output.decode().strip() == 'job says from-dot-env it is "q"'
    finally:
        compose("down", "-v", "--remove-orphans", timeout=120)
    assert not docker_engine.containers.list(all=True, filters={"name": project})


@pytest.mark.docker
@pytest.mark.timeout(180)
def test_the_example_app_comes_up_healthy_from_its_compose_export(
    tmp_path: Path, docker_engine: Any
) -> None:
    """The bundled example (built from its Dockerfile `FROM busybox:1.36`) exported to
    compose and brought up with `docker-compose up -d --build` on the real engine."""
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    import shutil as _shutil

    from exporters import source_from_dir

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    work = tmp_path / "demo"
    _shutil.copytree(demo, work)
    for path, text in render("compose", source_from_dir(work)).files.items():
        (work / path).write_text(text)
    (work / ".env").write_text("GREETING=hello-from-compose\n")
    project = f"hoodyexample{uuid.uuid4().hex[:10]}"

    def compose(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMPOSE), "-p", project, *args],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    try:
        up = compose("up", "-d", "--build")
        assert up.returncode == 0, up.stderr[-3000:]
        (cid,) = compose("ps", "-q", "web").stdout.split()
        container = docker_engine.containers.get(cid)
        deadline, status = time.monotonic() + 90, ""
        while time.monotonic() < deadline and status != "healthy":
            container.reload()
            status = container.attrs["State"].get("Health", {}).get("Status", "")
            time.sleep(0.5)
        assert status == "healthy", container.logs().decode()[-2000:]
        page = container.exec_run(["wget", "-q", "-O-", "http://127.0.0.1:8080/"])
        assert "hello-from-compose" in page.output.decode()
    finally:
        compose("down", "-v", "--remove-orphans", "--rmi", "local", timeout=150)
    assert not docker_engine.containers.list(all=True, filters={"name": project})
