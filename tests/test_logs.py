"""Structured logs: JSON lines carrying repo, environment and (for jobs) the entry; no
secret value ever appears in them."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

from reconciler.core.settings import RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime
from reconciler.serve.logs import JsonFormatter

from .conftest import GitRemote
from .webhook_helpers import LiveService

SECRET = "planted-secret-7f3a9c"


def test_json_logs_carry_identity_and_never_a_secret(tmp_path: Path, remote: GitRemote) -> None:
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": "name: shop\nimage: busybox:1.36\nports: [80]\n",
            ".hoody/crontab": "@every 1h echo $DB_PASSWORD\n",
        },
    )
    remote.commit(
        "feature/x",
        {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\nprivileged: true\n"},
        base="main",
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    rt.job_handler = lambda cmd, env: (1, env["DB_PASSWORD"].encode(), b"")  # leaks to output
    cfg = Settings(
        state_dir=tmp_path / "s",
        repos=(
            RepoSettings(
                name="shop",
                url=str(remote.bare),
                branches=("main", "feature/*"),
                poll_interval=0,
                env={"DB_PASSWORD": SECRET},
            ),
        ),
    )
    try:
        with LiveService(cfg, rt) as live:
            live.settle()
            (entry,) = live.service.scheduler.entries("main-shop")
            live.service.scheduler.trigger("main-shop", entry.entry.id)
            live.service.scheduler.wait_idle()
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines, "nothing was logged"
    assert SECRET not in stream.getvalue()
    env_lines = [ln for ln in lines if ln.get("env") == "main-shop"]
    assert any("created" in ln["msg"] for ln in env_lines)
    assert all(ln["repo"] == "shop" for ln in env_lines)
    rejected = [ln for ln in lines if ln.get("repo") == "shop" and "privileged" in ln["msg"]]
    assert rejected and rejected[0]["level"] == "error"
    job = [ln for ln in lines if ln.get("entry") == entry.entry.id]
    assert job and job[0]["env"] == "main-shop" and job[0]["run"]
