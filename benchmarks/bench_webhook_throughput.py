"""Signed webhook deliveries accepted per second by `hoody serve`, push and pull_request.

The server is the `hoody serve` CLI entry point in its own process (`serve-child` of
webhooklib.py: the Docker runtime swapped for MemoryRuntime, so a pass costs a git fetch
and some database reads, no Docker), with every webhook check on: secret, `repository:`
filter, delivery-id and body dedupe, PR state ordered by `updated_at`, PR previews
enabled. N client threads with one keep-alive connection each POST until D seconds or M
requests; each request has its own body, signature and delivery id. A `pull_request`
request is a `synchronize` of one of 50 PRs with a newer `updated_at` each time (every
one is a state write). Latency is per request, signing excluded; 400 warm-up requests
first.

`--baseline DIR` runs the same arms against the source tree in DIR as well (e.g.
`git worktree add DIR origin/main`), alternating the two in every round.

    .venv/bin/python benchmarks/bench_webhook_throughput.py --baseline DIR --rounds 3
    .venv/bin/python benchmarks/bench_webhook_throughput.py --kinds pull_request --profile
"""

from __future__ import annotations

import argparse
import collections
import http.client
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import FastImport, init_bare, machine, pct, table
from webhooklib import (
    FIXTURES,
    RUN_ID,
    Server,
    free_port,
    gh_headers,
    log,
    ms,
    push_body,
    push_template,
    spec,
    write_config,
)
from webhooktrace import profile_text

PRS = 50
NUMBER = b"987654321"  # placeholder for the PR number in the template
STAMP = b"2019-05-15T15:20:33Z"  # the fixture's updated_at, replaced per request


def pr_template() -> bytes:
    data = json.loads((FIXTURES / "pull_request.synchronize.json").read_bytes())
    data["number"] = data["pull_request"]["number"] = int(NUMBER)
    body = json.dumps(data).encode()
    assert body.count(NUMBER) == 2 and STAMP in body
    return body


def make_body(kind: str, template: bytes, n: int) -> bytes:
    if kind == "push":
        return push_body(template, f"{n + 1:040x}")
    t = time.gmtime(1_700_000_000 + n)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", t).encode()
    body = template.replace(NUMBER, str(2 + n % PRS).encode())
    return body.replace(b'"updated_at": "' + STAMP, b'"updated_at": "' + stamp)


