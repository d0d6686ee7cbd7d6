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

import re
import shlex
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from reconciler.core.cronwords import format_duration, parse_duration
from reconciler.core.errors import RequestProblem

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


# --- the crontab syntax ---------------------------------------------------------------
#
#     */5 * * * * | POST http://web:8080/tasks/digest retries=3 retry_backoff=2s
#
# A command that starts with `|` is a shell syntax error, so such a line can never be a
# command someone meant to run. The words after the URL are `key=value` options, quoted
# like shell words (`shlex`): header=Name:value (repeatable), body=..., timeout=10s,
# expect=200,204, retries=3, retry_backoff=2s.

PREFIX = "|"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
MAX_RETRIES = 10
MAX_TIMEOUT = 3600.0
MAX_BACKOFF = 3600.0
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)  # RFC 9110 token
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", re.ASCII)
_FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


def is_request_line(command: str) -> bool:
    return command.lstrip(" \t").startswith(PREFIX)


def parse_request_line(command: str) -> HttpRequest:
    """`| METHOD URL key=value ...` (the `|` included) -> HttpRequest; RequestProblem."""
    text = command.lstrip(" \t").removeprefix(PREFIX)
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RequestProblem("request", f"{exc} in the HTTP request") from exc
    if len(words) < 2:
        raise RequestProblem("request", "an HTTP job is `| METHOD URL [key=value ...]`")
    options: dict[str, Any] = {"headers": {}}
    for word in words[2:]:
        key, eq, value = word.partition("=")
        if not eq:
            raise RequestProblem("request", f"{word!r} is not key=value")
        if key == "header":
            name, colon, hvalue = value.partition(":")
            if not colon:
                raise RequestProblem("header", f"{value!r} is not Name:value")
            options["headers"][name.strip()] = hvalue.strip()
        elif key in ("body", "timeout", "expect", "retries", "retry_backoff"):
            if key in options:
                raise RequestProblem(key, "given twice")
            options[key] = value
        else:
            raise RequestProblem(
                key, "unknown option; use header, body, timeout, expect, retries, retry_backoff"
            )
    return make_request(words[0], words[1], **options)


def make_request(
    method: Any,
    url: Any,
    headers: Any = None,
    body: Any = None,
    timeout: Any = None,
    expect: Any = None,
    retries: Any = None,
    retry_backoff: Any = None,
) -> HttpRequest:
    """An HttpRequest from loose values (crontab words or JSON); RequestProblem names the
    field. Durations are `10s`-style text or seconds; `expect` a list or `200,204`."""
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise RequestProblem("method", f"{method!r} is not one of {', '.join(METHODS)}")
    _check_url(url)
    if headers is not None and not isinstance(headers, dict):
        raise RequestProblem("headers", "expected an object {name: value}")
    pairs: list[tuple[str, str]] = []
    for name, value in (headers or {}).items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise RequestProblem("headers", f"{name!r} is not a header name")
        if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
            raise RequestProblem("headers", f"{name}: the value must be one line of text")
        if name.lower() in _FORBIDDEN_HEADERS:
            raise RequestProblem("headers", f"{name} is set by the service itself")
        pairs.append((name, value))
    if body is not None and not isinstance(body, str):
        raise RequestProblem("body", "must be a string")
    return HttpRequest(
        method=method.upper(),
        url=url,
        headers=tuple(pairs),
        body=body,
        timeout=_seconds(timeout, "timeout", 30.0, 0.001, MAX_TIMEOUT),
        expect=_statuses(expect),
        retries=_count(retries),
        retry_backoff=_seconds(retry_backoff, "retry_backoff", 1.0, 0.0, MAX_BACKOFF),
    )


def _check_url(url: Any) -> None:
    if not isinstance(url, str) or not url:
        raise RequestProblem("url", "must be a URL like http://web:8080/tasks/digest")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise RequestProblem("url", f"{url!r}: write the URL in ASCII, without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise RequestProblem("url", f"{url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestProblem("url", f"{url!r}: expected http://<service>:<port>/<path>")
    if parts.username is not None or parts.password is not None:
        raise RequestProblem("url", "no credentials in the URL; send a header with ${VAR}")
    if parts.fragment:
        raise RequestProblem("url", "a URL fragment (#...) is never sent; leave it out")
    if VAR.search(url):
        raise RequestProblem("url", "${VAR} is expanded in headers and the body only")


def _seconds(value: Any, name: str, default: float, lo: float, hi: float) -> float:
    if value is None:
        return default
    try:
        seconds = (
            float(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else parse_duration(str(value))
        )
    except ValueError as exc:
        raise RequestProblem(name, str(exc)) from exc
    if not lo <= seconds <= hi:
        raise RequestProblem(name, f"must be between {format_duration(lo)} and {hi:g}s")
    return seconds


def _count(value: Any) -> int:
    if value is None:
        return 0
    text = str(value)
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
        raise RequestProblem("retries", f"{value!r} is not a whole number")
    if int(text) > MAX_RETRIES:
        raise RequestProblem("retries", f"at most {MAX_RETRIES}")
    return int(text)


def _statuses(value: Any) -> tuple[int, ...]:
    if value in (None, "", []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise RequestProblem("expect", "a list of status codes, e.g. [200, 204]")
    out = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, bool) or not (text.isascii() and text.isdigit()):
            raise RequestProblem("expect", f"{item!r} is not a status code")
        if not 100 <= int(text) <= 599:
            raise RequestProblem("expect", f"{text} is not a status code (100-599)")
        out.append(int(text))
    return tuple(out)


def request_line(req: HttpRequest) -> str:
    """The crontab form of `req` (what `parse_request_line` reads back)."""
    words = [PREFIX, req.method, req.url]
    words += [shlex.quote(f"header={name}:{value}") for name, value in req.headers]
    if req.body is not None:
        words.append(shlex.quote(f"body={req.body}"))
    if req.timeout != 30.0:
        words.append(f"timeout={format_duration(req.timeout)}")
    if req.expect:
        words.append("expect=" + ",".join(str(s) for s in req.expect))
    if req.retries:
        words.append(f"retries={req.retries}")
    if req.retry_backoff != 1.0:
        words.append(f"retry_backoff={format_duration(req.retry_backoff)}")
    return " ".join(words)


def variables(req: HttpRequest) -> list[str]:
    """The `${VAR}` names its headers and body use (the only values of the environment it
    sends)."""
    texts = [v for _, v in req.headers] + ([req.body] if req.body else [])
    return sorted({m for t in texts for m in VAR.findall(t)})


def describe(req: HttpRequest) -> str:
    """`POST http://web:8080/tasks/digest, expecting 2xx, up to 3 retries (backoff 2s, doubled)`."""
    expect = ", ".join(str(s) for s in req.expect) if req.expect else "2xx"
    text = (
        f"{req.method} {req.url} (HTTP, timeout {format_duration(req.timeout)}, expecting {expect}"
    )
    if req.retries:
        text += (
            f", up to {req.retries} retr{'y' if req.retries == 1 else 'ies'} after "
            f"{format_duration(req.retry_backoff)}, doubling"
        )
    return text + ")"
