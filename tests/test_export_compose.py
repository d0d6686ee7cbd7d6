"""Compose export: the Compose Specification schema, `docker-compose config`, and a real
`docker-compose up -d` on the engine that must come up healthy and run a job the way an
ofelia container would (its label command split the way ofelia splits it)."""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import subprocess
import sys
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
from tests.conftest import RUN_ID
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


BUILD_SPEC = """
name: built
services:
  web:
    build: {context: app, dockerfile: Dockerfile, args: {GREETING: committed}}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [8080]
  worker:
    build: {context: ., dockerfile: docker/worker.Dockerfile}
    command: ["sleep", "3600"]
"""


def built_repo(root: Path) -> Path:
    """A working tree with two services built from different contexts."""
    files = {
        ".hoody/app.yaml": BUILD_SPEC,
        "app/Dockerfile": "FROM busybox:1.36\nARG GREETING\nCOPY index.html /www/\n"
        'RUN echo "$GREETING" > /www/greeting\n',
        "app/index.html": "built from app/\n",
        "docker/worker.Dockerfile": "FROM busybox:1.36\nCOPY app/index.html /worker.html\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def export_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "export", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_build_contexts_are_relative_to_the_output_folder(tmp_path: Path) -> None:
    repo = built_repo(tmp_path / "repo")
    cases = [
        (["--dir", "repo", "-o", "repo/out"], tmp_path, repo / "out", ["../app", ".."]),
        (
            ["--dir", ".", "-o", "deploy/compose"],
            repo,
            repo / "deploy/compose",
            ["../../app", "../.."],
        ),
        (
            ["--dir", "repo", "-o", "elsewhere"],
            tmp_path,
            tmp_path / "elsewhere",
            ["../repo/app", "../repo"],
        ),
        (["--dir", "repo", "-o", "repo"], tmp_path, repo, ["app", "."]),
    ]
    for args, cwd, out, contexts in cases:
        run = export_cli("compose", *args, cwd=cwd)
        assert run.returncode == 0, run.stderr
        doc = yaml.safe_load((out / "docker-compose.yml").read_text())
        got = [doc["services"][s]["build"]["context"] for s in ("web", "worker")]
        assert got == contexts, args
        for svc, context in zip(("web", "worker"), got, strict=True):
            dockerfile = doc["services"][svc]["build"]["dockerfile"]
            assert (out / context / dockerfile).is_file(), (args, svc)


def test_env_export_takes_the_repository_from_repo(tmp_path: Path) -> None:
    from exporters.cli import add_parser, run

    repo = built_repo(tmp_path / "checkout")
    source = source_from_dir(repo)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    out = tmp_path / "out"
    args = parser.parse_args(
        ["export", "compose", "--env", "main-built", "--repo", str(repo), "-o", str(out)]
    )
    assert run(args, lambda name: source, io.StringIO(), io.StringIO()) == 0
    doc = yaml.safe_load((out / "docker-compose.yml").read_text())
    assert doc["services"]["web"]["build"]["context"] == "../checkout/app"
    bad = parser.parse_args(["export", "compose", "--dir", str(repo), "--repo", str(repo)])
    err = io.StringIO()
    assert run(bad, lambda name: source, io.StringIO(), err) == 2
    assert "--repo goes with --env" in err.getvalue()


@pytest.mark.docker
@pytest.mark.timeout(240)
def test_compose_builds_from_the_output_folder(tmp_path: Path, docker_engine: Any) -> None:
    """`hoody export compose --dir repo -o repo/out`, then `docker-compose -f
    repo/out/docker-compose.yml build` from another folder, on the real engine."""
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    repo = built_repo(tmp_path / "repo")
    run = export_cli(
        "compose", "--dir", "repo", "-o", "repo/out", "--include-spec-values", cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    project = f"hoodybuild{uuid.uuid4().hex[:10]}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    images = [f"{project}{sep}{svc}" for svc in ("web", "worker") for sep in ("_", "-")]
    try:
        build = subprocess.run(
            [str(COMPOSE), "-p", project, "-f", str(repo / "out" / "docker-compose.yml"), "build"],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=200,
        )
        assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
        built = {}
        for name in images:
            found = docker_engine.images.list(name=name)
            if found:
                built[name.rsplit(name[len(project)], 1)[-1]] = found[0]
        assert set(built) == {"web", "worker"}, images

        def cat(image: Any, path: str) -> str:
            return docker_engine.containers.run(
                image.id, ["cat", path], remove=True, labels={"hoody.test": RUN_ID}
            ).decode()

        assert cat(built["web"], "/www/index.html") == "built from app/\n"
        assert cat(built["web"], "/www/greeting") == "committed\n"
        assert cat(built["worker"], "/worker.html") == "built from app/\n"
    finally:
        for name in images:
            for image in docker_engine.images.list(name=name):
                with contextlib.suppress(Exception):
                    docker_engine.images.remove(image.id, force=True)
