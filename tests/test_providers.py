"""Provider REST clients against a real local HTTP server that records every request and
answers from a script: exact requests per provider, pagination, the one-comment-per-PR
marker logic, commit statuses, retries/backoff, and that the token never leaks."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from reconciler.core.errors import ConfigError, ReconcilerError
from reconciler.providers import (
    MARKER,
    ProviderClient,
    ProviderError,
    PullRequestInfo,
    make_client,
)

TOKEN = "s3cr3t-t0ken-value"
SHA = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any


class FakeApi:
    """Scripted replies per (METHOD, path-with-query), consumed in order. An unscripted
    request gets 418 (not retried) so it shows up in `requests` and fails the test."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.lock = threading.Lock()
        self.url = ""

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.routes.setdefault((method, path), []).extend(replies)

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.path) for r in self.requests]

    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    def handle(self, method: str, path: str, headers: dict[str, str], body: Any) -> Reply:
        with self.lock:
            self.requests.append(Recorded(method, path, headers, body))
            queue = self.routes.get((method, path))
            if not queue:
                return Reply(418, {"message": f"unscripted {method} {path}"})
            return queue.pop(0)


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = api.handle(self.command, self.path, headers, body)
            if reply.delay:
                time.sleep(reply.delay)
            data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v.replace("{base}", api.url))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up (timeout test)
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    return Handler


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


PREFIX = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4"}
REPO = {"github": "acme/app", "gitea": "acme/app", "gitlab": "group/sub/app"}


def client(
    api: FakeApi, provider: str, sleeps: Sleeps, *, trailing: str = "/", **kw: Any
) -> ProviderClient:
    return make_client(
        provider,
        api.url + PREFIX[provider] + trailing,
        TOKEN,
        REPO[provider],
        sleep=sleeps,
        timeout=kw.pop("timeout", 5.0),
        **kw,
    )


def gh_pull(
    number: int,
    *,
    head_repo: str | None = "acme/app",
    draft: bool | None = False,
    labels: tuple[str, ...] = (),
    title: str = "t",
) -> dict[str, Any]:
    pr: dict[str, Any] = {
        "number": number,
        "title": title,
        "head": {
            "ref": f"feature-{number}",
            "sha": f"{number:040x}",
            "repo": {"full_name": head_repo} if head_repo else None,
        },
        "base": {"ref": "main", "repo": {"full_name": "acme/app"}},
        "labels": [{"id": i, "name": n} for i, n in enumerate(labels)],
    }
    if draft is not None:
        pr["draft"] = draft
    return pr


def info(
    number: int, fork: bool = False, draft: bool = False, labels: tuple[str, ...] = ()
) -> PullRequestInfo:
    return PullRequestInfo(number, f"feature-{number}", f"{number:040x}", fork, draft, labels)


# -- GitHub ----------------------------------------------------------------------------------

GH = "/repos/acme/app"


def test_github_open_pull_requests_follows_link_pagination(api: FakeApi, sleeps: Sleeps) -> None:
    first = f"{GH}/pulls?state=open&per_page=100"
    second = f"{GH}/pulls?state=open&per_page=100&page=2"
    api.on(
        "GET",
        first,
        Reply(
            body=[gh_pull(1, labels=("preview", "bug")), gh_pull(2, head_repo="mallory/app")],
            headers={"Link": f'<{{base}}{second}>; rel="next", <{{base}}{second}>; rel="last"'},
        ),
    )
    api.on(
        "GET",
        second,
        Reply(body=[gh_pull(3, draft=True), gh_pull(4, head_repo=None, draft=None)]),
    )
    prs = client(api, "github", sleeps).open_pull_requests()
    assert prs == [
        info(1, labels=("preview", "bug")),
        info(2, fork=True),
        info(3, draft=True),
        info(4, fork=True),  # head repo deleted
    ]
    assert api.calls() == [("GET", first), ("GET", second)]
    for r in api.requests:
        assert r.headers["authorization"] == f"Bearer {TOKEN}"
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["x-github-api-version"] == "2022-11-28"
    assert sleeps == []


