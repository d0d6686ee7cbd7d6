"""One burst of 10,000 simultaneous firings, with an injected clock, for each of several
checkouts of this repository, alternating: how long the timer's step at the instant
takes to queue the instant's firings in the pool (the dispatch), and the whole step.

Each round runs every `--root` once, in a fresh process (the root first on sys.path),
with the run log in SQLite on disk; claims are made 0.5 s before the instant, as the
timer does. Compares this code with another checkout measured at the same moments:

  git worktree add --detach /tmp/hoody-old origin/main
  .venv/bin/python benchmarks/bench_handover.py --root /tmp/hoody-old --root . --rounds 6
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ONE = r"""
import sys, tempfile, time, shutil
sys.path.insert(0, sys.argv[1])
from datetime import UTC, datetime
from reconciler.core.crontab import parse_crontab
from reconciler.core.model import CronSettings
from reconciler.cron.jobs import Outcome
from reconciler.cron.scheduler import Scheduler, Target
from reconciler.storage.store import Store
import reconciler.cron.scheduler as module
assert module.__file__.startswith(sys.argv[1]), module.__file__

class Runner:
    def run(self, job, handle):
        return Outcome("succeeded", 0, "", "")

class Clock:
    t = datetime(2030, 1, 1, 9, 59, 50, tzinfo=UTC)
    def now(self):
        return self.t

envs, per_env = int(sys.argv[2]), int(sys.argv[3])
d = tempfile.mkdtemp(prefix="hoody-bench-handover-", dir=sys.argv[4])
store = Store(f"sqlite:///{d}/runs.sqlite")
clock = Clock()
checked = {"whole_groups": False} if sys.argv[5] == "checked" else {}
s = Scheduler(store.runs, Runner(), clock=clock, owner="bench", **checked)
target = Target("r", "c", {}, CronSettings())
for e in range(envs):
    text = "".join(f"* * * * * job-{e}-{k}\n" for k in range(per_env))
    s.replace(f"e{e}", target, parse_crontab(text))
step = getattr(s, "step", None) or s._step  # older checkouts: _step
pool = getattr(s, "pool", None) or s._pool
submit, queued = pool.submit_grouped, []
def timed(tasks):
    n = submit(tasks)
    queued.append(time.perf_counter())
    return n
pool.submit_grouped = timed
clock.t = datetime(2030, 1, 1, 9, 59, 59, 500000, tzinfo=UTC)
t0 = time.perf_counter(); step(); claim = time.perf_counter() - t0
clock.t = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
t0 = time.perf_counter(); n = step(); whole = time.perf_counter() - t0
pool.wait_idle(300)
print(n, claim, queued[-1] - t0, whole)
s.stop(); store.engine.dispose(); shutil.rmtree(d)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--root", action="append", required=True, help="a checkout (repeat)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--envs", type=int, default=500)
    ap.add_argument("--per-env", type=int, default=20)
    ap.add_argument("--db-dir", default=tempfile.gettempdir())
    ap.add_argument(
        "--also-checked",
        metavar="ROOT",
        action="append",
        default=[],
        help="also run this root with Scheduler(whole_groups=False)",
    )
    args = ap.parse_args()
    runs = [(r, "whole") for r in args.root] + [(r, "checked") for r in args.also_checked]
    got: dict[tuple[str, str], list[tuple[float, float, float, float]]] = {k: [] for k in runs}
    loads = []
    for _ in range(args.rounds):
        for r, mode in runs:
            loads.append(os.getloadavg()[0])
            head = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=r, capture_output=True, text=True
            ).stdout.strip()
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    ONE,
                    os.path.abspath(r),
                    str(args.envs),
                    str(args.per_env),
                    args.db_dir,
                    mode,
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            n, claim, queued, whole = int(out[0]), *map(float, out[1:])
            got[(r, mode)].append((n, claim, queued, whole))
            print(
                f"{head:>9}  {n} firings  claim {claim:.3f} s  queued {queued * 1000:6.1f} ms  "
                f"step {whole * 1000:6.1f} ms  ({r}, {mode} groups)",
                flush=True,
            )
    print(f"\nload average (1 min) over the rounds: {min(loads):.1f}-{max(loads):.1f}")
    print("root, groups                         queued ms: median  min  max   step ms: median")
    for (r, mode), rows in got.items():
        q = [x[2] * 1000 for x in rows]
        w = [x[3] * 1000 for x in rows]
        label = f"{r}, {mode}"
        print(
            f"{label:36}  {statistics.median(q):14.1f} {min(q):5.1f} {max(q):5.1f}"
            f"  {statistics.median(w):14.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
