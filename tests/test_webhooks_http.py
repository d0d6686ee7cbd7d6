"""POST /webhooks/<repo>: status codes in the documented order, dedupe of redeliveries, body
limits, and a fuzz test proving that no input produces a 5xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

import webhooks.blueprint
from webhooks import ACCEPTED, DUPLICATE, IGNORED, GitEvent, Verdict, WebhookRepo, create_blueprint
from webhooks.events import KINDS

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"  # see tests/fixtures/
SECRET = "topsecret"
PR_BODY = json.dumps(
    {
        "action": "opened",
        "number": 3,
        "pull_request": {
            "state": "open",
            "head": {"ref": "feat", "sha": "a" * 40, "repo": {"full_name": "acme/app"}},
            "base": {"repo": {"full_name": "acme/app"}},
            "labels": [],
        },
        "repository": {"full_name": "acme/app"},
    }
).encode()
PUSH_BODY = b'{"ref": "refs/heads/main", "after": "1111", "repository": {"full_name": "acme/app"}}'
TAG_BODY = b'{"ref": "refs/tags/v1", "repository": {"full_name": "acme/app"}}'
GITLAB_PUSH = b'{"ref": "refs/heads/main", "project": {"path_with_namespace": "grp/app"}}'


@dataclass
class FakeSink:
    repos: dict[str, WebhookRepo]
    seen: set[tuple[str, str]] = field(default_factory=set)
    submitted: list[tuple[str, GitEvent]] = field(default_factory=list)
    remembered: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    def webhook_repo(self, name: str) -> WebhookRepo | None:
        return self.repos.get(name)

    def deliver(self, repo: str, event: GitEvent, keys: tuple[str, ...]) -> Verdict:
        if any((repo, k) in self.seen for k in keys):
            return Verdict(DUPLICATE)
        if event.kind == IGNORED:
            verdict = Verdict(IGNORED, event.ignored_reason)
        else:
            if self.fail:
                raise RuntimeError("queue full")
            self.submitted.append((repo, event))
            verdict = Verdict(ACCEPTED)
        for k in keys:
            self.seen.add((repo, k))
            self.remembered.append((repo, k))
        return verdict


def make_repos() -> dict[str, WebhookRepo]:
    repos = [
        WebhookRepo("app", "github", SECRET, "acme/app"),
        WebhookRepo("anyrepo", "github", SECRET, None),
        WebhookRepo("small", "github", SECRET, None, max_body=100),
        WebhookRepo("lab", "gitlab", SECRET, "grp/app"),
        WebhookRepo("tea", "gitea", SECRET, "acme/app"),
        WebhookRepo("gen", "generic", SECRET, None),
        WebhookRepo("nosecret", "github", None, None),
        WebhookRepo("emptysecret", "github", "", None),
        WebhookRepo("open", "github", None, "acme/app", allow_unsigned=True),
        WebhookRepo("strict", "github", SECRET, None, allow_unsigned=True),
        WebhookRepo("weird", "bitbucket", SECRET, None),
    ]
    return {repo.name: repo for repo in repos}


def make_app(sink: FakeSink) -> Flask:
    app = Flask(__name__)
    app.testing = True
    app.register_blueprint(create_blueprint(sink))
    return app


@pytest.fixture
def sink() -> FakeSink:
    return FakeSink(make_repos())


@pytest.fixture
def client(sink: FakeSink) -> FlaskClient:
    return make_app(sink).test_client()


def hub(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def gh(event: str, body: bytes, delivery: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"X-GitHub-Event": event, "X-Hub-Signature-256": hub(body), **extra}
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return headers


def post(client: FlaskClient, repo: str, body: bytes, headers: dict[str, str]) -> TestResponse:
    return client.post(f"/webhooks/{repo}", data=body, headers=headers)


def error_code(resp: TestResponse) -> str:
    return str(resp.get_json()["error"]["code"])


# ------------------------------------------------------------------ the happy paths


def test_push_is_accepted_and_submitted(client: FlaskClient, sink: FakeSink) -> None:
    resp = post(client, "app", PUSH_BODY, gh("push", PUSH_BODY, "d-1"))
    assert (resp.status_code, resp.get_json()) == (202, {"accepted": True, "kind": "push"})
    [(repo, event)] = sink.submitted
    assert (repo, event.kind, event.ref, event.delivery_id) == (
        "app",
        "push",
        "refs/heads/main",
        "d-1",
    )


def test_pull_request_is_accepted(client: FlaskClient, sink: FakeSink) -> None:
    resp = post(client, "app", PR_BODY, gh("pull_request", PR_BODY))
    assert (resp.status_code, resp.get_json()["kind"]) == (202, "pull_request")
    assert sink.submitted[0][1].pr_number == 3
    # no delivery id: the body's digest (its verified HMAC) is what a replay is known by
    digest = hmac.new(SECRET.encode(), PR_BODY, hashlib.sha256).hexdigest()
    assert sink.remembered == [("app", f"body:{digest}")]


def test_gitlab_gitea_generic(client: FlaskClient, sink: FakeSink) -> None:
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": SECRET}
    assert post(client, "lab", GITLAB_PUSH, headers).status_code == 202
    headers["X-Gitlab-Token"] = "wrong"
    assert post(client, "lab", GITLAB_PUSH, headers).status_code == 401
    sig = hub(PUSH_BODY).removeprefix("sha256=")
    headers = {"X-Gitea-Event": "push", "X-Gitea-Signature": sig}
    assert post(client, "tea", PUSH_BODY, headers).status_code == 202
    assert post(client, "gen", b"", {"X-Hub-Signature-256": hub(b"")}).status_code == 202
    resp = post(client, "gen", b"{}", {"X-Gitea-Signature": hub(b"{}")})
    assert resp.status_code == 401  # generic only speaks X-Hub-Signature-256
    assert [event.provider for _, event in sink.submitted] == ["gitlab", "gitea", "generic"]


def test_real_fixtures_over_http(client: FlaskClient, sink: FakeSink) -> None:
    folder = FIXTURES / "github"
    expected = {"push.with-new-branch.json": 202, "pull_request.opened.json": 202, "ping.json": 200}
    for name, status in expected.items():
        body = (folder / name).read_bytes()
        resp = post(client, "anyrepo", body, gh(name.split(".")[0], body, name))
        assert resp.status_code == status, (name, resp.get_json())
    body = (folder / "push.json").read_bytes()
    resp = post(client, "anyrepo", body, gh("push", body, "tag"))
    assert (resp.status_code, resp.get_json()) == (202, {"ignored": "tag push"})
    assert len(sink.submitted) == 2


# ------------------------------------------------------------------ each rule, in order


def test_unknown_repo_is_404(client: FlaskClient) -> None:
    resp = post(client, "nope", PUSH_BODY, gh("push", PUSH_BODY))
    assert (resp.status_code, error_code(resp)) == (404, "not_found")
    resp = post(client, "weird", PUSH_BODY, gh("push", PUSH_BODY))  # unknown provider
    assert resp.status_code == 404


def test_body_over_max_is_413(client: FlaskClient, sink: FakeSink) -> None:
    body = b"x" * 101
    resp = post(client, "small", body, gh("push", body))
    assert (resp.status_code, error_code(resp)) == (413, "too_large")
    claims_too_much = {"CONTENT_LENGTH": "10000000"}
    resp = client.post(
        "/webhooks/small", data=b"{}", headers=gh("push", b"{}"), environ_overrides=claims_too_much
    )
    assert resp.status_code == 413
    assert not sink.remembered
    body = b'{"ref": "refs/heads/a", "repository": {"full_name": "x/y"}}'.ljust(100)
    assert post(client, "small", body, gh("push", body)).status_code == 202  # exactly max_body


class EndlessStream:
    """A chunked body that never ends; records how much was read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        size = 4096 if size is None or size < 0 else size
        self.read_bytes += size
        return b"x" * size


