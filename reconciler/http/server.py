"""The HTTP server of `hoody serve`: waitress, with its limits taken from `server:`.

waitress reads a request's whole body before the app sees it, so the body limit must be
waitress's own (`max_request_body_size`): a request whose Content-Length is larger is
answered 413 from its headers, before a byte of the body is read. Idle connections do
not hold a worker thread (waitress multiplexes sockets), but they count against
`connection_limit` and are closed after `channel_timeout`; `poll()` instead of `select()`
so that many sockets are not bounded by FD_SETSIZE.
"""

from __future__ import annotations

from typing import Any

import waitress
from flask import Flask

from reconciler.core.settings import ServerSettings


def make_server(app: Flask, server: ServerSettings, **overrides: Any) -> Any:
    """A waitress server for `app` (call `.run()`; `.close()` from another thread)."""
    options: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "threads": server.threads,
        "connection_limit": server.connection_limit,
        "channel_timeout": int(max(1, server.channel_timeout)),
        "max_request_body_size": server.max_body,
        "asyncore_use_poll": True,
        "ident": "hoody",
        **overrides,
    }
    return waitress.create_server(app, **options)
