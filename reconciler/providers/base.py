"""What the three provider clients share: the result type, the error, a retrying HTTP
transport that never leaks the token, defensive JSON readers, and the "one comment per
PR, found again by a hidden marker" logic. Provider modules only know URLs and shapes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from reconciler.core.errors import ProviderError

log = logging.getLogger("reconciler.providers")
T = TypeVar("T")

MARKER = "<!-- hoody-preview -->"
STATUS_CONTEXT = "hoody/preview"
STATES = ("pending", "success", "failure", "error")
MAX_DESCRIPTION = 140
MAX_PAGES = 500  # 50,000 PRs: beyond that something loops; a partial list is never returned
MAX_RETRY_AFTER = 30.0
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class PullRequestInfo:
    number: int  # GitHub/Gitea number, GitLab MR iid
    head_ref: str | None  # source branch name
    head_sha: str | None
    is_fork: bool  # head repo != base repo
    draft: bool
    labels: tuple[str, ...]


class ProviderClient(Protocol):
    def open_pull_requests(self) -> list[PullRequestInfo]: ...

    def upsert_comment(self, number: int, body: str) -> str: ...

    def set_status(
        self, sha: str, state: str, description: str, target_url: str | None
    ) -> None: ...


# -- JSON shape checks: a surprise is a ProviderError, never KeyError/TypeError -------------


def shape_error(what: str, value: Any) -> ProviderError:
    return ProviderError(f"unexpected API response: {what} is {type(value).__name__}")


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise shape_error(what, value)
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise shape_error(what, value)
    return value


def as_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise shape_error(what, value)
    return value


def opt_str(value: Any, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise shape_error(what, value)


def opt_bool(value: Any, what: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    raise shape_error(what, value)


def as_id(value: Any, what: str) -> str:
    """Comment/note ids are integers on all three providers; keep them as strings."""
    if isinstance(value, str) and value:
        return value
    return str(as_int(value, what))


def with_marker(body: str) -> str:
    return body if body.startswith(MARKER + "\n") else f"{MARKER}\n{body}"


def short_description(description: str) -> str:
    return description if len(description) <= MAX_DESCRIPTION else description[:139] + "…"


def check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"commit status state must be one of {', '.join(STATES)}: {state!r}")


# -- transport -------------------------------------------------------------------------------


class Transport:
    """requests with retries, same-origin redirects only, and token scrubbing.

    `retries` is the number of retries after the first attempt. Connection errors,
    timeouts, 429 and 5xx are retried after `backoff * 2**attempt` seconds (or the
    response's `Retry-After`, capped at 30 s); any other 4xx fails at once. Every URL,
    including pagination links and redirects, must stay on the api_url's origin, so the
    auth headers never travel anywhere else.
    """

    def __init__(
        self,
        api_url: str,
        headers: Mapping[str, str],
        token: str,
        *,
        session: requests.Session | None,
        retries: int,
        backoff: float,
        sleep: Callable[[float], object],
        timeout: float,
    ) -> None:
        self.base = api_url.rstrip("/")
        parts = urlsplit(self.base)
        self._origin = (parts.scheme.lower(), parts.netloc.lower())
        self._headers = {"User-Agent": "hoody-reconciler", **headers}
        self._token = token
        self._shared = session
        self._local = threading.local()
        self.retries = max(0, retries)
        self.backoff = backoff
        self.sleep = sleep
        self.timeout = timeout

    def url(self, path: str, **query: str | int) -> str:
        return f"{self.base}{path}" + (f"?{urlencode(query)}" if query else "")

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def display(self, url: str) -> str:
        parts = urlsplit(url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def error(
        self,
        method: str,
        url: str,
        problem: str,
        status: int | None = None,
        retryable: bool | None = None,
    ) -> ProviderError:
        """`retryable` None: decided by the status (429 and 5xx are retryable)."""
        path = self.display(url)
        return ProviderError(
            self.scrub(f"{method} {path}: {problem}"),
            method=method,
            path=path,
            status=status,
            retryable=retryable,
        )

    def _session(self) -> requests.Session:
        if self._shared is not None:
            return self._shared
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:  # a Session per thread: the feedback and controller threads
            session = self._local.session = requests.Session()
        return session

    def _same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme.lower(), parts.netloc.lower()) == self._origin

    def _send(self, method: str, url: str, body: Any) -> requests.Response:
        for _ in range(MAX_REDIRECTS + 1):
            if not self._same_origin(url):
                raise self.error(method, url, "refusing to send credentials to another origin")
            resp = self._session().request(
                method,
                url,
                headers=self._headers,
                json=body,
                timeout=self.timeout,
                allow_redirects=False,
            )
            location = resp.headers.get("Location")
            if not (resp.is_redirect and location):
                return resp
            url = urljoin(url, location)
            if resp.status_code == 303:
                method, body = "GET", None
        raise self.error(method, url, "too many redirects")

    def request(
        self, method: str, url: str, body: Any = None, *, missing_ok: bool = False
    ) -> requests.Response | None:
        """The response (2xx), or None for a 404 when `missing_ok`; else ProviderError."""
        attempts = self.retries + 1
        for attempt in range(attempts):
            status: int | None = None
            delay = self.backoff * 2**attempt
            try:
                resp = self._send(method, url, body)
            except (requests.ConnectionError, requests.Timeout) as e:
                problem = f"{type(e).__name__}: {e}"
            except requests.RequestException as e:
                raise self.error(method, url, f"{type(e).__name__}: {e}") from None
            else:
                status = resp.status_code
                log.debug("%s %s -> %d", method, self.display(url), status)
                if status == 404 and missing_ok:
                    return None
                if 200 <= status < 300:
                    return resp
                problem = f"HTTP {status} {resp.reason or ''}".rstrip() + _detail(resp)
                if status != 429 and status < 500:
                    raise self.error(method, url, problem, status)
                wait = _retry_after(resp)
                delay = delay if wait is None else wait
            if attempt + 1 == attempts:
                # no answer, 429 or 5xx: the provider may answer later
                raise self.error(
                    method, url, f"{problem} (after {attempts} attempts)", status, retryable=True
                )
            log.warning(
                "%s %s: %s; retry %d/%d in %.1fs",
                method,
                self.display(url),
                self.scrub(problem),
                attempt + 1,
                self.retries,
                delay,
            )
            self.sleep(delay)
        raise AssertionError("unreachable")

    def json(self, method: str, url: str, body: Any = None) -> tuple[Any, requests.Response]:
        resp = self.request(method, url, body)
        assert resp is not None
        return self.decode(method, url, resp), resp

    def decode(self, method: str, url: str, resp: requests.Response) -> Any:
        try:
            return resp.json()
        except ValueError:
            raise self.error(method, url, "response is not JSON", resp.status_code) from None


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def _detail(resp: requests.Response) -> str:
    """The provider's own error message, if the body has one (short)."""
    try:
        data = resp.json()
    except ValueError:
        return ""
    message = data.get("message") or data.get("error") if isinstance(data, dict) else None
    return f": {str(message)[:200]}" if message else ""


# -- one comment per PR --------------------------------------------------------------------


class CommentClient:
    """upsert_comment on top of four provider hooks. The found id is cached per PR; an
    edit answering 404 (comment deleted) forgets it and searches/creates again."""

    def __init__(self, http: Transport) -> None:
        self.http = http
        self._comment_ids: dict[int, str] = {}
        self._lock = threading.Lock()

    def list_comments(self, number: int) -> list[tuple[str, str]]:
        """(id, body) of every comment of PR `number`, all pages."""
        raise NotImplementedError

    def create_comment(self, number: int, body: str) -> str:
        raise NotImplementedError

    def edit_comment(self, number: int, comment_id: str, body: str) -> bool:
        """False if the comment no longer exists (404)."""
        raise NotImplementedError

    def upsert_comment(self, number: int, body: str) -> str:
        body = with_marker(body)
        with self._lock:
            cached = self._comment_ids.pop(number, None)
            if cached is not None and self.edit_comment(number, cached, body):
                self._comment_ids[number] = cached
                return cached
            found = self.find_comment(number)
            if found is not None and self.edit_comment(number, found, body):
                self._comment_ids[number] = found
                return found
            created = self.create_comment(number, body)
            self._comment_ids[number] = created
            return created

    def find_comment(self, number: int) -> str | None:
        """The oldest comment carrying the marker (lowest id: every process that races
        to create one converges on the same comment)."""
        ids = [cid for cid, text in self.list_comments(number) if MARKER in text]
        return min(ids, key=lambda c: (0, int(c), c) if c.isdigit() else (1, 0, c), default=None)

    def paginate_links(self, url: str, what: str) -> list[Any]:
        """GitHub: follow `Link: <...>; rel="next"` until there is none."""
        items: list[Any] = []
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            if next_url in seen or len(seen) >= MAX_PAGES:
                raise self.http.error("GET", next_url, "pagination does not end")
            seen.add(next_url)
            data, resp = self.http.json("GET", next_url)
            items.extend(as_list(data, what))
            next_url = resp.links.get("next", {}).get("url")
        return items


def read(parse: Callable[[Any], T], data: Any) -> T:
    """Run a parser; any shape surprise it did not foresee still becomes ProviderError."""
    try:
        return parse(data)
    except ProviderError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
        raise ProviderError(f"unexpected API response: {type(e).__name__}: {e}") from None
