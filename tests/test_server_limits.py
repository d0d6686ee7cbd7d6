"""waitress's limits come from `server:` and hold over a real socket: an oversized body is
refused from its Content-Length before it is sent, and 200 idle connections do not keep
`/healthz` from answering within a second."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from reconciler.core.settings import ApiSettings, ServerSettings, Settings, parse_settings
from reconciler.runtime.memory import MemoryRuntime

from .webhook_helpers import LiveService


def settings(tmp_path: Path, **server: object) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        api=ApiSettings(token="limits-token"),
        server=ServerSettings(**server),  # type: ignore[arg-type]
    )


def test_server_settings_are_read_from_hoody_yaml(tmp_path: Path) -> None:
    s = parse_settings(
        {
            "server": {
                "max_body": 1024,
                "max_parse": 512,
                "threads": 3,
                "connection_limit": 50,
                "channel_timeout": "10s",
            }
        },
        tmp_path,
    )
    assert s.server == ServerSettings(
        max_body=1024, max_parse=512, threads=3, connection_limit=50, channel_timeout=10.0
    )
    with LiveService(s, MemoryRuntime()) as live:
        adj = live.server.adj
        assert (adj.max_request_body_size, adj.threads, adj.connection_limit) == (1024, 3, 50)
        assert adj.channel_timeout == 10


def _response_head(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_an_oversized_body_is_refused_from_its_content_length_before_it_is_sent(
    tmp_path: Path,
) -> None:
    with LiveService(settings(tmp_path), MemoryRuntime()) as live:
        sock = socket.create_connection(("127.0.0.1", live.port), timeout=5)
        try:
            sock.sendall(
                b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Content-Length: {300 * 1024 * 1024}\r\n\r\n".encode()
                + b"token=x"
            )
            started = time.monotonic()
            head = _response_head(sock, 5)
            assert head.startswith(b"HTTP/1.1 413"), head[:200]
            assert time.monotonic() - started < 2  # answered without waiting for 300 MiB
        finally:
            sock.close()


def test_healthz_answers_within_a_second_while_200_idle_connections_are_open(
    tmp_path: Path,
) -> None:
    with LiveService(settings(tmp_path), MemoryRuntime()) as live:
        idle: list[socket.socket] = []
        try:
            for _ in range(200):
                s = socket.create_connection(("127.0.0.1", live.port), timeout=5)
                idle.append(s)
            half = idle[:100]
            for s in half:  # half of them started a request and stalled
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            time.sleep(0.3)
            with socket.create_connection(("127.0.0.1", live.port), timeout=5) as probe:
                started = time.monotonic()
                probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = _response_head(probe, 1.0)
                took = time.monotonic() - started
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            assert took < 1.0
        finally:
            for s in idle:
                s.close()
