"""`hoody serve` as a user runs it: a real process, real HTTP, the bundled example, and a
local commit picked up by the watch (no webhook, polling off)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import cleanup_repo, git, unique

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hoody(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for(check, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def envs(config: Path) -> dict[str, dict]:
    out = hoody(config, "envs", "--json")
    assert out.returncode == 0, out.stderr
    return {e["name"]: e for e in json.loads(out.stdout)}


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


@pytest.fixture
def demo(tmp_path: Path, docker_engine) -> Iterator[tuple[str, Path]]:  # type: ignore[no-untyped-def]
    name = unique("demo")
    env = {**os.environ, "DEMO_NAME": name}
    subprocess.run(
        [str(ROOT / "scripts" / "make-demo-repo"), str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    config = tmp_path / "hoody.yaml"
    # Poll off: only the start-up pass and the watch may trigger passes.
    config.write_text(config.read_text().replace("poll_interval: 60", "poll_interval: 0"))
    yield name, config
    cleanup_repo(docker_engine, name)


def test_serve_runs_the_example_and_a_local_commit_deploys_without_webhook(
    demo: tuple[str, Path], tmp_path: Path
) -> None:
    name, config = demo
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler.cli.main",
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        health = wait_for(
            lambda: json.loads(get(f"http://127.0.0.1:{port}/healthz")), 30, "healthz"
        )
        assert health["status"] == "ok"
        main, feature = f"main-{name}", f"feature-hello-{name}"
        listed = wait_for(
            lambda: (
                (e := envs(config))
                and all(e.get(n, {}).get("status") == "healthy" for n in (main, feature))
                and e
            ),
            120,
            "two healthy environments",
        )
        assert "hello from main" in get(listed[main]["url"])
        assert "hello from feature/hello" in get(listed[feature]["url"])

        repo = tmp_path / "repo"
        app = repo / ".hoody" / "app.yaml"
        app.write_text(app.read_text().replace("hello from main", "hello from a local commit"))
        git(repo, "commit", "-qam", "new greeting")
        sha = git(repo, "rev-parse", "HEAD")
        updated = wait_for(
            lambda: (
                (e := envs(config)).get(main, {}).get("commit") == sha
                and e[main].get("status") == "healthy"  # not only started: serving
                and e
            ),
            60,
            "the watch to deploy the local commit",
        )
        assert "hello from a local commit" in get(updated[main]["url"])
        assert updated[feature]["commit"] == listed[feature]["commit"]

        events = hoody(config, "events", "--env", main)
        assert "updated at" in events.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_validate_reports_file_and_line_and_passes_the_example(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "validate", str(ROOT / "examples" / "demo")],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad"
    (bad / ".hoody").mkdir(parents=True)
    (bad / ".hoody" / "app.yaml").write_text(
        "name: x\nimage: busybox:1.36\nprivileged: true\nports: [99999]\n"
    )
    (bad / ".hoody" / "crontab").write_text("* * * * * echo ok\n61 * * * * echo bad\n")
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "validate", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert ".hoody/app.yaml:3:" in out.stderr and "privileged" in out.stderr
    assert ".hoody/app.yaml:4:" in out.stderr
    assert ".hoody/crontab:2:" in out.stderr


def test_plan_and_apply_cli_print_json(tmp_path: Path, docker_engine, remote) -> None:  # type: ignore[no-untyped-def]
    from .conftest import cleanup_repo

    name = unique("cli")
    remote.commit(
        "main", {".hoody/app.yaml": f"name: {name}\nimage: busybox:1.36\ncommand: [sleep, '600']\n"}
    )
    config = tmp_path / "hoody.yaml"
    config.write_text(
        f"state_dir: ./state\nrepos:\n  - name: {name}\n"
        f"    url: {remote.bare}\n    poll_interval: 0\n"
    )
    try:
        plan = hoody(config, "plan", "--json")
        assert plan.returncode == 0, plan.stderr
        (repo,) = json.loads(plan.stdout)
        assert [(a["op"], a["env"]) for a in repo["actions"]] == [("create", f"main-{name}")]
        applied = hoody(config, "apply")
        assert applied.returncode == 0, applied.stderr
        assert "waiting until healthy" in applied.stderr  # progress is shown
        again = hoody(config, "apply", "--json")
        assert [a["op"] for a in json.loads(again.stdout)[0]["actions"]] == ["noop"]
        listed = hoody(config, "envs")
        assert f"main-{name}" in listed.stdout and "healthy" in listed.stdout
    finally:
        cleanup_repo(docker_engine, name)
