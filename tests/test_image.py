"""The service's own image, run as the README says: built from this checkout on the local
Debian base, the engine's socket mounted, the host network, a local repository mounted
read-only. A branch becomes a healthy environment, a commit updates it, the API and the
dashboard answer, and SIGTERM stops the service cleanly: the running job is recorded
`interrupted`, nothing is torn down, and a restart adopts what runs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from .conftest import cleanup_repo, git, unique
from .deploy_support import (  # noqa: F401 — fixtures
    base_image,
    docker_gid,
    free_port,
    get_json,
    http,
    make_demo,
    run,
    service_image,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SLEEPER = "/bin/sleep 600"


def env_containers(client: Any, repo: str) -> dict[str, str]:
    """name -> id of the environments' containers (labels are the record)."""
    found = client.containers.list(filters={"label": ["hoody.managed=true", f"hoody.repo={repo}"]})
    return {c.name: c.id for c in found}


@pytest.mark.timeout(900)
def test_the_image_serves_a_mounted_repo_and_stops_cleanly_on_sigterm(
    service_image: str,  # noqa: F811
    docker_engine: Any,
    tmp_path: Path,
) -> None:
    name = unique("img")
    repo = make_demo(tmp_path, name)
    port = free_port()
    config = tmp_path / "container.yaml"
    config.write_text(
        "state_dir: /state\n"
        f"server: {{host: 127.0.0.1, port: {port}}}\n"
        "docker: {publish_host: 127.0.0.1}\n"
        "scheduler: {shutdown_grace: 2s, kill_grace: 2s}\n"
        "limits: {min_every: 1s}\n"  # the test's job fires every 2 s
        "repos:\n"
        f"  - name: {name}\n"
        "    url: /srv/git/demo\n"
        '    branches: ["main", "feature/*"]\n'
        "    poll_interval: 0\n"
    )
    container, volume = f"hoody-{name}", f"hoody-{name}-state"
    base = f"http://127.0.0.1:{port}"
    main, feature = f"main-{name}", f"feature-hello-{name}"

    def environments() -> dict[str, dict[str, Any]]:
        return {e["name"]: e for e in get_json(f"{base}/api/v1/environments")["environments"]}

    def logs() -> str:
        out = run(["docker", "logs", container], check=False)
        return out.stdout + out.stderr

    try:
        run(["docker", "volume", "create", "--label", f"hoody.repo={name}", volume])
        # The README's command, with the test's port, repository and image id.
        run(
            [
                "docker", "run", "-d", "--name", container,
                "--label", f"hoody.repo={name}",
                "--network", "host",
                "--group-add", str(docker_gid()),
                "-v", "/var/run/docker.sock:/var/run/docker.sock",
                "-v", f"{volume}:/state",
                "-v", f"{config}:/etc/hoody/hoody.yaml:ro",
                "-v", f"{repo}:/srv/git/demo:ro",
                "-e", "HOODY_GIT_SAFE_DIRECTORIES=/srv/git/demo",
                service_image,
            ]
        )  # fmt: skip
        assert docker_engine.containers.get(container).attrs["Config"]["User"] == "hoody"
        wait_for(lambda: http(f"{base}/healthz")[0] == 200, 60, "/healthz")
        assert get_json(f"{base}/healthz")["status"] == "ok"
        listed = wait_for(
            lambda: (
                (e := environments())
                and all(e.get(n, {}).get("status") == "healthy" for n in (main, feature))
                and e
            ),
            180,
            "two healthy environments",
        )
        assert "hello from main" in http(listed[main]["url"])[1]
        assert "hello from feature/hello" in http(listed[feature]["url"])[1]
        # The image's own HEALTHCHECK (hoody healthcheck) passes.
        wait_for(
            lambda: (
                docker_engine.containers.get(container).attrs["State"]["Health"]["Status"]
                == "healthy"
            ),
            60,
            "the container's health check",
        )

        # A commit updates main (the watch sees it through the read-only mount) and adds a
        # job that is still running when the service is stopped.
        app = repo / ".hoody" / "app.yaml"
        app.write_text(app.read_text().replace("hello from main", "hello from the image"))
        with (repo / ".hoody" / "crontab").open("a") as tab:
            tab.write(f"@every 2s {SLEEPER}\n")
        git(repo, "commit", "-qam", "new greeting and a long job")
        sha = git(repo, "rev-parse", "HEAD")
        updated = wait_for(
            lambda: (
                (e := environments()).get(main, {}).get("commit") == sha
                and e[main]["status"] == "healthy"
                and e
            ),
            120,
            "the commit to be deployed",
        )
        assert "hello from the image" in http(updated[main]["url"])[1]
        assert updated[feature]["commit"] == listed[feature]["commit"]

        status, page = http(f"{base}/")
        assert status == 200 and main in page and feature in page
        status, css = http(f"{base}/static/dashboard/dashboard.css")
        assert status == 200 and css.strip()

        def running_sleeper() -> list[dict[str, Any]]:
            runs = get_json(f"{base}/api/v1/environments/{main}/runs")["runs"]
            return [r for r in runs if r["command"] == SLEEPER and r["status"] == "running"]

        (job,) = wait_for(running_sleeper, 60, "the long job to be running")
        before = env_containers(docker_engine, name)
        assert {f"{main}_web", f"{feature}_web"} <= set(before)

        # SIGTERM, as `docker stop` sends it.
        run(["docker", "kill", "--signal", "SIGTERM", container])
        exit_code = docker_engine.containers.get(container).wait(timeout=60)["StatusCode"]
        text = logs()
        assert exit_code == 0, text[-3000:]
        assert "SIGTERM received: stopping" in text and "stopped" in text.splitlines()[-1]
        assert env_containers(docker_engine, name) == before  # nothing torn down

        # A restart on the same state volume adopts the running environments.
        run(["docker", "start", container])
        wait_for(lambda: http(f"{base}/healthz")[0] == 200, 60, "/healthz after the restart")
        wait_for(
            lambda: any(
                r["passes"] >= 1 and r["last_pass"]["ok"]
                for r in get_json(f"{base}/api/v1/repos")["repos"]
            ),
            120,
            "a pass after the restart",
        )
        again = get_json(f"{base}/api/v1/runs/{job['id']}")
        assert again["status"] == "interrupted", again
        assert again["reason"] == "the service shut down"
        after = environments()
        assert after[main]["commit"] == sha and after[main]["status"] == "healthy"
        assert env_containers(docker_engine, name) == before  # adopted, not recreated
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)
        # The engine can report a network's endpoint a moment after its container went.
        for attempt in range(3):
            try:
                cleanup_repo(docker_engine, name)
                break
            except docker.errors.APIError:
                if attempt == 2:
                    raise
                time.sleep(1)
