"""Issue #12: one environment never waits for another. Three measurements on the real
engine, through the serve loop (`Service` in this process, watching a local bare repo
with watchfiles, as `hoody serve` does; pushes are real `git push`es into it):

* head-of-line: `git push` of a new branch B to B healthy, while branch A (main) sits in
  a 60 s health wait (its health path answers 404), against the same with A absent
  (another repo whose main is healthy). Arms alternate; target ratio <= 1.2x.
* push-to-healthy: the same push to healthy with nothing else going on, against plain
  `docker run -d -p 127.0.0.1::8080` + `docker port` + the same probe loop (20 ms, x1.5),
  alternating; target <= 1.6x. Twice: through the watch (in-process, with the time of
  each step from the service's log lines and its runtime calls), and through a signed
  GitHub push delivery to `hoody serve --no-watch` (the real CLI in a child process,
  steps from its JSON log).
* N branches pushed at once (one `git push` of N refs), each ready 2 s after start: time
  to all healthy, against the slowest single one (one branch alone, same run) plus the
  engine's own start of N containers (N plain `docker run -d` in parallel, same run);
  target <= 1.3x. N is 50, one service each, so all join the shared network
  `hoody_shared`; also against N `docker run -d --network hoody_shared` in parallel (what
  the engine takes for that). The repo has `docker.subnet_pool` (a free 10.x.0.0/16), as
  a host with dozens of environments of several services needs.

Everything created carries `hoody.repo=<bench repo>` or `hoody-bench=<run id>` and is
removed by that label; the shared network too if this run made it. Needs busybox:1.36
locally.

    .venv/bin/python benchmarks/bench_perenv.py -n 5
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import logging
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
import yaml
from benchlib import git, init_bare, machine, shared_network_as_found
from webhookdocker import server_log
from webhooklib import REPOSITORY, SECRET, Server, free_port, push_template

from reconciler.core.naming import SHARED_NETWORK
from reconciler.core.settings import DockerSettings, RepoSettings, Settings
from reconciler.runtime.docker import DockerRuntime
from reconciler.serve.service import Service
from reconciler.storage.store import Store

IMAGE = "busybox:1.36"
WEB = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
RUN = uuid.uuid4().hex[:6]
STEPS = (
    "git push",
    "detection (push done -> pass queued)",
    "pass (fetch, refs, spec, observe, diff)",
    "hand-over to the environment's work",
    "image check (network made alongside)",
    "network wait (beyond the image check)",
    "create container",
    "start container",
    "probe until healthy",
    "status row written, seen (5 ms poll)",
)


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


def pushing_clone(root: Path, name: str) -> tuple[Path, Path]:
    """A bare repo `<name>.git` and a clone with one empty commit that pushes into it."""
    bare = init_bare(root / f"{name}.git")
    work = root / f"{name}-work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(bare))
    git(work, "commit", "-q", "--allow-empty", "-m", "root")
    return bare, work


class Repo:
    """A bare repo watched by a Service, and a clone that pushes into it."""

    def __init__(
        self, root: Path, name: str, in_flight: int = 32, docker: DockerSettings | None = None
    ) -> None:
        self.name = name
        self.app = f"w{name}"  # environment names are unique on the engine
        self.bare, self.work = pushing_clone(root, name)
        settings = Settings(
            state_dir=root / f"{name}-state",
            repos=(
                RepoSettings(
                    name=name, url=str(self.bare), branches=("main", "p/*"), poll_interval=0
                ),
            ),
            in_flight=in_flight,
            docker=docker or DockerSettings(),
        )
        d = settings.docker
        self.runtime = DockerRuntime(subnet_pool=d.subnet_pool, subnet_prefix=d.subnet_prefix)
        self.service = Service(settings, Store(settings.database_url), self.runtime)

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


class Steps(logging.Handler):
    """Where one push's time goes: the service's own log lines and the runtime calls of
    one repo (wrapped on its runtime instance), stamped with time.monotonic()."""

    CALLS = (
        "has_image", "ensure_network", "ensure_shared_network", "create_container",
        "start_container",
    )  # fmt: skip

    def __init__(self, repo: Repo) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[float, str]] = []
        self.prefix = f"[{repo.name}"
        logging.getLogger("reconciler").addHandler(self)
        logging.getLogger("reconciler").setLevel(logging.DEBUG)
        for name in self.CALLS:
            self._wrap(repo.runtime, name)

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith(self.prefix):
            self.events.append((time.monotonic(), msg))

    def _wrap(self, runtime: DockerRuntime, name: str) -> None:
        inner = getattr(runtime, name)

        def timed(*args: object, **kwargs: object) -> object:
            self.events.append((time.monotonic(), f"> {name}"))
            try:
                return inner(*args, **kwargs)
            finally:
                self.events.append((time.monotonic(), f"< {name}"))

        setattr(runtime, name, timed)

    def breakdown(self, env: str, t0: float, pushed: float, seen: float) -> dict[str, float]:
        after = [(t, m) for t, m in self.events if t >= pushed]

        def first(pred: Callable[[str], bool], since: float = 0.0) -> float:
            return next(t for t, m in after if t >= since and pred(m))

        queued = first(lambda m: "queued:" in m)
        planned = first(lambda m: "pass: create" in m and env in m, queued)
        img0 = first(lambda m: m == "> has_image", planned)
        img1 = first(lambda m: m == "< has_image", img0)
        net1 = first(lambda m: m in ("< ensure_network", "< ensure_shared_network"), img0)
        c0 = first(lambda m: m == "> create_container", img1)
        c1 = first(lambda m: m == "< create_container", c0)
        s0 = first(lambda m: m == "> start_container", c1)
        s1 = first(lambda m: m == "< start_container", s0)
        healthy = first(lambda m: env in m and ": healthy (" in m, s1)
        parts = (
            pushed - t0, queued - pushed, planned - queued, img0 - planned, img1 - img0,
            max(0.0, net1 - img1), c1 - c0, s1 - s0, healthy - s1, seen - healthy,
        )  # fmt: skip
        return dict(zip(STEPS, parts, strict=True))


def push_to_healthy(
    repo: Repo, branch: str, text: str, steps: Steps | None = None,
    breakdowns: list[dict[str, float]] | None = None,
) -> float:  # fmt: skip
    app = repo.app
    commit = repo.commit(branch, text)
    env = f"{branch.replace('/', '-')}-{app}"
    t0 = time.monotonic()
    repo.push(f"HEAD:refs/heads/{branch}")
    pushed = time.monotonic()
    repo.wait(lambda: repo.healthy(env, commit))
    seen = time.monotonic()
    took = seen - t0
    if steps is not None and breakdowns is not None:
        breakdowns.append(steps.breakdown(env, t0, pushed, seen))
    repo.push(f":refs/heads/{branch}")  # the service removes it (bounded networks)
    repo.wait(lambda: not repo.status(env))
    return took


class WebhookRepo:
    """A bare repo that `hoody serve --no-watch` (the real CLI in a child process) hears
    of only through signed GitHub push deliveries; a clone pushes into it."""

    def __init__(self, root: Path, name: str) -> None:
        self.name, self.app = name, f"w{name}"
        self.bare, self.work = pushing_clone(root, name)
        git(self.work, "push", "-q", "origin", "main:refs/heads/main")
        state = root / f"{name}-state"
        self.log_path = root / f"{name}-serve.log"
        config = root / f"{name}.yaml"
        repo = {
            "name": name, "url": str(self.bare), "provider": "github",
            "branches": ["main", "p/*"], "poll_interval": 0, "webhook_secret": SECRET,
            "repository": REPOSITORY, "pull_requests": {"enabled": False},
        }  # fmt: skip
        port = free_port()
        config.write_text(
            yaml.safe_dump(
                {"state_dir": str(state), "server": {"host": "127.0.0.1", "port": port},
                 "repos": [repo]}, sort_keys=False,
            )
        )  # fmt: skip
        self.server = Server(config, port, "docker", self.log_path, verbose=True)
        self.store = Store(f"sqlite:///{state / 'hoody.db'}")
        self.deliveries = 0

    commit = Repo.commit
    push = Repo.push

    def deliver(self, branch: str, after: str) -> None:
        data = json.loads(push_template(branch).replace(b"@" * 40, after.encode()))
        if set(after) == {"0"}:
            data.update(deleted=True)
        self.deliveries += 1
        assert self.server.conn
        status, reply = self.server.conn.post_github(
            self.name, "push", json.dumps(data).encode(), f"{RUN}-{self.deliveries}"
        )
        assert status == 202, (status, reply)

    def status(self, env: str) -> dict:
        return self.store.environment(env, self.name) or {}

    wait = Repo.wait
    healthy = Repo.healthy

    def push_to_healthy(self, branch: str, text: str, marks: list[dict[str, float]]) -> float:
        commit = self.commit(branch, text)
        env = f"{branch.replace('/', '-')}-{self.app}"
        wall0, t0 = time.time(), time.monotonic()
        self.push(f"HEAD:refs/heads/{branch}")
        pushed = time.monotonic()
        self.deliver(branch, commit)
        answered = time.monotonic()
        self.wait(lambda: self.healthy(env, commit))
        seen = time.monotonic()
        marks.append(self._marks(env, wall0, t0, pushed, answered, seen))
        self.push(f":refs/heads/{branch}")
        self.deliver(branch, "0" * 40)
        self.wait(lambda: not self.status(env))
        return seen - t0

    def _marks(
        self, env: str, wall0: float, t0: float, pushed: float, answered: float, seen: float
    ) -> dict[str, float]:
        """The steps, from the server's JSON log (wall clock, put on our monotonic one)."""
        at: dict[str, float] = {}
        for wall, rec in server_log(self.log_path, wall0):
            msg = str(rec.get("msg", ""))
            key = next(
                (k for k, probe in (
                    ("planned", "pass: create"), ("started", "waiting until healthy"),
                    ("healthy", ": healthy ("),
                ) if probe in msg and env in f"{msg} {rec.get('env', '')}"),
                None,
            )  # fmt: skip
            if key:
                at.setdefault(key, wall - wall0 + t0)
        planned = at.get("planned", answered)
        started = at.get("started", planned)
        healthy = at.get("healthy", seen)
        return {
            "git push": pushed - t0,
            "signed delivery -> 202": answered - pushed,
            "202 -> pass planned (queue, fetch, refs, spec, observe, diff)": planned - answered,
            "planned -> started (image, network, create, start)": started - planned,
            "probe until healthy": healthy - started,
            "status row written, seen (5 ms poll)": seen - healthy,
        }


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


