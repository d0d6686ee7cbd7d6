"""What the attack tests share: a loopback HTTP server that records every request it gets
(the target a hostile branch aims at), and controllers over a real git remote."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import Store

from .conftest import GitRemote


@dataclass
class Recorder:
    """Requests seen by the loopback server, with their Authorization header."""

    port: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)  # method, path
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"metadata-secret-value"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def recorder(**kw: Any) -> Iterator[Recorder]:
    rec = Recorder(**kw)

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            rec.requests.append((self.command, self.path, self.headers.get("Authorization")))
            self.send_response(rec.status)
            for k, v in rec.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(rec.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(rec.body)

        do_GET = do_HEAD = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def controller(
    tmp_path: Path,
    remote: GitRemote,
    repo: str,
    state: str = "state",
    repo_kw: dict[str, Any] | None = None,
    branches: tuple[str, ...] = ("*",),
    **settings_kw: Any,
) -> Controller:
    settings = Settings(
        state_dir=tmp_path / state,
        repos=(
            RepoSettings(
                name=repo,
                url=str(remote.bare),
                branches=branches,
                **(repo_kw or {}),
            ),
        ),
        **settings_kw,
    )
    return Controller(settings, Store(settings.database_url), DockerRuntime())


def events(ctl: Controller, repo: str) -> str:
    return "\n".join(e.message for e in ctl.store.events(repo=repo, limit=500))


WEB = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"


def web_spec(app: str, extra: str = "", service_extra: str = "") -> str:
    return f"""\
name: {app}
services:
  web:
    image: busybox:1.36
    command: ["sh", "-c", "{WEB}"]
    ports: [8080]
    healthcheck: {{http: /, port: 8080, start_period: 15s}}
{service_extra}{extra}"""


def build_spec(app: str) -> str:
    return f"""\
name: {app}
services:
  web:
    build: {{context: ., dockerfile: Dockerfile}}
    command: ["sleep", "3600"]
"""
