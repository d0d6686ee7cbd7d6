"""HTTP jobs against real containers: busybox `httpd -vv` logs every request (its path) it receives,
so the tests read what arrived from the web container's own log.

They wait for outcomes (runs recorded, log lines) with generous deadlines; they never
assert how long something took."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import requests

from reconciler.core.naming import container_name
from reconciler.core.settings import (
    ApiSettings,
    LimitsSettings,
    RepoSettings,
    SchedulerSettings,
    Settings,
)
from reconciler.runtime.docker import DockerRuntime

from .conftest import GitRemote, unique
from .webhook_helpers import LiveService, wait_for

pytestmark = pytest.mark.docker
TOKEN = "admin-token-for-tests"

# The web service: a page at /tasks/digest, a CGI that answers 500 and one that echoes
# the request's header and body back.
WEB = (
    "mkdir -p /www/tasks /www/cgi-bin && echo digest-done > /www/tasks/digest && "
    "printf '#!/bin/sh\\necho Status: 500 Internal Server Error\\necho\\necho boom\\n' "
    "> /www/cgi-bin/fail && "
    "printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho token=$HTTP_X_TOKEN\\n"
    "cat\\n' > /www/cgi-bin/echo && chmod +x /www/cgi-bin/* && "
    "exec httpd -f -vv -p 8080 -h /www"
)


def spec(app: str) -> str:
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "{WEB}"]
    env: {{API_TOKEN: s3cr3t-token}}
  worker:
    image: busybox:1.36
    command: ["sleep", "3600"]
    env: {{API_TOKEN: s3cr3t-token}}
cron: {{service: worker, timeout: 10}}
"""


def settings(tmp_path: Path, repo: str, remote: GitRemote) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name=repo, url=str(remote.bare), branches=("main",), poll_interval=0),),
        scheduler=SchedulerSettings(shutdown_grace=0.5, kill_grace=1.0),
        limits=LimitsSettings(min_every=1.0),
        api=ApiSettings(token=TOKEN),
    )


def web_log(env: str) -> str:
    client = docker.from_env()
    try:
        return client.containers.get(container_name(env, "web")).logs().decode()
    finally:
        client.close()


def test_http_jobs_reach_the_service_retry_on_500_and_outside_targets_are_refused(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    app = unique("h")
    env = f"main-{app}"
    crontab = (
        "@every 2s | GET http://web:8080/tasks/digest\n"
        "@every 3s | POST http://web:8080/cgi-bin/fail retries=2 retry_backoff=0.2s\n"
    )
    remote.commit("main", {".hoody/app.yaml": spec(app), ".hoody/crontab": crontab})
    with LiveService(settings(tmp_path, docker_repo, remote), DockerRuntime()) as live:
        store = live.store

        def runs(status: str) -> list:
            return [r for r in store.runs.list(env=env, status=status, limit=200)]

        ok = wait_for(lambda: runs("succeeded"), 90, "a succeeded HTTP run")[0]
        assert ok.http_status == 200 and ok.exit_code is None
        assert ok.stdout.strip() == "digest-done"
        assert "attempt 1: 200 OK" in ok.stderr
        assert ok.duration is not None and ok.duration >= 0
        wait_for(lambda: "url:/tasks/digest" in web_log(env), 30, "the path in httpd's log")

        failed = wait_for(lambda: runs("failed"), 90, "a failed HTTP run")[0]
        assert failed.http_status == 500
        assert "HTTP 500 (expected 2xx) after 3 attempts" in (failed.reason or "")
        assert failed.stderr.count("500 Internal Server Error") == 3
        wait_for(
            lambda: web_log(env).count("url:/cgi-bin/fail") >= 3, 30, "three requests to /fail"
        )

        # /runs shows the status code and the duration
        shown = requests.get(f"{live.url}/api/v1/runs/{failed.id}", timeout=10).json()
        assert shown["http_status"] == 500 and shown["job_kind"] == "http"
        assert shown["duration"] is not None

        # A managed entry: secrets go only where the request names them via ${VAR}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base = f"{live.url}/api/v1/environments/{env}/users/root/entries"
        body = {
            "schedule": "@every 2s",
            "request": {
                "method": "POST",
                "url": "http://web:8080/cgi-bin/echo",
                "headers": {"X-Token": "${API_TOKEN}"},
                "body": "payload-1",
            },
            "retries": 1,
        }
        r = requests.post(base, json=body, headers=headers, timeout=10)
        assert r.status_code == 201, r.text
        entry = r.json()
        assert entry["job_kind"] == "http" and entry["request"]["retries"] == 1

        echoed = wait_for(
            lambda: [x for x in runs("succeeded") if x.entry_id == entry["id"]], 60, "echo run"
        )[0]
        assert "payload-1" in echoed.stdout
        assert "s3cr3t-token" not in echoed.stdout  # sent, but masked in the stored body
        # Targets outside the environment: refused, each a 400 naming the field
        for url in ("http://127.0.0.1:8080/", "http://db:5432/", f"http://{live.url[7:]}/"):
            bad = {**body, "request": {**body["request"], "url": url}}
            r = requests.post(base, json=bad, headers=headers, timeout=10)
            assert r.status_code == 400, (url, r.text)
            assert "request.url" in r.text and "refused" in r.text
        both = requests.post(base, json={**body, "command": "echo hi"}, headers=headers, timeout=10)
        assert both.status_code == 400 and "command" in both.text

        # A crontab line to the host: the whole schedule is refused at its line
        remote.commit(
            "main", {".hoody/crontab": crontab + "* * * * * | GET http://127.0.0.1:9/x\n"}
        )
        live.service.trigger(docker_repo)
        live.settle()
        rejected = wait_for(
            lambda: live.store.events(env=env, kind="schedule_rejected"), 30, "rejection"
        )
        assert ".hoody/crontab:3: url: 127.0.0.1:9 is not a service" in rejected[0].message
        assert "url:/x" not in web_log(env)
