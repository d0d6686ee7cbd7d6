"""Create-to-healthy of ONE environment: our Controller against the real Docker engine
versus a plain `docker run` from the CLI followed by the same HTTP health probe.

Per iteration (the two arms alternate which goes first):

* ours:  a fresh git repo (one branch `main`) and a fresh state dir, unique repo and app
         names; time = `Controller.reconcile(repo)` from call to return, the environment
         healthy (git fetch into a new mirror, spec read, observe, network, container,
         start, health wait, status/events in SQLite).
* plain: `docker run -d -p 127.0.0.1::8080 busybox:1.36 sh -c ...`, `docker port` to
         learn the published port, then HTTP GET polling with the backoff our applier
         uses (20 ms, x1.5, capped at 1 s).
* plan:  `reconcile(dry_run=True)` on another fresh controller and state dir: the cost of
         git fetch + spec read + observe without any Docker work.

Everything created is removed after each arm: our objects by the label
`hoody.repo=<the iteration's repo name>`, plain containers by `hoody-bench=<run id>`.
Nothing else is touched. Needs the local image busybox:1.36 (never pulled).

    .venv/bin/python benchmarks/bench_create.py -n 10
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import docker
from benchlib import FastImport, Spans, init_bare, machine, shared_network_as_found, summary, table

from reconciler.core.model import ActionOp
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.apply import Applier
from reconciler.gitops.controller import Controller
from reconciler.gitops.git import Mirror
from reconciler.gitops.sources import SourceReader
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import Store

IMAGE = "busybox:1.36"
SCRIPT = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"
RUN_ID = uuid.uuid4().hex[:6]


def app_yaml(app: str) -> str:
    # interval: 1s makes our applier's backoff cap 1 s (default 2 s), the plain arm's too.
    return f"""\
name: {app}
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "{SCRIPT}"]
    ports: [8080]
    healthcheck: {{http: /, port: 8080, interval: 1s}}
"""


# -- the plain arm's probe: the logic of Applier.wait_healthy + DockerRuntime.probe_http --


def probe(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except urllib.error.HTTPError as e:
        return 200 <= e.code < 400
    except (OSError, http.client.HTTPException):
        return False


def wait_http(url: str, timeout: float = 2.0, start_period: float = 60.0) -> int:
    """Poll until healthy; returns the number of probes."""
    deadline = time.monotonic() + start_period
    delay, probes = 0.02, 0
    while True:
        probes += 1
        if probe(url, timeout):
            return probes
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{url} not healthy after {start_period:.0f}s")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def docker_cli(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def plain_arm(network: str | None = None) -> dict[str, Any]:
    """`docker run` + `docker port` + probe. With `network`, first `docker network create`
    and run the container the way our runtime does (own bridge network, --init, restart
    policy): the engine-side cost of our design, without our code."""
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    extra: list[str] = []
    if network:
        docker_cli("network", "create", "--label", f"hoody-bench={RUN_ID}", network)
        phases["docker network create"] = time.perf_counter() - t0
        extra = ["--network", network, "--init", "--restart", "unless-stopped"]
    t1 = time.perf_counter()
    cid = docker_cli(
        "run",
        "-d",
        "--label",
        f"hoody-bench={RUN_ID}",
        "-p",
        "127.0.0.1::8080",
        *extra,
        IMAGE,
        "sh",
        "-c",
        SCRIPT,
    )
    t2 = time.perf_counter()
    lines = docker_cli("port", cid, "8080/tcp").splitlines()
    addr = next((ln for ln in lines if ln.startswith("127.0.0.1:")), lines[0])
    port = int(addr.rsplit(":", 1)[1])
    t3 = time.perf_counter()
    probes = wait_http(f"http://127.0.0.1:{port}/")
    t4 = time.perf_counter()
    phases.update({"docker run -d": t2 - t1, "docker port": t3 - t2, "health wait": t4 - t3})
    return {"total": t4 - t0, "phases": phases, "probes": probes}


# -- our arm -----------------------------------------------------------------------------


def make_controller(root: Path, repo: str, bare: Path, runtime: DockerRuntime) -> Controller:
    settings = Settings(
        state_dir=root,
        repos=(RepoSettings(name=repo, url=str(bare), branches=("main",)),),
    )
    return Controller(settings, Store(settings.database_url), runtime)


PROBE = "    probe_http (inspect + GET)"
# Inclusive wall time per call site (nested calls are counted in both).
OUR_SPANS = [
    (SourceReader, "snapshot", "git: snapshot (fetch + refs + spec)"),
    (Mirror, "fetch", "  git fetch (new mirror)"),
    (Mirror, "list_refs", "  git list refs"),
    (SourceReader, "commit_files", "  read + parse spec"),
    (DockerRuntime, "observe", "docker: observe"),
    (Applier, "create", "docker: Applier.create (all below)"),
    (DockerRuntime, "has_image", "  has_image"),
    (DockerRuntime, "ensure_network", "  ensure_network"),
    (DockerRuntime, "create_container", "  create_container"),
    (DockerRuntime, "start_container", "  start_container"),
    (Applier, "wait_healthy", "  wait_healthy"),
    (DockerRuntime, "probe_http", PROBE),
    (DockerRuntime, "inspect_container", "    inspect_container"),
    (Store, "set_status", "store: set_status"),
    (Store, "add_event", "store: add_event"),
]


def our_arm(
    tmp: Path, i: int, runtime: DockerRuntime, spans: Spans, repos: list[str]
) -> dict[str, Any]:
    repo, app = f"bc{RUN_ID}{i}", f"a{RUN_ID}{i}"
    repos.append(repo)
    work = tmp / f"it{i}"
    bare = init_bare(work / "remote.git")
    fi = FastImport()
    fi.commit("refs/heads/main", {".hoody/app.yaml": app_yaml(app)})
    fi.run(bare)
    ctl = make_controller(work / "state", repo, bare, runtime)
    spans.reset()
    t0 = time.perf_counter()
    result = ctl.reconcile(repo)
    total = time.perf_counter() - t0
    phases = spans.reset()
    if not result.ok or [a.op for a in result.actions] != [ActionOp.CREATE]:
        raise RuntimeError(f"reconcile of {repo} failed: {result.errors or result.actions}")
    status = ctl.store.environment(f"main-{app}")
    if not status or status["status"] != "healthy":
        raise RuntimeError(f"main-{app} is not healthy: {status}")
    with urllib.request.urlopen(status["url"], timeout=5) as r:
        if r.read().decode().strip() != "hello":
            raise RuntimeError(f"unexpected answer from {status['url']}")

    # The same pass without Docker work: a fresh controller, fresh mirror, dry run.
    plan_ctl = make_controller(work / "plan-state", repo, bare, runtime)
    t0 = time.perf_counter()
    plan = plan_ctl.reconcile(repo, dry_run=True)
    plan_total = time.perf_counter() - t0
    plan_phases = spans.reset()
    if not plan.ok:
        raise RuntimeError(f"plan failed: {plan.errors}")
    for c in (ctl, plan_ctl):
        c.store.engine.dispose()
    return {
        "total": total,
        "phases": {k: v[0] for k, v in phases.items()},
        "calls": {k: v[1] for k, v in phases.items()},
        "plan": plan_total,
        "plan_phases": {k: v[0] for k, v in plan_phases.items()},
        "repo": repo,
    }


def cleanup(client: docker.DockerClient, repo: str | None = None) -> None:
    """Remove exactly what one iteration created: our repo's objects, or plain ones."""
    label = {"label": [f"hoody.repo={repo}" if repo else f"hoody-bench={RUN_ID}"]}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for v in client.volumes.list(filters=label):
        v.remove(force=True)


