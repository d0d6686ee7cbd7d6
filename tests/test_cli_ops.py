"""`hoody --version`, `hoody healthcheck` against a real HTTP server on loopback, and the
signal handling of `hoody serve` (fast: no Docker; the image and wheel tests run the same
commands for real)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from reconciler.cli.main import main
from reconciler.cli.ops import health_url, stop_on_signals

from .deploy_support import free_port


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"hoody {metadata.version('hoody-reconciler')}"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080/healthz"),
        ("0.0.0.0", "http://127.0.0.1:8080/healthz"),
        ("", "http://127.0.0.1:8080/healthz"),
        ("::", "http://[::1]:8080/healthz"),
        ("::1", "http://[::1]:8080/healthz"),
    ],
)
def test_health_url_reaches_a_wildcard_listener_on_loopback(host: str, url: str) -> None:
    assert health_url(host, 8080) == url


@pytest.fixture
def server() -> Iterator[tuple[int, list[tuple[int, bytes]]]]:
    """A loopback HTTP server answering /healthz with the next (status, body) queued."""
    answers: list[tuple[int, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = answers.pop(0) if answers else (200, b'{"status": "ok"}')
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1], answers
    srv.shutdown()
    srv.server_close()


def test_healthcheck_reads_the_configured_port_and_judges_the_answer(
    server: tuple[int, list[tuple[int, bytes]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port, answers = server
    config = tmp_path / "hoody.yaml"
    config.write_text(f"state_dir: ./state\nserver: {{host: 0.0.0.0, port: {port}}}\n")
    assert main(["--config", str(config), "healthcheck"]) == 0
    assert capsys.readouterr().out.strip() == f"ok: http://127.0.0.1:{port}/healthz"
    answers.append((503, b'{"status": "not ready"}'))
    assert main(["--config", str(config), "healthcheck"]) == 1
    answers.append((200, json.dumps({"status": "starting"}).encode()))
    assert main(["--config", str(config), "healthcheck"]) == 1
    answers.append((200, b"not json"))
    assert main(["--config", str(config), "healthcheck"]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_healthcheck_fails_when_nothing_listens(tmp_path: Path) -> None:
    port = free_port()  # bound and closed again: nothing listens there
    out = subprocess.run(
        [sys.executable, "-m", "reconciler.cli.main", "healthcheck", "--url",
         f"http://127.0.0.1:{port}/healthz", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert out.returncode == 1 and "unhealthy" in out.stderr


def test_first_signal_stops_later_ones_are_ignored_and_handlers_restored() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop, stop_on_signals() as stopping:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next line
            pytest.fail("SIGTERM did not stop")
        finally:
            assert stopping.is_set()
            os.kill(os.getpid(), signal.SIGINT)  # ignored: the stop is under way
    assert stop.value.code == 0
    assert signal.getsignal(signal.SIGTERM) == before
