"""Push to healthy on `runtime: swarm`: our Controller against the engine's swarm mode
versus a plain `docker service create` followed by the same HTTP health probe, same run.

Per iteration (the two arms alternate which goes first):

* ours:   a fresh git repo (one branch `main`) and state dir, unique names; time =
          `Controller.reconcile(repo)` from call to return, the environment healthy
          (git fetch, spec, observe, overlay network, swarm service, its task's
          host-mode port probed over HTTP on 127.0.0.1, status in SQLite). Then one
          commit more: time = the second `reconcile` (the swarm's start-first rolling
          update, the new task probed healthy, the old task retired).
* plain:  `docker service create -d --publish mode=host,target=8080` of the same task,
          its published port read from the task container (`docker ps`), then HTTP GET
          polling with our applier's backoff (20 ms, x1.5, capped at 1 s). Then
          `docker service update -d --env-add` + the same wait for the new task, then
          until the swarm reports the update completed (as ours waits for the old task
          to be retired).

A single-node swarm is created (`docker swarm init --advertise-addr 127.0.0.1`) when the
engine is not in one, and left at the end only then. Everything created is removed
after each arm (our repo's label, or `hoody-bench=<run id>`); nothing else is touched.
Needs the local image busybox:1.36 (never pulled).

    .venv/bin/python benchmarks/bench_swarm.py -n 5
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker
from benchlib import FastImport, git, init_bare, machine, summary

from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.swarm import SwarmRuntime
from reconciler.storage.store import Store

IMAGE = "busybox:1.36"
SCRIPT = 'mkdir -p /www && echo "$V" > /www/index.html && exec httpd -f -p 8080 -h /www'
RUN_ID = uuid.uuid4().hex[:6]
HEALTH = "wget -q -O /dev/null http://127.0.0.1:8080/"


def app_yaml(app: str, version: str) -> str:
    return f"""\
name: {app}
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", '{SCRIPT}']
    env: {{V: {version}}}
    ports: [8080]
    healthcheck: {{http: /, port: 8080, interval: 1s}}