# -- main --------------------------------------------------------------------------------


def ms(x: float) -> float:
    return x * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured iterations first")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write results as JSON")
    ap.add_argument(
        "--no-net-arm",
        action="store_true",
        help="skip the third arm (plain CLI, but with its own network, --init, restart policy)",
    )
    args = ap.parse_args()

    mach = machine()
    client = docker.from_env()
    client.images.get(IMAGE)  # never pulled: fails fast when the local image is missing
    runtime = DockerRuntime()  # one per process, as in `hoody serve`
    spans = Spans()
    for owner, attr, label in OUR_SPANS:
        spans.wrap(owner, attr, label)
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-create-"))
    repos: list[str] = []
    arms = ["ours", "plain"] + ([] if args.no_net_arm else ["plain-net"])
    samples: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    try:
        for i in range(args.warmup + args.iterations):
            measured = i >= args.warmup
            k = i % len(arms)
            for arm in arms[k:] + arms[:k]:  # rotate which arm goes first
                try:
                    if arm == "ours":
                        r = our_arm(tmp, i, runtime, spans, repos)
                    else:
                        r = plain_arm(f"hb-{RUN_ID}-{i}" if arm == "plain-net" else None)
                finally:
                    cleanup(client, repos[-1] if arm == "ours" else None)
                if measured:
                    samples[arm].append(r)
            if measured:
                print(
                    f"iteration {i - args.warmup + 1}/{args.iterations}: "
                    + ", ".join(f"{a} {ms(samples[a][-1]['total']):.0f} ms" for a in arms),
                    file=sys.stderr,
                )
    finally:
        spans.undo()
        for repo in repos:
            with contextlib.suppress(Exception):
                cleanup(client, repo)
        with contextlib.suppress(Exception):
            cleanup(client)
        shutil.rmtree(tmp, ignore_errors=True)

    ours, plain = samples["ours"], samples["plain"]
    report = build_report(args, mach, ours, plain, samples.get("plain-net", []))
    if args.json:
        text = json.dumps(report, indent=2)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text + "\n")
    print_report(report)
    return 0


