"""HTTP jobs: a schedule whose job is a request the service makes to one of the
environment's own services, instead of a command run in its container.

Cron-as-a-service products (Cronq, Cloud Scheduler, Vercel Cron) call an endpoint with
retries and backoff; most app images have no `curl`. The request's URL names a service of
the environment's spec as its host (`http://web:8080/tasks/digest`): the service resolves
it to that service's container itself, never through DNS on the host.

Pure values: the scheduler executes them, the exporters map them to each platform's own
HTTP scheduler where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

JobKind = Literal["command", "http"]


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP job's request and its retry policy."""

    method: str  # upper case: GET, POST, PUT, PATCH, DELETE, HEAD
    url: str  # http://<service>:<port>/<path>?<query>; the host is a service of the spec
    headers: tuple[tuple[str, str], ...] = ()  # as written; `${VAR}` expanded at run time
    body: str | None = None  # as written; `${VAR}` expanded at run time
    timeout: float = 30.0  # seconds per attempt
    expect: tuple[int, ...] = ()  # accepted status codes; empty means any 2xx
    retries: int = 0  # further attempts after a failed one
    retry_backoff: float = 1.0  # seconds before the first retry, doubled for each next one

    @property
    def service(self) -> str:
        """The service of the environment the request goes to (the URL's host)."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)

    @property
    def path(self) -> str:
        """Path and query, as sent: `/tasks/digest?day=1`."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def accepts(self, status: int) -> bool:
        return status in self.expect if self.expect else 200 <= status < 300
