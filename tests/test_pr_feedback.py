"""PR feedback per provider, checked against a local HTTP server that plays the
provider's REST API and records every call (method, path, body). The API is also the
source of truth for which PRs are open."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.settings import PullRequestSettings, RepoSettings, Settings
from reconciler.runtime.docker import DockerRuntime
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote, git, unique
from .webhook_helpers import LiveService, wait_for

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\n"


class FakeProvider:
    """Just enough of GitHub / Gitea / GitLab: open PRs, comments (notes), statuses."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.open: list[int] = []
        self.calls: list[tuple[str, str, Any]] = []
        self.comments: dict[int, dict[str, Any]] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                outer.calls.append((self.command, self.path, body))
                code, out = outer.route(self.command, self.path.split("?")[0], body)
                self._reply(code, out)

            do_GET = do_POST = do_PATCH = do_PUT = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        prefix = {"github": "", "gitea": "/api/v1", "gitlab": "/api/v4"}[kind]
        self.api_url = f"http://127.0.0.1:{self.server.server_address[1]}{prefix}"

    def pr(self, n: int) -> dict[str, Any]:
        if self.kind == "gitlab":
            return {
                "iid": n,
                "source_branch": f"pr{n}",
                "sha": "0" * 40,
                "draft": False,
                "source_project_id": 1,
                "target_project_id": 1,
                "labels": [],
            }
        repo = {"full_name": "acme/shop"}
        return {
            "number": n,
            "draft": False,
            "title": "t",
            "labels": [],
            "head": {"ref": f"pr{n}", "sha": "0" * 40, "repo": repo},
            "base": {"ref": "main", "repo": repo},
        }

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if re.search(r"/(pulls|merge_requests)$", path) and method == "GET":
            return 200, [self.pr(n) for n in self.open]
        m = re.search(r"/(?:issues|merge_requests)/(\d+)/(?:comments|notes)$", path)
        if m and method == "GET":
            return 200, [c for c in self.comments.values() if c["pr"] == int(m.group(1))]
        if m and method == "POST":
            cid = len(self.comments) + 1
            self.comments[cid] = {"id": cid, "body": body["body"], "pr": int(m.group(1))}
            return 201, self.comments[cid]
        m = re.search(r"/(?:comments|notes)/(\d+)$", path)
        if m and method in ("PATCH", "PUT"):
            self.comments[int(m.group(1))]["body"] = body["body"]
            return 200, self.comments[int(m.group(1))]
        if "/statuses/" in path and method == "POST":
            return 201, {"id": 1}
        return 404, {"message": f"no route {method} {path}"}

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]


@pytest.fixture(params=["github", "gitea", "gitlab"])
def provider(request: pytest.FixtureRequest) -> Iterator[FakeProvider]:
    fake = FakeProvider(request.param)
    yield fake
    fake.server.shutdown()


