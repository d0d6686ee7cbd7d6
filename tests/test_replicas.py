"""Two `hoody serve` replicas on one real PostgreSQL database and the real Docker engine,
one repo with three branches: one replica leads the repo, each environment is created
once, a webhook delivered to the replica that does not lead deploys, `kill -9` of the
leader hands the repo to the other within 15 s, a push after the kill deploys, and an
`@every 1s` job has no duplicate firing and no gap longer than the failover."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.http.leader import FORWARDED

from .conftest import RUN_ID, cleanup_repo, git, unique
from .test_serve import ROOT, free_port, get, hoody, wait_for
from .webhook_helpers import fixture, github_post

pytestmark = pytest.mark.docker
SECRET = "replica-webhook-secret"


@pytest.fixture
def pg_url(postgres_admin: sa.Engine) -> Iterator[str]:
    name = f"hoody_t_{RUN_ID}_replicas_{os.getpid()}"
    with postgres_admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with postgres_admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Replica:
    def __init__(self, name: str, config: Path, port: int, log: Path) -> None:
        self.name, self.config, self.port, self.log_path = name, config, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "reconciler.cli.main", "--config", str(self.config)),
                *("serve", "--no-watch", "--port", str(self.port)),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"{self.url}/readyz", timeout=3) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as e:  # 503 while not ready: the body says why
            return dict(json.loads(e.read()))

    def leads(self, repo: str) -> bool:
        try:
            return repo in self.ready()["replica"]["leads"]
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def write_config(tmp: Path, who: str, name: str, repo: Path, pg: str, port: int) -> Path:
    config = tmp / f"hoody-{who}.yaml"
    config.write_text(
        f"""
state_dir: {tmp / f"state-{who}"}
server: {{host: 127.0.0.1, port: {port}}}
docker: {{publish_host: 127.0.0.1}}
database: {{url: "{pg}"}}
min_pass_interval: 0.2
replicas: {{lease_ttl: 6s, renew_every: 1s, wake_poll: 0.2s}}
limits: {{min_every: 1s}}
repos:
  - name: {name}
    url: {repo}
    provider: github
    webhook_secret: {SECRET}
    repository: Codertocat/Hello-World
    branches: ["main", "feature/*", "p/*"]
    poll_interval: 0
