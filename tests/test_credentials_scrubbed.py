"""A token planted in a repo URL whose fetch fails appears on no surface: not in the API,
the dashboard's HTML, the events, the logs (JSON and text), the metrics, the database
file, an export, or the CLI's `--json` output; the failure itself is shown, scrubbed."""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime
from reconciler.serve.logs import JsonFormatter, TextFormatter

from .conftest import GitRemote
from .webhook_helpers import LiveService, free_port, wait_for

API_TOKEN = "scrub-api-token"


def test_a_token_in_a_failing_repo_url_reaches_no_surface(
    tmp_path: Path, remote: GitRemote, docker_engine: object
) -> None:
    planted = "ghp_" + secrets.token_hex(18)
    leaky_url = (
        f"https://x-access-token:{planted}@127.0.0.1:{free_port()}/org/repo.git?token={planted}"
    )
    remote.commit("main", {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n"})
    repos = (
        RepoSettings(name="leaky", url=leaky_url, provider="github", poll_interval=0),
        RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),
    )
    cfg = Settings(state_dir=tmp_path / "state", api=ApiSettings(token=API_TOKEN), repos=repos)
    logs = io.StringIO()
    handlers = []
    for formatter in (JsonFormatter(), TextFormatter("%(name)s: %(message)s")):
        handler = logging.StreamHandler(logs)
        handler.setFormatter(formatter)
        handlers.append(handler)
        logging.getLogger().addHandler(handler)
    surfaces: dict[str, str] = {}
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    try:
        with LiveService(cfg, rt) as live:
            wait_for(
                lambda: "leaky" in live.service.last_result and live.store.environment("main-shop"),
                60,
                "both repos' first pass",
            )
            for path in (
                "/api/v1/repos",
                "/api/v1/events?limit=1000",
                "/api/v1/environments",
                "/api/v1/plan",
                "/api/v1/environments/main-shop/export/compose",
                "/metrics",
                "/",
                "/environments/main-shop",
                "/runs",
            ):
                r = requests.get(f"{live.url}{path}", headers=auth, timeout=30)
                assert r.status_code == 200, (path, r.status_code)
                surfaces[path] = r.text
            live.store.flush()
            listed = requests.get(f"{live.url}/api/v1/repos", timeout=5).json()["repos"]
            repo = next(x for x in listed if x["name"] == "leaky")
    finally:
        for handler in handlers:
            logging.getLogger().removeHandler(handler)
    fetch_error = repo["last_pass"]["fetch_error"]
    assert fetch_error and "***@127.0.0.1" in fetch_error  # the failure is there, scrubbed
    assert repo["url"].startswith("https://***@127.0.0.1")
    surfaces["logs"] = logs.getvalue()
    assert "fetch from https://***@" in surfaces["logs"]
    for db in (tmp_path / "state").glob("hoody.db*"):
        surfaces[db.name] = db.read_bytes().decode("latin-1")

    config = tmp_path / "hoody.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(tmp_path / "cli-state"),
                "repos": [{"name": "leaky", "url": leaky_url, "poll_interval": 0}],
            }
        )
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    plan_stdout = ""
    for args in (["plan", "--json"], ["apply", "--json"], ["envs", "--json"], ["events", "--json"]):
        out = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", "--config", str(config), "--log-format",
             "json", *args],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        surfaces[f"hoody {' '.join(args)}"] = out.stdout + out.stderr
        if args[0] == "plan":
            plan_stdout = out.stdout
    plan = json.loads(plan_stdout)
    assert plan[0]["fetch_error"] and "***@" in plan[0]["fetch_error"]

    leaked = [name for name, text in surfaces.items() if planted in text]
    assert leaked == [], f"the planted token appears in: {leaked}"
