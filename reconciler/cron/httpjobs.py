"""Running an HTTP job: the service itself makes the request, with retries and backoff.

The URL's host names a service of the environment (`http://web:8080/tasks/digest`). It is
resolved here, from the runtime, to that service's container: its published port on the
publish host when the port is published, else the container's address on its network,
the way health probes reach it. The host's DNS is never asked for a service name, so a
branch cannot reach the host, another environment or any other address by naming it.
Only hosts of the operator's `cron.http_allow` are reached by name (and DNS).

What is sent is what the request names: its headers and body, with `${VAR}` expanded from
the environment's own env (nothing of the service's environment, no proxy, no `.netrc`).
Redirects are not followed: a 3xx is the response. A run records the last status, the
body's head and tail like a command's stdout, and one line per attempt as its stderr.

`requests` (already a dependency) makes the request; `trust_env = False` keeps proxies and
`.netrc` out of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import requests

from reconciler.core.errors import HttpJobRefused
from reconciler.core.httpjob import VAR, HttpRequest, variables
from reconciler.core.redact import Masker
from reconciler.cron.jobs import Handle, Job, Outcome, OutputBuffer
from reconciler.runtime import Runtime

log = logging.getLogger(__name__)
MAX_READ = 8 * 1024 * 1024  # bytes of a response read at most (head and tail are kept)
USER_AGENT = "hoody-cron"


@dataclass(frozen=True)
class Address:
    """Where a request goes: the socket's host and port, and the Host header."""

    host: str
    port: int
    host_header: str
    scheme: str = "http"

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{path}"


def allowed(host: str, port: int, allow: Iterable[str]) -> bool:
    """`host` (any port) or `host:port` in the operator's list."""
    host = host.lower()
    return any(a.lower() in (host, f"{host}:{port}") for a in allow)


def check_target(req: HttpRequest, services: Iterable[str], allow: Iterable[str]) -> str | None:
    """Why `req` may not be made from this environment, or None."""
    names = sorted(services)
    if req.service in names:
        if req.url.startswith("https:"):
            return (
                f"https://{req.service}: the service reaches its own services over their "
                "network; write http://"
            )
        return None
    if allowed(req.service, req.port, allow):
        return None
    return (
        f"{req.service}:{req.port} is not a service of this environment "
        f"({', '.join(names) or 'none'}) nor in cron.http_allow; refused"
    )


def expand(text: str, env: Mapping[str, str]) -> str:
    """`${VAR}` from the environment's env; HttpJobRefused names a variable not set."""

    def sub(m: object) -> str:
        name = m.group(1)  # type: ignore[attr-defined]
        if name not in env:
            raise HttpJobRefused(f"${{{name}}} is not set in the environment")
        return env[name]

    return VAR.sub(sub, text)


