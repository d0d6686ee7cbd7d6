"""PR policy over real git and real HTTP deliveries, on the in-memory runtime (the Docker
path of the same flow is in test_pull_requests_docker.py)."""

from __future__ import annotations

import time
from pathlib import Path

from reconciler.core.desired import PullRequestView, select_pull_requests
from reconciler.core.model import Ref
from reconciler.core.settings import PullRequestSettings, RepoSettings, Settings
from reconciler.runtime.memory import MemoryRuntime

from .conftest import GitRemote, git
from .webhook_helpers import LiveService, fixture, github_post, gitlab_post

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\n"


def runtime() -> MemoryRuntime:
    rt = MemoryRuntime()
    rt.images.add("busybox:1.36")
    return rt


def repo_settings(remote: GitRemote, provider: str = "github", **pr: object) -> RepoSettings:
    return RepoSettings(
        name="shop",
        url=str(remote.bare),
        provider=provider,
        branches=("main",),
        poll_interval=0,
        webhook_secret="tok",
        pull_requests=PullRequestSettings(enabled=True, **pr),  # type: ignore[arg-type]
    )


def test_gitlab_merge_request_opens_a_preview_from_the_mr_ref(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    remote.commit("ms-viewport", {".hoody/app.yaml": SPEC + "env: {X: mr}\n"}, base="main")
    git(remote.work, "push", "-q", "origin", "ms-viewport:refs/merge-requests/1/head")
    cfg = Settings(state_dir=tmp_path / "s", repos=(repo_settings(remote, "gitlab"),))
    rt = runtime()
    with LiveService(cfg, rt) as live:
        status, _ = gitlab_post(
            live.url, "shop", "Merge Request Hook", fixture("gitlab/merge_request.json"), "tok"
        )
        assert status == 202
        live.settle()
        assert set(rt.observe()) == {"main-shop", "pr-1-shop"}
        env = rt.observe()["pr-1-shop"]
        assert env.ref == "refs/merge-requests/1/head"
        status, body = gitlab_post(
            live.url, "shop", "Tag Push Hook", fixture("gitlab/tag_push.json"), "tok"
        )
        assert status == 202 and "ignored" in body
        status, _ = gitlab_post(
            live.url, "shop", "Merge Request Hook", fixture("gitlab/merge_request.json"), "wrong"
        )
        assert status == 401


def test_branch_deletion_event_triggers_a_pass_that_confirms_before_removing(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    remote.commit("master", {".hoody/app.yaml": SPEC}, base="main")
    cfg = Settings(
        state_dir=tmp_path / "s",
        repos=(
            RepoSettings(
                name="shop",
                url=str(remote.bare),
                provider="github",
                branches=("main", "master"),
                poll_interval=0,
                webhook_secret="tok",
            ),
        ),
    )
    rt = runtime()

    def deleted(d: dict) -> None:
        d["ref"], d["deleted"], d["created"] = "refs/heads/master", True, False

    def branch_deleted(d: dict) -> None:
        d["ref"], d["ref_type"] = "master", "branch"

    with LiveService(cfg, rt) as live:
        live.settle()
        assert set(rt.observe()) == {"main-shop", "master-shop"}
        # The event claims master is gone, but git still has it: nothing is removed.
        status, body = github_post(
            live.url, "shop", "push", fixture("github/push.with-new-branch.json", deleted), "tok"
        )
        assert (status, body["kind"]) == (202, "branch_deleted")
        live.settle()
        assert set(rt.observe()) == {"main-shop", "master-shop"}
        remote.delete_branch("master")
        status, body = github_post(
            live.url, "shop", "delete", fixture("github/delete.json", branch_deleted), "tok"
        )
        assert (status, body["kind"]) == (202, "branch_deleted")
        live.settle()
        assert set(rt.observe()) == {"main-shop"}


def test_max_environments_queues_prs_and_expiry_tears_down(
    tmp_path: Path, remote: GitRemote
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    for n in (5, 6, 7):
        remote.commit(f"pr{n}", {".hoody/app.yaml": SPEC}, base="main")
        git(remote.work, "push", "-q", "origin", f"pr{n}:refs/pull/{n}/head")
    cfg = Settings(state_dir=tmp_path / "s", repos=(repo_settings(remote, max_environments=3),))
    rt = runtime()

    def number(n: int):  # type: ignore[no-untyped-def]
        def edit(d: dict) -> None:
            d["number"] = d["pull_request"]["number"] = n

        return edit

    with LiveService(cfg, rt) as live:
        for n in (7, 5, 6):
            github_post(
                live.url,
                "shop",
                "pull_request",
                fixture("github/pull_request.opened.json", number(n)),
                "tok",
            )
        live.settle()
        assert set(rt.observe()) == {"main-shop", "pr-5-shop", "pr-6-shop"}
        queued = [e.message for e in live.store.events(kind="pull_request") if "PR #7" in e.message]
        assert queued and "queued" in queued[0]
        # Closing 5 makes room for 7.
        github_post(
            live.url,
            "shop",
            "pull_request",
            fixture("github/pull_request.closed.json", number(5)),
            "tok",
        )
        live.settle()
        assert set(rt.observe()) == {"main-shop", "pr-6-shop", "pr-7-shop"}


def test_selection_rules_table() -> None:
    policy = PullRequestSettings(enabled=True, drafts=False, approve_label="ok", expire_after=3600)
    refs = [Ref(f"refs/pull/{n}/head", f"c{n}", "pr", n) for n in range(1, 8)]
    views = {
        1: PullRequestView(1, True),
        2: PullRequestView(2, False),
        3: PullRequestView(3, True, draft=True),
        4: PullRequestView(4, True, is_fork=True),
        5: PullRequestView(5, True, is_fork=True, labels=("ok",)),
        6: PullRequestView(6, True),
    }
    now = time.time()
    times = {f"c{n}": now for n in range(1, 8)} | {"c6": now - 7200}
    decisions, held = select_pull_requests(policy, refs, views, times, now)
    got = {d.number: (d.selected, d.secrets, d.message.split(":")[0]) for d in decisions}
    assert got == {
        1: (True, True, "preview"),
        2: (False, False, "closed"),
        3: (False, False, "draft"),
        4: (False, False, "from a fork"),
        5: (True, False, "preview (fork"),
        6: (False, False, "expired"),
    }
    assert [h.ref for h in held] == ["refs/pull/7/head"]  # never heard of: kept as is
    _, all_held = select_pull_requests(policy, refs, None, times, now)
    assert len(all_held) == 7  # the source of truth is down: hold everything
