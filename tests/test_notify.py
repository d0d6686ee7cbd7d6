"""Failure and recovery notifications reach a real local HTTP endpoint through Apprise's
json:// scheme."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.settings import ApiSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote
from .webhook_helpers import LiveService, wait_for


@pytest.fixture
def inbox() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"json://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def test_failure_then_recovery_notifies_once_each(
    tmp_path: Path, remote: GitRemote, inbox: tuple[str, list[dict]]
) -> None:
    url, received = inbox
    remote.commit(
        "main",
        {
            ".hoody/app.yaml": "name: shop\nimage: busybox:1.36\n",
            ".hoody/crontab": "@every 1h ./job.sh\n",
        },
    )
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    results = [(1, b"", b"boom"), (1, b"", b"boom again"), (0, b"ok", b"")]
    rt.job_handler = lambda cmd, env: results.pop(0)
    cfg = Settings(
        state_dir=tmp_path / "s",
        notify=(url,),
        api=ApiSettings(token="t"),
        repos=(RepoSettings(name="shop", url=str(remote.bare), poll_interval=0),),
    )
    with LiveService(cfg, rt) as live:
        live.settle()
        sched = live.service.scheduler
        (entry,) = sched.entries("main-shop")
        for _ in range(3):
            sched.trigger("main-shop", entry.entry.id)
            sched.wait_idle()
        wait_for(lambda: len(received) >= 2, 20, "two notifications")
        titles = [r["title"] for r in received]
        assert titles == ["hoody: job failed in main-shop", "hoody: job recovered in main-shop"]
        assert "boom" in received[0]["message"] and received[0]["type"] == "failure"
