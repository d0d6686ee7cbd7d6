"""What the Docker webhook benchmarks (pr, storm) watch and clean: the docker CLI, clean-up
by label, the HTTP probe loop, the store polled every 10 ms, and the server's JSON log."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
from webhooklib import PLAIN_LABEL, RUN_ID

from reconciler.storage.store import Store


def server_log(path: Path, since_wall: float) -> list[tuple[float, dict[str, Any]]]:
    """(epoch seconds, record) of the JSON log lines at or after `since_wall`."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
            ts = dt.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
        except (ValueError, KeyError):
            continue
        t = ts.replace(tzinfo=dt.UTC).timestamp()
        if t >= since_wall - 0.001:
            out.append((t, rec))
    return out


# -- Docker helpers ----------------------------------------------------------------------


def docker_cli(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def cleanup(client: docker.DockerClient, repo: str | None = None) -> None:
    """Remove exactly what this run created: one repo's objects, or the plain containers."""
    label = {"label": [f"hoody.repo={repo}" if repo else f"{PLAIN_LABEL}={RUN_ID}"]}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True)
    if repo:
        for n in client.networks.list(filters=label):
            n.remove()
        for v in client.volumes.list(filters=label):
            v.remove(force=True)


def probe(url: str, timeout: float = 2.0) -> bool:
    """DockerRuntime.probe_http's GET."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except urllib.error.HTTPError as e:
        return 200 <= e.code < 400
    except (OSError, http.client.HTTPException):
        return False


def wait_http(url: str, start_period: float = 15.0) -> int:
    """Applier.wait_healthy's loop: 20 ms, x1.5, capped at 1 s. Returns the probe count."""
    deadline = time.monotonic() + start_period
    delay, probes = 0.02, 0
    while True:
        probes += 1
        if probe(url):
            return probes
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{url} not healthy after {start_period:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode().strip())


def poll_env(
    store: Store, env: str, done: Callable[[dict[str, Any] | None], bool], timeout: float = 60.0
) -> tuple[float, float | None, dict[str, Any] | None]:
    """Poll the store every 10 ms until `done(row)`; (done at, first 'building' at, row)."""
    deadline = time.perf_counter() + timeout
    building = None
    while True:
        row = store.environment(env)
        now = time.perf_counter()
        if row and building is None and row["status"] == "building":
            building = now
        if done(row):
            return now, building, row
        if now > deadline:
            raise RuntimeError(f"{env}: timed out; last row {row}")
        time.sleep(0.01)


def log_marks(
    path: Path, since_wall: float, until_wall: float, env: str
) -> tuple[dict[str, float], dict[str, tuple[float, int]]]:
    """Wall times of the server's own log lines for one PR environment's pass, and (with
    `--trace`) ms and calls per traced method that returned before `until_wall`."""
    marks: dict[str, float] = {}
    traces: dict[str, tuple[float, int]] = {}
    for t, rec in server_log(path, since_wall):
        msg = str(rec.get("msg", ""))
        if msg.startswith("trace ") and t <= until_wall + 0.002:
            _, label, took = msg.split()
            total, calls = traces.get(label, (0.0, 0))
            traces[label] = (total + float(took), calls + 1)
        elif "queued: github pull_request" in msg:
            marks.setdefault("queued", t)
        elif "pass: create" in msg and env in msg:
            marks.setdefault("planned", t)
        elif rec.get("env") == env and "waiting until healthy" in msg:
            marks.setdefault("started", t)
        elif rec.get("env") == env and ": healthy (" in msg:
            marks.setdefault("healthy", t)
    return marks, traces