def fire(port: int, repo: str, kind: str, clients: int, duration: float, limit: int, tag: str,
         first: int = 0) -> dict[str, Any]:  # fmt: skip
    """`clients` threads POST signed deliveries until `limit` are started or `duration`
    seconds passed; request numbers start at `first` (so PR timestamps keep rising)."""
    template = push_template() if kind == "push" else pr_template()
    counter = itertools.count(first)
    lat: list[list[float]] = [[] for _ in range(clients)]
    codes: list[collections.Counter[int]] = [collections.Counter() for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, seen = lat[k], codes[k]
        start.wait()
        try:
            while True:
                n = next(counter)
                if n - first >= limit or time.perf_counter() >= deadline[0]:
                    return
                body = make_body(kind, template, n)
                headers = gh_headers(kind, body, f"{tag}-{n}")
                t = time.perf_counter()
                conn.request("POST", f"/webhooks/{repo}", body=body, headers=headers)
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
    status: collections.Counter[int] = collections.Counter()
    for c in codes:
        status.update(c)
    return {
        "latencies": [x for xs in lat for x in xs],
        "status": dict(status),
        "elapsed": time.perf_counter() - t0,
        "errors": errors,
        "next": next(counter),
    }


def one_arm(args: argparse.Namespace, tmp: Path, arm: str, source: Path | None, kind: str,
            round_no: int) -> dict[str, Any]:  # fmt: skip
    repo, app = f"bench-tp-{arm}-{round_no}-{RUN_ID}", f"tp{RUN_ID}"
    root = tmp / f"{arm}-{kind}-{round_no}"
    bare = init_bare(root / "remote.git")
    fi = FastImport()
    fi.commit("refs/heads/main", {".hoody/app.yaml": spec(app, "main")})
    fi.run(bare)
    port = free_port()
    config = write_config(root / "hoody.yaml", repo, bare, root / "state", port, True)
    prof = root / "profile" if args.profile else None
    with Server(config, port, "memory", root / "serve.log", False, profile=prof,
                source=source) as server:  # fmt: skip
        server.wait_passes(repo, 1)
        warm = fire(port, repo, kind, args.clients, 5.0, 400, f"{RUN_ID}-warm")
        if set(warm["status"]) != {202}:
            raise RuntimeError(f"{arm} {kind} warm-up: {warm['status']} {warm['errors'][:3]}")
        server.settle(repo)
        cpu0 = server.cpu()
        res = fire(port, repo, kind, args.clients, args.duration, args.max_requests,
                   f"{RUN_ID}-tp", first=warm["next"])  # fmt: skip
        cpu1 = server.cpu()
        server.settle(repo)
    lat = [ms(x) for x in res["latencies"]]
    return {
        "arm": arm,
        "kind": kind,
        "round": round_no,
        "requests": len(lat),
        "status": res["status"],
        "errors": res["errors"][:5],
        "elapsed_s": res["elapsed"],
        "accepted_per_s": res["status"].get(202, 0) / res["elapsed"],
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "max_ms": max(lat),
        "server_cpu_s": (cpu1["self"] - cpu0["self"]) + (cpu1["children"] - cpu0["children"]),
        "profile": profile_text(prof) if prof else None,
    }


def report(runs: list[dict[str, Any]]) -> str:
    rows, medians = [], {}
    for (arm, kind), group in itertools.groupby(
        sorted(runs, key=lambda r: (r["kind"], r["arm"])), key=lambda r: (r["arm"], r["kind"])
    ):
        g = list(group)
        rates = [r["accepted_per_s"] for r in g]
        medians[(arm, kind)] = statistics.median(rates)
        rows.append([
            arm, kind, len(g), " / ".join(f"{x:.0f}" for x in rates), f"{medians[(arm, kind)]:.0f}",
            f"{statistics.median(r['p50_ms'] for r in g):.1f}",
            f"{statistics.median(r['p99_ms'] for r in g):.1f}",
            f"{max(r['max_ms'] for r in g):.1f}",
            dict(sum((collections.Counter(r["status"]) for r in g), collections.Counter())),
        ])  # fmt: skip
    head = ["arm", "deliveries", "rounds", "accepted/s per round", "median/s", "p50 ms",
            "p99 ms", "max ms", "status codes"]  # fmt: skip
    out = [table(head, rows)]
    ours_pr = medians.get(("ours", "pull_request"))
    for base in (("baseline", "push"), ("baseline", "pull_request")):
        if ours_pr and base in medians:
            out.append(
                f"ours pull_request / {base[0]} {base[1]}: {ours_pr / medians[base]:.2f}x "
                f"(target >= 0.90x)"
            )
    if ("ours", "push") in medians and ("baseline", "push") in medians:
        ratio = medians[("ours", "push")] / medians[("baseline", "push")]
        out.append(f"ours push / baseline push: {ratio:.2f}x")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="also run the server from this source tree")
    ap.add_argument("--kinds", default="push,pull_request")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--max-requests", type=int, default=20_000)
    ap.add_argument("--profile", action="store_true", help="cProfile the server's threads")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    arms: list[tuple[str, Path | None]] = [("ours", None)]
    if args.baseline:
        arms.append(("baseline", args.baseline.resolve()))
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-webhook-tp-"))
    runs: list[dict[str, Any]] = []
    load = [os.getloadavg()[0]]
    try:
        for round_no in range(args.rounds):
            for kind in args.kinds.split(","):
                order = arms if round_no % 2 == 0 else list(reversed(arms))
                for arm, source in order:
                    log(f"round {round_no + 1}: {arm} {kind}")
                    runs.append(one_arm(args, tmp, arm, source, kind, round_no))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load.append(os.getloadavg()[0])
    m = machine()
    print(f"webhook throughput, run {RUN_ID}: {m['cpus']} cores, {m['cpu']}, Python "
          f"{m['python']}, {args.clients} clients, <= {args.duration:g} s or "
          f"{args.max_requests} requests per arm; load {load[0]:.1f} -> {load[1]:.1f}")  # fmt: skip
    print(report(runs))
    for r in runs:
        for part, text in (r["profile"] or {}).items():
            print(f"\nserver profile, {r['arm']} {r['kind']} ({part}, threads merged):\n{text}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": m, "runs": runs}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
