"""Helpers for the proxy tests: a real Caddy run by the code under test, plain HTTP(S)
requests to 127.0.0.1 with a Host header (or SNI), and tiny loopback upstreams."""

from __future__ import annotations

import http.client
import http.server
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from .webhook_helpers import free_port

__all__ = ["fetch", "free_port", "need_caddy", "need_reload_without_resets", "upstream"]


def need_caddy() -> None:
    if shutil.which("caddy") is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("caddy is required in CI (scripts/test installs it)")
        pytest.skip("no caddy binary (apt-get install caddy)")


def need_reload_without_resets() -> None:
    """Caddy's reloads reset a connection being accepted unless tcp_migrate_req is on
    (scripts/setup-caddy sets it); a 0-failed-requests claim is only testable with it."""
    from reconciler.proxy.process import reload_resets_connections

    problem = reload_resets_connections()
    if problem:
        import os

        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)


def fetch(
    port: int, host: str, path: str = "/", ca: str | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], str]:
    """GET `path` from 127.0.0.1:`port` as `host` (one new connection; HTTPS with SNI
    `host` trusting only `ca` when given)."""
    if ca is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=timeout
        )
    else:
        context = ssl.create_default_context(cafile=ca)

        class SNI(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection(("127.0.0.1", port), timeout)
                self.sock = context.wrap_socket(sock, server_hostname=host)

        conn = SNI(host, port, timeout=timeout, context=context)
    try:
        conn.request("GET", path, headers={"Host": host, "Connection": "close"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read().decode()
    finally:
        conn.close()


@contextmanager
def upstream(text: str) -> Iterator[int]:
    """An HTTP server on a free loopback port answering `text` to every GET."""
    body = text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