def build_report(
    args: argparse.Namespace,
    mach: dict[str, Any],
    ours: list[dict[str, Any]],
    plain: list[dict[str, Any]],
    plain_net: list[dict[str, Any]],
) -> dict[str, Any]:
    def phases(rs: list[dict[str, Any]]) -> dict[str, float]:
        return {k: summary([ms(r["phases"][k]) for r in rs])["median"] for k in rs[0]["phases"]}

    o = summary([ms(r["total"]) for r in ours])
    p = summary([ms(r["total"]) for r in plain])
    labels = [label for _, _, label in OUR_SPANS]
    arms = {"ours": o, "plain": p, "plan_dry_run": summary([ms(r["plan"]) for r in ours])}
    if plain_net:
        arms["plain_net"] = summary([ms(r["total"]) for r in plain_net])
    return {
        "benchmark": "create-to-healthy",
        "machine": mach,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "iterations": args.iterations,
        "warmup": args.warmup,
        "ms": arms,
        "ratio_median": o["median"] / p["median"],
        "ratio_p90": o["p90"] / p["p90"],
        "ratio_median_vs_plain_net": (
            o["median"] / arms["plain_net"]["median"] if plain_net else None
        ),
        "target_ratio": 1.5,
        "ours_breakdown_median_ms": {
            label: summary([ms(r["phases"].get(label, 0.0)) for r in ours])["median"]
            for label in labels
        },
        "ours_calls_per_pass_max": {
            label: max(r["calls"].get(label, 0) for r in ours) for label in labels
        },
        "plan_breakdown_median_ms": {
            label: summary([ms(r["plan_phases"].get(label, 0.0)) for r in ours])["median"]
            for label in labels
            if any(label in r["plan_phases"] for r in ours)
        },
        "plain_breakdown_median_ms": phases(plain),
        "plain_net_breakdown_median_ms": phases(plain_net) if plain_net else {},
        "probes_median": {
            "ours": summary([r["calls"].get(PROBE, 0) for r in ours])["median"],
            "plain": summary([r["probes"] for r in plain])["median"],
        },
        "samples_ms": {
            "ours": [round(ms(r["total"]), 1) for r in ours],
            "plain": [round(ms(r["total"]), 1) for r in plain],
            "plain_net": [round(ms(r["total"]), 1) for r in plain_net],
            "plan_dry_run": [round(ms(r["plan"]), 1) for r in ours],
        },
    }


def print_report(rep: dict[str, Any]) -> None:
    m = rep["machine"]
    print(f"create-to-healthy, {rep['iterations']} iterations (+{rep['warmup']} warm-up)")
    print(f"machine: {m['cpus']} cores, {m['cpu']}, Python {m['python']}, {m['git']}")
    load = f"{m['loadavg_1m_at_start']} at start, {rep['loadavg_1m_at_end']} at end"
    print(f"1-min load average (2 cores = 2.0 is full): {load}\n")
    names = {
        "ours": "ours: Controller.reconcile()",
        "plain": "plain: docker run + port + probe",
        "plain_net": "plain-net: + own network, --init",
        "plan_dry_run": "plan: reconcile(dry_run=True)",
    }
    rows = [
        [names[a], *(st[k] for k in ("median", "p90", "min", "max"))] for a, st in rep["ms"].items()
    ]
    print(table(["ms", "median", "p90", "min", "max"], rows))
    verdict = "met" if rep["ratio_median"] <= rep["target_ratio"] else "NOT met"
    print(
        f"\nratio ours/plain: median {rep['ratio_median']:.2f}x, p90 {rep['ratio_p90']:.2f}x "
        f"(target <= {rep['target_ratio']}x on the median: {verdict})"
    )
    if rep["ratio_median_vs_plain_net"]:
        print(f"ratio ours/plain-net: median {rep['ratio_median_vs_plain_net']:.2f}x")
    pr = rep["probes_median"]
    print(f"health probes until healthy (median): ours {pr['ours']:g}, plain {pr['plain']:g}\n")
    rows = [
        [k, v, rep["ours_calls_per_pass_max"][k]]
        for k, v in rep["ours_breakdown_median_ms"].items()
    ]
    print(table(["ours: where the time goes (inclusive)", "median ms", "calls"], rows))
    for key, title in (
        ("plan_breakdown_median_ms", "plan (dry run): where the time goes"),
        ("plain_breakdown_median_ms", "plain: phases"),
        ("plain_net_breakdown_median_ms", "plain-net: phases"),
    ):
        if rep[key]:
            print()
            print(table([title, "median ms"], list(rep[key].items())))


if __name__ == "__main__":
    with shared_network_as_found(docker.from_env()):
        code = main()
    sys.exit(code)
