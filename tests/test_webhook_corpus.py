"""Every payload of the real provider corpus (tests/fixtures/webhook_corpus/, copied from
the projects named in its README), signed as its provider signs it and sent with the
headers its provider sends, over a real socket to the webhook endpoint with the real
intake and store: no 5xx, and the right classification for each.

The expected classification is read off the payload itself by the rules each provider
documents (which header event, which ref, which action), not by calling the parser.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from reconciler.core.settings import RepoSettings, ServerSettings, Settings
from reconciler.http.server import make_server
from reconciler.serve.intake import WebhookIntake
from reconciler.storage.store import Store
from webhooks import create_blueprint

from .webhook_helpers import free_port

CORPUS = Path(__file__).resolve().parent / "fixtures" / "webhook_corpus"
SECRET = "corpus-secret"
ZERO = "0" * 40

GITHUB_PR_ACTIONS = {
    "opened",
    "synchronize",
    "closed",
    "reopened",
    "edited",
    "labeled",
    "unlabeled",
    "ready_for_review",
    "converted_to_draft",
}
GITEA_PR_ACTIONS = {
    "opened",
    "synchronized",
    "synchronize",
    "closed",
    "reopened",
    "edited",
    "label_updated",
    "label_cleared",
}
GITLAB_MR_ACTIONS = {"open", "update", "close", "merge", "reopen"}
GO_SCM_GITHUB = {  # drone/go-scm file name prefix -> X-GitHub-Event
    "branch_create": "create",
    "branch_delete": "delete",
    "tag_create": "create",
    "tag_delete": "delete",
    "check_run": "check_run",
    "comment": "issue_comment",
    "deployment": "deployment",
    "merge_group": "merge_group",
    "pipeline_hook": "workflow_run",
    "pr_review": "pull_request_review",
    "pr_": "pull_request",
    "push": "push",
    "release": "release",
    "status": "status",
}
GO_SCM_GITEA = {
    "branch_create": "create",
    "branch_delete": "delete",
    "tag_create": "create",
    "tag_delete": "delete",
    "issue_comment": "issue_comment",
    "issues": "issues",
    "pull_request_comment": "issue_comment",  # Gitea sends PR comments as issue comments
    "pull_request": "pull_request",
    "push": "push",
}
GO_PLAYGROUND_GITEA = {  # Gitea's coarse X-Gitea-Event for each file
    "create-event": "create",
    "delete-event": "delete",
    "fork-event": "fork",
    "issue-comment-event": "issue_comment",
    "issue-": "issues",
    "issues-event": "issues",
    "pull-request-comment-event": "issue_comment",
    "pull-request-review-event": "pull_request_approved",
    "pull-request-": "pull_request",
    "push-event": "push",
    "release-event": "release",
    "repository-event": "repository",
}
GITLAB_KINDS = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
    "note": "Note Hook",
    "issue": "Issue Hook",
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "deployment": "Deployment Hook",
    "release": "Release Hook",
    "wiki_page": "Wiki Page Hook",
    "feature_flag": "Feature Flag Hook",
    "access_token": "Resource Access Token Hook",
}


def _by_prefix(table: dict[str, str], name: str) -> str:
    for prefix, event in table.items():  # the more specific prefixes come first
        if name.startswith(prefix):
            return event
    raise AssertionError(f"no header mapping for {name}")


def _gitlab_event(path: Path, data: dict[str, Any]) -> str:
    if path.name == "member.json":
        return "Member Hook"
    if path.name == "subgroup.json":
        return "Subgroup Hook"
    kind = data.get("object_kind")
    if path.name.startswith("system") or kind is None:
        return "System Hook"
    return GITLAB_KINDS[kind]


def _push_kind(ref: str, deleted: bool) -> str:
    if not ref.startswith("refs/heads/"):
        return "ignored"
    return "branch_deleted" if deleted else "push"


def expectation(provider: str, event: str, data: dict[str, Any], path: Path) -> tuple[int, str]:
    """(status, kind) the provider's rules say this delivery is."""
    if provider == "bitbucket":
        return 400, "malformed"  # not a provider we speak: refused, named, never a 5xx
    if provider == "gitlab":
        if path.name == "group_merge_request.json":
            return 400, "malformed"  # damaged upstream (keys end in spaces)
        kind = data.get("object_kind") or data.get("event_name")
        if event in ("Push Hook", "System Hook") and kind == "push":
            return 202, _push_kind(data["ref"], data.get("after") == ZERO)
        if kind == "repository_update":
            return 202, "push"
        if event in ("Merge Request Hook", "System Hook") and kind == "merge_request":
            action = data["object_attributes"].get("action")
            return (
                (202, "pull_request") if action in (None, *GITLAB_MR_ACTIONS) else (202, "ignored")
            )
        return 202, "ignored"
    if event == "ping":
        return 200, "ping"
    if event == "push":
        deleted = bool(data.get("deleted")) or set(data.get("after") or "x") == {"0"}
        return 202, _push_kind(data["ref"], deleted)
    if event in ("create", "delete"):
        if data.get("ref_type") != "branch":
            return 202, "ignored"
        return 202, "push" if event == "create" else "branch_deleted"
    if event == "pull_request":
        actions = GITHUB_PR_ACTIONS if provider == "github" else GITEA_PR_ACTIONS
        return (202, "pull_request") if data.get("action") in actions else (202, "ignored")
    return 202, "ignored"


