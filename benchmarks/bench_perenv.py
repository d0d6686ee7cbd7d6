"""Issue #12: one environment never waits for another. Three measurements on the real
engine, through the serve loop (`Service` in this process, watching a local bare repo
with watchfiles, as `hoody serve` does; pushes are real `git push`es into it):

* head-of-line: `git push` of a new branch B to B healthy, while branch A (main) sits in
  a 60 s health wait (its health path answers 404), against the same with A absent
  (another repo whose main is healthy). Arms alternate; target ratio <= 1.2x.
* push-to-healthy: the same push to healthy with nothing else going on, against plain
  `docker run -d -p 127.0.0.1::8080` + `docker port` + the same probe loop (20 ms, x1.5),
  alternating; target <= 1.6x.
* N branches pushed at once (one `git push` of N refs), each ready 2 s after start: time
  to all healthy, against the slowest single one (one branch alone, same run) plus the
  engine's own start of N containers (N plain `docker run -d` in parallel, same run);
  target <= 1.3x. N is 50, or fewer when the engine's default address pools have fewer
  bridge networks left (one network per environment; the daemon's configuration is not
  changed, others share it): the script says which and why.

Everything created carries `hoody.repo=<bench repo>` or `hoody-bench=<run id>` and is
removed by that label. Needs busybox:1.36 locally.

    .venv/bin/python benchmarks/bench_perenv.py -n 5
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import docker
from benchlib import git, init_bare, machine

from reconciler.core.settings import RepoSettings, Settings
from reconciler.runtime.docker import DockerRuntime
from reconciler.serve.service import Service
from reconciler.storage.store import Store

IMAGE = "busybox:1.36"
WEB = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
RUN = uuid.uuid4().hex[:6]
POOLS = 31  # Docker's default address pools: 15 x /16 in 172.17-31 + 16 x /20 in 192.168


def spec(app: str, path: str = "/", start: str = "60s", before: str = "", tag: str = "") -> str:
    return f"""\
name: {app}
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", '{before}{WEB}']
    env: {{TAG: "{tag}"}}
    ports: [8080]
    healthcheck: {{http: {path}, port: 8080, interval: 1s, start_period: {start}}}
