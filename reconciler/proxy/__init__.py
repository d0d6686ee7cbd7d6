"""The reverse proxy adapter: stable preview URLs through Caddy's admin API.

`admin.py` speaks the admin API, `config.py` builds the JSON (pure), `router.py` keeps
the routing table and writes one route per change, `process.py` runs hoody's own Caddy.
`Proxy` wires them for `hoody serve`; gitops sees only the router, through its `Router`
protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from reconciler.core.errors import ProxyFailure, ProxyUnavailable
from reconciler.core.model import ObservedEnvironment
from reconciler.core.settings import ServerSettings, Settings
from reconciler.proxy import config
from reconciler.proxy.admin import CaddyAdmin
from reconciler.proxy.process import CaddyProcess
from reconciler.proxy.router import CaddyRouter

log = logging.getLogger(__name__)

__all__ = ["CaddyAdmin", "CaddyProcess", "CaddyRouter", "Proxy", "ask_url"]

ASK_PATH = "/proxy/ask"


def ask_url(server: ServerSettings) -> str:
    """Where Caddy asks whether a host may get a certificate: hoody's own server."""
    host = server.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "[::1]"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{server.port}{ASK_PATH}"


class Proxy:
    """The router plus, when `proxy.admin` is unset, the Caddy process hoody runs."""

    def __init__(self, settings: Settings) -> None:
        assert settings.proxy is not None
        self.settings = proxy = settings.proxy
        self.ask = ask_url(settings.server)
        self.process = (
            CaddyProcess(proxy.caddy, settings.state_dir) if proxy.admin is None else None
        )
        admin = self.process.admin if self.process else CaddyAdmin(proxy.admin or "")
        self.router = CaddyRouter(
            proxy,
            admin,
            settings.docker.publish_host,
            self.ask,
            full_config=self._config if self.process else None,
        )

    def _config(self, routes: list[config.EnvRoute]) -> dict[str, object]:
        assert self.process is not None
        return config.full_config(
            self.settings, routes, self.process.admin_listen, str(self.process.data_dir), self.ask
        )

    def start(self, observed: Mapping[str, ObservedEnvironment]) -> None:
        """Every route from the labels, then hoody's Caddy started (or adopted) with them
        all at once, or them pushed into someone else's Caddy."""
        self.router.rebuild(observed, push=self.process is None)
        if self.process is not None:
            with self.router.locked():
                self.process.start(self._config(list(self.router.table.values())))
                self.router.dirty = False

    def supervise(self) -> bool:
        """Restart hoody's Caddy if it died, with every route; True if it did."""
        if self.process is None or self.process.alive():
            return False
        log.warning("caddy (pid %s) is not running; starting it again", self.process.pid)
        try:
            with self.router.locked():
                self.process.restart(self._config(list(self.router.table.values())))
                self.router.dirty = False
                self.router.last_error = None
        except (ProxyUnavailable, ProxyFailure) as e:
            self.router.last_error = str(e)
            raise
        return True

    def stop(self) -> None:
        if self.process is not None:
            self.process.close()
