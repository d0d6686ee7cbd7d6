"""A client of Caddy's admin API (JSON over HTTP, on a unix socket or on loopback).

Every call is one request on a fresh connection: Caddy closes the admin connection after
each configuration change, and a unix-socket connect costs microseconds. Failures to
reach Caddy are ProxyUnavailable (retryable: nothing is torn down because of them); a
request Caddy refuses is ProxyFailure with Caddy's own message.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlsplit

from reconciler.core.errors import ProxyFailure, ProxyUnavailable
from reconciler.core.errors import ProxyNotFound as NotFound

__all__ = ["CaddyAdmin", "NotFound"]


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class CaddyAdmin:
    """`address` is `unix//path/to/admin.sock` or `http://127.0.0.1:2019`."""

    def __init__(self, address: str, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        if address.startswith("unix/"):
            self._unix: str | None = address[len("unix/") :]
            self._host, self._port = "", 0
        else:
            parts = urlsplit(address)
            self._unix = None
            self._host = parts.hostname or "127.0.0.1"
            self._port = parts.port or 2019

    def _connection(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, self.timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """One admin call; the decoded JSON answer (None when empty)."""
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        conn = self._connection()
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            # Over a unix socket Caddy accepts only an empty Host; on TCP, the address.
            conn.putheader("Host", "" if self._unix is not None else f"{self._host}:{self._port}")
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise ProxyUnavailable(f"caddy admin API at {self.address} unreachable: {e}") from e
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                message = str(json.loads(raw).get("error") or raw.decode("utf-8", "replace"))
            except (ValueError, AttributeError):
                message = raw.decode("utf-8", "replace").strip()
            kind = NotFound if resp.status == 404 or "does not exist" in message else ProxyFailure
            raise kind(f"caddy refused {method} {path}: {resp.status} {message[:300]}")
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ProxyFailure(f"caddy answered {method} {path} with something not JSON") from e

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def ping(self) -> None:
        """Raise ProxyUnavailable unless the admin API answers."""
        self.request("GET", "/config/admin")
