"""A pull request's export names the repo's env only when the pull request is known not to
come from a fork, as it runs: real git (a pushed pull ref), the real store, the server's
own lookup (`export_source`) and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from exporters import FORMATS, render
from reconciler.core.settings import PullRequestSettings, RepoSettings, Settings
from reconciler.gitops.exporting import export_source
from reconciler.gitops.sources import SourceReader
from reconciler.storage.store import PullRequestState, Store

from .conftest import GitRemote, git

SPEC = """
name: shop
services:
  web:
    image: busybox:1.36
    command: ["httpd", "-f", "-p", "8080"]
    env: {GREETING: hello}
    ports: [8080]
"""
SECRET = "fork-export-secret-7c1a"
REPO_ENV = {"DB_URL": SECRET, "STRIPE_KEY": "sk-" + SECRET}


def setup(tmp_path: Path, remote: GitRemote) -> tuple[Settings, Store, SourceReader]:
    remote.commit("main", {".hoody/app.yaml": SPEC, ".hoody/crontab": "0 3 * * * echo hi\n"})
    for number in (7, 8, 9):
        sha = remote.commit(f"pr{number}", {"note.txt": str(number)}, base="main", push=False)
        git(remote.work, "push", "-q", "origin", f"{sha}:refs/pull/{number}/head")
    settings = Settings(
        state_dir=tmp_path / "state",
        repos=(
            RepoSettings(
                name="shop",
                url=str(remote.bare),
                poll_interval=0,
                env=REPO_ENV,
                pull_requests=PullRequestSettings(enabled=True, forks=True),
            ),
        ),
    )
    settings.state_dir.mkdir(parents=True)
    store = Store(settings.database_url)
    sources = SourceReader(settings, store, b"k" * 32)
    sources.mirror("shop").fetch(pull_requests=True)
    for number, is_fork in ((7, True), (8, False)):
        store.record_pull_request(
            "shop", PullRequestState(number, "open", "opened", f"pr{number}", is_fork)
        )
    for number in (7, 8, 9):
        sha = git(remote.bare, "rev-parse", f"refs/pull/{number}/head")
        store.set_status(
            f"pr-{number}-shop", "shop", "healthy", ref=f"refs/pull/{number}/head", commit=sha
        )
    return settings, store, sources


def all_text(source: object) -> str:
    results = [render(fmt, source) for fmt in FORMATS]  # type: ignore[arg-type]
    return "\n".join(t for r in results for t in [*r.files.values(), *r.warnings])


def test_a_fork_export_carries_none_of_the_repos_env(tmp_path: Path, remote: GitRemote) -> None:
    _, store, sources = setup(tmp_path, remote)
    fork = export_source(store, sources, "pr-7-shop")
    assert fork is not None and fork.secret_env == {}
    text = all_text(fork)
    for name in REPO_ENV:
        assert name not in text
    assert SECRET not in text and "GREETING" in text  # the branch's own env stays
    assert "secret: from the server's hoody.yaml" not in text
    assert "pull request #7 comes from a fork" in text

    same_repo = export_source(store, sources, "pr-8-shop")
    assert same_repo is not None and set(same_repo.secret_env) == set(REPO_ENV)
    text = all_text(same_repo)
    assert "DB_URL" in text and "STRIPE_KEY" in text and SECRET not in text

    unknown = export_source(store, sources, "pr-9-shop")  # no webhook ever said
    assert unknown is not None and unknown.secret_env == {}
    text = all_text(unknown)
    assert "DB_URL" not in text and "pull request #9: exported without" in text


def test_the_cli_exports_a_fork_without_the_repos_env(tmp_path: Path, remote: GitRemote) -> None:
    settings, _, _ = setup(tmp_path, remote)
    config = tmp_path / "hoody.yaml"
    config.write_text(
        f"state_dir: {settings.state_dir}\nrepos:\n  - name: shop\n    url: {remote.bare}\n"
        f"    env: {{DB_URL: '{SECRET}', STRIPE_KEY: 'sk-{SECRET}'}}\n"
        "    pull_requests: {enabled: true, forks: true}\n"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler.cli.main",
            "--config",
            str(config),
            "export",
            "kubernetes",
            "--env",
            "pr-7-shop",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "secret.yaml" in out.stdout and "GREETING" in out.stdout
    assert "DB_URL" not in out.stdout + out.stderr and SECRET not in out.stdout + out.stderr
    assert "warning: pull request #7 comes from a fork" in out.stderr
