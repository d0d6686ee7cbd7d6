"""The proxy (issue #13): hoody's own Caddy in front of real containers, all on loopback.

Three parts, each printing a table (the arms of a comparison alternate in one run):

* throughput: a small static page (busybox httpd in a container) fetched with `wrk`
  straight from its published port vs through Caddy with a Host header; requests/s and
  latency percentiles (wrk --latency), `--rounds` rounds of `--seconds` each per arm.
* route change: 500 environments routed (two upstream containers); one environment's
  route switched `--changes` times between them (`CaddyRouter.route_ready`: one PATCH by
  @id, timed until Caddy answered), while a client loop requests the other 499 hosts
  round-robin (one connection per request) and counts failures (errors, non-200).
* push to healthy: per iteration a new branch is pushed (`git push`) and
  `Controller.reconcile()` creates it with the router on; time = push until the first 200
  at its stable host through Caddy (a poller every 5 ms). Against plain `docker run -d -p
  127.0.0.1::8080` + `docker port` + the same probe loop (bench_create's plain arm).

Everything in Docker carries a per-run label and is removed at the end; Caddy runs from a
temporary state dir and is stopped. Needs wrk (apt-get install wrk), caddy and the local
image busybox:1.36.

    .venv/bin/python benchmarks/bench_proxy.py
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_create
import docker
from benchlib import git, init_bare, machine, pct, shared_network_as_found, table
from httpclient import fetch

from reconciler.core.model import ObservedContainer, ObservedEnvironment
from reconciler.core.settings import ProxySettings, RepoSettings, ServerSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.proxy import Proxy
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import Store

IMAGE = bench_create.IMAGE
RUN_ID = bench_create.RUN_ID
LABEL = f"hoody-bench={RUN_ID}"
PAGE = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_process(*args: object) -> subprocess.Popen[str]:
    """httpclient.py in its own process (see there), once it said it is ready."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("httpclient.py")), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"httpclient.py {args[0]} did not start")
    return proc


def page_container(client: docker.DockerClient, text: str) -> int:
    c = client.containers.run(
        IMAGE,
        ["sh", "-c", PAGE.format(text=text)],
        detach=True,
        labels={"hoody-bench": RUN_ID},
        ports={"8080/tcp": ("127.0.0.1", None)},
    )
    c.reload()
    port = int(c.ports["8080/tcp"][0]["HostPort"])
    bench_create.wait_http(f"http://127.0.0.1:{port}/")
    return port


def observed(name: str, port: int) -> ObservedEnvironment:
    c = ObservedContainer(
        id=name, name=f"{name}_web", env=name, service="web", ref="refs/heads/x",
        commit="0" * 40, spec_hash="h", running=True, status="running", ports={8080: port},
        published=(8080,), primary=True,
    )  # fmt: skip
    return ObservedEnvironment(name, "bench", "refs/heads/x", "0" * 40, containers=(c,))


def start_proxy(root: Path, repos: tuple[RepoSettings, ...] = ()) -> tuple[Settings, Proxy]:
    settings = Settings(
        state_dir=root,
        server=ServerSettings(port=free_port()),
        repos=repos,
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port()}", drain=0.0),
    )
    proxy = Proxy(settings)
    proxy.start({})
    return settings, proxy


# -- throughput ----------------------------------------------------------------------------


