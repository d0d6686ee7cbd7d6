"""Webhook received -> pull-request environment healthy, against plain `docker run`.

A signed GitHub `pull_request opened` delivery (a fresh PR number per iteration) to
`hoody serve` (the real CLI, Docker runtime, in its own process) until the store shows
`pr-N-<app>` healthy at the PR head; alternating with `docker run -d -p 127.0.0.1::8080`
+ `docker port` + the same HTTP probe loop (20 ms, x1.5, capped at 1 s). Real Docker
engine, local image busybox:1.36 (never pulled); everything created is removed by label.

    .venv/bin/python benchmarks/bench_webhook_pr.py -n 10 --warmup 1 [--trace]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from benchlib import FastImport, git, init_bare, machine, summary, table
from webhookdocker import cleanup, docker_cli, log_marks, page, poll_env, wait_http
from webhooklib import (
    IMAGE,
    PLAIN_LABEL,
    RUN_ID,
    TOKEN,
    WEB,
    Server,
    free_port,
    log,
    ms,
    pr_body,
    spec,
    with_load,
    write_config,
)

from reconciler.storage.store import Store


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--iterations", type=int, default=10, help="measured iterations")
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured iterations first")
    ap.add_argument("--trace", action="store_true", help="time runtime/git/store calls")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    client = docker.from_env()
    client.images.get(IMAGE)  # never pulled: fails fast when the local image is missing
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-webhook-pr-"))
    try:
        log("pr: webhook -> PR environment healthy vs plain docker run")
        report = {"machine": machine(), "run_id": RUN_ID}
        report["pr"] = with_load(lambda: bench_pr(args, tmp, client))
    finally:
        with contextlib.suppress(Exception):
            cleanup(client)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_pr(report["pr"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