"""


class Repo:
    """A bare repo watched by a Service, and a clone that pushes into it."""

    def __init__(self, root: Path, name: str, in_flight: int = 32) -> None:
        self.name = name
        self.app = f"w{name}"  # environment names are unique on the engine
        self.bare = init_bare(root / f"{name}.git")
        self.work = root / f"{name}-work"
        self.work.mkdir()
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))
        git(self.work, "commit", "-q", "--allow-empty", "-m", "root")
        settings = Settings(
            state_dir=root / f"{name}-state",
            repos=(
                RepoSettings(
                    name=name, url=str(self.bare), branches=("main", "p/*"), poll_interval=0
                ),
            ),
            in_flight=in_flight,
        )
        self.service = Service(settings, Store(settings.database_url), DockerRuntime())

    def commit(self, branch: str, text: str) -> str:
        git(self.work, "checkout", "-q", "-B", branch, "main")
        (self.work / ".hoody").mkdir(exist_ok=True)
        (self.work / ".hoody" / "app.yaml").write_text(text)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", branch)
        return git(self.work, "rev-parse", "HEAD")

    def push(self, *refspecs: str) -> None:
        git(self.work, "push", "-q", "-f", "origin", *refspecs)

    def status(self, env: str) -> dict:
        return self.service.store.environment(env, self.name) or {}

    def wait(self, check: Callable[[], bool], timeout: float = 120.0) -> float:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > timeout:
                raise TimeoutError("benchmark step timed out")
            time.sleep(0.005)
        return time.monotonic() - start

    def healthy(self, env: str, commit: str) -> bool:
        s = self.status(env)
        return s.get("status") == "healthy" and s.get("commit") == commit


def push_to_healthy(repo: Repo, branch: str, text: str) -> float:
    app = repo.app
    commit = repo.commit(branch, text)
    env = f"{branch.replace('/', '-')}-{app}"
    t0 = time.monotonic()
    repo.push(f"HEAD:refs/heads/{branch}")
    repo.wait(lambda: repo.healthy(env, commit))
    took = time.monotonic() - t0
    repo.push(f":refs/heads/{branch}")  # the service removes it (bounded networks)
    repo.wait(lambda: not repo.status(env))
    return took


def probe(port: int) -> None:
    delay = 0.02
    for _ in range(500):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
    raise TimeoutError("plain container never answered")


def docker_run(before: str = "") -> str:
    out = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--label",
            f"hoody-bench={RUN}",
            "-p",
            "127.0.0.1::8080",
            IMAGE,
            "sh",
            "-c",
            before + WEB,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def plain_run() -> float:
    t0 = time.monotonic()
    cid = docker_run()
    port = subprocess.run(
        ["docker", "port", cid, "8080/tcp"], check=True, capture_output=True, text=True
    ).stdout.split(":")[-1]
    probe(int(port))
    took = time.monotonic() - t0
    subprocess.run(["docker", "rm", "-f", cid], check=True, capture_output=True)
    return took


def plain_many(n: int) -> float:
    """The engine alone: n `docker run -d` in parallel, until all returned (started)."""
    ids: list[str] = []
    t0 = time.monotonic()
    threads = [threading.Thread(target=lambda: ids.append(docker_run())) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.monotonic() - t0
    subprocess.run(["docker", "rm", "-f", *ids], check=True, capture_output=True)
    return took


def many_to_healthy(repo: Repo, n: int, round_: int) -> float:
    app = repo.app
    branches = [f"p/m{round_}x{i}" for i in range(n)]
    commits = {}
    for b in branches:
        commits[b] = repo.commit(b, spec(app, "/", "30s", before="sleep 2; ", tag=b))
    t0 = time.monotonic()
    repo.push(*(f"refs/heads/{b}:refs/heads/{b}" for b in branches))
    envs = {f"{b.replace('/', '-')}-{app}": c for b, c in commits.items()}
    repo.wait(lambda: all(repo.healthy(e, c) for e, c in envs.items()), timeout=300)
    took = time.monotonic() - t0
    repo.push(*(f":refs/heads/{b}" for b in branches))
    # every environment of the repo goes at once: the mass-prune guard keeps them unless
    # told, as `hoody apply --allow-mass-prune` does
    repo.service.controller.reconcile(repo.name, allow_mass_prune=True)
    repo.wait(lambda: not any(repo.status(e) for e in envs), timeout=300)
    return took


def free_networks(client: docker.DockerClient) -> int:
    used = [
        n
        for n in client.networks.list()
        if n.attrs.get("Driver") == "bridge" and n.name != "bridge"
    ]
    return POOLS - len(used)


def cleanup(client: docker.DockerClient, repos: list[str]) -> None:
    for label in [f"hoody-bench={RUN}", *(f"hoody.repo={r}" for r in repos)]:
        for c in client.containers.list(all=True, filters={"label": label}):
            c.remove(force=True)
        for net in client.networks.list(filters={"label": label}):
            net.remove()


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def med(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5, help="rounds (median of)")
    ap.add_argument("--branches", type=int, default=50)
    args = ap.parse_args()
    client = docker.from_env()
    client.images.get(IMAGE)
    print(machine())
    root = Path(tempfile.mkdtemp(prefix="bench-perenv-"))
    stuck = Repo(root, f"bp{RUN}a")
    calm = Repo(root, f"bp{RUN}b")
    many = Repo(root, f"bp{RUN}m", in_flight=64)
    repos = [stuck, calm, many]
    try:
        for r in repos:
            r.service.start(watch=True)
        # A: main never healthy (404) with a 60 s start period, in the stuck repo only
        calm_main = calm.commit("main", spec(calm.app))
        calm.push("HEAD:refs/heads/main")
        calm.wait(lambda: calm.healthy(f"main-{calm.app}", calm_main))
        app = stuck.app
        # a main without a spec: the ref listing never goes empty (an empty one never prunes)
        git(many.work, "push", "-q", "origin", "main:refs/heads/main")

        hol_with, hol_without, ours, plain = [], [], [], []
        for i in range(args.n):
            a = stuck.commit("main", spec(app, "/missing", "60s", tag=f"a{i}"))
            stuck.push("HEAD:refs/heads/main")  # a new version: a fresh 60 s health wait
            stuck.wait(
                lambda a=a: (
                    stuck.status(f"main-{app}").get("commit") == a
                    and stuck.status(f"main-{app}").get("status") == "building"
                )
            )
            time.sleep(0.5)
            arms = [
                lambda i=i: hol_with.append(
                    push_to_healthy(stuck, f"p/b{i}", spec(app, tag=str(i)))
                ),
                lambda i=i: hol_without.append(
                    push_to_healthy(calm, f"p/b{i}", spec(calm.app, tag=str(i)))
                ),
                lambda: plain.append(plain_run()),
            ]
            if i % 2:
                arms.reverse()
            for arm in arms:
                arm()
                time.sleep(3.0)  # a quiet period, as between two pushes of a person
            assert stuck.status(f"main-{app}").get("status") == "building", "A left its wait"
        ours = hol_without

        free = free_networks(client)
        n = min(args.branches, max(1, free - 4))
        why = (
            ""
            if n == args.branches
            else (
                f" (not {args.branches}: {free} of the engine's {POOLS} default address pools "
                "are free, one network per environment, other work holds the rest)"
            )
        )
        single, engine, alln = [], [], []
        for i in range(args.n):
            single.append(
                push_to_healthy(
                    many,
                    f"p/s{i}",
                    spec(many.app, "/", "30s", before="sleep 2; ", tag=f"s{i}"),
                )
            )
            engine.append(plain_many(n))
            alln.append(many_to_healthy(many, n, i))

        print(f"\n| ms (median of {args.n}) | value |")
        print("|---|---:|")
        print(
            f"| head-of-line: push B -> B healthy, A in a 60 s health wait | {med(hol_with):.0f} |"
        )
        print(f"| head-of-line: push B -> B healthy, A absent | {med(hol_without):.0f} |")
        print(f"| push -> healthy (watch, nothing else running) | {med(ours):.0f} |")
        print(f"| plain docker run + port + probe | {med(plain):.0f} |")
        print(f"| one branch with a 2 s health start, alone | {med(single):.0f} |")
        print(f"| engine alone: {n} x docker run -d in parallel | {med(engine):.0f} |")
        print(f"| {n} branches pushed at once, all healthy | {med(alln):.0f} |")
        hol = statistics.median(hol_with) / statistics.median(hol_without)
        p2h = statistics.median(ours) / statistics.median(plain)
        bound = statistics.median(single) + statistics.median(engine)
        many_r = statistics.median(alln) / bound
        print(f"\nhead-of-line ratio: {hol:.2f}x (target <= 1.2x: {verdict(hol <= 1.2)})")
        print(f"push-to-healthy ratio: {p2h:.2f}x (target <= 1.6x: {verdict(p2h <= 1.6)})")
        print(
            f"{n} branches: {many_r:.2f}x of slowest single + engine alone "
            f"(target <= 1.3x: {'met' if many_r <= 1.3 else 'NOT met'}){why}"
        )
        print(
            "raw (s):",
            {
                k: [round(x, 3) for x in v]
                for k, v in {
                    "hol_with": hol_with,
                    "hol_without": hol_without,
                    "plain": plain,
                    "single": single,
                    "engine": engine,
                    "all": alln,
                }.items()
            },
        )
    finally:
        for r in repos:
            r.service.stop(timeout=5)
        cleanup(client, [r.name for r in repos])
    return 0


if __name__ == "__main__":
    sys.exit(main())
