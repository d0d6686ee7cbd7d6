"""A storm of 1,000 pushes to one branch in 10 s: reconcile passes and the final deploy.

1,000 commits are made beforehand with `git fast-import` (each changes the spec, so each
is a real new version); then `git update-ref --stdin` (one transaction per move) moves
`main` of the bare remote one commit at a time (~100/s), each move followed by a signed
push delivery. Counts passes and checks that the final commit is the one deployed (store,
container label, page). Runtime: Docker (the real CLI) and memory (`serve-child`).

    .venv/bin/python benchmarks/bench_webhook_storm.py --storm-runtime both [--trace]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from benchlib import FastImport, git, init_bare, machine, table
from webhookdocker import cleanup, log_marks, page, poll_env
from webhooklib import (
    IMAGE,
    RUN_ID,
    Server,
    free_port,
    log,
    ms,
    push_body,
    push_template,
    spec,
    with_load,
    write_config,
)

from reconciler.storage.store import Store


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storm-commits", type=int, default=1000)
    ap.add_argument("--storm-seconds", type=float, default=10.0)
    ap.add_argument("--storm-runtime", choices=("docker", "memory", "both"), default="both")
    ap.add_argument("--trace", action="store_true", help="time runtime/git/store calls")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = ap.parse_args()
    client = None
    if args.storm_runtime != "memory":
        client = docker.from_env()
        client.images.get(IMAGE)
    runtimes = ["docker", "memory"] if args.storm_runtime == "both" else [args.storm_runtime]
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-webhook-storm-"))
    report: dict[str, Any] = {"machine": machine(), "run_id": RUN_ID, "storm": []}
    try:
        for rt in runtimes:
            log(f"storm ({rt}): {args.storm_commits} pushes in {args.storm_seconds:g} s")
            report["storm"].append(with_load(lambda rt=rt: bench_storm(args, tmp, rt, client)))
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                cleanup(client)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print_storm(report["storm"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