def test_chunked_body_reads_at_most_max_body_plus_one(client: FlaskClient) -> None:
    stream = EndlessStream()
    resp = client.post(
        "/webhooks/small",
        headers={"Transfer-Encoding": "chunked", **gh("push", b"")},
        environ_overrides={"wsgi.input": stream, "wsgi.input_terminated": True},
    )
    assert resp.status_code == 413
    assert 100 < stream.read_bytes <= 101


def test_app_max_content_length_is_413(sink: FakeSink) -> None:
    app = make_app(sink)
    app.config["MAX_CONTENT_LENGTH"] = 10
    resp = post(app.test_client(), "app", PUSH_BODY, gh("push", PUSH_BODY))
    assert resp.status_code == 413


def test_no_secret_is_401_unless_allow_unsigned(client: FlaskClient, sink: FakeSink) -> None:
    for repo in ("nosecret", "emptysecret"):
        resp = post(client, repo, PUSH_BODY, gh("push", PUSH_BODY))
        assert (resp.status_code, error_code(resp)) == (401, "no_secret")
    resp = post(client, "open", PUSH_BODY, {"X-GitHub-Event": "push"})
    assert resp.status_code == 202
    # allow_unsigned does not switch off a configured secret
    resp = post(client, "strict", PUSH_BODY, {"X-GitHub-Event": "push"})
    assert resp.status_code == 401
    assert len(sink.submitted) == 1


