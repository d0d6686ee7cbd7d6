"""The REST API over a real socket: shapes, errors, auth, schedules, overrides and managed
entries (in-memory runtime; the jobs' Docker execution is tested elsewhere)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService, wait_for

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\n"
TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def live(tmp_path: Path, remote: GitRemote) -> Iterator[LiveService]:
    remote.commit("main", {".hoody/app.yaml": SPEC, ".hoody/crontab": "@every 1h echo hourly\n"})
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    rt.job_handler = lambda cmd, env: (0, f"ran {cmd[-1]}".encode(), b"")
    cfg = Settings(
        state_dir=tmp_path / "s",
        api=ApiSettings(token=TOKEN),
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    with LiveService(cfg, rt) as svc:
        svc.settle()
        yield svc


def api(live: LiveService, path: str) -> str:
    return f"{live.url}/api/v1{path}"


def test_every_api_route_is_documented(live: LiveService) -> None:
    doc = requests.get(api(live, "/openapi.json"), timeout=5).json()
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    routes = set()
    for rule in live.app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = rule.rule[len("/api/v1") :].replace("<int:", "{").replace("<", "{").replace(">", "}")
        routes |= {(path, m) for m in rule.methods or () if m not in ("HEAD", "OPTIONS")}
    assert routes - documented == set()


def test_environments_and_errors_are_json(live: LiveService) -> None:
    envs = requests.get(api(live, "/environments"), timeout=5).json()["environments"]
    (env,) = envs
    assert env["name"] == "main-shop" and env["kind"] == "branch" and env["status"] == "healthy"
    assert env["schedule"]["entries"] == 1
    missing = requests.get(api(live, "/environments/nope"), timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    unknown = requests.get(api(live, "/no/such/route"), timeout=5)
    assert unknown.status_code == 404 and "error" in unknown.json()
    bad = requests.get(api(live, "/events?limit=abc"), timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["message"]
    plan = requests.get(api(live, "/plan"), headers=AUTH, timeout=5).json()["plan"]
    assert plan[0]["actions"][0]["op"] == "noop"


def test_mutations_need_the_bearer_token(live: LiveService) -> None:
    url = api(live, "/repos/shop/sync")
    assert requests.post(url, timeout=5).status_code == 401
    assert (
        requests.post(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 403
    )
    assert requests.post(url, headers=AUTH, timeout=5).status_code == 202


def test_cron_listing_trigger_and_runs(live: LiveService) -> None:
    cron = requests.get(api(live, "/environments/main-shop/cron"), timeout=5).json()
    (entry,) = cron["entries"]
    assert entry["schedule"] == "@every 1h" and len(entry["next"]) == 5
    three = requests.get(api(live, "/environments/main-shop/cron?n=3"), timeout=5).json()
    assert len(three["entries"][0]["next"]) == 3
    assert entry["source"] == "git" and entry["user"] == "root"
    r = requests.post(
        api(live, f"/environments/main-shop/cron/{entry['id']}/trigger"), headers=AUTH, timeout=5
    )
    assert r.status_code == 202
    run_id = r.json()["run"]
    run = wait_for(
        lambda: (
            (x := requests.get(api(live, f"/runs/{run_id}"), timeout=5).json())
            and x["status"] != "running"
            and x
        ),
        10,
        "the run",
    )
    assert run["status"] == "succeeded" and run["trigger"] == "manual"
    assert run["stdout"] == "ran echo hourly"
    runs = requests.get(
        api(live, "/environments/main-shop/runs?status=succeeded"), timeout=5
    ).json()["runs"]
    assert [x["id"] for x in runs] == [run_id]


def test_put_crontab_overrides_until_the_next_commit_that_changes_it(
    live: LiveService, remote: GitRemote
) -> None:
    url = api(live, "/environments/main-shop/users/root/crontab")
    assert requests.get(url, timeout=5).text == "@every 1h echo hourly\n"
    bad = requests.put(
        url,
        data="* * * * * ok\n61 * * * * no\nnope\n",
        headers={**AUTH, "Content-Type": "text/plain"},
        timeout=5,
    )
    assert bad.status_code == 400
    errors = bad.json()["error"]["details"]["errors"]
    assert [e.split(":")[1] for e in errors] == ["2", "3"]
    assert requests.get(url, timeout=5).text == "@every 1h echo hourly\n"  # no change

    ok = requests.put(
        url,
        data="*/5 * * * * echo api\n",
        headers={**AUTH, "Content-Type": "text/plain"},
        timeout=5,
    )
    assert ok.status_code == 200 and ok.json()["entries"][0]["command"] == "echo api"
    got = requests.get(url, timeout=5)
    assert got.headers["X-Hoody-Source"] == "api" and got.text == "*/5 * * * * echo api\n"
    # A commit that does not touch the crontab keeps the override...
    remote.commit("main", {"README": "docs\n"})
    live.service.trigger("shop")
    live.settle()
    assert requests.get(url, timeout=5).headers["X-Hoody-Source"] == "api"
    # ...one that changes it hands the schedule back to git.
    remote.commit("main", {".hoody/crontab": "@every 2h echo from-git\n"})
    live.service.trigger("shop")
    live.settle()
    got = requests.get(url, timeout=5)
    assert got.headers["X-Hoody-Source"] == "git" and "from-git" in got.text


def test_managed_entries_one_shot_expiry_and_crud(live: LiveService) -> None:
    base = api(live, "/environments/main-shop/users/deploy/entries")
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = requests.post(base, json={"run_at": soon, "command": "echo once"}, headers=AUTH, timeout=5)
    assert r.status_code == 201
    once_id = r.json()["id"]
    wait_for(
        lambda: any(
            x["entry"] == once_id and x["status"] == "succeeded"
            for x in requests.get(api(live, "/environments/main-shop/runs"), timeout=5).json()[
                "runs"
            ]
        ),
        15,
        "the one-shot run",
    )
    entries = requests.get(api(live, "/environments/main-shop/cron"), timeout=5).json()
    assert once_id not in {e["id"] for e in entries["entries"]}  # ran once, then gone

    expires = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    r = requests.post(
        base,
        json={"schedule": "0 3 * * *", "command": "echo nightly", "expires_at": expires},
        headers=AUTH,
        timeout=5,
    )
    nightly = r.json()["id"]
    listed = requests.get(api(live, "/environments/main-shop/cron"), timeout=5).json()
    assert {"id": nightly, "source": "managed", "user": "deploy"}.items() <= next(
        e for e in listed["entries"] if e["id"] == nightly
    ).items()
    wait_for(
        lambda: (
            nightly
            not in {
                e["id"]
                for e in requests.get(api(live, "/environments/main-shop/cron"), timeout=5).json()[
                    "entries"
                ]
            }
        ),
        15,
        "the expiry",
    )

    r = requests.post(
        base, json={"schedule": "*/10 * * * *", "command": "echo x"}, headers=AUTH, timeout=5
    )
    eid = r.json()["id"]
    r = requests.patch(f"{base}/{eid}", json={"command": "echo y"}, headers=AUTH, timeout=5)
    assert r.status_code == 200 and r.json()["command"] == "echo y"
    assert (
        requests.post(
            base, json={"schedule": "61 * * * *", "command": "x"}, headers=AUTH, timeout=5
        ).status_code
        == 400
    )
    assert requests.delete(f"{base}/{eid}", headers=AUTH, timeout=5).status_code == 204
    assert requests.delete(f"{base}/{eid}", headers=AUTH, timeout=5).status_code == 404
    users = requests.get(api(live, "/environments/main-shop/users"), timeout=5).json()["users"]
    assert {u["user"] for u in users} >= {"root"}


def test_metrics_and_readiness(live: LiveService) -> None:
    text = requests.get(f"{live.url}/metrics", timeout=5).text
    for name in (
        "hoody_reconcile_passes_total",
        "hoody_reconcile_duration_seconds",
        "hoody_environments",
        "hoody_queue_depth",
        "hoody_cron_lateness_seconds",
        "hoody_webhook_deliveries",
        "hoody_actions_total",
    ):
        assert name in text, name
    assert 'hoody_environments{status="healthy"} 1.0' in text
    assert 'hoody_reconcile_passes_total{repo="shop",result="ok"}' in text
    assert 'hoody_actions_total{op="create",result="ok"} 1.0' in text
    ready = requests.get(f"{live.url}/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["checks"]["docker"] == "ok"
    live.service.runtime.unavailable = True  # type: ignore[attr-defined]
    try:
        down = requests.get(f"{live.url}/readyz", timeout=5)
        assert down.status_code == 503 and down.json()["checks"]["docker"].startswith("failed")
    finally:
        live.service.runtime.unavailable = False  # type: ignore[attr-defined]


def test_export_route_serves_json_and_zip_with_secrets_masked(
    tmp_path: Path, remote: GitRemote
) -> None:
    import io
    import zipfile

    remote.commit("main", {".hoody/app.yaml": SPEC, ".hoody/crontab": "0 3 * * * echo hi\n"})
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    secret = "export-secret-4d1e"
    cfg = Settings(
        state_dir=tmp_path / "s",
        repos=(
            RepoSettings(
                name="shop", url=str(remote.bare), poll_interval=0, env={"DB_URL": secret}
            ),
        ),
    )
    with LiveService(cfg, rt) as live:
        live.settle()
        r = requests.get(api(live, "/environments/main-shop/export/kubernetes"), timeout=10)
        assert r.status_code == 200
        files = r.json()["files"]
        assert any("CronJob" in text for text in files.values())
        assert secret not in r.text and "DB_URL" in r.text
        z = requests.get(
            api(live, "/environments/main-shop/export/compose"),
            timeout=10,
            headers={"Accept": "application/zip"},
        )
        assert z.headers["Content-Type"].startswith("application/zip")
        names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
        assert any(n.endswith("docker-compose.yml") for n in names)
        assert (
            requests.get(api(live, "/environments/nope/export/compose"), timeout=10).status_code
            == 404
        )
        assert (
            requests.get(api(live, "/environments/main-shop/export/nope"), timeout=10).status_code
            == 404
        )
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "reconciler.cli.main",
                "--config",
                str(write_config(cfg, tmp_path)),
                "export",
                "render",
                "--env",
                "main-shop",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "render.yaml" in out.stdout and secret not in out.stdout + out.stderr


def write_config(cfg: Settings, tmp_path: Path) -> Path:
    repo = cfg.repos[0]
    path = tmp_path / "hoody.yaml"
    path.write_text(
        f"state_dir: {cfg.state_dir}\nrepos:\n  - name: {repo.name}\n"
        f"    url: {repo.url}\n    env: {{DB_URL: '{repo.env['DB_URL']}'}}\n"
    )
    return path
