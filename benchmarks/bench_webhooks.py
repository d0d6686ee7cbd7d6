"""Webhook benchmarks (issue #3), each against `hoody serve` running in its own process.

pr          Signed GitHub `pull_request opened` delivery -> the store shows `pr-N-<app>`
            healthy, real Docker engine, local image busybox:1.36 (httpd + HTTP
            healthcheck), a fresh PR number per iteration; alternating with a plain
            `docker run -d -p 127.0.0.1::8080 ...` + `docker port` + the same HTTP probe
            loop (20 ms, x1.5, capped at 1 s). The server is the real CLI:
            `python -m reconciler.cli.main --log-format json -v serve --no-watch`.
throughput  Signed `push` deliveries (unique delivery ids, unique bodies) per second that
            the endpoint accepts, from N concurrent keep-alive clients (threads +
            http.client) for at most D seconds or M requests; p50/p99 latency; passes run.
            The server is the `hoody serve` CLI entry point (reconciler.cli.main.main) in its
            own process with the Docker runtime swapped for MemoryRuntime (busybox:1.36
            in `.images`), so a pass costs a git fetch and some SQLite writes, no Docker.
storm       1,000 pushes to one branch in 10 s: 1,000 commits made beforehand with
            `git fast-import` (each changes the spec, so each is a real new version), then
            `git update-ref --stdin` (one transaction per move) moves `main` in the bare
            remote one commit at a time (~100/s), each move followed by a signed push
            delivery. Counts reconcile passes and checks that the final commit is the one
            deployed (store, container label, page). Runtime: Docker (the real CLI) and
            memory (as for throughput); `--storm-runtime` picks one.

Every server uses poll_interval 0 and no watch, so webhooks are the only trigger. Docker
objects are removed by the label `hoody.repo=<this run's repo names>`, plain containers by
`hoody-bench-webhooks=<run id>`; nothing else is touched. All traffic goes to 127.0.0.1.

    .venv/bin/python benchmarks/bench_webhooks.py                 # all three, ~70 s
    .venv/bin/python benchmarks/bench_webhooks.py all --json results.json
    .venv/bin/python benchmarks/bench_webhooks.py pr -n 10 --trace  # + time per call
    .venv/bin/python benchmarks/bench_webhooks.py throughput --profile
    .venv/bin/python benchmarks/bench_webhooks.py throughput --what-if dedup-in-memory
    .venv/bin/python benchmarks/bench_webhooks.py storm --storm-runtime docker --trace

`--trace`, `--profile` and `--what-if` run the server as `serve-child` of this script
(the same CLI entry point plus timers, per-thread cProfile, or a changed delivery-id
store); they are diagnostics, the default run uses none of them.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import hashlib
import hmac
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import yaml
from benchlib import FastImport, git, init_bare, machine, pct, summary, table

from reconciler.storage.store import Store

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "webhooks" / "github"
IMAGE = "busybox:1.36"
SECRET = "It's a Secret to Everybody"
REPOSITORY = "Codertocat/Hello-World"  # what the fixtures carry
TOKEN = "sekrit-token"
WEB = 'mkdir -p /www && echo "$GREETING $TOKEN" > /www/index.html && exec httpd -f -p 8080 -h /www'
RUN_ID = uuid.uuid4().hex[:6]
PLAIN_LABEL = "hoody-bench-webhooks"
AFTER = b"@" * 40  # placeholder for the `after` sha in push bodies


def spec(app: str, greeting: str) -> str:
    # interval: 1s caps the applier's probe backoff at 1 s (default 2 s), like the plain arm.
    return f"""\
name: {app}
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", '{WEB}']
    env: {{GREETING: {greeting}}}
    ports: [8080]
    healthcheck: {{http: /, port: 8080, interval: 1s, start_period: 15s}}
preview: {{env: {{GREETING: preview-{greeting}}}}}
"""


def ms(x: float) -> float:
    return x * 1000.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- payloads ----------------------------------------------------------------------------


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def gh_headers(event: str, body: bytes, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(body),
    }


def pr_body(action: str, number: int) -> bytes:
    data = json.loads((FIXTURES / f"pull_request.{action}.json").read_bytes())
    data["number"] = data["pull_request"]["number"] = number
    return json.dumps(data).encode()


def push_template(branch: str = "main") -> bytes:
    """The GitHub push fixture, made a push to `branch`; `after` is the AFTER placeholder."""
    data = json.loads((FIXTURES / "push.json").read_bytes())
    data.update(
        ref=f"refs/heads/{branch}", deleted=False, created=False, after=AFTER.decode(), forced=False
    )
    body = json.dumps(data).encode()
    assert body.count(AFTER) == 1
    return body


def push_body(template: bytes, after: str) -> bytes:
    return template.replace(AFTER, after.encode())


class Conn:
    """One keep-alive HTTP/1.1 connection to the server (reconnects once on failure)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post_github(self, repo: str, event: str, body: bytes, delivery: str) -> tuple[int, Any]:
        status, raw = self.request(
            "POST", f"/webhooks/{repo}", body, gh_headers(event, body, delivery)
        )
        return status, json.loads(raw or b"null")

    def get_json(self, path: str) -> Any:
        status, raw = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {raw[:200]!r}")
        return json.loads(raw)

    def close(self) -> None:
        self.c.close()