def test_bad_or_missing_signature_is_401(client: FlaskClient, sink: FakeSink) -> None:
    resp = post(client, "app", PUSH_BODY, {"X-GitHub-Event": "push"})
    assert (resp.status_code, error_code(resp)) == (401, "bad_signature")
    assert "missing" in resp.get_json()["error"]["message"]
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": hub(PUSH_BODY, "wrong")}
    assert post(client, "app", PUSH_BODY, headers).status_code == 401
    assert not sink.submitted and not sink.remembered


def test_signature_is_checked_before_parsing(client: FlaskClient) -> None:
    headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": hub(b"other")}
    assert post(client, "app", b"not json at all", headers).status_code == 401


def test_malformed_is_400_naming_the_field(client: FlaskClient) -> None:
    body = b'{"ref": "refs/heads/a", "repository": {"full_name": 7}}'
    resp = post(client, "app", body, gh("push", body))
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": {
            "code": "malformed",
            "message": "repository.full_name: expected a string, got number",
        }
    }
    resp = post(client, "app", b"[1]", gh("push", b"[1]"))
    assert (resp.status_code, error_code(resp)) == (400, "malformed")


def test_repository_mismatch_is_403(client: FlaskClient, sink: FakeSink) -> None:
    body = PUSH_BODY.replace(b"acme/app", b"evil/app")
    resp = post(client, "app", body, gh("push", body))
    assert (resp.status_code, error_code(resp)) == (403, "repository_mismatch")
    body = PUSH_BODY.replace(b"acme/app", b"ACME/App")  # names are case-insensitive
    assert post(client, "app", body, gh("push", body)).status_code == 202
    assert len(sink.submitted) == 1


def test_ping_is_200_pong_and_not_submitted(client: FlaskClient, sink: FakeSink) -> None:
    body = b'{"zen": "hi", "hook_id": 1}'
    resp = post(client, "app", body, gh("ping", body, "p-1"))
    assert (resp.status_code, resp.get_json()) == (200, {"pong": True})
    assert not sink.submitted and not sink.remembered


def test_redelivery_is_acknowledged_once(client: FlaskClient, sink: FakeSink) -> None:
    headers = gh("push", PUSH_BODY, "same-guid")
    assert post(client, "app", PUSH_BODY, headers).status_code == 202
    resp = post(client, "app", PUSH_BODY, headers)
    assert (resp.status_code, resp.get_json()) == (200, {"duplicate": True})
    assert len(sink.submitted) == 1
    headers = gh("push", PUSH_BODY, **{"Idempotency-Key": "same-guid"})
    assert post(client, "app", PUSH_BODY, headers).status_code == 200
    # the same id for another repository is a different delivery
    assert post(client, "anyrepo", PUSH_BODY, gh("push", PUSH_BODY, "same-guid")).status_code == 202


def test_ignored_is_202_with_reason(client: FlaskClient, sink: FakeSink) -> None:
    resp = post(client, "app", TAG_BODY, gh("push", TAG_BODY, "t-1"))
    assert (resp.status_code, resp.get_json()) == (202, {"ignored": "tag push"})
    resp = post(client, "app", PUSH_BODY, gh("issues", PUSH_BODY))
    assert resp.get_json() == {"ignored": "event 'issues' changes nothing"}
    assert not sink.submitted
    assert post(client, "app", TAG_BODY, gh("push", TAG_BODY, "t-1")).get_json() == {
        "duplicate": True
    }


def test_sink_failure_is_503(client: FlaskClient, sink: FakeSink) -> None:
    sink.fail = True
    resp = post(client, "app", PUSH_BODY, gh("push", PUSH_BODY))
    assert (resp.status_code, error_code(resp)) == (503, "unavailable")