def corpus() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(CORPUS.rglob("*.json")):
        out.append((path.relative_to(CORPUS).parts[0], path))
    return out


def request_for(provider: str, path: Path, body: bytes) -> tuple[str, dict[str, str]]:
    data = json.loads(body)
    headers = {"Content-Type": "application/json", "X-Delivery-Test": path.name}
    if provider == "github":
        event = path.parent.name if path.parent.parent.name == "octokit" else None
        event = event or _by_prefix(GO_SCM_GITHUB, path.name)
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers |= {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}"}
    elif provider == "gitea":
        table = GO_SCM_GITEA if path.parent.name == "go-scm" else GO_PLAYGROUND_GITEA
        event = _by_prefix(table, path.name)
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers |= {"X-Gitea-Event": event, "X-Gitea-Signature": digest}
    elif provider == "gitlab":
        event = _gitlab_event(path, data)
        headers |= {"X-Gitlab-Event": event, "X-Gitlab-Token": SECRET}
    else:  # bitbucket, sent to a github-configured repo as Bitbucket sends it
        event = "repo:push" if path.name == "push.json" else "pullrequest:created"
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers |= {"X-Event-Key": event, "X-Hub-Signature-256": f"sha256={digest}"}
    return event, headers


def repo_name(i: int) -> str:
    return f"c{i}"


def own_repository(provider: str, path: Path) -> str | None:
    """The repository the payload names, as `repository:` would be configured for it."""
    data = json.loads(path.read_bytes())
    if provider == "gitlab":
        project = data.get("project")
        return project.get("path_with_namespace") if isinstance(project, dict) else None
    repository = data.get("repository")
    return repository.get("full_name") if isinstance(repository, dict) else None


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, list[Any]]]:
    """The webhook blueprint with the real intake and store, under waitress."""
    files = corpus()
    providers = {"bitbucket": "github"}
    repos = tuple(
        RepoSettings(
            name=repo_name(i),
            url="/nonexistent",
            provider=providers.get(p, p),
            webhook_secret=SECRET,
            repository=own_repository(p, path),
            poll_interval=0,
        )
        for i, (p, path) in enumerate(files)
    )
    state = tmp_path_factory.mktemp("corpus")
    settings = Settings(state_dir=state, repos=repos)
    store = Store(settings.database_url)
    triggered: list[Any] = []
    app = Flask("corpus")
    app.register_blueprint(
        create_blueprint(WebhookIntake(settings, store, lambda r, why: triggered.append(r)))
    )
    port = free_port()
    server = make_server(app, ServerSettings(), host="127.0.0.1", port=port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield port, triggered
    finally:
        server.close()
        thread.join(5)


def test_the_corpus_is_all_there() -> None:
    files = corpus()
    assert len(files) >= 430
    assert {p for p, _ in files} == {"bitbucket", "gitea", "github", "gitlab"}


def test_every_corpus_payload_is_answered_and_classified(endpoint: tuple[int, list[Any]]) -> None:
    port, triggered = endpoint
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    wrong: list[str] = []
    counts: dict[str, int] = {}
    for i, (provider, path) in enumerate(corpus()):
        body = path.read_bytes()
        event, headers = request_for(provider, path, body)
        status, kind = expectation(provider, event, json.loads(body), path)
        conn.request("POST", f"/webhooks/{repo_name(i)}", body=body, headers=headers)
        resp = conn.getresponse()
        answer = json.loads(resp.read() or b"null")
        got_kind = (
            "ping"
            if answer == {"pong": True}
            else answer.get("kind")
            if answer.get("accepted")
            else "ignored"
            if "ignored" in answer
            else answer.get("error", {}).get("code")
        )
        counts[got_kind] = counts.get(got_kind, 0) + 1
        if resp.status >= 500 or (resp.status, got_kind) != (status, kind):
            wrong.append(f"{path.relative_to(CORPUS)} [{event}]: {resp.status} {answer}")
    conn.close()
    assert not wrong, "\n".join(wrong)
    # every accepted delivery queued its repository's pass, once
    assert len(triggered) == sum(
        counts.get(k, 0) for k in ("push", "branch_deleted", "pull_request")
    )
    assert counts["pull_request"] >= 40 and counts["push"] >= 15 and counts["ignored"] >= 250
