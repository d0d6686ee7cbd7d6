"""Caddy JSON for hoody's routes: pure functions, no I/O.

hoody owns one HTTP server, `hoody`, in Caddy's config. Its routes are one route per
environment (`@id` `hoody-env-<env>`, matched on all the environment's hosts), then one
shared reverse proxy, then a catch-all for any other host under the domain (404 naming
the environment that is gone), then a plain 404. An environment that serves only sets
the variable `hoody_upstream` (host:port) for its hosts; one starting answers 503 itself.
New environment routes are inserted at the front, so the shared routes stay last; a
change to one environment is one PATCH of its route.

Caddy re-provisions its whole configuration on every change, so the cost of a change
grows with the size of everything: a `vars` handler per environment instead of a
`reverse_proxy` each makes a change with 500 environments about three times cheaper.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from reconciler.core.settings import ProxySettings

SERVER = "hoody"
ROUTES = f"/config/apps/http/servers/{SERVER}/routes"
CATCHALL_ID = "hoody-catchall"
UPSTREAM_ID = "hoody-upstream"
UPSTREAM_VAR = "hoody_upstream"
TLS_POLICY_ID = "hoody-tls"
RETRY_AFTER = 5


def route_id(env: str) -> str:
    return f"hoody-env-{env}"


@dataclass(frozen=True)
class EnvRoute:
    """What one environment's hosts answer: `dial` is `host:port` of the published
    container port, or None while the environment is being built (503)."""

    env: str
    repo: str
    hosts: tuple[tuple[str, str | None], ...]  # (host label, dial)

    @property
    def building(self) -> bool:
        return all(dial is None for _, dial in self.hosts)

    def labels(self) -> list[str]:
        return [label for label, _ in self.hosts]


def _page(status: int, title: str, text: str, extra_head: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width">{extra_head}'
        f"<title>{title}</title><style>body{{font:16px/1.5 system-ui,sans-serif;"
        "max-width:36em;margin:4em auto;padding:0 1em;color:#222}</style></head>"
        f"<body><h1>{title}</h1><p>{text}</p><p><small>{status} · hoody</small></p>"
        "</body></html>"
    )


def _static(status: int, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "handler": "static_response",
        "status_code": status,
        "headers": {
            "Content-Type": ["text/html; charset=utf-8"],
            "Cache-Control": ["no-store"],
            **{k: [v] for k, v in (headers or {}).items()},
        },
        "body": body,
    }


def building_handler(env: str) -> dict[str, Any]:
    name = html.escape(env)
    body = _page(
        503,
        f"{name} is starting",
        f"The environment <b>{name}</b> is being built or is not healthy yet. "
        "This page reloads itself; the address stays the same.",
        f'<meta http-equiv="refresh" content="{RETRY_AFTER}">',
    )
    return _static(503, body, {"Retry-After": str(RETRY_AFTER)})


def _upstream(dial: str) -> dict[str, Any]:
    return {"handler": "vars", UPSTREAM_VAR: dial}


def upstream_route() -> dict[str, Any]:
    """The one reverse proxy, to whatever an environment's route set (an address only:
    an unset variable reads as `<nil>` and falls through to the catch-all)."""
    return {
        "@id": UPSTREAM_ID,
        "match": [
            {
                "vars_regexp": {
                    UPSTREAM_VAR: {"name": "up", "pattern": r"^[0-9a-zA-Z.:\[\]-]+:[0-9]+$"}
                }
            }
        ],
        "handle": [
            {
                "handler": "reverse_proxy",
                "upstreams": [{"dial": f"{{http.vars.{UPSTREAM_VAR}}}"}],
                # A dial that fails (a container going away) is retried briefly, not a
                # 502 at once.
                "load_balancing": {"try_duration": "1s", "try_interval": "50ms"},
            }
        ],
        "terminal": True,
    }


def env_route(route: EnvRoute, domain: str) -> dict[str, Any]:
    hosts = [f"{label}.{domain}" for label, _ in route.hosts]
    if route.building:
        return {
            "@id": route_id(route.env),
            "match": [{"host": hosts}],
            "handle": [building_handler(route.env)],
            "terminal": True,
        }
    else:
        by_dial: dict[str, list[str]] = {}
        for label, dial in route.hosts:
            if dial is not None:
                by_dial.setdefault(dial, []).append(f"{label}.{domain}")
        if len(by_dial) == 1 and len(by_dial[next(iter(by_dial))]) == len(hosts):
            handle = [_upstream(next(iter(by_dial)))]
        else:  # several ports: each host its own; one not started yet is "starting"
            inner: list[dict[str, Any]] = [
                {"match": [{"host": group}], "handle": [_upstream(dial)]}
                for dial, group in by_dial.items()
            ]
            pending = [f"{label}.{domain}" for label, dial in route.hosts if dial is None]
            if pending:
                inner.append(
                    {
                        "match": [{"host": pending}],
                        "handle": [building_handler(route.env)],
                        "terminal": True,
                    }
                )
            handle = [{"handler": "subroute", "routes": inner}]
    # Not terminal: the shared upstream route below proxies.
    return {"@id": route_id(route.env), "match": [{"host": hosts}], "handle": handle}


def host_pattern(domain: str) -> str:
    """Any single label under `domain` (with an optional port); group 1 is the
    environment part of the label (a service host's `--<port>-<service>` left out)."""
    return (
        r"(?i)^([a-z0-9-]{1,63}?)(--[0-9]{1,5}-[a-z0-9-]+|--h[0-9a-f]{10})?\."
        + re.escape(domain)
        + r"(:[0-9]{1,5})?$"
    )


def catchall_route(domain: str) -> dict[str, Any]:
    # The name comes from a regexp group of [a-z0-9-] only, so it needs no escaping.
    name = "{http.regexp.gone.1}"
    body = _page(
        404,
        f"{name} is gone",
        f"No environment named <b>{name}</b> is running here: it was removed (its branch "
        "was deleted or its pull request closed), or it never existed.",
    )
    return {
        "@id": CATCHALL_ID,
        "match": [{"header_regexp": {"Host": {"name": "gone", "pattern": host_pattern(domain)}}}],
        "handle": [_static(404, body)],
        "terminal": True,
    }


def fallback_route() -> dict[str, Any]:
    return {
        "handle": [_static(404, _page(404, "Not found", "No preview answers at this address."))]
    }


def server(proxy: ProxySettings, routes: list[EnvRoute]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "listen": [proxy.listen],
        "routes": [env_route(r, proxy.domain) for r in routes if r.hosts]
        + [upstream_route(), catchall_route(proxy.domain), fallback_route()],
    }
    if proxy.tls == "off":
        out["automatic_https"] = {"disable": True}
    else:
        # Certificates are obtained on demand at the first handshake of a host, and only
        # after hoody's `ask` endpoint says the host belongs to an environment; Caddy
        # never binds :80 for redirects.
        out["automatic_https"] = {"disable_redirects": True, "disable_certificates": True}
        out["tls_connection_policies"] = [{}]
    return out


def tls_policy(proxy: ProxySettings) -> dict[str, Any]:
    issuer = {"module": "internal"} if proxy.tls == "internal" else {"module": "acme"}
    return {
        "@id": TLS_POLICY_ID,
        "subjects": [f"*.{proxy.domain}"],
        "issuers": [issuer],
        "on_demand": True,
    }


def tls_apps(proxy: ProxySettings, ask_url: str) -> dict[str, Any]:
    if proxy.tls == "off":
        return {}
    return {
        "tls": {"automation": {"policies": [tls_policy(proxy)], "on_demand": {"ask": ask_url}}},
        # Never try to add the local CA to the system's trust store.
        "pki": {"certificate_authorities": {"local": {"install_trust": False}}},
    }


def full_config(
    proxy: ProxySettings, routes: list[EnvRoute], admin_listen: str, data_dir: str, ask_url: str
) -> dict[str, Any]:
    """The whole configuration of a Caddy that hoody runs itself."""
    return {
        "admin": {"listen": admin_listen, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": data_dir},
        "logging": {"logs": {"default": {"level": "WARN"}}},
        "apps": {"http": {"servers": {SERVER: server(proxy, routes)}}, **tls_apps(proxy, ask_url)},
    }
