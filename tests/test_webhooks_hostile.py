"""Webhooks as the real providers send them, and as an attacker replays them: over a real
socket to the endpoint with the real intake and store (tests/webhook_helpers.IntakeServer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import secrets
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.settings import RepoSettings, RetentionSettings, ServerSettings, Settings
from reconciler.serve.intake import WebhookIntake
from reconciler.storage.store import Store

from .webhook_helpers import CORPUS, IntakeServer, fixture, post

SECRET = "s3cret-webhook"
SIGNING = "whsec_" + base64.b64encode(b"k" * 32).decode()


def make_settings(tmp_path: Path, **server: Any) -> Settings:
    retention = server.pop("retention", RetentionSettings())
    repos = (
        RepoSettings(
            "gh",
            "/nonexistent",
            "github",
            webhook_secret=SECRET,
            repository="Codertocat/Hello-World",
            poll_interval=0,
        ),
        RepoSettings(
            "tea",
            "/nonexistent",
            "gitea",
            webhook_secret=SECRET,
            repository="alice/app",
            poll_interval=0,
        ),
        RepoSettings(
            "lab",
            "/nonexistent",
            "gitlab",
            webhook_secret=SECRET,
            repository="jsmith/example",
            poll_interval=0,
        ),
        RepoSettings(
            "signed",
            "/nonexistent",
            "gitlab",
            webhook_secret=SIGNING,
            repository="jsmith/example",
            poll_interval=0,
        ),
    )
    return Settings(
        state_dir=tmp_path / "state",
        repos=repos,
        server=ServerSettings(**server),
        retention=retention,
    )  # fmt: skip


class Triggers(list[str]):
    fail_next = 0

    def __call__(self, repo: str, why: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("queue unavailable")
        self.append(repo)


def hub(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def github(url: str, event: str, body: bytes, delivery: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    headers["X-Hub-Signature-256"] = hub(body)
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return post(f"{url}/webhooks/gh", body, headers)


def gitea_pr(number: int, action: str = "opened") -> bytes:
    return json.dumps(
        {
            "action": action,
            "number": number,
            "pull_request": {
                "number": number,
                "state": "open",
                "updated_at": "2024-01-02T03:04:05Z",
                "labels": [],
                "head": {"ref": "feature/x", "sha": "a" * 40, "repo": {"full_name": "alice/app"}},
                "base": {"ref": "main", "repo": {"full_name": "alice/app"}},
            },
            "repository": {"full_name": "alice/app"},
        }
    ).encode()


# ------------------------------------------------------------------ Gitea / Forgejo / Gogs


def test_gitea_form_encoded_deliveries_are_verified_against_the_decoded_payload(
    tmp_path: Path,
) -> None:
    triggers = Triggers()
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        for number, name in enumerate(
            ("X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"), start=1
        ):
            payload = gitea_pr(number)
            form = urllib.parse.urlencode({"payload": payload.decode()}).encode()
            signature = hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Gitea-Event": "pull_request",
                name: signature,
            }
            status, body = post(f"{srv.url}/webhooks/tea", form, headers)
            assert (status, body) == (202, {"accepted": True, "kind": "pull_request"}), name
        # a signature of the bytes on the wire is not what Gitea signs
        form = urllib.parse.urlencode({"payload": gitea_pr(9).decode()}).encode()
        wire = hmac.new(SECRET.encode(), form, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Gitea-Event": "pull_request",
            "X-Gitea-Signature": wire,
        }
        status, body = post(f"{srv.url}/webhooks/tea", form, headers)
        assert status == 401 and body["error"]["code"] == "bad_signature"
        assert srv.store.pull_requests("tea").keys() == {1, 2, 3}
    assert triggers == ["tea", "tea", "tea"]


def test_a_gitea_delivery_to_a_github_repo_is_refused_naming_the_setting(tmp_path: Path) -> None:
    payload = gitea_pr(4, "synchronized")
    with IntakeServer(make_settings(tmp_path), Triggers()) as srv:
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "pull_request",
            "X-Gitea-Event": "pull_request",
            "X-Hub-Signature-256": hub(payload),
        }
        status, body = post(f"{srv.url}/webhooks/gh", payload, headers)
    assert status == 400
    assert "provider: gitea" in body["error"]["message"]


# ------------------------------------------------------------------ GitLab


def test_a_gitlab_system_hook_repository_update_queues_a_pass(tmp_path: Path) -> None:
    body = (CORPUS / "gitlab" / "docs" / "system_hook.repository_update.json").read_bytes()
    triggers = Triggers()
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": "System Hook",
            "X-Gitlab-Token": SECRET,
        }
        status, answer = post(f"{srv.url}/webhooks/lab", body, headers)
    assert (status, answer) == (202, {"accepted": True, "kind": "push"})
    assert triggers == ["lab"]


def standard(body: bytes, key: bytes, stamp: int | None = None, wid: str | None = None) -> dict:
    wid = wid or f"msg_{uuid.uuid4().hex}"
    stamp = int(time.time()) if stamp is None else stamp
    mac = hmac.new(key, f"{wid}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "webhook-id": wid,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_gitlab_signing_token_deliveries_are_verified(tmp_path: Path) -> None:
    key = base64.b64decode(SIGNING.removeprefix("whsec_"))
    push = json.loads(fixture("gitlab/push.json"))
    push["project"]["path_with_namespace"] = "jsmith/example"

    def body(n: int) -> bytes:
        return json.dumps({**push, "after": f"{n:040d}"}).encode()

    triggers = Triggers()
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        url = f"{srv.url}/webhooks/signed"
        assert post(url, body(1), standard(body(1), key))[0] == 202
        # several signatures (a key rotation): one valid is enough
        headers = standard(body(2), key)
        headers["webhook-signature"] = "v1,AAAA " + headers["webhook-signature"]
        assert post(url, body(2), headers)[0] == 202
        refused = {
            "tampered": (body(4), standard(body(3), key)),
            "wrong key": (body(5), standard(body(5), b"x" * 32)),
            "an hour old": (body(6), standard(body(6), key, stamp=int(time.time()) - 3600)),
        }
        for what, (data, headers) in refused.items():
            status, answer = post(url, data, headers)
            assert (status, answer["error"]["code"]) == (401, "bad_signature"), what
        headers = standard(body(7), key)
        del headers["webhook-id"]
        status, answer = post(url, body(7), headers)
        assert status == 401 and "webhook-id" in answer["error"]["message"]
        # the signing token sent as a plain X-Gitlab-Token is still that secret
        plain = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": "Push Hook",
            "X-Gitlab-Token": SIGNING,
        }
        assert post(url, body(8), plain)[0] == 202
    assert triggers == ["signed"] * 3


# ------------------------------------------------------------------ large bodies


def _push(size: int) -> bytes:
    doc = {
        "ref": "refs/heads/main",
        "after": "1" * 40,
        "repository": {"full_name": "Codertocat/Hello-World"},
        "commits": [{"message": "x" * 1000} for _ in range(size // 1000)],
    }
    return json.dumps(doc).encode()


def test_a_push_above_the_parse_limit_is_verified_streaming_and_queued_unparsed(
    tmp_path: Path,
) -> None:
    big = _push(6 * 1024 * 1024)  # above the default parse limit of 5 MiB
    triggers = Triggers()
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        status, answer = github(srv.url, "push", big, "big-1")
        assert (status, answer) == (202, {"accepted": True, "kind": "push", "parsed": False})
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-Hub-Signature-256": hub(big[:-1] + b" "),
        }
        status, answer = post(f"{srv.url}/webhooks/gh", big, headers)
        assert (status, answer["error"]["code"]) == (401, "bad_signature")
        assert github(srv.url, "push", big, "big-1") == (200, {"duplicate": True})
        # above 25 MiB: refused from Content-Length, before the body is sent
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        conn.putrequest("POST", "/webhooks/gh")
        conn.putheader("Content-Length", str(26 * 1024 * 1024))
        conn.putheader("X-GitHub-Event", "push")
        conn.putheader("X-Hub-Signature-256", hub(b""))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        conn.close()
    assert triggers == ["gh"]


# ------------------------------------------------------------------ dedupe and replays


def test_an_identical_body_with_a_new_delivery_id_or_none_is_a_duplicate(tmp_path: Path) -> None:
    body = fixture("github/pull_request.opened.json")
    triggers = Triggers()
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        assert github(srv.url, "pull_request", body, "d-1")[0] == 202
        assert github(srv.url, "pull_request", body, "d-2") == (200, {"duplicate": True})
        assert github(srv.url, "pull_request", body, None) == (200, {"duplicate": True})
    assert triggers == ["gh"]


def test_a_503_records_nothing_so_the_providers_retry_is_taken(tmp_path: Path) -> None:
    body = fixture("github/push.with-new-branch.json")
    triggers = Triggers()
    triggers.fail_next = 1
    with IntakeServer(make_settings(tmp_path), triggers) as srv:
        status, answer = github(srv.url, "push", body, "retry-me")
        assert (status, answer["error"]["code"]) == (503, "unavailable")
        assert github(srv.url, "push", body, "retry-me")[0] == 202
        assert github(srv.url, "push", body, "retry-me") == (200, {"duplicate": True})
        srv.store.flush()
    assert triggers == ["gh"]


def test_a_replayed_older_pull_request_event_never_overrides_a_newer_state(
    tmp_path: Path,
) -> None:
    """Captured, correctly signed deliveries sent again with new delivery ids after the PR
    was closed: the body is a duplicate within the window, and past it the payload's own
    `updated_at` (older than the close) says it is stale."""
    retention = RetentionSettings(deliveries_max_age=1.0)
    triggers = Triggers()
    opened = fixture("github/pull_request.opened.json")  # updated_at 15:20:33
    closed = fixture("github/pull_request.closed.json")  # updated_at 15:21:18
    sync = fixture("github/pull_request.synchronize.json")  # 15:20:33, never sent before
    with IntakeServer(make_settings(tmp_path, retention=retention), triggers) as srv:
        assert github(srv.url, "pull_request", opened, "o-1")[0] == 202
        assert github(srv.url, "pull_request", closed, "c-1")[0] == 202
        assert github(srv.url, "pull_request", opened, "o-2") == (200, {"duplicate": True})
        status, answer = github(srv.url, "pull_request", sync, "s-1")
        assert status == 202 and "older than the state already recorded" in answer["ignored"]
        time.sleep(1.2)  # past the dedupe window: only the timestamps stand in the way
        status, answer = github(srv.url, "pull_request", opened, secrets.token_hex(8))
        assert status == 202 and "older" in answer["ignored"]
        assert srv.store.pull_requests("gh")[2].state == "closed"
        srv.store.flush()
        assert Store(srv.store.engine.url.render_as_string()).pull_requests("gh")[2].state == (
            "closed"
        )

        def later(d: dict) -> None:
            d["pull_request"]["updated_at"] = "2019-05-15T15:30:00Z"

        reopened = fixture("github/pull_request.reopened.json", later)
        assert github(srv.url, "pull_request", reopened, "r-1")[0] == 202
        assert srv.store.pull_requests("gh")[2].state == "open"
    assert triggers == ["gh", "gh", "gh"]


def test_a_secret_without_a_repository_filter_is_warned_about_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        state_dir=tmp_path,
        repos=(
            RepoSettings("loose", "/x", "github", webhook_secret=SECRET),
            RepoSettings("tight", "/x", "github", webhook_secret=SECRET, repository="a/b"),
        ),
    )
    with caplog.at_level(logging.WARNING):
        WebhookIntake(settings, Store(settings.database_url), Triggers())
    warned = [r.getMessage() for r in caplog.records if "repository:" in r.getMessage()]
    assert len(warned) == 1 and "[loose]" in warned[0]