def test_pr_comment_is_edited_in_place_and_statuses_follow_the_environment(
    tmp_path: Path, remote: GitRemote, provider: FakeProvider
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    head = remote.commit("pr2", {".hoody/app.yaml": SPEC + "env: {X: y}\n"}, base="main")
    pr_ref = "merge-requests" if provider.kind == "gitlab" else "pull"
    git(remote.work, "push", "-q", "origin", f"pr2:refs/{pr_ref}/2/head")
    provider.open = [2]
    repository = "acme/shop"
    cfg = Settings(
        state_dir=tmp_path / "s",
        public_url="http://hoody.example",
        repos=(
            RepoSettings(
                name="shop",
                url=str(remote.bare),
                provider=provider.kind,
                branches=("main",),
                poll_interval=0,
                api_url=provider.api_url,
                api_token="sekrit-api-token",
                repository=repository,
                pull_requests=PullRequestSettings(enabled=True),
            ),
        ),
    )
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    with LiveService(cfg, rt) as live:
        live.settle()
        assert "pr-2-shop" in rt.observe()
        wait_for(
            lambda: any("healthy" in c["body"] for c in provider.comments.values()),
            20,
            "a healthy comment",
        )
        (comment,) = provider.comments.values()
        assert comment["body"].startswith("<!-- hoody-preview -->")
        assert "pr-2-shop" in comment["body"] and head[:12] in comment["body"]

        def statuses_now() -> list[tuple[str, str, Any]]:
            return [c for c in provider.writes() if "/statuses/" in c[1]]

        # The comment and the status are two calls: the status may land just after.
        wait_for(
            lambda: statuses_now() and statuses_now()[-1][2]["state"] == "success",
            20,
            "a success status",
        )
        statuses = statuses_now()
        states = [s[2]["state"] for s in statuses]
        # Updates coalesce per PR, so a quick build may go straight to success.
        assert states[-1] == "success" and set(states) <= {"pending", "running", "success"}
        assert all(s[1].endswith(f"/statuses/{head}") for s in statuses)
        name_key = "name" if provider.kind == "gitlab" else "context"
        assert statuses[-1][2][name_key] == "hoody/preview"
        assert statuses[-1][2]["target_url"] == "http://hoody.example/environments/pr-2-shop"

        # The provider says the PR is closed: the environment goes, the comment says so.
        provider.open = []
        live.service.trigger("shop")
        live.settle()
        assert "pr-2-shop" not in rt.observe()
        wait_for(lambda: "destroyed" in comment["body"], 20, "the final edit")
        posts = [c for c in provider.writes() if re.search(r"/(comments|notes)$", c[1])]
        assert len(posts) == 1, "a second comment was created"
        edits = [c for c in provider.writes() if c[0] in ("PATCH", "PUT")]
        assert edits and all(c[1].endswith(f"/{comment['id']}") for c in edits)
        assert not any("sekrit-api-token" in json.dumps(c) for c in provider.writes())


@pytest.mark.parametrize(("status", "attempts"), [(403, 1), (503, 3)])
def test_feedback_retries_only_what_the_error_says_is_retryable(
    tmp_path: Path, status: int, attempts: int
) -> None:
    """Over real HTTP: a 403 (the token may not comment) is given up at once; a 503 is
    tried again by the feedback worker, `max_attempts` times in all."""
    from reconciler.providers import make_client
    from reconciler.serve.feedback import Feedback

    fake = FakeProvider("github")
    fake.route = lambda method, path, body: (status, {"message": "no"})  # type: ignore[method-assign]
    repo = RepoSettings(
        name="shop",
        url="https://git.example/shop.git",
        provider="github",
        api_url=fake.api_url,
        api_token="t0k3n",
        repository="acme/shop",
    )
    client = make_client("github", fake.api_url, "t0k3n", "acme/shop", retries=0)
    feedback = Feedback(
        Settings(state_dir=tmp_path, repos=(repo,)), lambda _r: client, retry_after=0.01
    )
    feedback.max_attempts = 3
    feedback.start()
    try:
        feedback.pull_request_decided("shop", 7, "a" * 40, "queued: the repo is full", True)
        wait_for(lambda: feedback.errors >= attempts, 10, f"{attempts} failed attempts")
        time.sleep(0.3)  # room for an attempt that should not happen
        assert feedback.errors == attempts
        assert len(fake.calls) == attempts  # each attempt stops at its first call
    finally:
        feedback.stop()
        fake.server.shutdown()


def test_a_queued_pull_request_gets_a_pending_status_and_a_skipped_one_none(
    tmp_path: Path,
) -> None:
    from reconciler.providers import make_client
    from reconciler.serve.feedback import Feedback

    fake = FakeProvider("github")
    repo = RepoSettings(
        name="shop",
        url="https://git.example/shop.git",
        provider="github",
        api_url=fake.api_url,
        api_token="t0k3n",
        repository="acme/shop",
    )
    client = make_client("github", fake.api_url, "t0k3n", "acme/shop")
    feedback = Feedback(Settings(state_dir=tmp_path, repos=(repo,)), lambda _r: client)
    feedback.start()
    try:
        feedback.pull_request_decided("shop", 7, "a" * 40, "queued: the repo is full", True)
        feedback.pull_request_decided("shop", 8, "b" * 40, "no environment: closed", False)
        wait_for(lambda: len(fake.comments) == 2, 10, "two comments")
        wait_for(lambda: any("/statuses/" in c[1] for c in fake.writes()), 10, "a status")
        statuses = [c for c in fake.writes() if "/statuses/" in c[1]]
        assert [(s[1].rsplit("/", 1)[1], s[2]["state"]) for s in statuses] == [
            ("a" * 40, "pending")
        ]
        bodies = {c["pr"]: c["body"] for c in fake.comments.values()}
        assert "queued" in bodies[7] and "skipped" in bodies[8]
    finally:
        feedback.stop()
        fake.server.shutdown()


@pytest.mark.docker
def test_feedback_is_right_per_pull_request_when_they_finish_in_any_order(
    tmp_path: Path, remote: GitRemote, docker_repo: str
) -> None:
    """Two PRs applied at once on the real engine: PR 3 is ready ~6 s after it starts,
    PR 4 at once, so 4 is healthy first. Each PR's comment and statuses name its own
    environment and head commit, end healthy / success, and 4's success comes first."""
    provider = FakeProvider("github")
    app = unique("fb")
    web = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"

    def spec(before: str = "") -> str:
        return (
            f"name: {app}\nservices:\n  web:\n    image: busybox:1.36\n"
            f'    command: ["sh", "-c", \'{before}{web}\']\n    ports: [8080]\n'
            "    healthcheck: {http: /, port: 8080, interval: 1s, start_period: 60s}\n"
        )

    remote.commit("main", {".hoody/app.yaml": spec()})
    heads = {
        3: remote.commit("pr3", {".hoody/app.yaml": spec("sleep 6; ")}, base="main"),
        4: remote.commit("pr4", {".hoody/app.yaml": spec()}, base="main"),
    }
    for n in heads:
        git(remote.work, "push", "-q", "origin", f"pr{n}:refs/pull/{n}/head")
    provider.open = [3, 4]
    cfg = Settings(
        state_dir=tmp_path / "s",
        public_url="http://hoody.example",
        repos=(
            RepoSettings(
                name=docker_repo,
                url=str(remote.bare),
                provider="github",
                branches=("main",),
                poll_interval=0,
                api_url=provider.api_url,
                api_token="sekrit-api-token",
                repository="acme/shop",
                pull_requests=PullRequestSettings(enabled=True),
            ),
        ),
    )
    try:
        with LiveService(cfg, DockerRuntime()) as live:

            def comment(n: int) -> str:
                return next((c["body"] for c in provider.comments.values() if c["pr"] == n), "")

            def successes() -> list[str]:  # head commits, in the order of their success
                return [
                    c[1].rsplit("/", 1)[1]
                    for c in provider.writes()
                    if "/statuses/" in c[1] and c[2]["state"] == "success"
                ]

            wait_for(lambda: len(successes()) == 2, 90, "a success status for each PR")
            assert successes() == [heads[4], heads[3]]  # 4 finished first
            for n, head in heads.items():
                env = f"pr-{n}-{app}"
                wait_for(lambda n=n: "healthy" in comment(n), 20, f"PR {n}'s healthy comment")
                assert env in comment(n) and head[:12] in comment(n)
                other = f"pr-{7 - n}-{app}"
                assert other not in comment(n)
                statuses = [c for c in provider.writes() if c[1].endswith(f"/statuses/{head}")]
                assert statuses[-1][2]["state"] == "success"
                assert statuses[-1][2]["target_url"].endswith(f"/environments/{env}")
                assert live.store.environment(env)["status"] == "healthy"  # type: ignore[index]
            posts = [c for c in provider.writes() if re.search(r"/comments$", c[1])]
            assert sorted(int(re.findall(r"/issues/(\d+)/", c[1])[0]) for c in posts) == [3, 4]
    finally:
        provider.server.shutdown()
