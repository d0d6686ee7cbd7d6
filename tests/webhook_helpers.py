"""Helpers to run the real service in-process over a real socket and to send real,
signed provider payloads to it."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.core.settings import Settings
from reconciler.http.app import create_app
from reconciler.http.server import make_server
from reconciler.runtime import Runtime
from reconciler.serve.service import Service
from reconciler.storage.store import Store

# Real provider payloads, copied verbatim from ../shared/fixtures (see tests/fixtures/).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "webhooks"
CORPUS = Path(__file__).resolve().parent / "fixtures" / "webhook_corpus"
SHARED_CORPUS = SHARED_FIXTURES.parent / "webhook_corpus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveService:
    """`hoody serve` minus the process: Service + Flask app under waitress on a port."""

    def __init__(self, settings: Settings, runtime: Runtime, port: int | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.database_url, settings.retention)
        self.service = Service(settings, self.store, runtime)
        self.app = create_app(settings, self.service)
        self.port = port or free_port()
        self.server = make_server(self.app, settings.server, host="127.0.0.1", port=self.port)
        self._closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            # close() from another thread pulls the socket out from under waitress's
            # select loop (EBADF); only then is that expected.
            if not self._closing:
                raise

    def __enter__(self) -> LiveService:
        self.service.start(watch=False)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self.server.close()
        self.service.stop()
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until no pass is queued or running."""
        deadline = time.monotonic() + timeout
        time.sleep(0.05)
        while not self.service.idle():
            if time.monotonic() > deadline:
                raise AssertionError("service did not settle")
            time.sleep(0.05)


def github_post(
    base: str,
    repo: str,
    event: str,
    body: bytes,
    secret: str | None,
    delivery: str | None = None,
    bad_signature: bool = False,
) -> tuple[int, Any]:
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
    }
    if secret is not None:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if bad_signature:
            digest = digest[::-1]
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    return post(f"{base}/webhooks/{repo}", body, headers)


def gitlab_post(
    base: str, repo: str, event: str, body: bytes, token: str, delivery: str | None = None
) -> tuple[int, Any]:
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
    }
    return post(f"{base}/webhooks/{repo}", body, headers)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def fixture(name: str, edit: Callable[[dict], None] | None = None) -> bytes:
    raw = (FIXTURES / name).read_bytes()
    if edit is None:
        return raw
    data = json.loads(raw)
    edit(data)
    return json.dumps(data).encode()


def wait_for(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class IntakeServer:
    """The webhook endpoint alone (blueprint + the real intake and store) under waitress
    on a real socket; `trigger` receives what would be queued."""

    def __init__(self, settings: Settings, trigger: Callable[[str, str], None]) -> None:
        from flask import Flask

        from reconciler.serve.intake import WebhookIntake
        from webhooks import create_blueprint

        self.store = Store(settings.database_url, settings.retention)
        self.intake = WebhookIntake(settings, self.store, trigger)
        app = Flask("intake")
        app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body
        app.register_blueprint(create_blueprint(self.intake))
        self.port = free_port()
        self.server = make_server(app, settings.server, host="127.0.0.1", port=self.port)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._closing = False

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self._closing:
                raise

    def __enter__(self) -> IntakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self.server.close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