def test_error_handler_is_a_safety_net(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(webhooks.blueprint, "handle", boom)
    resp = post(client, "app", PUSH_BODY, gh("push", PUSH_BODY))
    assert (resp.status_code, error_code(resp)) == (400, "unprocessable")


# ------------------------------------------------------------------ fuzz: never a 5xx

FUZZ_REPOS = {
    **make_repos(),
    **{p: WebhookRepo(p, p, SECRET, None) for p in ("github", "gitlab", "gitea", "generic")},
}
FUZZ_SINK = FakeSink(FUZZ_REPOS)
FUZZ_CLIENT = make_app(FUZZ_SINK).test_client()
GITLAB_EVENTS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
}


def _event_headers(path: Path) -> dict[str, str]:
    event = path.name.split(".")[0]
    if path.parent.name == "gitlab":
        return {"X-Gitlab-Event": GITLAB_EVENTS.get(event, event)}
    return {"X-GitHub-Event": event, "X-Gitea-Event": event}


# (body, headers naming its event) for every real payload, plus hand-written ones
FIXTURE_CASES = [(p.read_bytes(), _event_headers(p)) for p in sorted(FIXTURES.glob("*/*.json"))]
FIXTURE_CASES += [
    (PR_BODY, {"X-GitHub-Event": "pull_request", "X-Gitea-Event": "pull_request"}),
    (PUSH_BODY, {"X-GitHub-Event": "push", "X-Gitea-Event": "push"}),
    (GITLAB_PUSH, {"X-Gitlab-Event": "Push Hook"}),
]
HEADER_NAMES = [
    "X-GitHub-Event",
    "X-Gitea-Event",
    "X-Gitlab-Event",
    "X-GitHub-Delivery",
    "X-Gitea-Delivery",
    "X-Gitlab-Event-UUID",
    "Idempotency-Key",
    "Content-Type",
    "X-Hub-Signature-256",
    "X-Gitea-Signature",
    "X-Gitlab-Token",
    "X-Forgejo-Event",
    "X-Anything",
]
HEADER_VALUES = st.one_of(
    st.sampled_from(
        [
            "push",
            "pull_request",
            "ping",
            "create",
            "delete",
            "issues",
            "Push Hook",
            "Tag Push Hook",
            "Merge Request Hook",
            "System Hook",
            "application/json",
            "application/x-www-form-urlencoded",
            "sha256=",
            SECRET,
            "",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f")),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A body and its event headers: random bytes, random JSON, or a (mutated) real payload."""
    headers = draw(st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=6))
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=200)), headers
    if choice == 1:
        return json.dumps(draw(JSON)).encode(), headers
    body, event_headers = draw(st.sampled_from(FIXTURE_CASES))
    if draw(st.booleans()):
        headers = {**headers, **event_headers}
    if choice == 2:
        return body, headers
    payload = json.loads(body)  # a real payload with one top-level value replaced
    key = draw(st.sampled_from(sorted(payload) or ["x"]))
    payload[key] = draw(JSON)
    return json.dumps(payload).encode(), headers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    repo=st.sampled_from([*FUZZ_REPOS, "github", "gitlab", "gitea", "missing"]),
    request=requests(),
    signed=st.sampled_from([True, True, True, False]),  # mostly signed: get past auth
)
def test_fuzz_never_5xx(repo: str, request: tuple[bytes, dict[str, str]], signed: bool) -> None:
    body, headers = request
    if signed:
        digest = hub(body)
        headers = {
            **headers,
            "X-Hub-Signature-256": digest,
            "X-Gitea-Signature": digest.removeprefix("sha256="),
            "X-Gitlab-Token": SECRET,
        }
    before = len(FUZZ_SINK.submitted)
    resp = post(FUZZ_CLIENT, repo, body, headers)
    assert resp.status_code < 500
    data = resp.get_json()
    assert isinstance(data, dict)
    if resp.status_code >= 400:
        # 400 only ever comes from the parser, never from the safety-net error handler
        assert error_code(resp) != "unprocessable"
    submitted = len(FUZZ_SINK.submitted) - before
    assert submitted == (1 if data.get("accepted") else 0)
    if submitted:
        event = FUZZ_SINK.submitted[-1][1]
        assert event.kind in KINDS - {"ping", "ignored"}
        assert data["kind"] == event.kind