def test_github_upsert_creates_once_then_edits_same_id(api: FakeApi, sleeps: Sleeps) -> None:
    comments = f"{GH}/issues/7/comments"
    api.on("GET", comments + "?per_page=100", Reply(body=[{"id": 5, "body": "LGTM"}]))
    api.on("POST", comments, Reply(201, {"id": 99, "body": "x"}))
    api.on("PATCH", f"{GH}/issues/comments/99", Reply(body={"id": 99}), Reply(body={"id": 99}))
    c = client(api, "github", sleeps)

    assert c.upsert_comment(7, "building") == "99"
    assert c.upsert_comment(7, f"{MARKER}\nhealthy") == "99"
    assert c.upsert_comment(7, "healthy again") == "99"

    assert api.calls() == [
        ("GET", comments + "?per_page=100"),
        ("POST", comments),
        ("PATCH", f"{GH}/issues/comments/99"),
        ("PATCH", f"{GH}/issues/comments/99"),
    ]
    assert api.bodies()[1:] == [
        {"body": f"{MARKER}\nbuilding"},
        {"body": f"{MARKER}\nhealthy"},  # the marker is not doubled
        {"body": f"{MARKER}\nhealthy again"},
    ]


def test_github_finds_marker_comment_of_earlier_process_on_page_two(
    api: FakeApi, sleeps: Sleeps
) -> None:
    comments = f"{GH}/issues/7/comments"
    page2 = comments + "?per_page=100&page=2"
    api.on(
        "GET",
        comments + "?per_page=100",
        Reply(
            body=[{"id": i, "body": "chatter"} for i in range(1, 4)],
            headers={"Link": f'<{{base}}{page2}>; rel="next"'},
        ),
    )
    api.on(
        "GET",
        page2,
        Reply(
            body=[
                {"id": 41, "body": f"{MARKER}\nold status"},
                {"id": 42, "body": None},
                {"id": 43, "body": f"{MARKER}\na racing duplicate"},
            ]
        ),
    )
    api.on("PATCH", f"{GH}/issues/comments/41", Reply(body={"id": 41}))
    assert client(api, "github", sleeps).upsert_comment(7, "new status") == "41"
    assert api.calls() == [
        ("GET", comments + "?per_page=100"),
        ("GET", page2),
        ("PATCH", f"{GH}/issues/comments/41"),
    ]
    assert api.requests[-1].body == {"body": f"{MARKER}\nnew status"}


def test_github_edit_404_forgets_id_and_searches_again(api: FakeApi, sleeps: Sleeps) -> None:
    comments = f"{GH}/issues/7/comments"
    api.on(
        "GET",
        comments + "?per_page=100",
        Reply(body=[{"id": 10, "body": MARKER}]),
        Reply(body=[]),  # someone deleted it
    )
    api.on("PATCH", f"{GH}/issues/comments/10", Reply(body={"id": 10}), Reply(404, {}))
    api.on("POST", comments, Reply(201, {"id": 11}))
    api.on("PATCH", f"{GH}/issues/comments/11", Reply(body={"id": 11}))
    c = client(api, "github", sleeps)
    assert c.upsert_comment(7, "a") == "10"
    assert c.upsert_comment(7, "b") == "11"
    assert c.upsert_comment(7, "c") == "11"
    assert api.calls() == [
        ("GET", comments + "?per_page=100"),
        ("PATCH", f"{GH}/issues/comments/10"),
        ("PATCH", f"{GH}/issues/comments/10"),
        ("GET", comments + "?per_page=100"),
        ("POST", comments),
        ("PATCH", f"{GH}/issues/comments/11"),
    ]


def test_github_set_status(api: FakeApi, sleeps: Sleeps) -> None:
    api.on("POST", f"{GH}/statuses/{SHA}", Reply(201, {}), Reply(201, {}))
    c = client(api, "github", sleeps)
    c.set_status(SHA, "success", "healthy", "https://hoody.example/environments/pr-7")
    c.set_status(SHA, "error", "x" * 200, None)
    assert api.calls() == [("POST", f"{GH}/statuses/{SHA}")] * 2
    assert api.bodies() == [
        {
            "state": "success",
            "description": "healthy",
            "context": "hoody/preview",
            "target_url": "https://hoody.example/environments/pr-7",
        },
        {"state": "error", "description": "x" * 139 + "…", "context": "hoody/preview"},
    ]
    assert len(api.bodies()[1]["description"]) == 140
    with pytest.raises(ValueError):
        c.set_status(SHA, "running", "", None)