def wrk(url: str, seconds: int, connections: int, host: str | None) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if host:
        cmd[1:1] = ["-H", f"Host: {host}"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {p: _ms(m) for p, m in re.findall(r"^\s+(50|90|99)%\s+(\S+)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p90": lat["90"],
        "p99": lat["99"],
        "non2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": float(sum(int(x) for x in sock.groups())) if sock else 0.0,
    }


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def throughput(args: argparse.Namespace, client: docker.DockerClient, tmp: Path) -> dict[str, Any]:
    port = page_container(client, "hello")
    _, proxy = start_proxy(tmp / "throughput")
    try:
        proxy.router.rebuild({"bench-page": observed("bench-page", port)})
        arms: dict[str, list[dict[str, float]]] = {"direct": [], "caddy": []}
        caddy_port = proxy.settings.port
        urls = {
            "direct": (f"http://127.0.0.1:{port}/", None),
            "caddy": (f"http://127.0.0.1:{caddy_port}/", "bench-page.localhost"),
        }
        assert fetch(caddy_port, "bench-page.localhost") == (200, "hello")
        for r in range(args.rounds):
            order = ["direct", "caddy"] if r % 2 == 0 else ["caddy", "direct"]
            for arm in order:
                url, host = urls[arm]
                arms[arm].append(wrk(url, args.seconds, args.connections, host))
                print(f"throughput round {r + 1} {arm}: {arms[arm][-1]}", file=sys.stderr)
        return {k: _median_of(v) for k, v in arms.items()}
    finally:
        proxy.stop()


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"rounds": len(runs)}


# -- one route change among 500 -------------------------------------------------------------


def route_change(
    args: argparse.Namespace, client: docker.DockerClient, tmp: Path
) -> dict[str, Any]:
    a, b = page_container(client, "blue"), page_container(client, "green")
    _, proxy = start_proxy(tmp / "routes")
    try:
        names = [f"e{i:03d}-bench" for i in range(args.routes)]
        t = time.perf_counter()
        proxy.router.rebuild({n: observed(n, a) for n in names})
        load_ms = (time.perf_counter() - t) * 1000
        port = proxy.settings.port
        target, others = names[0], names[1:]
        client_loop = client_process("loop", port, "blue", *(f"{n}.localhost" for n in others))
        env = _desired(target)
        times, wrong, cpu = [], 0, 0.0
        for i in range(args.changes):
            upstream = b if i % 2 == 0 else a
            t, c = time.perf_counter(), _cpu_ms(proxy)
            proxy.router.route_ready(env, {"web": {8080: upstream}})
            times.append((time.perf_counter() - t) * 1000)
            cpu += _cpu_ms(proxy) - c
            if fetch(port, f"{target}.localhost")[1] != ("green" if upstream == b else "blue"):
                wrong += 1
            time.sleep(0.05)
        loop_out = json.loads(client_loop.communicate(timeout=30)[0].splitlines()[-1])
        failures = loop_out["failures"]
        return {
            "routes": args.routes,
            "initial_load_ms": load_ms,
            "changes": len(times),
            "median_ms": statistics.median(times),
            "p90_ms": pct(times, 90),
            "max_ms": max(times),
            "caddy_cpu_ms_per_change": cpu / len(times),
            "not_switched_after_return": wrong,
            "other_requests": loop_out["requests"],
            "other_failures": len(failures),
            "first_failures": failures[:3],
        }
    finally:
        proxy.stop()


def _cpu_ms(proxy: Proxy) -> float:
    """CPU time (user + system) Caddy has used so far: a figure the machine's load does
    not inflate (the loop's requests count too, but they are cheap next to a reload)."""
    import os

    assert proxy.process is not None and proxy.process.pid
    stat = Path(f"/proc/{proxy.process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(stat[11]) + int(stat[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def _desired(name: str) -> Any:
    from reconciler.core.model import AppSpec, DesiredEnvironment, DesiredService, Ref, ServiceSpec

    spec = ServiceSpec("web", image=IMAGE, ports=(8080,))
    return DesiredEnvironment(
        name, "bench", Ref("refs/heads/x", "0" * 40), AppSpec("bench", {"web": spec}),
        {"web": DesiredService(spec, IMAGE, {}, "h")}, "h",
    )  # fmt: skip


# -- push to healthy through the URL ----------------------------------------------------


def push_to_healthy(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    repo, app = f"bp{RUN_ID}", f"p{RUN_ID}"
    bare = init_bare(tmp / "push" / "remote.git")
    work = tmp / "push" / "work"
    work.mkdir(parents=True)
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", str(bare))
    (work / ".hoody").mkdir()
    (work / ".hoody" / "app.yaml").write_text(bench_create.app_yaml(app))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "app")
    # `main` stays deployed: deleting the only other branch would empty the ref listing,
    # which the mass-prune guard refuses, and the next push would then remove the previous
    # environment while creating its own
    git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    repos = (RepoSettings(name=repo, url=str(bare), branches=("main", "b*"), poll_interval=0),)
    settings, proxy = start_proxy(tmp / "push" / "state", repos)
    ctl = Controller(settings, Store(settings.database_url), DockerRuntime(), router=proxy.router)
    ctl.reconcile(repo)  # main, not timed
    ours: list[float] = []
    plain: list[float] = []
    try:
        for i in range(args.warmup + args.iterations):
            for arm in ["ours", "plain"] if i % 2 == 0 else ["plain", "ours"]:
                if arm == "plain":
                    try:
                        total = bench_create.plain_arm()["total"]
                    finally:
                        bench_create.cleanup(docker.from_env())
                else:
                    total = _one_push(ctl, proxy, work, repo, app, i)
                if i >= args.warmup:
                    (ours if arm == "ours" else plain).append(total * 1000)
            if i >= args.warmup:
                print(
                    f"push {i}: ours {ours[-1]:.0f} ms, plain {plain[-1]:.0f} ms", file=sys.stderr
                )
    finally:
        proxy.stop()
        bench_create.cleanup(docker.from_env(), repo)
    return {
        "iterations": len(ours),
        "ours_median_ms": statistics.median(ours),
        "plain_median_ms": statistics.median(plain),
        "ours_p90_ms": pct(ours, 90),
        "plain_p90_ms": pct(plain, 90),
        "ratio": statistics.median(ours) / statistics.median(plain),
    }


def _one_push(ctl: Controller, proxy: Proxy, work: Path, repo: str, app: str, i: int) -> float:
    branch = f"b{i}"
    host = f"{branch}-{app}.localhost"
    poller = client_process("first200", proxy.settings.port, host)
    t0 = time.monotonic()
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    result = ctl.reconcile(repo)
    first_200 = json.loads(poller.communicate(timeout=120)[0].splitlines()[-1])["at"]
    if not result.ok or not first_200:
        raise RuntimeError(f"push {branch}: {result.errors or 'no 200 at ' + host}")
    total = first_200 - t0
    git(work, "push", "-q", "origin", f":refs/heads/{branch}")
    removed = ctl.reconcile(repo)  # removes it and waits for that (not timed)
    if not removed.ok:
        raise RuntimeError(f"removing {branch}: {removed.errors}")
    return total


# -- main --------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="throughput rounds per arm")
    ap.add_argument("--seconds", type=int, default=10, help="length of one wrk run")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--routes", type=int, default=500)
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("-n", "--iterations", type=int, default=10, help="pushes per arm")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--only", choices=("throughput", "routes", "push"))
    args = ap.parse_args()
    for tool in ("wrk", "caddy"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed (apt-get install {tool})", file=sys.stderr)
            return 2
    client = docker.from_env()
    client.images.get(IMAGE)
    mach = machine()
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-proxy-"))
    out: dict[str, Any] = {}
    try:
        if args.only in (None, "throughput"):
            out["throughput"] = throughput(args, client, tmp)
        if args.only in (None, "routes"):
            out["routes"] = route_change(args, client, tmp)
        if args.only in (None, "push"):
            out["push"] = push_to_healthy(args, tmp)
    finally:
        for c in client.containers.list(all=True, filters={"label": [LABEL]}):
            c.remove(force=True)
        shutil.rmtree(tmp, ignore_errors=True)
    report(mach, args, out)
    return 0


def report(mach: dict[str, Any], args: argparse.Namespace, out: dict[str, Any]) -> None:
    print(f"machine: {mach}")
    if "throughput" in out:
        d, c = out["throughput"]["direct"], out["throughput"]["caddy"]
        rows = []
        for arm, r in (("direct", d), ("through caddy", c)):
            errors = int(r["non2xx"] + r["socket_errors"])
            rows.append([arm, f"{r['rps']:.0f}", r["p50"], r["p90"], r["p99"], errors])
        print(
            f"\nthroughput: wrk -t1 -c{args.connections} -d{args.seconds}s, median of {d['rounds']}"
        )
        print(table(["arm", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors"], rows))
        print(
            f"ratio caddy/direct req/s: {c['rps'] / d['rps']:.2f}x (target >= 0.8x); "
            f"added p99: {c['p99'] - d['p99']:.2f} ms (target <= 2 ms)"
        )
    if "routes" in out:
        r = out["routes"]
        print(f"\nroute change with {r['routes']} routes ({r['changes']} changes):")
        cells = [r["median_ms"], r["p90_ms"], r["max_ms"], r["caddy_cpu_ms_per_change"]]
        cells.append(r["initial_load_ms"])
        heads = ["median ms", "p90 ms", "max ms", "caddy CPU ms/change", "initial load ms"]
        print(table(heads, [cells]))
        print(
            f"requests to the other {r['routes'] - 1}: {r['other_requests']}, failed "
            f"{r['other_failures']} {r['first_failures']}; not yet switched when the call "
            f"returned: {r['not_switched_after_return']}  (target: median <= 20 ms, 0 failed)"
        )
    if "push" in out:
        p = out["push"]
        print(f"\npush to healthy ({p['iterations']} iterations):")
        rows = [
            ["ours: git push -> first 200 at the URL", p["ours_median_ms"], p["ours_p90_ms"]],
            ["plain: docker run + port + probe", p["plain_median_ms"], p["plain_p90_ms"]],
        ]
        print(table(["arm", "median ms", "p90 ms"], rows))
        print(f"ratio ours/plain: {p['ratio']:.2f}x (target <= 1.6x)")


if __name__ == "__main__":
    with shared_network_as_found(docker.from_env()):
        code = main()
    sys.exit(code)
