"""What the deployment tests share: the local Debian base image, the service image built
from this checkout, and small helpers for processes, ports and HTTP.

The base image (`scripts/setup-base-image`) is built once per machine and kept by its tag.
The service image is built on every run (cached layers make that seconds unless
pyproject.toml changed) and tagged `hoody-reconciler:test`, which stays as the build cache
of the next run; the tests run the image by the id this run built, so a parallel run
re-tagging it changes nothing here. An image a build re-tagged away from is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_TAG = "hoody-base:bookworm"
SERVICE_TAG = "hoody-reconciler:test"


def run(
    cmd: list[str], timeout: float = 120, check: bool = True, **kw: Any
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and out.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        )
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 — retried until the deadline, then reported
            last = e
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def http(
    url: str,
    host: str | None = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str]:
    """(status, body) of one request; `host` sets the Host header (a name behind Caddy)."""
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}))
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def get_json(url: str, host: str | None = None) -> Any:
    status, body = http(url, host)
    assert status == 200, f"{url}: {status} {body[:500]}"
    return json.loads(body)


def docker_gid() -> int:
    """The group of the engine's socket: what the image's `hoody` user is given."""
    return os.stat("/var/run/docker.sock").st_gid


@pytest.fixture(scope="session")
def base_image(docker_engine: Any) -> str:
    """The local Debian base image (built by the script, which reuses it when present)."""
    have = subprocess.run(["docker", "image", "inspect", BASE_TAG], capture_output=True)
    if have.returncode != 0 and os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail(f"{BASE_TAG} is missing and building it needs root")
        pytest.skip(f"{BASE_TAG} is missing (run scripts/setup-base-image as root)")
    out = run([str(ROOT / "scripts" / "setup-base-image")], timeout=900)
    return out.stdout.strip()


def image_ids(client: Any, tags: list[str]) -> dict[str, str]:
    found = {}
    for tag in tags:
        with contextlib.suppress(Exception):
            found[tag] = client.images.get(tag).id
    return found


@contextlib.contextmanager
def replacing_images(client: Any, tags: list[str]) -> Iterator[None]:
    """Around a build that re-tags `tags`: the images they named before, left untagged by
    the build, are an earlier run's and are removed (unless a container still uses one)."""
    before = image_ids(client, tags)
    try:
        yield
    finally:
        after = image_ids(client, tags)
        for tag, old in before.items():
            if after.get(tag) != old:
                with contextlib.suppress(Exception):
                    if not client.images.get(old).tags:
                        client.images.remove(old)


@pytest.fixture(scope="session")
def service_image(base_image: str, docker_engine: Any, tmp_path_factory: Any) -> Iterator[str]:
    """The service image built from this checkout (the README's command), by id."""
    iidfile = tmp_path_factory.mktemp("image") / "iid"
    with replacing_images(docker_engine, [SERVICE_TAG]):
        run(
            [
                "docker",
                "build",
                "-q",
                "--build-arg",
                f"BASE={base_image}",
                "-t",
                SERVICE_TAG,
                "--iidfile",
                str(iidfile),
                str(ROOT),
            ],
            timeout=900,
        )
    image_id = iidfile.read_text().strip()
    yield image_id
    # A run that re-tagged SERVICE_TAG since left this one untagged: ours to remove.
    with contextlib.suppress(Exception):
        if not docker_engine.images.get(image_id).tags:
            docker_engine.images.remove(image_id)


def make_demo(dest: Path, name: str) -> Path:
    """`scripts/make-demo-repo`: the demo app as a git repo at dest/repo, named `name`."""
    run(
        [str(ROOT / "scripts" / "make-demo-repo"), str(dest)], env={**os.environ, "DEMO_NAME": name}
    )
    return dest / "repo"