"""
    )
    return config


def containers(docker_engine: Any, name: str) -> list[str]:
    found = docker_engine.containers.list(all=True, filters={"label": f"hoody.repo={name}"})
    return sorted(c.name for c in found)


def test_two_replicas_one_leader_failover_and_webhooks_on_the_other(
    tmp_path: Path, docker_engine: Any, pg_url: str
) -> None:
    name = unique("rep")
    subprocess.run(
        [str(ROOT / "scripts" / "make-demo-repo"), str(tmp_path)],
        env={**os.environ, "DEMO_NAME": name},
        check=True,
        capture_output=True,
    )
    repo = tmp_path / "repo"
    tab = repo / ".hoody" / "crontab"
    tab.write_text(tab.read_text() + "@every 1s echo tick\n")
    git(repo, "commit", "-qam", "a job every second")
    git(repo, "checkout", "-qb", "p/three")
    git(repo, "checkout", "-q", "main")
    a = Replica("a", write_config(tmp_path, "a", name, repo, pg_url, pa := free_port()), pa,
                tmp_path / "a.log")  # fmt: skip
    b = Replica("b", write_config(tmp_path, "b", name, repo, pg_url, pb := free_port()), pb,
                tmp_path / "b.log")  # fmt: skip
    wanted = {f"main-{name}", f"feature-hello-{name}", f"p-three-{name}"}
    try:
        a.start()
        wait_for(lambda: a.leads(name), 60, "replica a to lead the repo")
        b.start()
        wait_for(lambda: b.ready()["replica"]["id"], 60, "replica b to answer")
        assert not b.leads(name)

        def healthy() -> dict[str, Any] | None:
            out = hoody(a.config, "envs", "--json")
            listed = {e["name"]: e for e in json.loads(out.stdout)}
            ok = all(listed.get(n, {}).get("status") == "healthy" for n in wanted)
            return listed if ok else None

        wait_for(healthy, 180, "three healthy environments")
        # Each environment exactly once: one container each, whichever replica is asked.
        assert containers(docker_engine, name) == sorted(f"{n}_web" for n in wanted)
        ready_b = b.ready()
        assert ready_b["replica"]["leads"] == [] and len(ready_b["replica"]["replicas"]) == 2
        events = json.loads(hoody(b.config, "events", "--json", "--limit", "500").stdout)
        leaders = {e["message"] for e in events if e["kind"] == "leading"}
        assert len(leaders) == 1 and "replica" in next(iter(leaders))

        # The schedule of an environment is in the leader's scheduler; the other replica
        # forwards schedule calls there and gives the same answer.
        def cron(replica: Replica) -> list[tuple[str, str, list[str]]]:
            body = json.loads(get(f"{replica.url}/api/v1/environments/main-{name}/cron"))
            return [(e["id"], e["command"], e["next"][:1]) for e in body["entries"]]

        on_a = wait_for(lambda: [e for e in cron(a) if e[1] == "echo tick"] and cron(a), 30,
                        "the leader's schedule")  # fmt: skip
        on_b = cron(b)
        assert {e[:2] for e in on_b} == {e[:2] for e in on_a} and on_b

        def summary(replica: Replica) -> dict[str, Any]:
            listed = json.loads(get(f"{replica.url}/api/v1/environments"))["environments"]
            return {e["name"]: e["schedule"]["entries"] for e in listed if e["repo"] == name}

        assert summary(b) == summary(a) and summary(a)[f"main-{name}"] > 0

        # /metrics says the same on both: the entries are the sum of the replicas'
        # heartbeats (only the leader schedules them), the environments come from the store.
        def gauges(replica: Replica) -> dict[str, float]:
            lines = get(f"{replica.url}/metrics").splitlines()
            wanted = ("hoody_schedule_entries ", 'hoody_environments{status="healthy"}')
            return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines
                    if ln.startswith(wanted)}  # fmt: skip

        # (a heartbeat, every renew_every, carries the count: the gauge follows within one)
        wait_for(
            lambda: (
                (g := gauges(a)) == gauges(b)
                and g["hoody_schedule_entries"] == sum(summary(a).values()) > 0
            ),
            15,
            "the same gauges on both replicas, the entries of the schedules",
        )
        page_b = get(f"{b.url}/environments/main-{name}")  # the dashboard asks the leader
        assert "echo tick" in page_b and "echo tick" in get(f"{a.url}/environments/main-{name}")
        import urllib.error
        import urllib.request

        again = urllib.request.Request(  # already forwarded once: never a second hop
            f"{b.url}/api/v1/environments/main-{name}/cron", headers={FORWARDED: "x"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(again, timeout=5)
        assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "2"

        # A webhook that lands on the replica that does not lead still deploys.
        app = repo / ".hoody" / "app.yaml"
        git(repo, "checkout", "-q", "feature/hello")
        app.write_text(app.read_text().replace("hello from feature/hello", "hooked"))
        git(repo, "commit", "-qam", "via a webhook to the other replica")
        sha = git(repo, "rev-parse", "HEAD")
        git(repo, "checkout", "-q", "main")
        push = fixture("github/push.json", lambda d: d.update(ref="refs/heads/feature/hello"))
        status, _ = github_post(b.url, name, "push", push, SECRET, delivery="guid-to-b")
        assert status == 202
        # The provider's redelivery of it lands on the other replica: the table dedupes.
        status, answer = github_post(a.url, name, "push", push, SECRET, delivery="guid-to-b")
        assert (status, answer) == (200, {"duplicate": True})
        feature = f"feature-hello-{name}"
        listed = wait_for(
            lambda: (e := healthy()) and e[feature]["commit"] == sha and e,
            90,
            "the webhook on the non-leader to deploy",
        )
        assert "hooked" in get(listed[feature]["url"])

        # kill -9 of the leader: the other replica leads within 15 s.
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        killed = time.monotonic()
        wait_for(lambda: b.leads(name), 30, "replica b to take the repo over")
        failover = time.monotonic() - killed
        assert failover <= 15.0, failover

        # A push after the kill deploys (the webhook now reaches the leader).
        app.write_text(app.read_text().replace("hello from main", "after the failover"))
        git(repo, "commit", "-qam", "after the failover")
        sha = git(repo, "rev-parse", "HEAD")
        push = fixture("github/push.json", lambda d: d.update(ref="refs/heads/main"))
        assert github_post(b.url, name, "push", push, SECRET)[0] == 202
        main = f"main-{name}"
        listed = wait_for(
            lambda: (e := healthy()) and e[main]["commit"] == sha and e,
            90,
            "the push after the failover to deploy",
        )
        assert "after the failover" in get(listed[main]["url"])
        time.sleep(3)  # a few firings by the new leader

        engine = sa.create_engine(pg_url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT scheduled_for, status, owner FROM runs WHERE env = :env "
                    "AND command = 'echo tick' ORDER BY scheduled_for"
                ),
                {"env": main},
            ).all()
        engine.dispose()
        times = [r.scheduled_for for r in rows]
        assert len(times) == len(set(times)), "a firing ran twice"
        assert len({r.owner for r in rows}) == 2  # both replicas ran it, one after the other
        gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
        assert max(gaps) <= failover + 2.0, (max(gaps), failover)
    finally:
        for r in (a, b):
            if r.proc is not None:
                r.stop()
        cleanup_repo(docker_engine, name)
