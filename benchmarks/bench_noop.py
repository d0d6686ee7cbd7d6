"""No-op reconcile passes with many branches, and passes where only a few changed.

One bare git repo with N branches (`feature/bNNNN`), each holding `.hoody/app.yaml` with
the fixed app name `bench` (image busybox:1.36). Two layouts:

* shared:   every branch points at the same commit;
* distinct: every branch has its own commit (the realistic case), so the reconciler
            sees N different commits and N different specs.

The in-memory runtime (`MemoryRuntime`) stands in for Docker so the engine is not
measured. The first pass creates the N environments; the first no-op pass after it is
timed apart (it rewrites every environment's status row), then K no-op passes are timed. At
the largest N, new commits are pushed to 1, 10 and 50 branches and the pass that picks
them up is timed: its cost should follow the number of changed branches, not N.

`Mirror.read_file` is counted during every timed pass: a no-op pass must read no file
(specs are read once per commit ever), a pass after c pushes reads 2 files per new
commit (`.hoody/app.yaml` and `.hoody/crontab`).

    .venv/bin/python benchmarks/bench_noop.py
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import FastImport, Spans, init_bare, machine, refs, summary, table

from reconciler.core import desired as desired_mod
from reconciler.core.model import ActionOp
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.apply import Applier
from reconciler.gitops.controller import Controller
from reconciler.gitops.git import Mirror
from reconciler.gitops.sources import SourceReader
from reconciler.runtime.memory import MemoryRuntime
from reconciler.storage.store import Store

IMAGE = "busybox:1.36"
REPO = "bench-repo"


def app_yaml(marker: str) -> str:
    return f"""\
