"""webhooks.<provider>.verify/parse: real provider payloads normalise into the right GitEvent,
signatures are checked in constant time, and hostile bodies only ever raise MalformedPayload."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhooks import (
    BRANCH_DELETED,
    IGNORED,
    PING,
    PULL_REQUEST,
    PUSH,
    GitEvent,
    MalformedPayload,
    SignatureError,
    generic,
    gitea,
    github,
    gitlab,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "webhooks"  # see tests/fixtures/
SECRET = "It's a Secret to Everybody"
HEAD_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
GITLAB_EVENTS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
}


def fixture(provider: str, name: str) -> bytes:
    path = FIXTURES / provider / name
    return path.read_bytes()


def fixture_names(provider: str) -> list[str]:
    folder = FIXTURES / provider
    return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []


def sig(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def parse_github_fixture(name: str) -> GitEvent:
    event = name.split(".")[0]
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": f"delivery-{name}"}
    return github.parse(headers, fixture("github", name))


def parse_gitlab_fixture(name: str, **extra: str) -> GitEvent:
    headers = {"X-Gitlab-Event": GITLAB_EVENTS[name.removesuffix(".json")], **extra}
    return gitlab.parse(headers, fixture("gitlab", name))


# ------------------------------------------------------------------ every real fixture


def _pr(action: str, state: str, updated_at: str) -> dict[str, Any]:
    return {
        "kind": PULL_REQUEST,
        "repository": "Codertocat/Hello-World",
        "pr_number": 2,
        "pr_state": state,
        "pr_action": action,
        "pr_head_ref": "changes",
        "pr_head_sha": HEAD_SHA,
        "pr_is_fork": False,
        "pr_draft": False,
        "pr_labels": ("bug",),
        "pr_updated_at": updated_at,
    }


GITHUB_EXPECTED: dict[str, dict[str, Any]] = {
    "push.json": {"kind": IGNORED, "ignored_reason": "tag push", "ref": "refs/tags/simple-tag"},
    "push.with-new-branch.json": {
        "kind": PUSH,
        "ref": "refs/heads/master",
        "repository": "Codertocat/Hello-World",
    },
    "pull_request.opened.json": _pr("opened", "open", "2019-05-15T15:20:33Z"),
    "pull_request.closed.json": _pr("closed", "closed", "2019-05-15T15:21:18Z"),
    "pull_request.reopened.json": _pr("reopened", "open", "2019-05-15T15:20:33Z"),
    "pull_request.synchronize.json": _pr("synchronize", "open", "2019-05-15T15:20:33Z"),
    "pull_request.labeled.json": _pr("labeled", "open", "2019-05-15T15:20:35Z"),
    "ping.json": {"kind": PING, "repository": "Octocoders/Hello-World"},
    "create.json": {"kind": IGNORED, "ignored_reason": "tag created", "ref": None},
    "delete.json": {"kind": IGNORED, "ignored_reason": "tag deleted", "ref": None},
}
GITLAB_EXPECTED: dict[str, dict[str, Any]] = {
    "push.json": {"kind": PUSH, "ref": "refs/heads/master", "repository": "mike/diaspora"},
    "tag_push.json": {
        "kind": IGNORED,
        "ignored_reason": "tag push",
        "repository": "jsmith/example",
    },
    "merge_request.json": {
        "kind": PULL_REQUEST,
        "repository": "gitlabhq/gitlab-test",
        "pr_number": 1,
        "pr_state": "open",
        "pr_action": "opened",
        "pr_head_ref": "ms-viewport",
        "pr_is_fork": False,
        "pr_draft": False,
        "pr_labels": ("API",),
        "pr_updated_at": "2013-12-03T17:23:34Z",
    },
}


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_every_fixture_file_has_an_expectation(provider: str) -> None:
    expected = GITHUB_EXPECTED if provider == "github" else GITLAB_EXPECTED
    assert set(fixture_names(provider)) == set(expected)


@pytest.mark.parametrize("name", sorted(GITHUB_EXPECTED))
def test_github_fixture_normalises(name: str) -> None:
    event = parse_github_fixture(name)
    assert event.provider == "github"
    assert event.delivery_id == f"delivery-{name}"
    for field, value in GITHUB_EXPECTED[name].items():
        assert getattr(event, field) == value, field


@pytest.mark.parametrize("name", sorted(GITLAB_EXPECTED))
def test_gitlab_fixture_normalises(name: str) -> None:
    event = parse_gitlab_fixture(name)
    assert event.provider == "gitlab"
    for field, value in GITLAB_EXPECTED[name].items():
        assert getattr(event, field) == value, field


def test_github_push_tag_deletion_is_not_a_branch_deletion() -> None:
    event = parse_github_fixture("push.json")
    assert event.kind == IGNORED and event.branch is None


def test_github_new_branch_push() -> None:
    event = parse_github_fixture("push.with-new-branch.json")
    assert (event.kind, event.ref, event.branch) == (PUSH, "refs/heads/master", "master")


def test_github_branch_create_and_delete() -> None:
    for name, kind in (("create.json", PUSH), ("delete.json", BRANCH_DELETED)):
        payload = json.loads(fixture("github", name))
        payload.update(ref="feature/x", ref_type="branch")
        event = github.parse({"X-GitHub-Event": name[:-5]}, json.dumps(payload).encode())
        assert (event.kind, event.ref) == (kind, "refs/heads/feature/x")


def test_github_branch_push_deletion() -> None:
    payload = json.loads(fixture("github", "push.json"))
    payload["ref"] = "refs/heads/gone"
    event = github.parse({"X-GitHub-Event": "push"}, json.dumps(payload).encode())
    assert (event.kind, event.ref) == (BRANCH_DELETED, "refs/heads/gone")


def test_github_pr_from_fork_draft_and_deleted_head_repo() -> None:
    payload = json.loads(fixture("github", "pull_request.opened.json"))
    payload["pull_request"]["draft"] = True
    payload["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World"
    event = github.parse({"X-GitHub-Event": "pull_request"}, json.dumps(payload).encode())
    assert event.pr_is_fork and event.pr_draft
    payload["pull_request"]["head"]["repo"] = None  # fork deleted
    event = github.parse({"X-GitHub-Event": "pull_request"}, json.dumps(payload).encode())
    assert event.pr_is_fork


def test_github_uninteresting_events_and_actions_are_ignored() -> None:
    body = fixture("github", "pull_request.opened.json")
    event = github.parse({"X-GitHub-Event": "issues"}, body)
    assert event.kind == IGNORED
    assert event.ignored_reason == "event 'issues' changes nothing"
    payload = json.loads(body)
    payload["action"] = "assigned"
    event = github.parse({"X-GitHub-Event": "pull_request"}, json.dumps(payload).encode())
    assert event.kind == IGNORED and "assigned" in (event.ignored_reason or "")


def test_github_form_encoded_body() -> None:
    from urllib.parse import urlencode

    raw = fixture("github", "push.with-new-branch.json")
    body = urlencode({"payload": raw.decode()}).encode()
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded"}
    assert github.parse(headers, body).ref == "refs/heads/master"


# ------------------------------------------------------------------ gitlab specifics


def test_gitlab_merge_request_head_sha_and_delivery_preference() -> None:
    event = parse_gitlab_fixture(
        "merge_request.json", **{"X-Gitlab-Event-UUID": "uuid", "Idempotency-Key": "idem"}
    )
    assert event.delivery_id == "idem"  # stable across retries; the UUID is not per delivery
    assert event.pr_head_sha == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
    event = parse_gitlab_fixture("merge_request.json", **{"X-Gitlab-Event-UUID": "uuid"})
    assert event.delivery_id == "uuid"


@pytest.mark.parametrize(
    ("action", "state", "want_action", "want_state"),
    [
        ("open", "opened", "opened", "open"),
        ("update", "opened", "synchronize", "open"),
        ("close", "closed", "closed", "closed"),
        ("merge", "merged", "closed", "closed"),
        ("reopen", "opened", "reopened", "open"),
    ],
)
def test_gitlab_merge_request_actions(
    action: str, state: str, want_action: str, want_state: str
) -> None:
    payload = json.loads(fixture("gitlab", "merge_request.json"))
    payload["object_attributes"].update(action=action, state=state)
    event = gitlab.parse({"X-Gitlab-Event": "Merge Request Hook"}, json.dumps(payload).encode())
    assert (event.pr_action, event.pr_state) == (want_action, want_state)


def test_gitlab_fork_draft_and_approval() -> None:
    payload = json.loads(fixture("gitlab", "merge_request.json"))
    payload["object_attributes"].update(source_project_id=99, work_in_progress=True)
    headers = {"X-Gitlab-Event": "Merge Request Hook"}
    event = gitlab.parse(headers, json.dumps(payload).encode())
    assert event.pr_is_fork and event.pr_draft
    payload["object_attributes"]["action"] = "approved"
    assert gitlab.parse(headers, json.dumps(payload).encode()).kind == IGNORED


def test_gitlab_branch_deletion_and_system_hook() -> None:
    payload = json.loads(fixture("gitlab", "push.json"))
    payload["after"] = "0" * 40
    body = json.dumps(payload).encode()
    assert gitlab.parse({"X-Gitlab-Event": "Push Hook"}, body).kind == BRANCH_DELETED
    assert gitlab.parse({"X-Gitlab-Event": "System Hook"}, body).kind == BRANCH_DELETED
    event = gitlab.parse({"X-Gitlab-Event": "Note Hook"}, body)
    assert event.kind == IGNORED and event.ignored_reason == "event 'Note Hook' changes nothing"


# ------------------------------------------------------------------ gitea (hand-written)


def gitea_pr(action: str, head_repo: str | None = "alice/app", **pr: Any) -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "state": pr.pop("state", "open"),
            "draft": pr.pop("draft", False),
            "labels": [{"id": 1, "name": "preview"}],
            "updated_at": "2024-01-02T03:04:05Z",
            "head": {
                "ref": "feature/x",
                "sha": "a" * 40,
                "repo": {"full_name": head_repo} if head_repo else None,
            },
            "base": {"ref": "main", "sha": "b" * 40, "repo": {"full_name": "alice/app"}},
            **pr,
        },
        "repository": {"full_name": "alice/app"},
    }


def test_gitea_pull_request_synchronized() -> None:
    body = json.dumps(gitea_pr("synchronized")).encode()
    event = gitea.parse({"X-Gitea-Event": "pull_request", "X-Gitea-Delivery": "g1"}, body)
    assert event == GitEvent(
        provider="gitea",
        kind=PULL_REQUEST,
        repository="alice/app",
        delivery_id="g1",
        pr_number=7,
        pr_state="open",
        pr_action="synchronize",
        pr_head_ref="feature/x",
        pr_head_sha="a" * 40,
        pr_labels=("preview",),
        pr_updated_at="2024-01-02T03:04:05Z",
    )


def test_gitea_labels_fork_and_close() -> None:
    headers = {"X-Gitea-Event": "pull_request"}
    event = gitea.parse(headers, json.dumps(gitea_pr("label_updated", "bob/app")).encode())
    assert (event.pr_action, event.pr_is_fork) == ("labeled", True)
    event = gitea.parse(headers, json.dumps(gitea_pr("closed", None, state="closed")).encode())
    assert (event.pr_action, event.pr_state, event.pr_is_fork) == ("closed", "closed", True)


def test_gitea_push_delete_and_reviews() -> None:
    push = {"ref": "refs/heads/main", "after": "c" * 40, "repository": {"full_name": "alice/app"}}
    event = gitea.parse({"X-Gitea-Event": "push"}, json.dumps(push).encode())
    assert (event.kind, event.ref, event.provider) == (PUSH, "refs/heads/main", "gitea")
    delete = {"ref": "main", "ref_type": "branch", "repository": {"full_name": "alice/app"}}
    event = gitea.parse({"X-Gitea-Event": "delete"}, json.dumps(delete).encode())
    assert (event.kind, event.ref) == (BRANCH_DELETED, "refs/heads/main")
    body = json.dumps(gitea_pr("reviewed")).encode()
    assert gitea.parse({"X-Gitea-Event": "pull_request_approved"}, body).kind == IGNORED


# ------------------------------------------------------------------ generic


def test_generic_parse() -> None:
    assert generic.parse({}, b"").kind == PUSH
    assert generic.parse({}, b"[1, 2]").kind == PUSH
    assert generic.parse({}, b'{"ref": "refs/heads/x"}').ref == "refs/heads/x"
    event = generic.parse({"Idempotency-Key": "k"}, b'{"ref": "refs/tags/v1"}')
    assert (event.kind, event.ignored_reason, event.delivery_id) == (IGNORED, "tag push", "k")
    with pytest.raises(MalformedPayload):
        generic.parse({}, b"{not json")


# ------------------------------------------------------------------ delivery ids, headers


@pytest.mark.parametrize(
    ("module", "headers"),
    [
        (github, {"X-GitHub-Event": "push"}),
        (gitea, {"X-Gitea-Event": "push"}),
        (gitlab, {"X-Gitlab-Event": "Push Hook"}),
        (generic, {}),
    ],
)
def test_idempotency_key_is_a_delivery_id_everywhere(module: Any, headers: dict[str, str]) -> None:
    body = {"ref": "refs/heads/a", "repository": {"full_name": "o/r"}}
    body["project"] = {"path_with_namespace": "o/r"}
    event = module.parse({**headers, "idempotency-key": " abc "}, json.dumps(body).encode())
    assert event.delivery_id == "abc"
    with pytest.raises(MalformedPayload, match="Idempotency-Key"):
        module.parse({**headers, "Idempotency-Key": "x" * 300}, json.dumps(body).encode())


# ------------------------------------------------------------------ malformed input

GH_PR = {"X-GitHub-Event": "pull_request"}


def _mutated_pr(mutate: Callable[[dict[str, Any]], None]) -> bytes:
    payload = json.loads(fixture("github", "pull_request.opened.json"))
    mutate(payload)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("headers", "body", "field"),
    [
        (GH_PR, b"[]", "expected a JSON object, got array"),
        (GH_PR, b"null", "expected a JSON object, got null"),
        (GH_PR, b'"x"', "expected a JSON object, got string"),
        (GH_PR, b"{", "not valid JSON"),
        (GH_PR, b"\xff\xfe\xfa", "not valid JSON"),
        (GH_PR, b"[" * 100_000, "body"),
        ({"X-GitHub-Event": "push"}, b'{"ref": "refs/heads/x"}', "repository.full_name: missing"),
        ({}, b"{}", "X-GitHub-Event header: missing"),
        (
            {"X-GitHub-Event": "push"},
            b'{"ref": 5, "repository": {"full_name": "a/b"}}',
            "ref: expected a string, got number",
        ),
        (
            {"X-GitHub-Event": "push"},
            b'{"ref": "refs/heads/x", "repository": "a/b"}',
            "repository: expected an object, got string",
        ),
    ],
)
def test_github_malformed(headers: dict[str, str], body: bytes, field: str) -> None:
    with pytest.raises(MalformedPayload) as info:
        github.parse(headers, body)
    assert field in info.value.reason


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(number="2"), "number: expected an integer, got string"),
        (lambda p: p.update(number=True), "number: expected an integer, got boolean"),
        (lambda p: p.pop("pull_request"), "pull_request: missing"),
        (lambda p: p["pull_request"]["head"].pop("ref"), "pull_request.head.ref: missing"),
        (lambda p: p["pull_request"].update(labels={}), "pull_request.labels: expected an array"),
        (lambda p: p["pull_request"].update(labels=[{}]), "pull_request.labels[0].name: missing"),
        (lambda p: p["pull_request"].update(state="weird"), "pull_request.state"),
        (lambda p: p["pull_request"].update(draft="yes"), "pull_request.draft"),
        (lambda p: p.update(action=None), "action: missing"),
    ],
)
def test_github_pull_request_malformed(
    mutate: Callable[[dict[str, Any]], None], field: str
) -> None:
    with pytest.raises(MalformedPayload) as info:
        github.parse(GH_PR, _mutated_pr(mutate))
    assert field in info.value.reason


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("object_attributes", "iid"), "1", "object_attributes.iid"),
        (("object_attributes", "state"), "nope", "object_attributes.state"),
        (("object_attributes",), [], "object_attributes: expected an object, got array"),
        (("project",), None, "project.path_with_namespace: missing"),
        (("labels",), [{"title": 3}], "labels[0].title: expected a string"),
    ],
)
def test_gitlab_malformed(path: tuple[str, ...], value: Any, field: str) -> None:
    payload = json.loads(fixture("gitlab", "merge_request.json"))
    node = payload
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(MalformedPayload) as info:
        gitlab.parse({"X-Gitlab-Event": "Merge Request Hook"}, json.dumps(payload).encode())
    assert field in info.value.reason


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
PARSERS: list[tuple[Any, dict[str, str], str, str]] = [
    (github, {"X-GitHub-Event": name.split(".")[0]}, "github", name) for name in GITHUB_EXPECTED
] + [
    (gitlab, {"X-Gitlab-Event": GITLAB_EVENTS[name[:-5]]}, "gitlab", name)
    for name in GITLAB_EXPECTED
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):
            out += _paths(value, (*prefix, index))
    return out


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_fixtures_never_raise_anything_but_malformed(data: st.DataObject) -> None:
    """Replace or delete any value anywhere in a real payload: the parser returns an event
    or raises MalformedPayload; it never lets KeyError/TypeError/AttributeError escape."""
    module, headers, provider, name = data.draw(st.sampled_from(PARSERS))
    path = FIXTURES / provider / name
    payload = json.loads(path.read_bytes())
    mutated = copy.deepcopy(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(_paths(mutated) or [("x",)]))
        node = mutated
        try:
            for key in target[:-1]:
                node = node[key]
            if data.draw(st.booleans()) and isinstance(node, dict):
                node.pop(target[-1], None)
            else:
                node[target[-1]] = data.draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    try:
        event = module.parse(headers, json.dumps(mutated).encode())
    except MalformedPayload as exc:
        assert exc.reason
    else:
        assert isinstance(event, GitEvent)
        assert event.repository is None or isinstance(event.repository, str)
        assert all(isinstance(label, str) for label in event.pr_labels)


# ------------------------------------------------------------------ signatures


BODY = b'{"ref": "refs/heads/main"}'
SIGNED: list[tuple[Any, dict[str, str], dict[str, str]]] = [
    # module, good headers, bad headers
    (
        github,
        {"X-Hub-Signature-256": f"sha256={sig(BODY)}"},
        {"X-Hub-Signature-256": f"sha256={sig(BODY, 'other')}"},
    ),
    (
        generic,
        {"X-Hub-Signature-256": f"sha256={sig(BODY)}"},
        {"X-Hub-Signature-256": f"sha256={sig(BODY + b' ')}"},
    ),
    (gitea, {"X-Gitea-Signature": sig(BODY)}, {"X-Gitea-Signature": sig(BODY, "other")}),
    (gitlab, {"X-Gitlab-Token": SECRET}, {"X-Gitlab-Token": SECRET + "x"}),
]


@pytest.mark.parametrize(("module", "good", "bad"), SIGNED)
def test_signature_good_bad_missing(
    module: Any, good: dict[str, str], bad: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    module.verify(good, BODY, SECRET)
    assert calls, "comparison must go through hmac.compare_digest"
    lowered = {key.lower(): value for key, value in good.items()}
    module.verify(lowered, BODY, SECRET)  # header names are case-insensitive
    with pytest.raises(SignatureError):
        module.verify(bad, BODY, SECRET)
    with pytest.raises(SignatureError, match="missing"):
        module.verify({}, BODY, SECRET)
    with pytest.raises(SignatureError):
        module.verify(good, BODY, "")  # an empty secret never authenticates anything
    non_ascii = {key: value[:-1] + "é" for key, value in good.items()}
    with pytest.raises(SignatureError):
        module.verify(non_ascii, BODY, SECRET)


def test_hub_signature_format() -> None:
    with pytest.raises(SignatureError, match="sha256="):
        github.verify({"X-Hub-Signature-256": sig(BODY)}, BODY, SECRET)
    with pytest.raises(SignatureError):
        github.verify({"X-Hub-Signature": f"sha1={sig(BODY)}"}, BODY, SECRET)
    github.verify({"X-Hub-Signature-256": f"sha256={sig(BODY).upper()}"}, BODY, SECRET)


def test_gitea_accepts_hub_signature_fallback() -> None:
    gitea.verify({"X-Hub-Signature-256": f"sha256={sig(BODY)}"}, BODY, SECRET)
    with pytest.raises(SignatureError):
        gitea.verify({"X-Gitea-Signature": "", "X-Hub-Signature-256": "sha256=00"}, BODY, SECRET)


def test_signature_of_real_fixture() -> None:
    body = fixture("github", "push.with-new-branch.json")
    github.verify({"X-Hub-Signature-256": f"sha256={sig(body)}"}, body, SECRET)
    with pytest.raises(SignatureError):
        github.verify({"X-Hub-Signature-256": f"sha256={sig(body)}"}, body + b"\n", SECRET)