# -- the server process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path, repo: str, bare: Path, state: Path, port: int, pull_requests: bool
) -> Path:
    cfg = {
        "state_dir": str(state),
        "server": {"host": "127.0.0.1", "port": port},
        "repos": [
            {
                "name": repo,
                "url": str(bare),
                "provider": "github",
                "branches": ["main"],
                "poll_interval": 0,
                "env": {"TOKEN": TOKEN},
                "webhook_secret": SECRET,
                "repository": REPOSITORY,
                "pull_requests": {"enabled": pull_requests},
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Server:
    """`hoody serve` in a child process. Docker runtime, no tracing: the real CLI,
    `python -m reconciler.cli.main ... serve --no-watch`. Otherwise `serve-child` of this
    script, which runs the same CLI entry point after swapping in a MemoryRuntime and/or
    installing timers (`--trace`) or per-thread cProfile (`--profile`)."""

    def __init__(
        self,
        config: Path,
        port: int,
        runtime: str,
        log_path: Path,
        verbose: bool,
        trace: bool = False,
        profile: Path | None = None,
        what_if: str | None = None,
    ):
        self.port = port
        self.log_path = log_path
        common = ["--config", str(config), "--log-format", "json", *(["-v"] if verbose else [])]
        if runtime == "docker" and not trace and profile is None and what_if is None:
            cmd = [sys.executable, "-m", "reconciler.cli.main", *common]
        else:
            extra = [
                *(["--trace"] if trace else []),
                *(["--profile", str(profile)] if profile else []),
                *(["--what-if", what_if] if what_if else []),
            ]
            cmd = [sys.executable, str(Path(__file__).resolve()), "serve-child", runtime, *extra]
            cmd += common
        self.cmd = [*cmd, "serve", "--no-watch", "--port", str(port)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Conn | None = None

    def __enter__(self) -> Server:
        out = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        out.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as r:
                    if r.status == 200:
                        break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after 30 s: {self.log_tail()}")
            time.sleep(0.05)
        self.conn = Conn(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn:
            self.conn.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def passes(self, repo: str) -> int:
        assert self.conn
        repos = self.conn.get_json("/api/v1/repos")["repos"]
        return int(next(r["passes"] for r in repos if r["name"] == repo))

    def queue_depth(self) -> float:
        assert self.conn
        _, raw = self.conn.request("GET", "/metrics")
        for line in raw.decode().splitlines():
            if line.startswith("hoody_queue_depth "):
                return float(line.split()[1])
        return 0.0

    def settle(self, repo: str, quiet: float = 0.5, timeout: float = 120.0) -> int:
        """Wait until no pass is queued and the pass count has not moved for `quiet` s."""
        deadline = time.monotonic() + timeout
        last, since = self.passes(repo), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.passes(repo)
            if now != last or self.queue_depth() > 0:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return now
        raise RuntimeError(f"{repo}: passes still running after {timeout:.0f} s")

    def wait_passes(self, repo: str, at_least: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.passes(repo)
            if n >= at_least:
                return n
            time.sleep(0.01)
        raise RuntimeError(f"{repo}: expected {at_least} passes; log:\n{self.log_tail()}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds of the server process: own threads, and waited-for children (git)."""
        assert self.proc
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return {
            "self": (int(fields[11]) + int(fields[12])) / tick,
            "self_sys": int(fields[12]) / tick,
            "children": (int(fields[13]) + int(fields[14])) / tick,
            "ctxt": float(_ctxt_switches(self.proc.pid)),
        }


TRACED = [
    ("reconciler.gitops.git", "Mirror", "fetch"),
    ("reconciler.gitops.git", "Mirror", "list_refs"),
    ("reconciler.gitops.sources", "SourceReader", "snapshot"),
    ("reconciler.gitops.sources", "SourceReader", "commit_files"),
    ("reconciler.runtime.docker", "DockerRuntime", "observe"),
    ("reconciler.runtime.docker", "DockerRuntime", "has_image"),
    ("reconciler.runtime.docker", "DockerRuntime", "ensure_network"),
    ("reconciler.runtime.docker", "DockerRuntime", "create_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "start_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "inspect_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "probe_http"),
    ("reconciler.runtime.docker", "DockerRuntime", "remove_container"),
    ("reconciler.runtime.docker", "DockerRuntime", "rename_container"),
    ("reconciler.gitops.apply", "Applier", "wait_healthy"),
    ("reconciler.storage.store", "Store", "set_status"),
    ("reconciler.storage.store", "Store", "add_event"),
    ("reconciler.storage.store", "Store", "pull_requests"),
    ("reconciler.storage.store", "Store", "suspended"),
    ("reconciler.gitops.controller", "Controller", "reconcile"),
]


def install_trace() -> None:
    """Log `trace <Class.method> <ms>` after every call of the TRACED methods."""
    import functools
    import importlib
    import logging

    tlog = logging.getLogger("bench.trace")
    for module, cls_name, attr in TRACED:
        owner = getattr(importlib.import_module(module), cls_name)
        fn = getattr(owner, attr)
        label = f"{cls_name}.{attr}"

        def timed(*a: Any, _fn: Any = fn, _label: str = label, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                tlog.info("trace %s %.3f", _label, ms(time.perf_counter() - t))

        setattr(owner, attr, functools.wraps(fn)(timed))


def install_profile(out: Path) -> Callable[[], None]:
    """cProfile, one profiler per thread, around every WSGI request and every pass;
    returns the function that merges and writes the stats."""
    import cProfile
    import pstats

    from reconciler.gitops.controller import Controller
    from reconciler.http import app as app_mod

    profilers: dict[tuple[str, int], cProfile.Profile] = {}

    def profiled(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def run(*a: Any, **k: Any) -> Any:
            key = (kind, threading.get_ident())
            prof = profilers.setdefault(key, cProfile.Profile())
            prof.enable()
            try:
                return fn(*a, **k)
            finally:
                prof.disable()

        return run

    real_create = app_mod.create_app

    def create_app(settings: Any, service: Any) -> Any:
        flask_app = real_create(settings, service)
        flask_app.wsgi_app = profiled("http", flask_app.wsgi_app)  # type: ignore[method-assign]
        return flask_app

    app_mod.create_app = create_app  # type: ignore[assignment]
    real_reconcile = Controller.reconcile
    Controller.reconcile = profiled("pass", real_reconcile)  # type: ignore[method-assign]

    def dump() -> None:
        for kind in ("http", "pass"):
            profs = [p for (k, _), p in profilers.items() if k == kind]
            if profs:
                stats = pstats.Stats(profs[0])
                for p in profs[1:]:
                    stats.add(p)
                stats.dump_stats(str(out) + f".{kind}")

    return dump


def install_what_if(name: str) -> None:
    """Diagnostics only, NOT hoody's behaviour: change how delivery ids are remembered, to
    show what the durable per-delivery INSERT costs under concurrency."""
    from reconciler.storage.store import Store

    real = Store.remember_delivery
    if name == "dedup-locked":  # one writer at a time: no SQLite busy-handler sleeps
        lock = threading.Lock()

        def locked(self: Store, repo: str, delivery_id: str) -> bool:
            with lock:
                return real(self, repo, delivery_id)

        Store.remember_delivery = locked  # type: ignore[method-assign]
    elif name == "dedup-in-memory":  # no SQLite write per delivery at all
        seen: set[tuple[str, str]] = set()
        lock = threading.Lock()

        def in_memory(self: Store, repo: str, delivery_id: str) -> bool:
            with lock:
                new = (repo, delivery_id) not in seen
                seen.add((repo, delivery_id))
                return new

        Store.remember_delivery = in_memory  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown --what-if {name!r}")


def _ctxt_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all threads of `pid`."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[-1])
    return total


def serve_child(argv: list[str]) -> int:
    """`serve-child RUNTIME [--trace] [--profile FILE] [--what-if NAME] <hoody CLI args>`:
    the `hoody serve` CLI entry point (reconciler.cli.main.main), with a MemoryRuntime
    (busybox:1.36 in `.images`) instead of Docker when RUNTIME is `memory`."""
    from reconciler.cli import main as cli
    from reconciler.runtime.memory import MemoryRuntime

    runtime_name, rest = argv[0], argv[1:]
    dump: Callable[[], None] | None = None
    if "--trace" in rest:
        rest.remove("--trace")
        install_trace()
    if "--profile" in rest:
        i = rest.index("--profile")
        dump = install_profile(Path(rest[i + 1]))
        del rest[i : i + 2]
    if "--what-if" in rest:
        i = rest.index("--what-if")
        install_what_if(rest[i + 1])
        del rest[i : i + 2]
    if runtime_name == "memory":
        runtime = MemoryRuntime()
        runtime.images.add(IMAGE)
        real_services = cli._services

        def services(args: argparse.Namespace) -> tuple[Any, Any, Any]:
            settings, store, _docker = real_services(args)  # DockerRuntime() is lazy
            return settings, store, runtime

        cli._services = services  # type: ignore[assignment]
    try:
        return cli.main(rest)
    finally:
        if dump:
            dump()


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


# -- 1. webhook -> PR environment healthy ------------------------------------------------


def plain_arm(greeting: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    cid = docker_cli(
        "run",
        "-d",
        "--label",
        f"{PLAIN_LABEL}={RUN_ID}",
        "-e",
        f"GREETING={greeting}",
        "-e",
        f"TOKEN={TOKEN}",
        "-p",
        "127.0.0.1::8080",
        IMAGE,
        "sh",
        "-c",
        WEB,
    )
    t1 = time.perf_counter()
    lines = docker_cli("port", cid, "8080/tcp").splitlines()
    addr = next((ln for ln in lines if ln.startswith("127.0.0.1:")), lines[0])
    url = f"http://127.0.0.1:{int(addr.rsplit(':', 1)[1])}/"
    t2 = time.perf_counter()
    probes = wait_http(url)
    t3 = time.perf_counter()
    if page(url) != f"{greeting} {TOKEN}":
        raise RuntimeError(f"plain container at {url} answers {page(url)!r}")
    return {
        "total": t3 - t0,
        "phases": {"docker run -d": t1 - t0, "docker port": t2 - t1, "health probes": t3 - t2},
        "probes": probes,
        "cid": cid,
    }


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


def hoody_arm(
    server: Server, store: Store, repo: str, app: str, number: int, sha: str
) -> dict[str, Any]:
    assert server.conn
    env = f"pr-{number}-{app}"
    body = pr_body("opened", number)
    before = server.passes(repo)
    wall0 = time.time()
    t0 = time.perf_counter()
    status, reply = server.conn.post_github(repo, "pull_request", body, f"{RUN_ID}-open-{number}")
    t_ack = time.perf_counter()
    if status != 202 or not reply.get("accepted"):
        raise RuntimeError(f"opened #{number}: {status} {reply}")
    t_done, t_building, row = poll_env(
        store, env, lambda r: r is not None and r["status"] in ("healthy", "failed")
    )
    assert row is not None
    if row["status"] != "healthy" or row["commit"] != sha:
        raise RuntimeError(f"{env}: {row}")
    if page(row["url"]) != f"preview-pr{number} {TOKEN}":
        raise RuntimeError(f"{env} at {row['url']} answers {page(row['url'])!r}")
    server.wait_passes(repo, before + 1)
    seen_wall = wall0 + (t_done - t0)
    marks, traces = log_marks(server.log_path, wall0, seen_wall, env)
    phases = {"POST -> 202": t_ack - t0}
    if {"planned", "started", "healthy"} <= set(marks):
        phases["202 -> plan decided (queue, fetch, refs, spec, observe, diff)"] = marks[
            "planned"
        ] - (wall0 + t_ack - t0)
        phases["image check, network, create, start"] = marks["started"] - marks["planned"]
        phases["health probes"] = marks["healthy"] - marks["started"]
        phases["observe, status write, 10 ms poll"] = seen_wall - marks["healthy"]
    return {
        "total": t_done - t0,
        "building_seen": None if t_building is None else t_building - t0,
        "phases": phases,
        "trace": traces,
        "env": env,
    }


def close_pr(server: Server, store: Store, repo: str, app: str, number: int) -> None:
    """Untimed: close the PR, wait until its environment is gone and the pass is over."""
    assert server.conn
    before = server.passes(repo)
    status, reply = server.conn.post_github(
        repo, "pull_request", pr_body("closed", number), f"{RUN_ID}-close-{number}"
    )
    if status != 202:
        raise RuntimeError(f"closed #{number}: {status} {reply}")
    poll_env(store, f"pr-{number}-{app}", lambda r: r is None)
    server.wait_passes(repo, before + 1)


def bench_pr(args: argparse.Namespace, tmp: Path, client: docker.DockerClient) -> dict[str, Any]:
    repo, app = f"bench-wh-{RUN_ID}", f"wh{RUN_ID}"
    total = args.warmup + args.iterations
    numbers = list(range(2, 2 + total))
    bare = init_bare(tmp / "pr" / "remote.git")
    fi = FastImport()
    main = fi.commit("refs/heads/main", {".hoody/app.yaml": spec(app, "main")})
    for n in numbers:
        fi.commit(f"refs/pull/{n}/head", {".hoody/app.yaml": spec(app, f"pr{n}")}, parent=main)
    fi.run(bare)
    shas = {n: git(bare, "rev-parse", f"refs/pull/{n}/head") for n in numbers}
    port = free_port()
    state = tmp / "pr" / "state"
    config = write_config(tmp / "pr" / "hoody.yaml", repo, bare, state, port, True)
    ours: list[dict[str, Any]] = []
    plain: list[dict[str, Any]] = []
    try:
        log_path = tmp / "pr" / "serve.log"
        with Server(config, port, "docker", log_path, True, trace=args.trace) as server:
            store = Store(f"sqlite:///{state / 'hoody.db'}")
            poll_env(store, f"main-{app}", lambda r: r is not None and r["status"] == "healthy")
            server.settle(repo)
            for i, n in enumerate(numbers):
                measured = i >= args.warmup
                order = ("hoody", "plain") if i % 2 == 0 else ("plain", "hoody")
                for arm in order:
                    if arm == "hoody":
                        r = hoody_arm(server, store, repo, app, n, shas[n])
                        close_pr(server, store, repo, app, n)
                        if measured:
                            ours.append(r)
                    else:
                        try:
                            r = plain_arm(f"plain{n}")
                        finally:
                            cleanup(client)
                        if measured:
                            plain.append(r)
                if measured:
                    log(
                        f"  pr {i - args.warmup + 1}/{args.iterations}: hoody "
                        f"{ms(ours[-1]['total']):.0f} ms, plain {ms(plain[-1]['total']):.0f} ms"
                    )
            store.engine.dispose()
    finally:
        cleanup(client, repo)
        cleanup(client)
    o = summary([ms(r["total"]) for r in ours])
    p = summary([ms(r["total"]) for r in plain])
    labels = list(ours[0]["phases"])
    return {
        "iterations": args.iterations,
        "warmup": args.warmup,
        "ms": {"hoody": o, "plain": p},
        "ratio_median": o["median"] / p["median"],
        "ratio_p90": o["p90"] / p["p90"],
        "target_ratio": 2.0,
        "hoody_phases_median_ms": {
            k: summary([ms(r["phases"].get(k, 0.0)) for r in ours])["median"] for k in labels
        },
        "plain_phases_median_ms": {
            k: summary([ms(r["phases"][k]) for r in plain])["median"] for k in plain[0]["phases"]
        },
        "plain_probes_median": summary([r["probes"] for r in plain])["median"],
        "server": "python -m reconciler.cli.main serve --no-watch (Docker runtime)"
        + (", with --trace timers" if args.trace else ""),
        "trace_median_ms": {
            k: {
                "ms": summary([r["trace"].get(k, (0.0, 0))[0] for r in ours])["median"],
                "calls": summary([r["trace"].get(k, (0.0, 0))[1] for r in ours])["median"],
            }
            for k in sorted({k for r in ours for k in r["trace"]})
        },
        "samples_ms": {
            "hoody": [round(ms(r["total"]), 1) for r in ours],
            "plain": [round(ms(r["total"]), 1) for r in plain],
        },
    }


def print_pr(rep: dict[str, Any]) -> None:
    print(
        f"\n## 1. webhook -> PR environment healthy ({rep['iterations']} iterations, "
        f"+{rep['warmup']} warm-up, alternating)\n"
    )
    s = rep["ms"]
    keys = ("median", "p90", "min", "max")
    rows = [
        ["hoody: signed PR opened -> store healthy", *(s["hoody"][k] for k in keys)],
        ["plain: docker run -d + port + probes", *(s["plain"][k] for k in keys)],
    ]
    print(table(["ms", *keys], rows))
    verdict = "met" if rep["ratio_median"] <= rep["target_ratio"] else "NOT met"
    print(
        f"\nratio hoody/plain: median {rep['ratio_median']:.2f}x, p90 {rep['ratio_p90']:.2f}x "
        f"(target <= {rep['target_ratio']:g}x: {verdict})\n"
    )
    print(
        table(["hoody: phases (server log, ms)", "median"], rep["hoody_phases_median_ms"].items())
    )
    print()
    print(table(["plain: phases", "median"], rep["plain_phases_median_ms"].items()))
    if rep["trace_median_ms"]:
        rows = [[k, v["ms"], f"{v['calls']:g}"] for k, v in rep["trace_median_ms"].items()]
        print()
        print(table(["hoody: traced calls until healthy (inclusive)", "median ms", "calls"], rows))


# -- 2. deliveries per second --------------------------------------------------------------


def fire(
    port: int,
    repo: str,
    clients: int,
    duration: float,
    max_requests: int,
    tag: str,
) -> dict[str, Any]:
    """`clients` threads, each with one keep-alive connection, POST signed pushes until
    `max_requests` have been started or `duration` seconds have passed."""
    template = push_template()
    counter = itertools.count()
    lat: list[list[float]] = [[] for _ in range(clients)]
    codes: list[collections.Counter[int]] = [collections.Counter() for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    path = f"/webhooks/{repo}"
    deadline = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, seen = lat[k], codes[k]
        start.wait()
        try:
            while True:
                n = next(counter)
                if n >= max_requests or time.perf_counter() >= deadline[0]:
                    return
                body = push_body(template, f"{n + 1:040x}")
                headers = gh_headers("push", body, f"{tag}-{n}")
                t = time.perf_counter()
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                mine.append(time.perf_counter() - t)
                seen[resp.status] += 1
        except (OSError, http.client.HTTPException) as e:
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    deadline[0] = t0 + duration
    start.wait()
    for t in threads:
        t.join(duration + 60)
    elapsed = time.perf_counter() - t0
    latencies = [x for xs in lat for x in xs]
    status: collections.Counter[int] = collections.Counter()
    for c in codes:
        status.update(c)
    return {"latencies": latencies, "status": dict(status), "elapsed": elapsed, "errors": errors}


def bench_throughput(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    repo, app = f"bench-tp-{RUN_ID}", f"tp{RUN_ID}"
    bare = init_bare(tmp / "tp" / "remote.git")
    fi = FastImport()
    fi.commit("refs/heads/main", {".hoody/app.yaml": spec(app, "main")})
    fi.run(bare)
    port = free_port()
    state = tmp / "tp" / "state"
    config = write_config(tmp / "tp" / "hoody.yaml", repo, bare, state, port, False)
    prof = tmp / "tp" / "profile" if args.profile else None
    log_path = tmp / "tp" / "serve.log"
    what_if = args.what_if
    with Server(config, port, "memory", log_path, False, profile=prof, what_if=what_if) as server:
        server.wait_passes(repo, 1)
        warm = fire(port, repo, args.clients, 5.0, 400, f"{RUN_ID}-warm")
        if set(warm["status"]) != {202}:
            raise RuntimeError(f"warm-up answers: {warm['status']} {warm['errors'][:3]}")
        p0 = server.settle(repo)
        cpu0 = server.cpu()
        own0 = os.times()
        res = fire(port, repo, args.clients, args.duration, args.max_requests, f"{RUN_ID}-tp")
        own1 = os.times()
        cpu1 = server.cpu()
        during = server.passes(repo) - p0
        p1 = server.settle(repo)
        cpu2 = server.cpu()
        assert server.conn
        dup_status, dup = server.conn.post_github(
            repo, "push", push_body(push_template(), "1" * 40), f"{RUN_ID}-tp-0"
        )
        store = Store(f"sqlite:///{state / 'hoody.db'}")
        env = store.environment(f"main-{app}")
        store.engine.dispose()
    lat = [ms(x) for x in res["latencies"]]
    done = len(lat)
    accepted = res["status"].get(202, 0)
    rate = accepted / res["elapsed"]
    p50, p99 = pct(lat, 50), pct(lat, 99)
    server_cpu = (cpu1["self"] - cpu0["self"]) + (cpu1["children"] - cpu0["children"])
    return {
        "server": "hoody serve CLI entry point, own process, MemoryRuntime"
        + (f", WHAT-IF {args.what_if} (not hoody's behaviour)" if args.what_if else ""),
        "clients": args.clients,
        "duration_limit_s": args.duration,
        "max_requests": args.max_requests,
        "requests": done,
        "status": res["status"],
        "errors": res["errors"][:5],
        "elapsed_s": res["elapsed"],
        "accepted_per_s": rate,
        "latency_ms": {
            "p50": p50,
            "p90": pct(lat, 90),
            "p99": p99,
            "max": max(lat),
            "mean": sum(lat) / len(lat),
        },
        "targets": {"accepted_per_s": 500, "p99_ms": 50},
        "met": {"rate": rate >= 500, "p99": p99 <= 50},
        "passes_during_load": during,
        "passes_total_after_settle": p1 - p0,
        "redelivery_of_a_seen_id": [dup_status, dup],
        "profile": profile_text(prof) if prof else None,
        "env_after": None if env is None else {k: env[k] for k in ("status", "commit")},
        "cpu_s": {
            "server_threads": cpu1["self"] - cpu0["self"],
            "server_threads_sys": cpu1["self_sys"] - cpu0["self_sys"],
            "server_context_switches": cpu1["ctxt"] - cpu0["ctxt"],
            "server_git_children": cpu1["children"] - cpu0["children"],
            "server_after_load_until_settled": (cpu2["self"] + cpu2["children"])
            - (cpu1["self"] + cpu1["children"]),
            "load_generator": (own1.user + own1.system) - (own0.user + own0.system),
            "server_ms_per_delivery": ms(server_cpu / max(1, done)),
        },
    }


def profile_text(prof: Path, top: int = 30) -> dict[str, str]:
    """The merged per-thread cProfile stats of the server child, as text."""
    import io
    import pstats

    out = {}
    for kind in ("http", "pass"):
        path = Path(f"{prof}.{kind}")
        if path.exists():
            buf = io.StringIO()
            stats = pstats.Stats(str(path), stream=buf)
            stats.strip_dirs().sort_stats("cumulative").print_stats(top)
            out[kind] = buf.getvalue()
    return out


def print_throughput(rep: dict[str, Any]) -> None:
    print(
        f"\n## 2. signed push deliveries per second ({rep['server']}; {rep['clients']} "
        f"keep-alive clients, <= {rep['duration_limit_s']:g} s or {rep['max_requests']} requests)\n"
    )
    la = rep["latency_ms"]
    rows = [
        [
            rep["requests"],
            f"{rep['elapsed_s']:.2f}",
            f"{rep['accepted_per_s']:.0f}",
            f"{la['p50']:.1f}",
            f"{la['p90']:.1f}",
            f"{la['p99']:.1f}",
            f"{la['max']:.1f}",
            rep["passes_during_load"],
            rep["passes_total_after_settle"],
        ]
    ]
    print(
        table(
            [
                "requests",
                "s",
                "accepted/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "passes (load)",
                "passes (+settle)",
            ],
            rows,
        )
    )
    met = rep["met"]
    print(
        f"\nstatus codes: {rep['status']}; target >= 500/s: {'met' if met['rate'] else 'NOT met'}"
        f", p99 <= 50 ms: {'met' if met['p99'] else 'NOT met'}"
    )
    c = rep["cpu_s"]
    print(
        f"CPU: server threads {c['server_threads']:.2f} s + git children "
        f"{c['server_git_children']:.2f} s ({c['server_ms_per_delivery']:.2f} ms/delivery), "
        f"load generator {c['load_generator']:.2f} s; "
        f"redelivered id -> {rep['redelivery_of_a_seen_id']}"
    )
    for kind, text in (rep.get("profile") or {}).items():
        print(f"\nserver profile ({kind}, all threads merged, cumulative):\n{text}")


# -- 3. a storm of pushes --------------------------------------------------------------------


class RefMover:
    """`git update-ref --stdin` kept open: one `start / update / commit` transaction per
    move, each applied (and acknowledged) at once, without a process per move."""

    def __init__(self, bare: Path) -> None:
        self.bare = bare
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> RefMover:
        self.proc = subprocess.Popen(
            ["git", "update-ref", "--stdin"],
            cwd=self.bare,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        return self

    def move(self, ref: str, new: str, old: str) -> None:
        assert self.proc and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(f"start\nupdate {ref} {new} {old}\ncommit\n")
        self.proc.stdin.flush()
        for want in ("start: ok", "commit: ok"):
            got = self.proc.stdout.readline().strip()
            if got != want:
                raise RuntimeError(f"git update-ref --stdin: expected {want!r}, got {got!r}")

    def __exit__(self, *exc: object) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(10)


def bench_storm(
    args: argparse.Namespace, tmp: Path, runtime: str, client: docker.DockerClient | None
) -> dict[str, Any]:
    repo, app = f"bench-st-{runtime[:3]}-{RUN_ID}", f"st{runtime[:3]}{RUN_ID}"
    env = f"main-{app}"
    root = tmp / f"storm-{runtime}"
    bare = init_bare(root / "remote.git")
    fi = FastImport()
    base = fi.commit("refs/heads/main", {".hoody/app.yaml": spec(app, "storm-0")})
    for i in range(1, args.storm_commits + 1):
        fi.commit(
            "refs/bench/storm",  # not fetched: only refs/heads/* and refs/pull/* are
            {".hoody/app.yaml": spec(app, f"storm-{i}")},
            message=f"storm {i}",
            parent=base if i == 1 else None,
        )
    t = time.perf_counter()
    fi.run(bare)
    prepare = time.perf_counter() - t
    base_sha = git(bare, "rev-parse", "refs/heads/main")
    shas = git(bare, "rev-list", "--reverse", "refs/heads/main..refs/bench/storm").split()
    assert len(shas) == args.storm_commits
    port = free_port()
    state = root / "state"
    config = write_config(root / "hoody.yaml", repo, bare, state, port, False)
    template = push_template()
    try:
        log_path = root / "serve.log"
        with Server(config, port, runtime, log_path, False, trace=args.trace) as server:
            assert server.conn
            store = Store(f"sqlite:///{state / 'hoody.db'}")
            poll_env(store, env, lambda r: r is not None and r["status"] == "healthy")
            p0 = server.settle(repo)
            interval = args.storm_seconds / len(shas)
            acks: collections.Counter[int] = collections.Counter()
            prev = base_sha
            wall0 = time.time()
            t0 = time.perf_counter()
            with RefMover(bare) as mover:
                for i, sha in enumerate(shas):
                    delay = t0 + i * interval - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    mover.move("refs/heads/main", sha, prev)
                    status, _ = server.conn.post_github(
                        repo, "push", push_body(template, sha), f"{RUN_ID}-storm-{runtime}-{i}"
                    )
                    acks[status] += 1
                    prev = sha
            t_sent = time.perf_counter()
            passes_by_last_push = server.passes(repo) - p0
            t_final, _, _ = poll_env(
                store,
                env,
                lambda r: r is not None and r["status"] == "healthy" and r["commit"] == shas[-1],
                timeout=300,
            )
            p1 = server.settle(repo)
            final = store.environment(env)
            deploys = store.events(env=env, kind="updated", limit=5000)
            store.engine.dispose()
            _, traces = log_marks(server.log_path, wall0, time.time(), env)
            answer = None
            labels: dict[str, str] = {}
            if runtime == "docker" and client is not None and final and final["url"]:
                answer = page(final["url"])
                cs = client.containers.list(
                    filters={"label": [f"hoody.repo={repo}", f"hoody.env={env}"]}
                )
                labels = {c.name: c.labels.get("hoody.commit", "") for c in cs}
    finally:
        if client is not None:
            cleanup(client, repo)
    assert final is not None
    deployed = [e.details.get("commit") for e in deploys]
    index = {s: i + 1 for i, s in enumerate(shas)}
    passes = max(1, p1 - p0)
    return {
        "runtime": runtime,
        "server": (
            "python -m reconciler.cli.main serve --no-watch"
            if runtime == "docker" and not args.trace
            else f"hoody serve CLI entry point, own process, {runtime} runtime"
            + (", --trace timers" if args.trace else "")
        ),
        "trace_per_pass_ms": {
            k: {"ms": v[0] / passes, "calls": v[1] / passes} for k, v in sorted(traces.items())
        },
        "commits": len(shas),
        "prepare_s": prepare,
        "storm_s": t_sent - t0,
        "pushes_per_s": len(shas) / (t_sent - t0),
        "acks": dict(acks),
        "passes": p1 - p0,
        "passes_by_last_push": passes_by_last_push,
        "target_passes": 5,
        "deploys": len(deploys),
        "deployed_commit_numbers": sorted(index.get(c or "", 0) for c in deployed),
        "last_push_to_deployed_s": t_final - t_sent,
        "mean_pass_s": (t_final - t0) / max(1, p1 - p0),
        "final": {
            "status": final["status"],
            "commit": final["commit"],
            "is_last": final["commit"] == shas[-1],
            "page": answer,
            "container_commit_labels": labels,
        },
        "last_commit": shas[-1],
    }


def print_storm(reps: list[dict[str, Any]]) -> None:
    if not reps:
        return
    r0 = reps[0]
    print(
        f"\n## 3. storm: {r0['commits']} pushes to one branch in ~{r0['storm_s']:.0f} s "
        "(update-ref + signed push each)\n"
    )
    rows = []
    for r in reps:
        ok = r["final"]["is_last"] and r["final"]["status"] == "healthy"
        rows.append(
            [
                r["runtime"],
                f"{r['storm_s']:.2f}",
                f"{r['pushes_per_s']:.0f}",
                r["acks"],
                r["passes"],
                r["deploys"],
                f"{ms(r['mean_pass_s']):.0f}",
                f"{r['last_push_to_deployed_s']:.2f}",
                f"{'yes' if ok else 'NO'} ({r['final']['commit'][:12]})",
            ]
        )
    print(
        table(
            [
                "runtime",
                "storm s",
                "pushes/s",
                "acks",
                "passes",
                "deploys",
                "ms/pass",
                "last push -> deployed s",
                "final = last commit",
            ],
            rows,
        )
    )
    for r in reps:
        verdict = "met" if r["passes"] <= r["target_passes"] else "NOT met"
        extra = f"; page {r['final']['page']!r}" if r["final"]["page"] else ""
        print(f"{r['runtime']}: passes <= {r['target_passes']}: {verdict}{extra}")
        nums = [str(n) for n in r["deployed_commit_numbers"]]
        if len(nums) > 16:
            nums = [*nums[:8], "...", *nums[-4:]]
        print(f"  commits deployed, by number (1..{r['commits']}): {', '.join(nums)}")
    for r in reps:
        if r["trace_per_pass_ms"]:
            rows = [[k, v["ms"], f"{v['calls']:.1f}"] for k, v in r["trace_per_pass_ms"].items()]
            print()
            print(table([f"{r['runtime']}: traced calls per pass", "mean ms", "calls"], rows))


# -- main ----------------------------------------------------------------------------------


def with_load(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark; note the 1-minute load average before and after (other work on
    the machine shows up there)."""
    before = os.getloadavg()[0]
    rep = run()
    rep["loadavg_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return rep


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "serve-child":
        return serve_child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", nargs="?", default="all", choices=("all", "pr", "throughput", "storm"))
    ap.add_argument("-n", "--iterations", type=int, default=10, help="pr: measured iterations")
    ap.add_argument("--warmup", type=int, default=1, help="pr: unmeasured iterations first")
    ap.add_argument("--clients", type=int, default=8, help="throughput: concurrent clients")
    ap.add_argument("--duration", type=float, default=10.0, help="throughput: max seconds")
    ap.add_argument("--max-requests", type=int, default=20_000, help="throughput: max requests")
    ap.add_argument(
        "--trace", action="store_true", help="pr, storm: time runtime/git/store calls in the server"
    )
    ap.add_argument(
        "--profile", action="store_true", help="throughput: cProfile the server's threads"
    )
    ap.add_argument(
        "--what-if",
        choices=("dedup-locked", "dedup-in-memory"),
        help="throughput diagnostics: change how the server remembers delivery ids",
    )
    ap.add_argument("--storm-commits", type=int, default=1000)
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    ap.add_argument(
        "--storm-runtime", choices=("docker", "memory", "both"), default="both", help="storm"
    )
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write results as JSON")
    args = ap.parse_args()
    if not FIXTURES.is_dir():
        ap.error(f"fixtures not found at {FIXTURES}")

    needs_docker = args.what in ("all", "pr") or args.storm_runtime != "memory"
    client = None
    if needs_docker:
        client = docker.from_env()
        client.images.get(IMAGE)  # never pulled: fails fast when the local image is missing
    report: dict[str, Any] = {"machine": machine(), "run_id": RUN_ID}
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-webhooks-"))
    started = time.perf_counter()
    try:
        if args.what in ("all", "pr"):
            assert client is not None
            log("pr: webhook -> PR environment healthy vs plain docker run")
            report["pr"] = with_load(lambda: bench_pr(args, tmp, client))
        if args.what in ("all", "throughput"):
            log("throughput: signed push deliveries per second")
            report["throughput"] = with_load(lambda: bench_throughput(args, tmp))
        if args.what in ("all", "storm"):
            runtimes = (
                ["docker", "memory"] if args.storm_runtime == "both" else [args.storm_runtime]
            )
            report["storm"] = []
            for rt in runtimes:
                log(
                    f"storm ({rt} runtime): {args.storm_commits} pushes in {args.storm_seconds:g} s"
                )
                report["storm"].append(with_load(lambda rt=rt: bench_storm(args, tmp, rt, client)))
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                cleanup(client)
        shutil.rmtree(tmp, ignore_errors=True)
    report["wall_s"] = time.perf_counter() - started

    if args.json:
        text = json.dumps(report, indent=2, default=str)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text + "\n")
    m = report["machine"]
    print(f"webhook benchmarks, run {RUN_ID}, {report['wall_s']:.0f} s")
    print(f"machine: {m['cpus']} cores, {m['cpu']}, Python {m['python']}, {m['git']}")
    if "pr" in report:
        print_pr(report["pr"])
    if "throughput" in report:
        print_throughput(report["throughput"])
    if "storm" in report:
        print_storm(report["storm"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
