"""Failover of a repo between two `hoody serve` replicas on one PostgreSQL database.

Each trial: both replicas run, one leads the demo repo (two healthy environments);
`kill -9` of the leader; then
- takeover: until the other replica's /readyz lists the repo among those it leads;
- first pass: until the new leader's `hoody_reconcile_passes_total` for the repo grows;
- push to healthy: a commit, a signed GitHub push webhook to the new leader, until the
  environment is healthy at that commit (as `hoody envs --json` says).
The killed replica is started again for the next trial, so leaders alternate. Default
lease settings (ttl 10 s, renewed every 2 s): the takeover is bounded by the ttl.

    .venv/bin/python benchmarks/bench_failover.py --trials 5

Needs the Docker engine, the local busybox image and PostgreSQL (HOODY_TEST_POSTGRES or
scripts/setup-postgres). Talks to 127.0.0.1 only; removes what it created.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-failover-secret"
PUSH = ROOT.parent / "shared" / "fixtures" / "webhooks" / "github" / "push.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return out.stdout.decode().strip()


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    return body.decode()


def wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


class Replica:
    def __init__(self, name: str, config: Path, port: int, log: Path) -> None:
        self.name, self.config, self.port, self.log = name, config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("a")
        self.proc = subprocess.Popen(
            [*(sys.executable, "-m", "reconciler.cli.main", "--config", str(self.config)),
             *("serve", "--no-watch", "--port", str(self.port))],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def leads(self, repo: str) -> bool:
        return repo in json.loads(http(f"{self.url}/readyz"))["replica"]["leads"]

    def passes(self, repo: str) -> float:
        total = 0.0
        for line in http(f"{self.url}/metrics").splitlines():
            if line.startswith("hoody_reconcile_passes_total{") and f'repo="{repo}"' in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def envs(config: Path) -> dict[str, dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "--config", str(config), "envs", "--json"],
        check=True, capture_output=True,
    )  # fmt: skip
    return {e["name"]: e for e in json.loads(out.stdout)}


def push_webhook(replica: Replica, name: str, branch: str, sha: str) -> str:
    payload = json.loads(PUSH.read_text())
    payload["ref"], payload["after"] = f"refs/heads/{branch}", sha  # each push its own body
    body = json.dumps(payload).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return http(f"{replica.url}/webhooks/{name}", body, {
        "Content-Type": "application/json", "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()), "X-Hub-Signature-256": f"sha256={digest}",
    })  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    admin_url = (
        os.environ.get("HOODY_TEST_POSTGRES")
        or subprocess.run(
            [str(ROOT / "scripts" / "setup-postgres")], check=True, capture_output=True, text=True
        ).stdout.strip()
    )
    name = f"fo{uuid.uuid4().hex[:6]}"
    db = f"hoody_bench_{name}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    url = admin.url.set(database=db).render_as_string(hide_password=False)
    client = docker.from_env()
    tmp = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    subprocess.run([str(ROOT / "scripts" / "make-demo-repo"), str(tmp)], check=True,
                   capture_output=True, env={**os.environ, "DEMO_NAME": name})  # fmt: skip
    repo = tmp / "repo"
    replicas = []
    for who in ("a", "b"):
        port = free_port()
        config = tmp / f"hoody-{who}.yaml"
        config.write_text(f"""
state_dir: {tmp / f"state-{who}"}
server: {{host: 127.0.0.1, port: {port}}}
docker: {{publish_host: 127.0.0.1}}
database: {{url: "{url}"}}
repos:
  - name: {name}
    url: {repo}
    provider: github
    webhook_secret: {SECRET}
    repository: Codertocat/Hello-World
    branches: ["main", "feature/*"]
    poll_interval: 0
""")
        replicas.append(Replica(who, config, port, tmp / f"{who}.log"))
    rows: list[dict[str, float]] = []
    try:
        a, b = replicas
        a.start()
        wait(lambda: a.leads(name), 60, "the first leader")
        b.start()
        wait(lambda: json.loads(http(f"{b.url}/readyz"))["replica"]["id"], 60, "replica b")
        wanted = {f"main-{name}", f"feature-hello-{name}"}

        def healthy(sha: str | None = None) -> bool:
            listed = envs(a.config)
            ok = all(listed.get(n, {}).get("status") == "healthy" for n in wanted)
            return ok and (sha is None or listed[f"main-{name}"]["commit"] == sha)

        wait(healthy, 180, "two healthy environments")
        leader, other = a, b
        for trial in range(args.trials):
            before = other.passes(name)
            leader.kill()
            killed = time.monotonic()
            wait(lambda o=other: o.leads(name), 60, "the takeover")
            takeover = time.monotonic() - killed
            wait(lambda o=other, n=before: o.passes(name) > n, 60, "the first pass")
            first_pass = time.monotonic() - killed
            app = repo / ".hoody" / "app.yaml"
            app.write_text(app.read_text().replace("hello from main", f"trial {trial}", 1)
                           if trial == 0 else app.read_text().replace(
                               f"trial {trial - 1}", f"trial {trial}"))  # fmt: skip
            git(repo, "commit", "-qam", f"trial {trial}")
            sha = git(repo, "rev-parse", "HEAD")
            pushed = time.monotonic()
            answer = push_webhook(other, name, "main", sha)
            if "accepted" not in answer:
                raise SystemExit(f"the push webhook was not taken: {answer}")
            wait(lambda s=sha: healthy(s), 120, "the push after the failover")
            to_healthy = time.monotonic() - pushed
            rows.append({"takeover": takeover, "first_pass": first_pass, "push": to_healthy})
            print(f"trial {trial + 1}: takeover {takeover:.2f} s, first pass by the new "
                  f"leader {first_pass:.2f} s, push to healthy {to_healthy:.2f} s",
                  flush=True)  # fmt: skip
            leader.start()  # back as the follower
            wait(lambda r=leader: json.loads(http(f"{r.url}/readyz"))["replica"]["id"], 60,
                 "the restarted replica")  # fmt: skip
            leader, other = other, leader
    finally:
        for r in replicas:
            r.stop()
        label = {"label": [f"hoody.repo={name}"]}
        for c in client.containers.list(all=True, filters=label):
            c.remove(force=True)
        for n in client.networks.list(filters=label):
            n.remove()
        for v in client.volumes.list(filters=label):
            v.remove(force=True)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
    if rows:
        for key, label_ in (("takeover", "kill -9 → other replica leads"),
                            ("first_pass", "kill -9 → first pass by the new leader"),
                            ("push", "push after failover → healthy")):  # fmt: skip
            xs = [r[key] for r in rows]
            print(f"{label_}: median {statistics.median(xs):.2f} s "
                  f"(min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})")  # fmt: skip


if __name__ == "__main__":
    main()
