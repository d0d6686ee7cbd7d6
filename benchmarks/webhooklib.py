"""Shared by the webhook benchmarks (bench_webhook_pr.py, bench_webhook_throughput.py,
bench_webhook_storm.py): signed GitHub payloads, a keep-alive client, `hoody serve` in a
child process (the real CLI, or `serve-child` of this module: the same CLI entry point with
a MemoryRuntime and optional per-call timers or per-thread cProfile), Docker clean-up by
label, and the load average around a run. Not a test module and not part of the package.

`Server(..., source=DIR)` runs the server from another source tree (PYTHONPATH=DIR), for
side-by-side runs against an older commit (a `git worktree`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "webhooks" / "github"
IMAGE = "busybox:1.36"
SECRET = "It's a Secret to Everybody"
REPOSITORY = "Codertocat/Hello-World"  # what the fixtures carry
TOKEN = "sekrit-token"
WEB = 'mkdir -p /www && echo "$GREETING $TOKEN" > /www/index.html && exec httpd -f -p 8080 -h /www'
RUN_ID = uuid.uuid4().hex[:6]
PLAIN_LABEL = "hoody-bench-webhooks"
AFTER = b"@" * 40  # placeholder for the `after` sha in push bodies


def spec(app: str, greeting: str) -> str:
    # interval: 1s caps the applier's probe backoff at 1 s (default 2 s), like the plain arm.
    return f"""\
name: {app}
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", '{WEB}']
    env: {{GREETING: {greeting}}}
    ports: [8080]
    healthcheck: {{http: /, port: 8080, interval: 1s, start_period: 15s}}
preview: {{env: {{GREETING: preview-{greeting}}}}}
"""


def ms(x: float) -> float:
    return x * 1000.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- payloads ----------------------------------------------------------------------------


def signature(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def gh_headers(event: str, body: bytes, delivery: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature(body),
    }


def pr_body(action: str, number: int) -> bytes:
    data = json.loads((FIXTURES / f"pull_request.{action}.json").read_bytes())
    data["number"] = data["pull_request"]["number"] = number
    return json.dumps(data).encode()


def push_template(branch: str = "main") -> bytes:
    """The GitHub push fixture, made a push to `branch`; `after` is the AFTER placeholder."""
    data = json.loads((FIXTURES / "push.json").read_bytes())
    data.update(
        ref=f"refs/heads/{branch}", deleted=False, created=False, after=AFTER.decode(), forced=False
    )
    body = json.dumps(data).encode()
    assert body.count(AFTER) == 1
    return body


def push_body(template: bytes, after: str) -> bytes:
    return template.replace(AFTER, after.encode())


class Conn:
    """One keep-alive HTTP/1.1 connection to the server (reconnects once on failure)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.read()
            except (OSError, http.client.HTTPException):
                self.c.close()
                self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post_github(self, repo: str, event: str, body: bytes, delivery: str) -> tuple[int, Any]:
        status, raw = self.request(
            "POST", f"/webhooks/{repo}", body, gh_headers(event, body, delivery)
        )
        return status, json.loads(raw or b"null")

    def get_json(self, path: str) -> Any:
        status, raw = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {raw[:200]!r}")
        return json.loads(raw)

    def close(self) -> None:
        self.c.close()


# -- the server process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    path: Path, repo: str, bare: Path, state: Path, port: int, pull_requests: bool
) -> Path:
    cfg = {
        "state_dir": str(state),
        "server": {"host": "127.0.0.1", "port": port},
        "repos": [
            {
                "name": repo,
                "url": str(bare),
                "provider": "github",
                "branches": ["main"],
                "poll_interval": 0,
                "env": {"TOKEN": TOKEN},
                "webhook_secret": SECRET,
                "repository": REPOSITORY,
                "pull_requests": {"enabled": pull_requests},
            }
        ],
    }
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


