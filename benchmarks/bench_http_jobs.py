"""Issue #16: 1,000 HTTP jobs due in the same second across 100 environments.

100 environments hold 10 `@every 10s | GET http://web:80/...` entries each, so every
10 s instant hands 1,000 HTTP firings over together. The requests are real HTTP over
loopback: each environment's `web` service resolves (through a runtime stub that answers
`inspect_container` with a published port, what Docker answers for a published service)
to one threaded HTTP server on 127.0.0.1 that holds each request `--serve-ms` (default
5 ms) and counts, per environment, how many of its requests are in flight at once.

Measured, with the run log in SQLite on disk and the scheduler's defaults (8 workers,
2 per environment):
- dispatch lateness: the scheduler's own `lateness` (hand-over to the pool minus the
  instant, per firing), p99, for the HTTP arm and for a command arm with the same 1,000
  entries as commands (recorded, not run) — the target: p99 <= 10 ms for both;
- completion: every request of an instant answered, the time from the instant to the last
  answer, and the most requests of one environment in flight at once (bounded by
  `scheduler.per_env`).

The first instant of each arm is left out (the scheduler's start-up claim).

  .venv/bin/python benchmarks/bench_http_jobs.py               # ~2 minutes
  .venv/bin/python benchmarks/bench_http_jobs.py --seconds 30  # shorter
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.core.crontab import parse_crontab
from reconciler.core.model import CronSettings
from reconciler.cron.httpjobs import HttpJobRunner
from reconciler.cron.jobs import DockerJobRunner, Handle, Job, Outcome
from reconciler.cron.scheduler import Scheduler, Target
from reconciler.runtime import ContainerState
from reconciler.storage.store import Store

ENVS = 100
PER_ENV = 10
EVERY = 10
FOLDERS: list[str] = []


class Counting:
    """In-flight requests per environment (from the path `/e<env>/<k>`)."""

    def __init__(self, serve_s: float) -> None:
        self.serve_s = serve_s
        self.lock = threading.Lock()
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.done: list[tuple[str, float]] = []  # env, when answered


def make_server(counting: Counting) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            env = self.path.split("/")[1]
            with counting.lock:
                counting.now[env] += 1
                counting.peak[env] = max(counting.peak[env], counting.now[env])
            time.sleep(counting.serve_s)
            with counting.lock:
                counting.now[env] -= 1
                counting.done.append((env, time.time()))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 1024
    return server


class PublishedRuntime:
    """`inspect_container` as Docker answers it for a service whose port 80 is published
    on `port` (the only runtime call an HTTP job makes)."""

    def __init__(self, port: int) -> None:
        self.port = port

    def inspect_container(self, container_id: str) -> ContainerState:
        return ContainerState(container_id, container_id, True, "running", ports={80: self.port})


class Recorder:
    def run(self, job: Job, handle: Handle) -> Outcome:
        return Outcome("succeeded", 0, "", "")


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def arm(kind: str, seconds: float, serve_s: float) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="hoody-bench-http-")
    store = Store(f"sqlite:///{folder}/runs.sqlite")
    counting = Counting(serve_s)
    server = make_server(counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    runtime = PublishedRuntime(server.server_address[1])
    runner: Any = Recorder()
    if kind == "http":
        runner = DockerJobRunner(runtime)  # type: ignore[arg-type]
        runner.http = HttpJobRunner(runtime)  # type: ignore[arg-type]
    sched = Scheduler(store.runs, runner, owner="bench", workers=8, per_env=2)
    for i in range(ENVS):
        services = {"web": f"bench-{i}-web"}
        target = Target("bench", f"bench-{i}-worker", {}, CronSettings(), services)
        if kind == "http":
            lines = [f"@every {EVERY}s | GET http://web:80/e{i}/{k}\n" for k in range(PER_ENV)]
        else:
            lines = [f"@every {EVERY}s echo e{i} {k}\n" for k in range(PER_ENV)]
        sched.replace(f"e{i}", target, parse_crontab("".join(lines)))
    time.sleep(EVERY - time.time() % EVERY + 0.2)  # just after an instant
    sched.start()
    time.sleep(EVERY)  # the first instant: start-up, left out
    sched.wait_idle(30)
    sched.lateness.clear()
    with counting.lock:
        counting.done.clear()
        counting.peak.clear()
    first = time.time() // EVERY * EVERY + EVERY
    time.sleep(seconds)
    sched.stop()
    sched.wait_idle(30)
    late = list(sched.lateness)
    server.shutdown()
    server.server_close()
    statuses = Counter(r.status for r in store.runs.list(limit=100_000))
    store.engine.dispose()
    FOLDERS.append(folder)  # removed when both arms are done (the store's threads end)
    per_instant: dict[float, list[float]] = {}
    for _env, t in counting.done:
        instant = (t - 0.0) // EVERY * EVERY
        per_instant.setdefault(instant, []).append(t - instant)
    ms = 1000.0
    return {
        "arm": kind,
        "firings": len(late),
        "dispatch_p50_ms": round(pct(late, 50) * ms, 2),
        "dispatch_p99_ms": round(pct(late, 99) * ms, 2),
        "dispatch_max_ms": round(max(late, default=math.nan) * ms, 2),
        "requests_answered": len(counting.done),
        "requests_per_instant": [len(v) for k, v in sorted(per_instant.items()) if k >= first],
        "last_answer_after_instant_ms": [
            round(max(v) * ms) for k, v in sorted(per_instant.items()) if k >= first
        ],
        "max_in_flight_one_env": max(counting.peak.values(), default=0),
        "statuses": dict(statuses),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=50.0, help="measured length of each arm")
    ap.add_argument("--serve-ms", type=float, default=5.0, help="how long a request is held")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    load = os.getloadavg()
    results = [arm(kind, args.seconds, args.serve_ms / 1000) for kind in ("command", "http")]
    for r in results:
        print(json.dumps(r))
    print(f"cpus {os.cpu_count()} load {load[0]:.2f} before")
    ok = all(r["dispatch_p99_ms"] <= 10 for r in results)
    print(f"target p99 dispatch <= 10 ms for both arms: {'met' if ok else 'not met'}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    for folder in FOLDERS:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
