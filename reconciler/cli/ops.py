"""What an operator's tooling calls: the version, the container health check, and how
`hoody serve` turns SIGTERM (what `docker stop` sends) into a clean stop."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from types import FrameType
from typing import Any

from reconciler.core.settings import load_settings

log = logging.getLogger("hoody")

DISTRIBUTION = "hoody-reconciler"


def package_version() -> str:
    """The installed distribution's version (its metadata, never a copy in the code)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"  # run from a source tree that was never installed


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """While inside: the first SIGTERM or SIGINT raises `SystemExit(0)` in the main thread
    (waitress closes its sockets on it, then the caller's `finally` stops the service);
    later ones are logged and ignored, so a second signal cannot cut the stop short."""
    stopping = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stopping.is_set():
            log.warning("%s received again: still stopping", name)
            return
        stopping.set()
        log.info("%s received: stopping", name)
        raise SystemExit(0)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopping
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def health_url(host: str, port: int) -> str:
    """Where this machine reaches a server listening on `host:port`."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when the local server's /healthz says ok (the image's HEALTHCHECK)."""
    url = args.url
    if url is None:
        settings = load_settings(args.config)
        url = health_url(settings.server.host, settings.server.port)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:
            body = json.loads(resp.read() or b"{}")
    except (OSError, ValueError) as e:  # URLError, HTTPError and timeouts are OSErrors
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if not isinstance(body, dict) or body.get("status") != "ok":
        print(f"unhealthy: {url}: {body!r}", file=sys.stderr)
        return 1
    print(f"ok: {url}")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("healthcheck", help="exit 0 when the local server's /healthz is ok")
    s.add_argument("--url", help="default: /healthz at server.host and server.port")
    s.add_argument("--timeout", type=float, default=3.0)
    s.set_defaults(func=cmd_healthcheck)