class Server:
    """`hoody serve` in a child process. Docker runtime, no tracing: the real CLI,
    `python -m reconciler.cli.main ... serve --no-watch`. Otherwise `serve-child` of this
    module, which runs the same CLI entry point after swapping in a MemoryRuntime and/or
    installing timers (`--trace`) or per-thread cProfile (`--profile`)."""

    def __init__(
        self,
        config: Path,
        port: int,
        runtime: str,
        log_path: Path,
        verbose: bool,
        trace: bool = False,
        profile: Path | None = None,
        source: Path | None = None,
    ):
        self.port = port
        self.log_path = log_path
        common = ["--config", str(config), "--log-format", "json", *(["-v"] if verbose else [])]
        self.env = {**os.environ, **({"PYTHONPATH": str(source)} if source else {})}
        if runtime == "docker" and not trace and profile is None and source is None:
            cmd = [sys.executable, "-m", "reconciler.cli.main", *common]
        else:
            extra = [
                *(["--trace"] if trace else []),
                *(["--profile", str(profile)] if profile else []),
            ]
            cmd = [sys.executable, str(Path(__file__).resolve()), "serve-child", runtime, *extra]
            cmd += common
        self.cmd = [*cmd, "serve", "--no-watch", "--port", str(port)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Conn | None = None

    def __enter__(self) -> Server:
        out = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=self.env
        )
        out.close()
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("/healthz"), timeout=1) as r:
                    if r.status == 200:
                        break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after 30 s: {self.log_tail()}")
            time.sleep(0.05)
        self.conn = Conn(self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.conn:
            self.conn.close()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def passes(self, repo: str) -> int:
        assert self.conn
        repos = self.conn.get_json("/api/v1/repos")["repos"]
        return int(next(r["passes"] for r in repos if r["name"] == repo))

    def queue_depth(self) -> float:
        assert self.conn
        _, raw = self.conn.request("GET", "/metrics")
        for line in raw.decode().splitlines():
            if line.startswith("hoody_queue_depth "):
                return float(line.split()[1])
        return 0.0

    def settle(self, repo: str, quiet: float = 0.5, timeout: float = 120.0) -> int:
        """Wait until no pass is queued and the pass count has not moved for `quiet` s."""
        deadline = time.monotonic() + timeout
        last, since = self.passes(repo), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.passes(repo)
            if now != last or self.queue_depth() > 0:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return now
        raise RuntimeError(f"{repo}: passes still running after {timeout:.0f} s")

    def wait_passes(self, repo: str, at_least: int, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.passes(repo)
            if n >= at_least:
                return n
            time.sleep(0.01)
        raise RuntimeError(f"{repo}: expected {at_least} passes; log:\n{self.log_tail()}")

    def cpu(self) -> dict[str, float]:
        """CPU seconds of the server process: own threads, and waited-for children (git)."""
        assert self.proc
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return {
            "self": (int(fields[11]) + int(fields[12])) / tick,
            "self_sys": int(fields[12]) / tick,
            "children": (int(fields[13]) + int(fields[14])) / tick,
            "ctxt": float(_ctxt_switches(self.proc.pid)),
        }


def _ctxt_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of all threads of `pid`."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[-1])
    return total


def serve_child(argv: list[str]) -> int:
    """`serve-child RUNTIME [--trace] [--profile FILE] <hoody CLI args>`:
    the `hoody serve` CLI entry point (reconciler.cli.main.main), with a MemoryRuntime
    (busybox:1.36 in `.images`) instead of Docker when RUNTIME is `memory`."""
    from webhooktrace import install_profile, install_trace

    from reconciler.cli import main as cli
    from reconciler.runtime.memory import MemoryRuntime

    runtime_name, rest = argv[0], argv[1:]
    dump: Callable[[], None] | None = None
    if "--trace" in rest:
        rest.remove("--trace")
        install_trace()
    if "--profile" in rest:
        i = rest.index("--profile")
        dump = install_profile(Path(rest[i + 1]))
        del rest[i : i + 2]
    if runtime_name == "memory":
        runtime = MemoryRuntime()
        runtime.images.add(IMAGE)
        real_services = cli._services

        def services(args: argparse.Namespace) -> tuple[Any, Any, Any]:
            settings, store, _docker = real_services(args)  # DockerRuntime() is lazy
            return settings, store, runtime

        cli._services = services  # type: ignore[assignment]
    try:
        return cli.main(rest)
    finally:
        if dump:
            dump()


def with_load(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark; note the 1-minute load average before and after (other work on
    the machine shows up there)."""
    before = os.getloadavg()[0]
    rep = run()
    rep["loadavg_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return rep


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-child":
        sys.exit(serve_child(sys.argv[2:]))
    raise SystemExit("usage: webhooklib.py serve-child RUNTIME [--trace] [--profile F] <cli args>")