def docker_run(before: str = "", network: str | None = None) -> str:
    out = subprocess.run(
        [
            "docker",
            "run",
            "-d",
            "--label",
            f"hoody-bench={RUN}",
            *(["--network", network, "--cap-drop", "NET_RAW"] if network else []),
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


def plain_many(n: int, network: str | None = None) -> float:
    """The engine alone: n `docker run -d` in parallel, until all returned (started);
    with `network`, each on that network and without NET_RAW, as a one-service
    environment runs on the shared network."""
    ids: list[str] = []

    def one(i: int) -> None:
        ids.append(docker_run(network=network))

    t0 = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
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


def free_pool(client: docker.DockerClient) -> str:
    """A 10.x.0.0/16 no network on the engine overlaps: the N-branch repo's
    `docker.subnet_pool` (the engine's default pools hold about 30 networks)."""
    used = [
        ipaddress.ip_network(c["Subnet"])
        for n in client.api.networks()
        for c in (n.get("IPAM") or {}).get("Config") or []
        if "Subnet" in c and ":" not in c["Subnet"]
    ]
    for second in range(213, 256):
        pool = ipaddress.ip_network(f"10.{second}.0.0/16")
        if not any(pool.overlaps(u) for u in used):
            return str(pool)
    raise RuntimeError("no free 10.x.0.0/16 on this engine")


def step_table(rows: list[dict[str, float]]) -> None:
    print("| step | median ms |")
    print("|---|---:|")
    for key in rows[0]:
        print(f"| {key} | {statistics.median(r[key] for r in rows) * 1000:.1f} |")


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
    pool = free_pool(client)
    many = Repo(root, f"bp{RUN}m", in_flight=64, docker=DockerSettings(subnet_pool=pool,
                subnet_prefix=26))  # fmt: skip
    hook = WebhookRepo(root, f"bp{RUN}h")
    repos = [stuck, calm, many]
    steps = Steps(calm)
    breakdowns: list[dict[str, float]] = []
    hooked: list[float] = []
    hook_marks: list[dict[str, float]] = []
    try:
        hook.server.__enter__()
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
                    push_to_healthy(calm, f"p/b{i}", spec(calm.app, tag=str(i)), steps, breakdowns)
                ),
                lambda: plain.append(plain_run()),
                lambda i=i: hooked.append(
                    hook.push_to_healthy(f"p/h{i}", spec(hook.app, tag=str(i)), hook_marks)
                ),
            ]
            if i % 2:
                arms.reverse()
            for arm in arms:
                arm()
                time.sleep(3.0)  # a quiet period, as between two pushes of a person
            assert stuck.status(f"main-{app}").get("status") == "building", "A left its wait"
        ours = hol_without

        n = args.branches
        single, engine, engine_shared, alln = [], [], [], []
        for i in range(args.n if n else 0):
            single.append(
                push_to_healthy(
                    many,
                    f"p/s{i}",
                    spec(many.app, "/", "30s", before="sleep 2; ", tag=f"s{i}"),
                )
            )
            engine.append(plain_many(n))
            engine_shared.append(plain_many(n, SHARED_NETWORK))
            alln.append(many_to_healthy(many, n, i))

        print(f"\n| ms (median of {args.n}) | value |")
        print("|---|---:|")
        print(
            f"| head-of-line: push B -> B healthy, A in a 60 s health wait | {med(hol_with):.0f} |"
        )
        print(f"| head-of-line: push B -> B healthy, A absent | {med(hol_without):.0f} |")
        print(f"| push -> healthy (watch, nothing else running) | {med(ours):.0f} |")
        print(f"| push -> healthy (signed webhook to hoody serve) | {med(hooked):.0f} |")
        print(f"| plain docker run + port + probe | {med(plain):.0f} |")
        if n:
            print(f"| one branch with a 2 s health start, alone | {med(single):.0f} |")
            print(f"| engine alone: {n} x docker run -d in parallel | {med(engine):.0f} |")
            print(
                f"| engine alone: {n} x docker run -d --network {SHARED_NETWORK} in parallel "
                f"| {med(engine_shared):.0f} |"
            )
            print(f"| {n} branches pushed at once, all healthy | {med(alln):.0f} |")
        hol = statistics.median(hol_with) / statistics.median(hol_without)
        p2h = statistics.median(ours) / statistics.median(plain)
        print(f"\nhead-of-line ratio: {hol:.2f}x (target <= 1.2x: {verdict(hol <= 1.2)})")
        hook_r = statistics.median(hooked) / statistics.median(plain)
        print(f"push-to-healthy ratio, watch: {p2h:.2f}x (target <= 1.6x: {verdict(p2h <= 1.6)})")
        print(
            f"push-to-healthy ratio, webhook: {hook_r:.2f}x "
            f"(target <= 1.6x: {verdict(hook_r <= 1.6)})"
        )
        if n:
            bound = statistics.median(single) + statistics.median(engine)
            many_r = statistics.median(alln) / bound
            with_nets = statistics.median(alln) / (
                statistics.median(single) + statistics.median(engine_shared)
            )
            print(
                f"{n} branches: {many_r:.2f}x of slowest single + engine alone "
                f"(target <= 1.3x: {verdict(many_r <= 1.3)}; one service each, so all on "
                f"{SHARED_NETWORK}); {with_nets:.2f}x of slowest single + engine alone on "
                f"{SHARED_NETWORK}"
            )
        print("\nwhere push -> healthy goes, watch (in-process log lines and runtime calls):")
        step_table(breakdowns)
        print("\nwhere push -> healthy goes, webhook (hoody serve's JSON log):")
        step_table(hook_marks)
        print(
            "raw (s):",
            {
                k: [round(x, 3) for x in v]
                for k, v in {
                    "hol_with": hol_with,
                    "hol_without": hol_without,
                    "webhook": hooked,
                    "plain": plain,
                    "single": single,
                    "engine": engine,
                    "engine_shared": engine_shared,
                    "all": alln,
                }.items()
            },
        )
    finally:
        for r in repos:
            r.service.stop(timeout=5)
        hook.server.__exit__(None, None, None)
        cleanup(client, [*(r.name for r in repos), hook.name])
    return 0


if __name__ == "__main__":
    with shared_network_as_found(docker.from_env()):
        code = main()
    sys.exit(code)
