"""The files of examples/production as shipped (fast; tests/test_production_stack.py runs
them): hoody.yaml loads with the variables .env.example names, docker-compose accepts
compose.yaml with them, and Caddy adapts the Caddyfile to HTTPS on :443 for hoody's host
and on-demand certificates for preview hosts, asked of hoody."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from reconciler.core.settings import load_settings

from .deploy_support import ROOT

STACK = ROOT / "examples" / "production"


def example_env() -> dict[str, str]:
    """.env.example with a placeholder for every value left for the team to fill in."""
    env: dict[str, str] = {}
    for line in (STACK / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value or f"example-{key.lower()}"
    return env


def test_hoody_yaml_loads_with_the_variables_of_env_example() -> None:
    env = example_env()
    env["HOODY_DATABASE_URL"] = "postgresql://hoody:pw@127.0.0.1:5432/hoody"  # compose.yaml
    settings = load_settings(STACK / "hoody.yaml", environ=env)
    assert str(settings.state_dir) == "/state"
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == int(env["HOODY_PORT"])
    assert settings.api.token == env["HOODY_API_TOKEN"]
    assert settings.database_url.startswith("postgresql")
    (shop,) = settings.repos
    assert shop.webhook_secret == env["SHOP_WEBHOOK_SECRET"]
    # hoody's routes live in the stack's Caddy, behind its public server (Caddyfile).
    proxy = settings.proxy
    assert proxy is not None and proxy.tls == "off" and proxy.domain == env["PREVIEW_DOMAIN"]
    assert proxy.admin == f"http://127.0.0.1:{env['CADDY_ADMIN_PORT']}"
    assert proxy.listen == f"127.0.0.1:{env['PREVIEW_PORT']}"
    assert settings.url_template == f"https://{{env}}.{env['PREVIEW_DOMAIN']}/"


def test_compose_file_is_accepted_with_the_env_example(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    dotenv = tmp_path / ".env"
    values = {**example_env(), "HOODY_ENV_FILE": str(dotenv)}  # the team's .env is beside
    dotenv.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    out = subprocess.run(
        [compose, "-f", str(STACK / "compose.yaml"), "--env-file", str(dotenv), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=STACK,
        env={k: v for k, v in os.environ.items() if k not in example_env()},
    )
    assert out.returncode == 0, out.stderr
    doc = yaml.safe_load(out.stdout)
    services = doc["services"]
    assert set(services) == {"hoody", "postgres", "caddy"}
    assert {s["network_mode"] for s in services.values()} == {"host"}
    hoody = services["hoody"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in str(hoody["volumes"])
    assert hoody["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert hoody["stop_grace_period"] == "45s"
    # No registry: every image is built here from the local base.
    for s in services.values():
        assert s["build"]["args"]["BASE"] == "hoody-base:bookworm"
    assert set(doc["volumes"]) == {"postgres-data", "hoody-state", "caddy-data", "caddy-config"}


def test_caddyfile_serves_hoody_and_previews_over_https() -> None:
    caddy = shutil.which("caddy")
    if caddy is None:
        pytest.skip("caddy is not installed (apt-get install caddy)")
    env = example_env()
    out = subprocess.run(
        [caddy, "adapt", "--config", str(STACK / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **{k: env[k] for k in ("HOODY_HOST", "PREVIEW_DOMAIN")}},
    )
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    assert config["admin"]["listen"] == "127.0.0.1:2019"
    (server,) = config["apps"]["http"]["servers"].values()
    assert server["listen"] == [":443"]
    hosts = [h for r in server["routes"] for m in r["match"] for h in m["host"]]
    assert hosts == [env["HOODY_HOST"], f"*.{env['PREVIEW_DOMAIN']}"]
    upstreams = [json.dumps(r["handle"]) for r in server["routes"]]
    assert "127.0.0.1:8080" in upstreams[0] and "127.0.0.1:8088" in upstreams[1]
    tls = config["apps"]["tls"]["automation"]
    assert tls["on_demand"]["ask"] == "http://127.0.0.1:8080/proxy/ask"
    (preview,) = [p for p in tls["policies"] if p.get("on_demand")]
    assert preview["subjects"] == [f"*.{env['PREVIEW_DOMAIN']}"]
