"""examples/production as a team brings it up: `docker-compose up -d --build` of hoody,
PostgreSQL and Caddy (each image built from the local Debian base with Debian's packages),
on the stack's own compose.yaml and Caddyfile with the test's .env. The demo repository
is deployed through the front door: its main branch at start-up, then a branch pushed and
announced by a signed webhook through Caddy; each environment answers at its stable host
through Caddy's public server and hoody's routes behind it, the API answers through Caddy,
mutations need the token, the state is in PostgreSQL, and `docker-compose down -v` takes
it all away."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

import pytest

from .conftest import RUN_ID, cleanup_repo, git, unique
from .deploy_support import (  # noqa: F401 — fixtures
    ROOT,
    base_image,
    docker_gid,
    free_port,
    get_json,
    http,
    make_demo,
    replacing_images,
    run,
    wait_for,
)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STACK = ROOT / "examples" / "production"
COMPOSE = shutil.which("docker-compose")
STACK_IMAGES = ["hoody-postgres:local", "hoody-reconciler:local", "hoody-caddy:local"]


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


@pytest.mark.timeout(900)
def test_the_production_stack_deploys_the_demo_through_caddy(
    base_image: str,  # noqa: F811
    docker_engine: Any,
    tmp_path: Path,
) -> None:
    if COMPOSE is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    name = unique("stack")
    project = f"hoodystack{RUN_ID}{name[-3:]}"
    work = make_demo(tmp_path, name)
    bare = tmp_path / "demo.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(work, "push", "-q", str(bare), "main")

    hoody_port, preview_port, pg_port, caddy_port, admin_port = free_ports(5)
    token, secret, password = (secrets.token_hex(16) for _ in range(3))
    config = tmp_path / "hoody.yaml"
    config.write_text(
        "state_dir: /state\n"
        'database: {url: "${HOODY_DATABASE_URL}"}\n'
        f"server: {{host: 127.0.0.1, port: {hoody_port}}}\n"
        "docker: {publish_host: 127.0.0.1}\n"
        f"public_url: http://hoody.localhost:{caddy_port}\n"
        'api: {token: "${HOODY_API_TOKEN}"}\n'
        "scheduler: {shutdown_grace: 2s, kill_grace: 2s}\n"
        "proxy:\n"
        "  domain: localhost\n"
        f"  listen: 127.0.0.1:{preview_port}\n"
        f"  admin: http://127.0.0.1:{admin_port}\n"
        "  tls: off\n"
        f'url_template: "http://{{env}}.localhost:{caddy_port}/"\n'
        "repos:\n"
        f"  - name: {name}\n"
        "    url: file:///srv/git/demo.git\n"  # not a local path: webhooks, not a watch
        "    provider: generic\n"
        '    branches: ["main", "feature/*"]\n'
        "    poll_interval: 0\n"
        '    webhook_secret: "${DEMO_WEBHOOK_SECRET}"\n'
    )
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "\n".join(
            [
                "HOODY_HOST=hoody.localhost",
                "PREVIEW_DOMAIN=localhost",
                f"DOCKER_GID={docker_gid()}",
                f"POSTGRES_PASSWORD={password}",
                f"HOODY_API_TOKEN={token}",
                f"DEMO_WEBHOOK_SECRET={secret}",
                f"HOODY_PORT={hoody_port}",
                f"PREVIEW_PORT={preview_port}",
                f"POSTGRES_PORT={pg_port}",
                f"CADDY_ADMIN_PORT={admin_port}",
                "CADDY_SCHEME=http://",
                f"CADDY_PORT=:{caddy_port}",
                "CADDY_SITE_OPTIONS=bind 127.0.0.1",
                f"HOODY_BASE_IMAGE={base_image}",
                f"HOODY_CONFIG_FILE={config}",
                f"HOODY_ENV_FILE={dotenv}",
                "",
            ]
        )
    )
    # What a team would not have: the demo repository mounted into hoody's container.
    override = tmp_path / "override.yaml"
    override.write_text(
        "services:\n"
        "  hoody:\n"
        "    environment:\n"
        "      HOODY_GIT_SAFE_DIRECTORIES: /srv/git/demo.git\n"
        "    volumes:\n"
        f"      - {bare}:/srv/git/demo.git:ro\n"
    )

    def compose(*args: str, timeout: float = 600, check: bool = True) -> Any:
        return run(
            [str(COMPOSE), "-p", project, "-f", str(STACK / "compose.yaml"), "-f", str(override),
             "--env-file", str(dotenv), *args],
            timeout=timeout,
            check=check,
            cwd=STACK,
        )  # fmt: skip

    front = f"http://127.0.0.1:{caddy_port}"
    site = "hoody.localhost"
    main, feature = f"main-{name}", f"feature-hello-{name}"

    def environments() -> dict[str, dict[str, Any]]:
        listed = get_json(f"{front}/api/v1/environments", site)["environments"]
        return {e["name"]: e for e in listed}

    def healthy(*names: str) -> dict[str, dict[str, Any]] | None:
        e = environments()
        return e if all(e.get(n, {}).get("status") == "healthy" for n in names) else None

    try:
        with replacing_images(docker_engine, STACK_IMAGES):
            compose("up", "-d", "--build", timeout=900)
        # Through Caddy, by the site's host name.
        wait_for(lambda: http(f"{front}/healthz", site)[0] == 200, 120, "/healthz via Caddy")
        listed = wait_for(lambda: healthy(main), 180, "main deployed at start-up")
        assert feature not in listed
        # The stable URL, through Caddy's public server and hoody's routes behind it.
        assert listed[main]["url"] == f"http://{main}.localhost:{caddy_port}/"
        assert "hello from main" in wait_for(
            lambda: (r := http(f"{front}/", f"{main}.localhost"))[0] == 200 and r[1],
            60,
            "main through Caddy",
        )
        status, page = http(f"{front}/", site)
        assert status == 200 and main in page

        # A push, announced the way a provider would: a signed webhook through Caddy.
        git(work, "push", "-q", str(bare), "feature/hello")
        body = json.dumps({"ref": "refs/heads/feature/hello"}).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        unsigned = http(
            f"{front}/webhooks/{name}", site, body, {"Content-Type": "application/json"}
        )
        assert unsigned[0] == 401
        status, answer = http(
            f"{front}/webhooks/{name}",
            site,
            body,
            {"Content-Type": "application/json", "X-Hub-Signature-256": signature,
             "Idempotency-Key": f"stack-{name}"},
        )  # fmt: skip
        assert status == 202, answer
        listed = wait_for(lambda: healthy(main, feature), 180, "the pushed branch deployed")
        status, page = http(f"{front}/", f"{feature}.localhost")
        assert status == 200 and "hello from feature/hello" in page
        assert http(f"{front}/", f"gone-{name}.localhost")[0] == 404  # no such environment

        # Mutations need the API token.
        sync = f"{front}/api/v1/repos/{name}/sync"
        assert http(sync, site, b"")[0] == 401
        assert http(sync, site, b"", {"Authorization": f"Bearer {token}"})[0] == 202

        # The state is in the stack's PostgreSQL.
        query = f"select status from environments where name = '{feature}'"
        out = compose(
            "exec", "-T", "-e", f"PGPASSWORD={password}", "postgres",
            "psql", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "hoody", "-d", "hoody",
            "-Atc", query,
        )  # fmt: skip
        assert out.stdout.strip() == "healthy"

        # hoody stops cleanly and leaves the environments running.
        compose("stop", "hoody", timeout=120)
        (hoody_id,) = compose("ps", "-q", "hoody").stdout.split()
        assert docker_engine.containers.get(hoody_id).attrs["State"]["ExitCode"] == 0
        running = {
            c.name for c in docker_engine.containers.list(filters={"label": [f"hoody.repo={name}"]})
        }
        assert {f"{main}_web", f"{feature}_web"} <= running
    except BaseException:
        print(compose("logs", "--no-color", "--tail", "80", timeout=60, check=False).stdout)
        raise
    finally:
        compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        cleanup_repo(docker_engine, name)
    left = docker_engine.containers.list(
        all=True, filters={"label": [f"com.docker.compose.project={project}"]}
    )
    assert left == []
    volumes = docker_engine.volumes.list(
        filters={"label": [f"com.docker.compose.project={project}"]}
    )
    assert volumes == []