def test_github_retries_502_then_succeeds(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/pulls?state=open&per_page=100"
    api.on("GET", path, Reply(502, {"message": "bad gateway"}), Reply(body=[gh_pull(1)]))
    assert client(api, "github", sleeps).open_pull_requests() == [info(1)]
    assert api.calls() == [("GET", path)] * 2
    assert sleeps == [0.5]


def test_github_retry_after_is_respected_and_capped(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/statuses/{SHA}"
    api.on(
        "POST",
        path,
        Reply(429, {}, {"Retry-After": "7"}),
        Reply(503, {}, {"Retry-After": "3600"}),
        Reply(429, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        Reply(201, {}),
    )
    client(api, "github", sleeps).set_status(SHA, "pending", "building", None)
    assert api.calls() == [("POST", path)] * 4
    assert sleeps == [7.0, 30.0, 2.0]  # a date falls back to backoff * 2**attempt


def test_github_gives_up_after_retries(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/pulls?state=open&per_page=100"
    api.on("GET", path, *[Reply(502, {"message": f"no {TOKEN}"})] * 4)
    with pytest.raises(ProviderError) as exc:
        client(api, "github", sleeps).open_pull_requests()
    assert api.calls() == [("GET", path)] * 4
    assert sleeps == [0.5, 1.0, 2.0]
    msg = str(exc.value)
    assert msg.startswith(f"GET {path}: HTTP 502 Bad Gateway")
    assert "after 4 attempts" in msg
    assert TOKEN not in msg
    assert (exc.value.method, exc.value.path, exc.value.status) == ("GET", path, 502)
    assert exc.value.retryable and isinstance(exc.value, ReconcilerError)


def test_github_403_is_not_retried(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/issues/7/comments?per_page=100"
    api.on("GET", path, Reply(403, {"message": "Resource not accessible by integration"}))
    with pytest.raises(ProviderError) as exc:
        client(api, "github", sleeps).upsert_comment(7, "x")
    assert api.calls() == [("GET", path)]
    assert sleeps == []
    assert str(exc.value) == (
        f"GET {path}: HTTP 403 Forbidden: Resource not accessible by integration"
    )
    assert exc.value.status == 403
    assert not exc.value.retryable  # a 4xx waits for a change (token, configuration)


def test_github_read_timeout_is_retried(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/pulls?state=open&per_page=100"
    api.on("GET", path, Reply(body=[], delay=1.0), Reply(body=[gh_pull(2)]))
    c = client(api, "github", sleeps, timeout=0.2)
    assert c.open_pull_requests() == [info(2)]
    assert api.calls() == [("GET", path)] * 2
    assert sleeps == [0.5]


def test_connection_refused_is_retried_then_fails_without_token(
    sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    c = make_client("gitea", f"http://127.0.0.1:{port}/api/v1", TOKEN, "acme/app", sleep=sleeps)
    with pytest.raises(ProviderError) as exc:
        c.set_status(SHA, "failure", "failed", None)
    assert sleeps == [0.5, 1.0, 2.0]
    assert str(exc.value).startswith(f"POST /api/v1/repos/acme/app/statuses/{SHA}: ")
    assert "ConnectionError" in str(exc.value)
    assert exc.value.status is None and exc.value.retryable  # no answer: try again later
    assert TOKEN not in str(exc.value)
    assert TOKEN not in caplog.text


def test_token_never_logged_or_raised(
    api: FakeApi, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    path = f"{GH}/pulls?state=open&per_page=100"
    api.on("GET", path, Reply(500, {"message": f"echo {TOKEN}"}), Reply(401, {"error": TOKEN}))
    with pytest.raises(ProviderError) as exc:
        client(api, "github", sleeps).open_pull_requests()
    assert exc.value.status == 401
    assert TOKEN not in str(exc.value) and "***" in str(exc.value)
    assert TOKEN not in caplog.text
    assert "retry 1/3" in caplog.text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body={"message": "not a list"}),
        Reply(body=[{"number": "1", "head": {}, "base": {}}]),
        Reply(body=[{"number": 1, "base": {"repo": {"full_name": "acme/app"}}}]),
        Reply(body=[{**gh_pull(1), "labels": [{"name": 3}]}]),
        Reply(body=[{**gh_pull(1), "draft": "yes"}]),
        Reply(body=[{**gh_pull(1), "base": {"repo": None}}]),
        Reply(raw=b"<html>oops</html>"),
    ],
)
def test_github_shape_surprises_are_provider_errors(
    api: FakeApi, sleeps: Sleeps, reply: Reply
) -> None:
    api.on("GET", f"{GH}/pulls?state=open&per_page=100", reply)
    with pytest.raises(ProviderError, match=r"unexpected API response|not JSON") as exc:
        client(api, "github", sleeps).open_pull_requests()
    assert not exc.value.retryable  # the same answer would come again


def test_github_comment_shape_surprise(api: FakeApi, sleeps: Sleeps) -> None:
    api.on("GET", f"{GH}/issues/7/comments?per_page=100", Reply(body=[{"body": MARKER}]))
    with pytest.raises(ProviderError, match="comment id"):
        client(api, "github", sleeps).upsert_comment(7, "x")


def test_link_to_another_origin_is_refused(api: FakeApi, sleeps: Sleeps) -> None:
    first = f"{GH}/pulls?state=open&per_page=100"
    api.on(
        "GET",
        first,
        Reply(body=[gh_pull(1)], headers={"Link": '<http://evil.example/steal>; rel="next"'}),
    )
    with pytest.raises(ProviderError, match="another origin") as exc:
        client(api, "github", sleeps).open_pull_requests()
    assert api.calls() == [("GET", first)]
    assert not exc.value.retryable


def test_same_origin_redirect_is_followed(api: FakeApi, sleeps: Sleeps) -> None:
    old = f"{GH}/pulls?state=open&per_page=100"
    new = "/repos/acme/renamed/pulls?state=open&per_page=100"
    api.on("GET", old, Reply(301, {}, {"Location": f"{{base}}{new}"}))
    api.on("GET", new, Reply(body=[gh_pull(1)]))
    assert client(api, "github", sleeps).open_pull_requests() == [info(1)]
    assert api.calls() == [("GET", old), ("GET", new)]
    assert api.requests[1].headers["authorization"] == f"Bearer {TOKEN}"


def test_api_url_without_or_with_many_trailing_slashes(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GH}/statuses/{SHA}"
    api.on("POST", path, Reply(201, {}), Reply(201, {}))
    client(api, "github", sleeps, trailing="").set_status(SHA, "pending", "", None)
    client(api, "github", sleeps, trailing="///").set_status(SHA, "pending", "", None)
    assert api.calls() == [("POST", path)] * 2


def test_make_client_rejects_bad_configuration() -> None:
    with pytest.raises(ConfigError, match="provider"):
        make_client("generic", "https://x", TOKEN, "a/b")
    with pytest.raises(ConfigError, match="api_url"):
        make_client("github", "api.github.com", TOKEN, "a/b")
    with pytest.raises(ConfigError, match="repository"):
        make_client("github", "https://api.github.com", TOKEN, "just-a-name")
    with pytest.raises(ConfigError, match="repository"):
        make_client("gitlab", "https://gitlab.example/api/v4", TOKEN, "")
    with pytest.raises(ConfigError) as exc:
        make_client("github", "https://api.github.com", "", "a/b")
    assert "api_token" in str(exc.value)


def test_shared_session_is_used(api: FakeApi, sleeps: Sleeps) -> None:
    api.on("GET", f"{GH}/pulls?state=open&per_page=100", Reply(body=[]))
    with requests.Session() as session:
        c = make_client("github", api.url, TOKEN, "acme/app", session=session, sleep=sleeps)
        assert c.open_pull_requests() == []
    assert "authorization" not in {k.lower() for k in session.headers}


# -- Gitea -----------------------------------------------------------------------------------

GT = "/api/v1/repos/acme/app"


def test_gitea_open_pull_requests_page_until_short_page(api: FakeApi, sleeps: Sleeps) -> None:
    full = [gh_pull(n, draft=None) for n in range(100, 150)]
    full[0] = gh_pull(100, draft=None, title="WIP: not yet", labels=("x",))
    full[1] = gh_pull(101, draft=None, title="[wip] nope")
    full[2] = gh_pull(102, draft=True)
    full[3] = gh_pull(103, head_repo="fork/app")
    api.on("GET", f"{GT}/pulls?state=open&limit=50&page=1", Reply(body=full))
    api.on("GET", f"{GT}/pulls?state=open&limit=50&page=2", Reply(body=[gh_pull(150)]))
    prs = client(api, "gitea", sleeps).open_pull_requests()
    assert len(prs) == 51
    assert prs[:5] == [
        info(100, draft=True, labels=("x",)),
        info(101, draft=True),
        info(102, draft=True),
        info(103, fork=True),
        info(104),
    ]
    assert prs[-1] == info(150)
    assert api.calls() == [
        ("GET", f"{GT}/pulls?state=open&limit=50&page=1"),
        ("GET", f"{GT}/pulls?state=open&limit=50&page=2"),
    ]
    for r in api.requests:
        assert r.headers["authorization"] == f"token {TOKEN}"
        assert "private-token" not in r.headers


def test_gitea_full_page_then_empty_page(api: FakeApi, sleeps: Sleeps) -> None:
    full = [gh_pull(n) for n in range(1, 51)]
    api.on("GET", f"{GT}/pulls?state=open&limit=50&page=1", Reply(body=full))
    api.on("GET", f"{GT}/pulls?state=open&limit=50&page=2", Reply(body=[]))
    assert len(client(api, "gitea", sleeps).open_pull_requests()) == 50
    assert len(api.requests) == 2


def test_gitea_short_pages_continue_while_total_count_says_more(
    api: FakeApi, sleeps: Sleeps
) -> None:
    """A server whose MAX_RESPONSE_ITEMS is 30 answers 30 for limit=50: not the end."""
    total = {"X-Total-Count": "35"}
    api.on(
        "GET",
        f"{GT}/pulls?state=open&limit=50&page=1",
        Reply(body=[gh_pull(n) for n in range(30)], headers=total),
    )
    api.on(
        "GET",
        f"{GT}/pulls?state=open&limit=50&page=2",
        Reply(body=[gh_pull(n) for n in range(30, 35)], headers=total),
    )
    assert [p.number for p in client(api, "gitea", sleeps).open_pull_requests()] == list(range(35))


def test_gitea_upsert_and_status(api: FakeApi, sleeps: Sleeps) -> None:
    comments = f"{GT}/issues/3/comments"
    api.on("GET", comments, Reply(body=[{"id": 1, "body": "hi"}]))
    api.on("POST", comments, Reply(201, {"id": 8, "body": "..."}))
    api.on("PATCH", f"{GT}/issues/comments/8", Reply(body={"id": 8}))
    api.on("POST", f"{GT}/statuses/{SHA}", Reply(201, {}))
    c = client(api, "gitea", sleeps)
    assert c.upsert_comment(3, "one") == "8"
    assert c.upsert_comment(3, "two") == "8"
    c.set_status(SHA, "failure", "failed: build", "http://h/e")
    assert api.calls() == [
        ("GET", comments),
        ("POST", comments),
        ("PATCH", f"{GT}/issues/comments/8"),
        ("POST", f"{GT}/statuses/{SHA}"),
    ]
    assert api.bodies()[1:] == [
        {"body": f"{MARKER}\none"},
        {"body": f"{MARKER}\ntwo"},
        {
            "state": "failure",
            "description": "failed: build",
            "context": "hoody/preview",
            "target_url": "http://h/e",
        },
    ]


def test_gitea_existing_marker_comment_is_edited(api: FakeApi, sleeps: Sleeps) -> None:
    comments = f"{GT}/issues/3/comments"
    api.on("GET", comments, Reply(body=[{"id": 4, "body": f"text\n{MARKER}\nmore"}]))
    api.on("PATCH", f"{GT}/issues/comments/4", Reply(body={"id": 4}))
    assert client(api, "gitea", sleeps).upsert_comment(3, "x") == "4"
    assert api.calls() == [("GET", comments), ("PATCH", f"{GT}/issues/comments/4")]


# -- GitLab ----------------------------------------------------------------------------------

GL = "/api/v4/projects/group%2Fsub%2Fapp"


def gl_mr(iid: int, **over: Any) -> dict[str, Any]:
    mr: dict[str, Any] = {
        "id": 1000 + iid,
        "iid": iid,
        "source_branch": f"feature-{iid}",
        "sha": f"{iid:040x}",
        "source_project_id": 5,
        "target_project_id": 5,
        "draft": False,
        "work_in_progress": False,
        "labels": [],
    }
    mr.update(over)
    return mr


def test_gitlab_open_merge_requests_x_next_page(api: FakeApi, sleeps: Sleeps) -> None:
    first = f"{GL}/merge_requests?state=opened&per_page=100"
    second = f"{GL}/merge_requests?state=opened&per_page=100&page=2"
    api.on(
        "GET",
        first,
        Reply(
            body=[gl_mr(1, labels=["preview"]), gl_mr(2, source_project_id=9)],
            headers={"X-Next-Page": "2", "X-Page": "1"},
        ),
    )
    api.on(
        "GET",
        second,
        Reply(
            body=[
                gl_mr(3, draft=True),
                gl_mr(4, work_in_progress=True, labels=[{"name": "a"}]),
                {k: v for k, v in gl_mr(5).items() if k not in ("draft", "work_in_progress")},
            ],
            headers={"X-Next-Page": ""},
        ),
    )
    prs = client(api, "gitlab", sleeps).open_pull_requests()
    assert prs == [
        info(1, labels=("preview",)),
        info(2, fork=True),
        info(3, draft=True),
        info(4, draft=True, labels=("a",)),
        info(5),
    ]
    assert api.calls() == [("GET", first), ("GET", second)]
    for r in api.requests:
        assert r.headers["private-token"] == TOKEN
        assert "authorization" not in r.headers


def test_gitlab_notes_upsert(api: FakeApi, sleeps: Sleeps) -> None:
    notes = f"{GL}/merge_requests/4/notes"
    api.on(
        "GET",
        notes + "?per_page=100",
        Reply(body=[{"id": 1, "body": "assigned to @x", "system": True}]),
    )
    api.on("POST", notes, Reply(201, {"id": 77, "body": "..."}))
    api.on("PUT", f"{notes}/77", Reply(body={"id": 77}))
    c = client(api, "gitlab", sleeps)
    assert c.upsert_comment(4, "building") == "77"
    assert c.upsert_comment(4, "healthy") == "77"
    assert api.calls() == [
        ("GET", notes + "?per_page=100"),
        ("POST", notes),
        ("PUT", f"{notes}/77"),
    ]
    assert api.bodies()[1:] == [{"body": f"{MARKER}\nbuilding"}, {"body": f"{MARKER}\nhealthy"}]


def test_gitlab_existing_note_on_page_two_and_404_on_edit(api: FakeApi, sleeps: Sleeps) -> None:
    notes = f"{GL}/merge_requests/4/notes"
    api.on(
        "GET",
        notes + "?per_page=100",
        Reply(body=[{"id": 50, "body": "hi"}], headers={"X-Next-Page": "2"}),
        Reply(body=[], headers={"X-Next-Page": ""}),
    )
    api.on("GET", notes + "?per_page=100&page=2", Reply(body=[{"id": 12, "body": MARKER}]))
    api.on("PUT", f"{notes}/12", Reply(body={"id": 12}), Reply(404, {"message": "404 Not found"}))
    api.on("POST", notes, Reply(201, {"id": 60}))
    c = client(api, "gitlab", sleeps)
    assert c.upsert_comment(4, "a") == "12"
    assert c.upsert_comment(4, "b") == "60"
    assert api.calls() == [
        ("GET", notes + "?per_page=100"),
        ("GET", notes + "?per_page=100&page=2"),
        ("PUT", f"{notes}/12"),
        ("PUT", f"{notes}/12"),
        ("GET", notes + "?per_page=100"),
        ("POST", notes),
    ]


@pytest.mark.parametrize(
    ("state", "sent"),
    [("pending", "pending"), ("success", "success"), ("failure", "failed"), ("error", "failed")],
)
def test_gitlab_set_status(api: FakeApi, sleeps: Sleeps, state: str, sent: str) -> None:
    api.on("POST", f"{GL}/statuses/{SHA}", Reply(201, {}))
    client(api, "gitlab", sleeps).set_status(SHA, state, "words", "https://h/e")
    assert api.calls() == [("POST", f"{GL}/statuses/{SHA}")]
    assert api.bodies() == [
        {
            "state": sent,
            "name": "hoody/preview",
            "description": "words",
            "target_url": "https://h/e",
        }
    ]


def test_gitlab_same_state_again_is_not_an_error(api: FakeApi, sleeps: Sleeps) -> None:
    msg = {"message": "Cannot transition status via :enqueue from :pending (Reason(s): ...)"}
    api.on("POST", f"{GL}/statuses/{SHA}", Reply(400, msg), Reply(400, {"message": "other"}))
    c = client(api, "gitlab", sleeps)
    c.set_status(SHA, "pending", "building", None)
    with pytest.raises(ProviderError, match="HTTP 400"):
        c.set_status(SHA, "pending", "building", None)
    assert sleeps == []


def test_gitlab_retries_429_and_5xx(api: FakeApi, sleeps: Sleeps) -> None:
    first = f"{GL}/merge_requests?state=opened&per_page=100"
    api.on(
        "GET",
        first,
        Reply(429, {}, {"Retry-After": "1"}),
        Reply(502, {}),
        Reply(body=[gl_mr(1)]),
    )
    c = client(api, "gitlab", sleeps, retries=2, backoff=0.1)
    assert c.open_pull_requests() == [info(1)]
    assert sleeps == [1.0, 0.2]


def test_gitlab_bad_shapes(api: FakeApi, sleeps: Sleeps) -> None:
    first = f"{GL}/merge_requests?state=opened&per_page=100"
    api.on("GET", first, Reply(body=[gl_mr(1, source_project_id=None)]))
    api.on("GET", first, Reply(body=[gl_mr(1)], headers={"X-Next-Page": "soon"}))
    c = client(api, "gitlab", sleeps)
    with pytest.raises(ProviderError, match="source_project_id"):
        c.open_pull_requests()
    with pytest.raises(ProviderError, match="X-Next-Page"):
        c.open_pull_requests()


def test_gitlab_403_not_retried_and_token_absent(api: FakeApi, sleeps: Sleeps) -> None:
    path = f"{GL}/statuses/{SHA}"
    api.on("POST", path, Reply(403, {"message": "403 Forbidden"}))
    with pytest.raises(ProviderError) as exc:
        client(api, "gitlab", sleeps).set_status(SHA, "success", "ok", None)
    assert api.calls() == [("POST", path)]
    assert sleeps == []
    assert TOKEN not in str(exc.value)
    assert str(exc.value).startswith(f"POST {path}: HTTP 403")


def test_concurrent_upserts_make_one_comment(api: FakeApi, sleeps: Sleeps) -> None:
    """The feedback thread and anything else share one client per repo."""
    comments = f"{GH}/issues/9/comments"
    api.on("GET", comments + "?per_page=100", Reply(body=[], delay=0.1))
    api.on("POST", comments, Reply(201, {"id": 5}))
    api.on("PATCH", f"{GH}/issues/comments/5", *[Reply(body={"id": 5})] * 3)
    c = client(api, "github", sleeps)
    results: list[str] = []

    def run() -> None:
        results.append(c.upsert_comment(9, "x"))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == ["5"] * 4
    assert [m for m, _ in api.calls()].count("POST") == 1