"""


def cli(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


def get(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
            return str(r.read().decode().strip())
    except (OSError, http.client.HTTPException):
        return None


def wait_answer(port_of: Any, want: str, limit: float = 60.0) -> int:
    """Poll with the applier's backoff until the task answers `want`; returns probes."""
    deadline = time.monotonic() + limit
    delay, probes = 0.02, 0
    while True:
        probes += 1
        port = port_of()
        if port and get(port) == want:
            return probes
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no answer {want!r} after {limit:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def plain_port(name: str, version: str) -> int | None:
    """The IPv4 host port of the service's task container running `version`."""
    out = cli(
        "ps",
        "--filter",
        f"label=com.docker.swarm.service.name={name}",
        "--filter",
        f"label=hoody-bench-v={version}",
        "--format",
        "{{.Ports}}",
    )
    for part in out.replace(",", " ").split():
        if part.startswith("0.0.0.0:") and "->8080" in part:
            return int(part.split(":")[1].split("->")[0])
    return None


def plain_arm(i: int) -> dict[str, float]:
    name = f"hb-{RUN_ID}-{i}"
    t0 = time.perf_counter()
    cli(
        "service",
        "create",
        "-d",
        "-q",
        "--name",
        name,
        "--label",
        f"hoody-bench={RUN_ID}",
        "--container-label",
        f"hoody-bench={RUN_ID}",
        "--container-label",
        "hoody-bench-v=v1",
        "--env",
        "V=v1",
        "--publish",
        "mode=host,target=8080",
        "--health-cmd",
        HEALTH,
        "--health-interval",
        "2s",
        "--update-order",
        "start-first",
        "--update-failure-action",
        "rollback",
        "--update-monitor",
        "1s",
        IMAGE,
        "sh",
        "-c",
        SCRIPT,
    )
    wait_answer(lambda: plain_port(name, "v1"), "v1")
    t1 = time.perf_counter()
    cli(
        "service",
        "update",
        "-d",
        "-q",
        "--env-add",
        "V=v2",
        "--container-label-add",
        "hoody-bench-v=v2",
        name,
    )
    wait_answer(lambda: plain_port(name, "v2"), "v2")
    deadline = time.monotonic() + 60
    while cli("service", "inspect", "--format", "{{.UpdateStatus.State}}", name) != "completed":
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{name}: update not completed")
        time.sleep(0.05)
    t2 = time.perf_counter()
    return {"create": t1 - t0, "update": t2 - t1}


def our_arm(tmp: Path, i: int, runtime: SwarmRuntime, repos: list[str]) -> dict[str, float]:
    repo, app = f"bs{RUN_ID}{i}", f"s{RUN_ID}{i}"
    repos.append(repo)
    work = tmp / f"it{i}"
    bare = init_bare(work / "remote.git")
    fi = FastImport()
    fi.commit("refs/heads/main", {".hoody/app.yaml": app_yaml(app, "v1")})
    fi.run(bare)
    settings = Settings(
        state_dir=work / "state",
        runtime="swarm",
        repos=(RepoSettings(name=repo, url=str(bare), branches=("main",)),),
    )
    ctl = Controller(settings, Store(settings.database_url), runtime)
    env = f"main-{app}"
    t0 = time.perf_counter()
    result = ctl.reconcile(repo)
    t1 = time.perf_counter()
    status = ctl.store.environment(env)
    if not result.ok or not status or status["status"] != "healthy":
        raise RuntimeError(f"create of {env} failed: {result.errors} {status}")
    # the next commit, pushed into the bare remote
    clone = work / "clone"
    git(work, "clone", "-q", str(bare), str(clone))
    (clone / ".hoody/app.yaml").write_text(app_yaml(app, "v2"))
    git(clone, "commit", "-q", "-am", "v2")
    git(clone, "push", "-q", "origin", "HEAD:main")
    t2 = time.perf_counter()
    result = ctl.reconcile(repo)
    t3 = time.perf_counter()
    status = ctl.store.environment(env)
    if not result.ok or not status or status["status"] != "healthy":
        raise RuntimeError(f"update of {env} failed: {result.errors} {status}")
    (web,) = runtime.observe(repo)[env].containers
    if get(web.ports[8080]) != "v2":
        raise RuntimeError(f"{env} does not answer v2 after the update")
    ctl.store.engine.dispose()
    return {"create": t1 - t0, "update": t3 - t2}


def cleanup(client: docker.DockerClient, repo: str | None = None) -> None:
    label = {"label": [f"hoody.repo={repo}" if repo else f"hoody-bench={RUN_ID}"]}
    for s in client.services.list(filters=label):
        s.remove()
    deadline = time.monotonic() + 30
    while client.containers.list(all=True, filters=label) and time.monotonic() < deadline:
        time.sleep(0.2)
    for n in client.networks.list(filters=label):
        for _ in range(50):
            try:
                n.remove()
                break
            except docker.errors.APIError:
                time.sleep(0.2)
    for v in client.volumes.list(filters=label):
        v.remove(force=True)


def ms(x: float) -> float:
    return x * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured iterations first")
    args = ap.parse_args()
    client = docker.from_env()
    client.images.get(IMAGE)
    created = client.info()["Swarm"]["LocalNodeState"] != "active"
    if created:
        cli("swarm", "init", "--advertise-addr", "127.0.0.1")
    runtime = SwarmRuntime()
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-swarm-"))
    repos: list[str] = []
    samples: dict[str, list[dict[str, float]]] = {"ours": [], "plain": []}
    try:
        for i in range(args.warmup + args.iterations):
            arms = ["ours", "plain"] if i % 2 == 0 else ["plain", "ours"]
            for arm in arms:
                try:
                    r = our_arm(tmp, i, runtime, repos) if arm == "ours" else plain_arm(i)
                finally:
                    cleanup(client, repos[-1] if arm == "ours" else None)
                if i >= args.warmup:
                    samples[arm].append(r)
            if i >= args.warmup:
                print(
                    f"iteration {i - args.warmup + 1}/{args.iterations}: "
                    + ", ".join(
                        f"{a} create {ms(samples[a][-1]['create']):.0f} ms "
                        f"update {ms(samples[a][-1]['update']):.0f} ms"
                        for a in ("ours", "plain")
                    ),
                    file=sys.stderr,
                )
    finally:
        for repo in repos:
            with contextlib.suppress(Exception):
                cleanup(client, repo)
        with contextlib.suppress(Exception):
            cleanup(client)
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            cli("swarm", "leave", "--force")
    m = machine()
    print(f"machine: {m}")
    print(f"iterations: {args.iterations} (+{args.warmup} warmup)\n")
    print("| ms                                          | median |   p90 |   min |   max |")
    print("|---------------------------------------------|-------:|------:|------:|------:|")
    rows = [
        ("ours: push -> healthy (create)", "ours", "create"),
        ("plain: service create + probe", "plain", "create"),
        ("ours: push -> healthy (rolling update)", "ours", "update"),
        ("plain: service update + probe", "plain", "update"),
    ]
    for label, arm, key in rows:
        s = summary([ms(r[key]) for r in samples[arm]])
        print(
            f"| {label:<43} | {s['median']:6.1f} | {s['p90']:5.1f} | {s['min']:5.1f} "
            f"| {s['max']:5.1f} |"
        )
    for key in ("create", "update"):
        o = summary([ms(r[key]) for r in samples["ours"]])["median"]
        p = summary([ms(r[key]) for r in samples["plain"]])["median"]
        print(f"\nratio ours/plain ({key}): median {o / p:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