name: bench
image: {IMAGE}
command: ["sleep", "3600"]
env: {{MARKER: "{marker}"}}
"""


def branch(i: int) -> str:
    return f"refs/heads/feature/b{i:04d}"


def build_repo(bare: Path, n: int, layout: str) -> None:
    fi = FastImport()
    if layout == "shared":
        mark = fi.commit(branch(0), {".hoody/app.yaml": app_yaml("shared")})
        for i in range(1, n):
            fi.ref(branch(i), mark)
    else:
        for i in range(n):
            fi.commit(branch(i), {".hoody/app.yaml": app_yaml(f"b{i:04d}")}, f"b{i:04d}")
    fi.run(bare)


def push_commits(bare: Path, branches: list[str], gen: int) -> None:
    """One new commit (changed spec) on each of `branches`, as a push would land them."""
    tips = refs(bare)
    fi = FastImport()
    for ref in branches:
        fi.commit(ref, {".hoody/app.yaml": app_yaml(f"{ref}-gen{gen}")}, f"gen {gen}", tips[ref])
    fi.run(bare)


# Inclusive wall time per call site.
SPANS = [
    (SourceReader, "snapshot", "snapshot (fetch + refs + specs + desired)"),
    (Mirror, "fetch", "  git fetch"),
    (Mirror, "list_refs", "  git list refs"),
    (Mirror, "read_file", "  Mirror.read_file"),
    (Mirror, "commit_time", "  Mirror.commit_time"),
    (desired_mod, "desired_environment", "  desired_environment (hashing)"),
    (MemoryRuntime, "observe", "runtime observe (memory)"),
    (Store, "suspended", "store: suspended()"),
    (Store, "set_status", "store: set_status"),
    (Store, "add_event", "store: add_event"),
    (Applier, "update", "Applier.update (summed over threads)"),
    (Applier, "result", "  Applier.result (observes the whole repo)"),
]
READ_FILE = "  Mirror.read_file"
SNAPSHOT = "snapshot (fetch + refs + specs + desired)"


def new_controller(root: Path, bare: Path) -> Controller:
    settings = Settings(
        state_dir=root / "state", repos=(RepoSettings(name=REPO, url=str(bare), branches=("*",)),)
    )
    runtime = MemoryRuntime()
    runtime.images.add(IMAGE)
    return Controller(settings, Store(settings.database_url), runtime)


def timed_pass(
    ctl: Controller, spans: Spans, expect: dict[ActionOp, int]
) -> tuple[float, dict[str, tuple[float, int]]]:
    spans.reset()
    t0 = time.perf_counter()
    result = ctl.reconcile(REPO)
    elapsed = time.perf_counter() - t0
    got: dict[ActionOp, int] = {}
    for a in result.actions:
        got[a.op] = got.get(a.op, 0) + 1
    if not result.ok or got != expect:
        raise RuntimeError(f"unexpected pass: {got} (wanted {expect}); {result.errors[:3]}")
    return elapsed, spans.reset()


def ms(x: float) -> float:
    return x * 1000


def scenario(
    tmp: Path,
    n: int,
    layout: str,
    passes: int,
    spans: Spans,
    changes: list[int],
    repeat: int,
    profile: bool,
) -> dict[str, Any]:
    root = tmp / f"{layout}-{n}"
    bare = init_bare(root / "remote.git")
    t0 = time.perf_counter()
    build_repo(bare, n, layout)
    build_s = time.perf_counter() - t0
    ctl = new_controller(root, bare)

    first, first_spans = timed_pass(ctl, spans, {ActionOp.CREATE: n})
    # The first no-op pass after the creates is timed apart: it rewrites every status row
    # (see README), the passes after it are the steady state.
    first_noop, first_noop_spans = timed_pass(ctl, spans, {ActionOp.NOOP: n})
    noop_times, noop_reads, noop_spans = [], [], []
    for _ in range(passes):
        t, sp = timed_pass(ctl, spans, {ActionOp.NOOP: n})
        noop_times.append(t)
        noop_reads.append(sp.get(READ_FILE, (0.0, 0))[1])
        noop_spans.append(sp)
    out: dict[str, Any] = {
        "n": n,
        "layout": layout,
        "repo_build_s": build_s,
        "first_pass_ms": ms(first),
        "first_pass_read_file": first_spans.get(READ_FILE, (0.0, 0))[1],
        "first_noop_ms": ms(first_noop),
        "first_noop_set_status_calls": first_noop_spans.get("store: set_status", (0.0, 0))[1],
        "first_noop_read_file": first_noop_spans.get(READ_FILE, (0.0, 0))[1],
        "noop_ms": summary([ms(t) for t in noop_times]),
        "noop_samples_ms": [round(ms(t), 2) for t in noop_times],
        "noop_read_file_calls": noop_reads,
        "noop_breakdown_median_ms": {
            label: summary([ms(sp.get(label, (0.0, 0))[0]) for sp in noop_spans])["median"]
            for _, _, label in SPANS
        },
    }
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        ctl.reconcile(REPO)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(30)
        out["profile"] = buf.getvalue()

    changed_rows = []
    gen = 0
    for c in changes:
        times, reads, fetches, specs, results, writes = [], [], [], [], [], []
        for _ in range(repeat):
            gen += 1
            chosen = [branch((gen * 37 + k * 7) % n) for k in range(c)]
            chosen = list(dict.fromkeys(chosen))
            push_commits(bare, chosen, gen)
            t, sp = timed_pass(
                ctl, spans, {ActionOp.UPDATE: len(chosen), ActionOp.NOOP: n - len(chosen)}
            )
            times.append(t)
            reads.append(sp.get(READ_FILE, (0.0, 0))[1])
            fetches.append(sp.get("  git fetch", (0.0, 0))[0])
            specs.append(sp.get(SNAPSHOT, (0.0, 0))[0])
            results.append(sp.get("  Applier.result (observes the whole repo)", (0.0, 0))[0])
            writes.append(
                sp.get("store: set_status", (0.0, 0))[0] + sp.get("store: add_event", (0.0, 0))[0]
            )
        # and the pass right after is a no-op again
        after, sp = timed_pass(ctl, spans, {ActionOp.NOOP: n})
        changed_rows.append(
            {
                "changed": c,
                "pass_ms": summary([ms(t) for t in times]),
                "samples_ms": [round(ms(t), 2) for t in times],
                "read_file_calls": reads,
                "fetch_ms_median": summary([ms(x) for x in fetches])["median"],
                "snapshot_ms_median": summary([ms(x) for x in specs])["median"],
                "result_observe_ms_sum_median": summary([ms(x) for x in results])["median"],
                "store_write_ms_sum_median": summary([ms(x) for x in writes])["median"],
                "noop_after_ms": ms(after),
                "noop_after_read_file": sp.get(READ_FILE, (0.0, 0))[1],
            }
        )
    out["changed"] = changed_rows
    ctl.store.engine.dispose()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--branches", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("-k", "--passes", type=int, default=5, help="timed no-op passes per N")
    ap.add_argument("--layouts", nargs="+", default=["shared", "distinct"])
    ap.add_argument("--changes", type=int, nargs="+", default=[1, 10, 50])
    ap.add_argument("--repeat", type=int, default=3, help="passes per number of changes")
    ap.add_argument("--profile", action="store_true", help="cProfile a no-op pass at max N")
    ap.add_argument("--json", nargs="?", const="-", metavar="FILE", help="write results as JSON")
    args = ap.parse_args()

    mach = machine()
    spans = Spans()
    for owner, attr, label in SPANS:
        spans.wrap(owner, attr, label)
    tmp = Path(tempfile.mkdtemp(prefix="hoody-bench-noop-"))
    top = max(args.branches)
    results = []
    started = time.perf_counter()
    try:
        for layout in args.layouts:
            for n in args.branches:
                print(f"{layout} N={n} ...", file=sys.stderr)
                results.append(
                    scenario(
                        tmp,
                        n,
                        layout,
                        args.passes,
                        spans,
                        args.changes if n == top else [],
                        args.repeat,
                        args.profile and n == top and layout == args.layouts[-1],
                    )
                )
    finally:
        spans.undo()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "benchmark": "no-op reconcile",
        "machine": mach,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "passes": args.passes,
        "target_ms_at_500": 1000,
        "wall_s": time.perf_counter() - started,
        "results": results,
    }
    if args.json:
        text = json.dumps({**report, "results": [_nopro(r) for r in results]}, indent=2)
        if args.json == "-":
            print(text)
            return 0
        Path(args.json).write_text(text + "\n")
    print_report(report)
    return 0


def _nopro(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "profile"}


def print_report(rep: dict[str, Any]) -> None:
    m = rep["machine"]
    print(f"no-op reconcile (memory runtime), {rep['passes']} timed passes per N")
    print(f"machine: {m['cpus']} cores, {m['cpu']}, Python {m['python']}, {m['git']}")
    load = f"{m['loadavg_1m_at_start']} at start, {rep['loadavg_1m_at_end']} at end"
    print(f"1-min load average (2 cores = 2.0 is full): {load}\n")
    rows = [
        [
            r["layout"],
            r["n"],
            r["noop_ms"]["median"],
            r["noop_ms"]["max"],
            sum(r["noop_read_file_calls"]),
            r["first_noop_ms"],
            r["first_noop_set_status_calls"],
            r["first_pass_ms"],
            r["first_pass_read_file"],
        ]
        for r in rep["results"]
    ]
    print(
        table(
            [
                "layout",
                "branches",
                "no-op median ms",
                "no-op max ms",
                "read_file in no-ops",
                "1st no-op ms",
                "its status writes",
                "create pass ms",
                "its read_file",
            ],
            rows,
        )
    )
    at500 = [max(r["noop_ms"]["max"], r["first_noop_ms"]) for r in rep["results"] if r["n"] >= 500]
    if at500:
        verdict = "met" if max(at500) < rep["target_ms_at_500"] else "NOT met"
        print(
            f"\ntarget: no-op pass < 1000 ms at 500 branches: {verdict} "
            f"(slowest, 1st no-op included: {max(at500):.1f} ms)"
        )

    print()
    labels = [
        k
        for k in rep["results"][0]["noop_breakdown_median_ms"]
        if not k.startswith(("Appl", "  Appl"))
    ]
    rows = [
        [label, *(r["noop_breakdown_median_ms"][label] for r in rep["results"])] for label in labels
    ]
    heads = [f"{r['layout'][:5]} {r['n']}" for r in rep["results"]]
    print(table(["no-op pass: median ms (inclusive)", *heads], rows))

    for r in rep["results"]:
        if not r["changed"]:
            continue
        print(f"\nchanged branches at N={r['n']} ({r['layout']}): new commits, changed specs")
        rows = [
            [
                c["changed"],
                c["pass_ms"]["median"],
                c["pass_ms"]["max"],
                c["snapshot_ms_median"],
                c["fetch_ms_median"],
                "/".join(str(x) for x in c["read_file_calls"]),
                c["result_observe_ms_sum_median"],
                c["store_write_ms_sum_median"],
                c["noop_after_ms"],
                c["noop_after_read_file"],
            ]
            for c in r["changed"]
        ]
        print(
            table(
                [
                    "changed",
                    "pass median ms",
                    "max ms",
                    "snapshot ms",
                    "fetch ms",
                    "read_file per pass",
                    "result() ms (thread sum)",
                    "store writes ms (thread sum)",
                    "next no-op ms",
                    "its read_file",
                ],
                rows,
            )
        )
    for r in rep["results"]:
        if "profile" in r:
            print(f"\ncProfile of one no-op pass, N={r['n']} ({r['layout']}):")
            print(r["profile"])
    print(f"\nwall time of the benchmark: {rep['wall_s']:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
