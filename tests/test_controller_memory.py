"""Controller logic over real git and the in-memory runtime (fast; the same behaviours
are exercised on the real engine in test_reconcile_docker.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from reconciler.core.errors import RuntimeUnavailable
from reconciler.core.model import ActionOp
from reconciler.core.settings import DatabaseSettings, RepoSettings, Settings
from reconciler.gitops.controller import Controller
from reconciler.runtime.memory import MemoryRuntime
from reconciler.storage.store import Store

from .conftest import GitRemote, git

SPEC = "name: shop\nimage: busybox:1.36\nports: [8080]\nhealthcheck: {http: /}\n"


def make(
    tmp_path: Path, remote: GitRemote, database_url: str, **kw: object
) -> tuple[Controller, MemoryRuntime]:
    runtime = MemoryRuntime()
    runtime.images.add("busybox:1.36")
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name="shop", url=str(remote.bare), **kw),),  # type: ignore[arg-type]
        # every test here runs on SQLite and on PostgreSQL
        database=DatabaseSettings(url=database_url),
    )
    return Controller(settings, Store(settings.database_url), runtime), runtime


def ops(result) -> dict[str, ActionOp]:  # type: ignore[no-untyped-def]
    return {a.env: a.op for a in result.actions}


def test_mass_prune_is_refused_until_allowed(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    for b in ("main", "f/a", "f/b", "f/c"):
        remote.commit(b, {".hoody/app.yaml": SPEC}, base="main" if b != "main" else None)
    ctl, runtime = make(tmp_path, remote, database_url)
    assert ctl.reconcile("shop").ok
    assert len(runtime.observe()) == 4
    for b in ("f/a", "f/b", "f/c"):
        remote.delete_branch(b)
    result = ctl.reconcile("shop")
    assert ActionOp.REMOVE not in ops(result).values()
    assert len(runtime.observe()) == 4
    assert any("would remove 3 of 4" in e.message for e in ctl.store.events(kind="kept"))
    result = ctl.reconcile("shop", allow_mass_prune=True)
    assert sorted(a.env for a in result.actions if a.op is ActionOp.REMOVE) == [
        "f-a-shop",
        "f-b-shop",
        "f-c-shop",
    ]
    assert list(runtime.observe()) == ["main-shop"]


def test_empty_ref_listing_never_prunes(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    ctl, runtime = make(tmp_path, remote, database_url)
    assert ctl.reconcile("shop").ok
    git(remote.bare, "update-ref", "-d", "refs/heads/main")  # the remote now has no branch
    result = ctl.reconcile("shop")
    assert ops(result) == {"main-shop": ActionOp.NOOP}
    assert "empty" in result.actions[0].reason
    assert list(runtime.observe()) == ["main-shop"]


def test_branch_without_spec_gets_nothing_and_one_no_longer_selected_goes(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    remote.commit("feature/x", {"README": "x"}, base="main")
    remote.commit("feature/y", {"README": "y"}, base="main")
    git(remote.work, "rm", "-q", ".hoody/app.yaml")
    remote.commit("feature/y", {})
    remote.commit("other", {"README": "o"}, base="main")
    ctl, runtime = make(tmp_path, remote, database_url, branches=("main", "feature/*"))
    result = ctl.reconcile("shop")
    assert ops(result) == {"main-shop": ActionOp.CREATE, "feature-x-shop": ActionOp.CREATE}
    assert not ctl.store.events(kind="spec_invalid")  # no spec, no environment, no noise

    narrower = Controller(
        replace(ctl.settings, repos=(replace(ctl.settings.repos[0], branches=("main",)),)),
        ctl.store,
        runtime,
    )
    result = narrower.reconcile("shop")
    assert ops(result) == {"main-shop": ActionOp.NOOP, "feature-x-shop": ActionOp.REMOVE}
    assert list(runtime.observe()) == ["main-shop"]


def test_missing_spec_at_a_new_commit_keeps_the_environment(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    ctl, _runtime = make(tmp_path, remote, database_url)
    assert ctl.reconcile("shop").ok
    git(remote.work, "rm", "-q", ".hoody/app.yaml")
    remote.commit("main", {})
    result = ctl.reconcile("shop")
    assert ops(result) == {"main-shop": ActionOp.NOOP}
    assert "not found" in result.actions[0].reason
    assert ctl.store.environment("main-shop")["status"] == "degraded"


def test_unreachable_runtime_mid_pass_removes_nothing_and_requeues(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    ctl, runtime = make(tmp_path, remote, database_url)
    assert ctl.reconcile("shop").ok
    runtime.unavailable = True
    result = ctl.reconcile("shop")
    assert result.errors and result.retry_after == RuntimeUnavailable.retry_after
    runtime.unavailable = False
    assert list(runtime.observe()) == ["main-shop"]


def test_engine_lost_during_an_apply_is_retried_not_remembered_as_failed(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    class Flaky(MemoryRuntime):
        lost = True

        def create_container(self, spec):  # type: ignore[no-untyped-def]
            if self.lost:
                raise RuntimeUnavailable("docker engine unavailable during create container")
            return super().create_container(spec)

    remote.commit("main", {".hoody/app.yaml": SPEC})
    runtime = Flaky()
    runtime.images.add("busybox:1.36")
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(RepoSettings(name="shop", url=str(remote.bare)),),
        database=DatabaseSettings(url=database_url),
    )
    ctl = Controller(settings, Store(settings.database_url), runtime)
    result = ctl.reconcile("shop")
    assert result.errors and result.retry_after == RuntimeUnavailable.retry_after
    assert ctl.store.environment("main-shop")["status"] != "failed"
    runtime.lost = False
    assert ctl.reconcile("shop").ok  # the same version is applied again, not "waiting"
    assert ctl.store.environment("main-shop")["status"] == "healthy"


def test_a_branch_whose_dockerfile_is_missing_is_reported_even_without_an_environment(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    spec = "name: shop\nbuild: {context: app}\nports: [8080]\n"
    remote.commit("main", {".hoody/app.yaml": spec, "app/README": "no Dockerfile here"})
    ctl, _runtime = make(tmp_path, remote, database_url)
    result = ctl.reconcile("shop")
    assert result.actions == []
    events = ctl.store.events(kind="spec_invalid")
    assert len(events) == 1 and "app/Dockerfile not found at" in events[0].message


def test_failed_version_is_not_retried_until_a_new_commit(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    ctl, runtime = make(tmp_path, remote, database_url)
    runtime.unhealthy_images.add("busybox:1.36")
    ctl.applier.clock = iter(range(0, 10_000, 100)).__next__  # type: ignore[assignment]
    ctl.applier.sleep = lambda _s: None
    first = ctl.reconcile("shop")
    assert first.errors
    creates = runtime.calls.count("create")
    again = ctl.reconcile("shop")
    assert runtime.calls.count("create") == creates  # not retried
    assert not again.errors
    assert ctl.store.environment("main-shop")["status"] == "failed"
    remote.commit("main", {".hoody/app.yaml": SPEC.replace("8080", "8081")})
    runtime.unhealthy_images.clear()
    assert ctl.reconcile("shop").ok


def test_events_are_recorded_once_per_change(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    remote.commit(
        "feature/bad",
        {".hoody/app.yaml": "name: shop\nimage: busybox:1.36\nports: [99999]\n"},
        base="main",
    )
    ctl, _ = make(tmp_path, remote, database_url)
    for _ in range(3):
        ctl.reconcile("shop")
    assert len(ctl.store.events(kind="spec_invalid")) == 1


def test_a_changed_secret_redeploys_and_the_same_spec_never_does(
    tmp_path: Path, remote: GitRemote, database_url: str
) -> None:
    remote.commit("main", {".hoody/app.yaml": SPEC})
    ctl, runtime = make(tmp_path, remote, database_url, env={"TOKEN": "one"})
    assert ctl.reconcile("shop").ok
    label = runtime.observe()["main-shop"].containers[0].spec_hash
    assert "one" not in label  # keyed hash: the label reveals nothing
    # A new process with the same state_dir computes the same hash: nothing to do.
    again = Controller(ctl.settings, ctl.store, runtime)
    assert ops(again.reconcile("shop")) == {"main-shop": ActionOp.NOOP}
    rotated = Controller(
        replace(ctl.settings, repos=(replace(ctl.settings.repos[0], env={"TOKEN": "two"}),)),
        ctl.store,
        runtime,
    )
    assert ops(rotated.reconcile("shop")) == {"main-shop": ActionOp.UPDATE}
    (container,) = runtime.observe()["main-shop"].containers
    assert runtime.containers[container.id].spec.env["TOKEN"] == "two"
