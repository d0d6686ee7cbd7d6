"""Issue #4: start latency of one cron job through our path, next to the docker CLI.

The script starts one busybox container (`busybox:1.36`, never pulled) with a unique name
and the label `hoody-bench=<run id>`, and removes it (and only it) at the end. Then, N
times each, alternating which goes first:

  ours  `DockerJobRunner(DockerRuntime()).run(job)` as the scheduler calls it (the job runs
        as `/bin/sh -c <command>` with the run marker in its environment, user root):
          - `true`:   from the call until `run()` returns (the exec has exited)
          - `echo x`: from the call until the first output chunk reaches the runner
  cli   `docker exec <container> true` (and `... echo x`) in a subprocess: until it exits,
        and until the first byte on its stdout. For reference also `docker exec
        <container> /bin/sh -c true`, the same command line ours runs.

  .venv/bin/python benchmarks/bench_exec.py [-n 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker

from reconciler.cron.jobs import DockerJobRunner, Handle, Job
from reconciler.runtime.docker import DockerRuntime

IMAGE = "busybox:1.36"


class FirstOutput:
    """Wraps the runtime: notes when the first output chunk of an exec arrives."""

    def __init__(self, inner: DockerRuntime) -> None:
        self.inner = inner
        self.first: float | None = None

    def exec_stream(
        self,
        container: str,
        command: list[str],
        env: Mapping[str, str],
        user: str | None,
        on_output: Callable[[int, bytes], None],
    ) -> int:
        def note(stream: int, data: bytes) -> None:
            if self.first is None:
                self.first = time.perf_counter()
            on_output(stream, data)

        return self.inner.exec_stream(container, command, env, user, note)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    body = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=20, help="measured runs of each (after 2 warm-ups)")
    ap.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = ap.parse_args(argv)

    run_id = uuid.uuid4().hex[:12]
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        print(f"{IMAGE} is not present locally; this benchmark never pulls", file=sys.stderr)
        return 2
    name = f"hoody-bench-exec-{run_id}"
    container = client.containers.run(
        IMAGE,
        ["sleep", "3600"],
        name=name,
        labels={"hoody-bench": run_id},
        detach=True,
        auto_remove=False,
    )
    try:
        return measure(args, name, run_id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
        for c in client.containers.list(all=True, filters={"label": f"hoody-bench={run_id}"}):
            c.remove(force=True)
        client.close()


def measure(args: argparse.Namespace, name: str, run_id: str) -> int:
    runtime = FirstOutput(DockerRuntime())
    runner = DockerJobRunner(runtime)  # type: ignore[arg-type]
    counter = iter(range(1, 1_000_000))

    def job(command: str) -> Job:
        return Job(
            run_id=next(counter),
            repo="bench",
            env="bench",
            entry_id="bench",
            container=name,
            shell="/bin/sh",
            command=command,
            stdin=None,
            variables={"BASE": "1"},
            user="root",
            timeout=60,
        )

    def ours_exit() -> float:
        t0 = time.perf_counter()
        outcome = runner.run(job("true"), Handle())
        t = time.perf_counter() - t0
        assert outcome.status == "succeeded", outcome
        return t

    def ours_first() -> float:
        runtime.first = None
        t0 = time.perf_counter()
        outcome = runner.run(job("echo x"), Handle())
        assert outcome.status == "succeeded" and outcome.stdout == "x\n", outcome
        assert runtime.first is not None
        return runtime.first - t0

    def cli_exit(*cmd: str) -> Callable[[], float]:
        def go() -> float:
            t0 = time.perf_counter()
            subprocess.run(["docker", "exec", name, *cmd], check=True, capture_output=True)
            return time.perf_counter() - t0

        return go

    def cli_first() -> float:
        t0 = time.perf_counter()
        with subprocess.Popen(["docker", "exec", name, "echo", "x"], stdout=subprocess.PIPE) as p:
            assert p.stdout is not None
            first = p.stdout.read(1)
            t = time.perf_counter() - t0
            p.stdout.read()
        assert first == b"x" and p.returncode == 0
        return t

    pairs: list[tuple[str, Callable[[], float], str, Callable[[], float]]] = [
        ("ours: run('true') until exit", ours_exit, "docker exec C true", cli_exit("true")),
        ("ours: run('echo x') first output", ours_first, "docker exec C echo x", cli_first),
    ]
    extra = ("docker exec C /bin/sh -c true", cli_exit("/bin/sh", "-c", "true"))
    samples: dict[str, list[float]] = {}
    for label_a, a, label_b, b in pairs:
        for fn in (a, b, a, b):  # warm-up: connection, exec path, page cache
            fn()
        for i in range(args.n):
            order = [(label_a, a), (label_b, b)] if i % 2 == 0 else [(label_b, b), (label_a, a)]
            for label, fn in order:
                samples.setdefault(label, []).append(fn())
    for _ in range(2):
        extra[1]()
    samples[extra[0]] = [extra[1]() for _ in range(args.n)]

    print(
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, docker "
        f"{docker.from_env().version().get('Version')}, container {name} ({IMAGE}), "
        f"N={args.n} each after 2 warm-ups, alternating; load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    rows = []
    result: dict[str, Any] = {"cpus": os.cpu_count(), "n": args.n, "run_id": run_id, "rows": []}
    for label_a, _, label_b, _ in pairs:
        ma, mb = statistics.median(samples[label_a]), statistics.median(samples[label_b])
        for label, ratio in ((label_a, f"{ma / mb:.2f}x"), (label_b, "1.00x")):
            v = samples[label]
            row = [
                label,
                f"{statistics.median(v) * 1000:.1f}",
                f"{pct(v, 90) * 1000:.1f}",
                f"{min(v) * 1000:.1f}",
                f"{max(v) * 1000:.1f}",
                ratio,
            ]
            rows.append(row)
            result["rows"].append({"what": label, "samples_s": v, "ratio_vs_cli": ratio})
    v = samples[extra[0]]
    rows.append(
        [
            extra[0],
            f"{statistics.median(v) * 1000:.1f}",
            f"{pct(v, 90) * 1000:.1f}",
            f"{min(v) * 1000:.1f}",
            f"{max(v) * 1000:.1f}",
            "",
        ]
    )
    result["rows"].append({"what": extra[0], "samples_s": v})
    print(table(["what", "median ms", "p90 ms", "min ms", "max ms", "ours / cli"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
