"""Shared fixtures: real git repositories in temp dirs and the real Docker engine.

Everything a test creates in Docker belongs to a repo whose name carries this run's id,
so every object is labelled `hoody.repo=<that name>`; cleanup removes exactly those and
never touches anything else.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from reconciler.core.naming import SHARED_NETWORK

RUN_ID = uuid.uuid4().hex[:6]
_counter = iter(range(1, 10_000))


def unique(prefix: str = "t") -> str:
    """A name unique to this run and call: safe as repo and app name."""
    return f"{prefix}{RUN_ID}{next(_counter)}"


def git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


class GitRemote:
    """A bare 'remote' plus a working clone to commit and push from."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        self.bare.mkdir(parents=True)
        git(self.bare, "init", "--bare", "-q", "-b", "main")
        self.work.mkdir()
        git(self.work, "init", "-q", "-b", "main")
        git(self.work, "remote", "add", "origin", str(self.bare))

    def write(self, files: dict[str, str]) -> None:
        for rel, text in files.items():
            p = self.work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)

    def commit(
        self,
        branch: str,
        files: dict[str, str],
        message: str = "change",
        push: bool = True,
        base: str | None = None,
    ) -> str:
        """Commit `files` on `branch` (created from `base` or the current HEAD) and push."""
        if not self._has_head():
            git(self.work, "checkout", "-q", "-B", branch)
        elif git(self.work, "branch", "--list", branch):
            git(self.work, "checkout", "-q", branch)
        else:
            git(self.work, "checkout", "-q", "-b", branch, *([base] if base else []))
        self.write(files)
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "--allow-empty", "-m", message)
        sha = git(self.work, "rev-parse", "HEAD")
        if push:
            git(self.work, "push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}")
        return sha

    def _has_head(self) -> bool:
        return (
            subprocess.run(
                ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=self.work, capture_output=True
            ).returncode
            == 0
        )

    def delete_branch(self, branch: str) -> None:
        git(self.work, "push", "-q", "origin", f":refs/heads/{branch}")


@pytest.fixture
def remote(tmp_path: Path) -> GitRemote:
    return GitRemote(tmp_path / "git")


def docker_client():  # type: ignore[no-untyped-def]
    import docker

    return docker.from_env()


@pytest.fixture(scope="session")
def docker_engine():  # type: ignore[no-untyped-def]
    try:
        client = docker_client()
        client.ping()
        client.images.get("busybox:1.36")
    except Exception as e:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"Docker engine with busybox:1.36 is required in CI: {e}")
        pytest.skip(f"no Docker engine with busybox:1.36 (run scripts/setup-docker): {e}")
    shared_before = bool(client.networks.list(names=[SHARED_NETWORK]))
    yield client
    # The network single-service environments share: removed only if this run made it
    # (and nothing of someone else's is on it).
    if not shared_before:
        for n in client.networks.list(names=[SHARED_NETWORK]):
            with contextlib.suppress(Exception):
                n.remove()


def cleanup_repo(client, repo: str) -> None:  # type: ignore[no-untyped-def]
    """Remove exactly what hoody created for `repo` (a name carrying this run's id)."""
    label = {"label": [f"hoody.repo={repo}"]}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for v in client.volumes.list(filters=label):
        v.remove(force=True)
    for img in client.images.list(filters=label):
        # shared layers may still be in use by another test's image
        with contextlib.suppress(Exception):
            client.images.remove(img.id, force=True)


@pytest.fixture
def docker_repo(docker_engine) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = unique("t")
    yield name
    cleanup_repo(docker_engine, name)


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine]:
    """The PostgreSQL server of `scripts/setup-postgres` (URL in HOODY_TEST_POSTGRES)."""
    url = os.environ.get("HOODY_TEST_POSTGRES")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("HOODY_TEST_POSTGRES is required in CI (scripts/test sets it)")
        pytest.skip("no PostgreSQL server (scripts/setup-postgres prints HOODY_TEST_POSTGRES)")
    try:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as e:  # noqa: BLE001
        pytest.fail(f"HOODY_TEST_POSTGRES={url} is set but not reachable: {e}")
    yield engine
    engine.dispose()


def close_stores(opened: list[Any]) -> None:
    while opened:
        with contextlib.suppress(Exception):
            opened.pop().close()


@pytest.fixture(autouse=True)
def _stores_closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every Store opened by a test or its function-scoped fixtures is closed when the
    test ends: its writer would otherwise go on with its maintenance against a database
    that is gone (a tmp_path removed, a PostgreSQL database dropped) and log about it.
    Stores of module- and session-scoped fixtures are made before this one, so they are
    not tracked and stay open for the tests that share them."""
    from reconciler.storage.store import Store

    opened: list[Store] = []
    init = Store.__init__

    def tracked(self: Store, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(Store, "__init__", tracked)
    yield opened
    close_stores(opened)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database of its own that
    is dropped afterwards (named after this run, so only ours are ever dropped)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    name = f"hoody_t_{RUN_ID}_{next(_counter)}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    opened = request.getfixturevalue("_stores_closed")
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        close_stores(opened)  # the test's stores are closed before their database goes
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
