"""A job that prints its environment (`env`) on the real engine does not publish the
repo's secrets: the repo's `env` values and every `${VAR}`-expanded setting are masked in
the stored output, before it is written, so the API and the dashboard show `***`."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from reconciler.core.settings import parse_settings
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, unique
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker


def test_job_output_masks_the_repos_secret_values(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("a")
    env = f"main-{app}"
    db_url = "postgres://shop:hunter2-db-password@db.internal/shop"
    spec = f"name: {app}\nimage: busybox:1.36\ncommand: [sleep, '3600']\ncron: {{timeout: 10}}\n"
    remote.commit(
        "main", {".hoody/app.yaml": spec, ".hoody/crontab": "@every 1h env; echo DEBUG=1\n"}
    )
    settings = parse_settings(
        {
            "state_dir": str(tmp_path / "state"),
            "api": {"token": "${MASK_API_TOKEN}"},
            "repos": [
                {
                    "name": docker_repo,
                    "url": str(remote.bare),
                    "poll_interval": 0,
                    "env": {"DB_URL": "${MASK_DB_URL}", "DEBUG": "1"},
                }
            ],
        },
        tmp_path,
        environ={"MASK_DB_URL": db_url, "MASK_API_TOKEN": "api-token-expanded"},
    )
    assert db_url in settings.expanded
    with LiveService(settings, DockerRuntime()) as live:
        live.settle()
        entry = wait_for(lambda: live.service.scheduler.entries(env), 60, "the schedule")[0]
        run_id = live.service.scheduler.trigger(env, entry.entry.id)
        assert run_id is not None
        record = wait_for(
            lambda: (r := live.store.runs.get(run_id)) and r.status != "running" and r, 60, "run"
        )
        assert record.status == "succeeded"
        assert "DB_URL=***" in record.stdout and db_url not in record.stdout
        assert "hunter2" not in record.stdout
        assert "DEBUG=1" in record.stdout  # short, harmless values stay readable
        shown = requests.get(f"{live.url}/api/v1/runs/{run_id}", timeout=5).json()["stdout"]
        page = requests.get(f"{live.url}/runs/{run_id}", timeout=5).text
        assert "DB_URL=***" in shown and "hunter2" not in shown + page
        live.store.runs.flush()
        for db in (tmp_path / "state").glob("hoody.db*"):
            assert b"hunter2" not in db.read_bytes(), db.name
