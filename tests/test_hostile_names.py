"""Name take-overs on the real engine: another repo's branch naming its app like ours, a
branch named like a pull request's environment; and the adoption of environments made
by the previous version (its labels, its name-keyed database)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
import sqlalchemy as sa

from reconciler.core.model import ActionOp
from reconciler.core.naming import container_name, network_name
from reconciler.core.settings import PullRequestSettings, RepoSettings, Settings
from reconciler.gitops.apply import env_labels, service_labels
from reconciler.gitops.controller import Controller
from reconciler.runtime import ContainerSpec
from reconciler.runtime.docker import DockerRuntime
from reconciler.storage.store import PullRequestState, Store

from .conftest import GitRemote, cleanup_repo, git, unique
from .hostile_helpers import controller, events, web_spec

pytestmark = pytest.mark.docker


def _ids(client: docker.DockerClient, repo: str) -> set[str]:
    return {
        c.id for c in client.containers.list(all=True, filters={"label": [f"hoody.repo={repo}"]})
    }


@pytest.fixture
def other_repo(docker_engine: docker.DockerClient):  # type: ignore[no-untyped-def]
    name = unique("t")
    yield name
    cleanup_repo(docker_engine, name)


def test_another_repo_cannot_take_an_environment_name(
    tmp_path: Path,
    remote: GitRemote,
    docker_repo: str,
    other_repo: str,
    docker_engine: docker.DockerClient,
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": web_spec(app)})
    theirs = GitRemote(tmp_path / "theirs")
    theirs.commit("main", {".hoody/app.yaml": web_spec(app)})
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(name=docker_repo, url=str(remote.bare), branches=("main",)),
            RepoSettings(name=other_repo, url=str(theirs.bare), branches=("main",)),
        ),
    )
    ctl = Controller(settings, Store(settings.database_url), DockerRuntime())
    assert ctl.reconcile(docker_repo).ok
    env = f"main-{app}"
    first = _ids(docker_engine, docker_repo)

    result = ctl.reconcile(other_repo)

    assert result.actions == []
    said = events(ctl, other_repo)
    assert (
        f"environment name {env} is already used by repo {docker_repo!r} (refs/heads/main); "
        f"repo {other_repo!r} (refs/heads/main) cannot have it" in said
    )
    assert _ids(docker_engine, other_repo) == set()
    assert _ids(docker_engine, docker_repo) == first
    row = ctl.store.environment(env)
    assert row is not None and (row["repo"], row["status"]) == (docker_repo, "healthy")
    assert ctl.store.environment(env, other_repo) is None

    # A second server on its own database knows nothing of the first: the engine's
    # labels still refuse it, naming both refs, and leave the first environment alone.
    elsewhere = Settings(state_dir=tmp_path / "elsewhere", repos=settings.repos)
    stranger = Controller(elsewhere, Store(elsewhere.database_url), DockerRuntime())
    result = stranger.reconcile(other_repo)
    assert not result.ok
    (error,) = result.errors
    assert f"already used by repo {docker_repo!r} (refs/heads/main)" in error
    assert f"repo {other_repo!r} (refs/heads/main) cannot have it" in error
    assert _ids(docker_engine, other_repo) == set()
    assert _ids(docker_engine, docker_repo) == first
    assert ctl.reconcile(docker_repo).ok
    assert {a.op for a in ctl.reconcile(docker_repo).actions} == {ActionOp.NOOP}


def test_a_branch_cannot_take_a_pull_requests_environment(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    remote.commit("main", {".hoody/app.yaml": web_spec(app)})
    remote.commit("feature", {"x": "1"}, base="main")
    git(remote.work, "push", "-q", "-f", "origin", "feature:refs/pull/2/head")
    ctl = controller(
        tmp_path,
        remote,
        docker_repo,
        repo_kw={"pull_requests": PullRequestSettings(enabled=True)},
    )
    ctl.store.record_pull_request(docker_repo, PullRequestState(2, "open"))
    assert ctl.reconcile(docker_repo).ok
    pr_env = f"pr-2-{app}"
    assert ctl.store.environment(pr_env)["status"] == "healthy"
    first = _ids(docker_engine, docker_repo)

    remote.commit("pr", {".hoody/app.yaml": web_spec(f"2-{app}")}, base="main")
    result = ctl.reconcile(docker_repo)

    assert result.ok, result.errors
    assert {a.env for a in result.actions} == {f"main-{app}", f"feature-{app}", pr_env}
    assert {a.op for a in result.actions} == {ActionOp.NOOP}
    said = events(ctl, docker_repo)
    assert (
        f"environment name {pr_env} is reserved for pull request #2 (refs/pull/2/head): "
        f"refs/heads/pr with app name '2-{app}' cannot have it" in said
    )
    assert _ids(docker_engine, docker_repo) == first
    row = ctl.store.environment(pr_env)
    assert (row["ref"], row["status"]) == ("refs/pull/2/head", "healthy")


# The environments table as the previous version created it: keyed by name alone.
_V1 = sa.MetaData()
sa.Table(
    "environments",
    _V1,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("repo", sa.String(100), nullable=False, index=True),
    sa.Column("ref", sa.String(500), nullable=True),
    sa.Column("kind", sa.String(10), nullable=True),
    sa.Column("commit", sa.String(64), nullable=True),
    sa.Column("status", sa.String(20), nullable=False, default="pending"),
    sa.Column("url", sa.String(500), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)


def test_environments_of_the_previous_version_are_adopted_unchanged(
    tmp_path: Path, remote: GitRemote, docker_repo: str, docker_engine: docker.DockerClient
) -> None:
    app = unique("a")
    sha = remote.commit("main", {".hoody/app.yaml": web_spec(app)})
    env = f"main-{app}"
    # The previous version's database file, with its row for the environment.
    db = tmp_path / "state" / "hoody.db"
    db.parent.mkdir(parents=True)
    old = sa.create_engine(f"sqlite:///{db}")
    _V1.create_all(old)
    with old.begin() as conn:
        conn.execute(
            _V1.tables["environments"]
            .insert()
            .values(
                name=env,
                repo=docker_repo,
                ref="refs/heads/main",
                kind="branch",
                commit=sha,
                status="healthy",
                url="http://127.0.0.1:1",
                updated_at=1.0,
            )
        )
    old.dispose()
    ctl = controller(tmp_path, remote, docker_repo)  # opens (and upgrades) that file
    rows = ctl.store.environments(docker_repo)
    assert [(r["name"], r["status"], r["commit"]) for r in rows] == [(env, "healthy", sha)]
    key = sa.inspect(ctl.store.engine).get_pk_constraint("environments")["constrained_columns"]
    assert sorted(key) == ["name", "repo"]

    # Its objects, as the previous version created them: the same labels, no limits.
    (action,) = ctl.plan(docker_repo).actions
    desired = action.desired
    assert action.op is ActionOp.CREATE and desired is not None
    runtime = DockerRuntime()
    runtime.ensure_network(network_name(env), env_labels(desired))
    svc = desired.services["web"]
    cid = runtime.create_container(
        ContainerSpec(
            name=container_name(env, "web"),
            image=svc.image,
            labels=service_labels(desired, svc),
            network=network_name(env),
            alias="web",
            command=svc.spec.command,
            ports=svc.spec.ports,
        )
    )
    runtime.start_container(cid)

    result = ctl.reconcile(docker_repo)

    assert result.ok, result.errors
    assert [(a.env, a.op) for a in result.actions] == [(env, ActionOp.NOOP)]
    assert _ids(docker_engine, docker_repo) == {cid}
    row = ctl.store.environment(env, docker_repo)
    assert row is not None and row["status"] == "healthy" and row["url"] != "http://127.0.0.1:1"