class HttpJobRunner:
    """Makes HTTP jobs' requests. `allow`: the operator's `cron.http_allow`."""

    def __init__(
        self,
        runtime: Runtime,
        allow: Iterable[str] = (),
        publish_host: str = "127.0.0.1",
        masker: Callable[[str], Masker | None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.allow = tuple(allow)
        self.publish_host = publish_host
        self.masker = masker or (lambda _repo: None)
        self._local = threading.local()  # one session (connection pool) per worker

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False  # no proxy, no .netrc: only what the request names
        return session

    def resolve(self, job: Job) -> Address:
        req = job.request
        assert req is not None
        problem = check_target(req, job.services, self.allow)
        if problem:
            raise HttpJobRefused(problem)
        default = 443 if req.url.startswith("https:") else 80
        host_header = req.service if req.port == default else f"{req.service}:{req.port}"
        if req.service not in job.services:  # allowed by the operator: by name
            scheme = "https" if req.url.startswith("https:") else "http"
            return Address(req.service, req.port, host_header, scheme)
        container = job.services[req.service]
        state = self.runtime.inspect_container(container)
        if not state.running:
            raise HttpJobRefused(f"service {req.service} is not running ({state.status})")
        if req.port in state.ports:
            host = "127.0.0.1" if self.publish_host in ("0.0.0.0", "") else self.publish_host
            return Address(host, state.ports[req.port], host_header)
        if state.ip:
            return Address(state.ip, req.port, host_header)
        raise HttpJobRefused(f"service {req.service} has no address")

    def run(self, job: Job, handle: Handle) -> Outcome:
        req = job.request
        assert req is not None
        # the repo's secrets, and every value a `${VAR}` of this request expands to
        repo_masker = self.masker(job.repo)
        named = [job.variables[n] for n in variables(req) if n in job.variables]
        masker = Masker([*(repo_masker.values if repo_masker else ()), *named])
        attempts: list[str] = []

        def text(buffer: OutputBuffer | None) -> tuple[str, str]:
            body = buffer.text(masker) if buffer is not None else ""
            return body, masker.mask("\n".join(attempts))

        try:
            headers = {name: expand(value, job.variables) for name, value in req.headers}
            body = expand(req.body, job.variables) if req.body is not None else None
        except HttpJobRefused as e:
            return Outcome("error", None, "", "", str(e))
        stop = threading.Event()
        current: list[requests.Response] = []

        def cancel() -> None:
            stop.set()
            for response in list(current):
                response.close()

        handle.kill = cancel
        status: int | None = None
        buffer: OutputBuffer | None = None
        for attempt in range(1, req.retries + 2):
            if handle.cancelled.is_set():
                out, err = text(buffer)
                return Outcome("cancelled", None, out, err, "stopped", http_status=status)
            started = time.monotonic()
            try:
                address = self.resolve(job)
                status, buffer, note = self._attempt(req, address, headers, body, current)
            except HttpJobRefused as e:
                attempts.append(f"attempt {attempt}: refused: {e}")
                out, err = text(buffer)
                return Outcome("error", None, out, err, str(e), http_status=status)
            except requests.Timeout:
                status, note = None, f"no response within {req.timeout:g}s"
            except (requests.RequestException, OSError) as e:
                status, note = None, f"request failed: {type(e).__name__}: {e}"
            ms = (time.monotonic() - started) * 1000
            attempts.append(f"attempt {attempt}: {note} ({ms:.0f} ms)")
            if status is not None and req.accepts(status):
                out, err = text(buffer)
                return Outcome("succeeded", None, out, err, None, http_status=status)
            if attempt <= req.retries:
                delay = req.retry_backoff * 2 ** (attempt - 1)
                attempts.append(f"retrying in {delay:g}s")
                if stop.wait(delay):
                    break
        out, err = text(buffer)
        expect = ", ".join(map(str, req.expect)) if req.expect else "2xx"
        got = f"HTTP {status}" if status is not None else "no response"
        tries = req.retries + 1
        reason = f"{got} (expected {expect}) after {tries} attempt{'s' if tries > 1 else ''}"
        if handle.cancelled.is_set():
            return Outcome("cancelled", None, out, err, "stopped", http_status=status)
        return Outcome("failed", None, out, err, reason, http_status=status)

    def _attempt(
        self,
        req: HttpRequest,
        address: Address,
        headers: Mapping[str, str],
        body: str | None,
        current: list[requests.Response],
    ) -> tuple[int, OutputBuffer, str]:
        sent = {"User-Agent": USER_AGENT, **headers, "Host": address.host_header}
        response = self._session().request(
            req.method,
            address.url(req.path),
            headers=sent,
            data=body.encode() if body is not None else None,
            timeout=req.timeout,
            allow_redirects=False,
            stream=True,
        )
        current.append(response)
        buffer = OutputBuffer()
        try:
            read = 0
            for chunk in response.iter_content(64 * 1024):
                buffer.write(chunk)
                read += len(chunk)
                if read >= MAX_READ:
                    break
        finally:
            response.close()
            current.remove(response)
        note = f"{response.status_code} {response.reason or ''}".rstrip()
        if response.is_redirect:
            note += f" (redirect to {response.headers.get('Location', '?')} not followed)"
        return response.status_code, buffer, note
