"""Everything a pass reads before it can decide: the mirror's refs, what `.hoody/` holds
at each new commit, and which pull requests are open. Produces a `Snapshot`; decides
nothing beyond what `desired.py` (pure) is asked.

Files are read once per (repo, commit) and desired environments are cached per (repo,
ref, commit), so a no-op pass costs a fetch and a ref listing.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.core import desired as desired_mod
from reconciler.core.desired import DesiredState, PrDecision, PullRequestView, RefSource
from reconciler.core.dockerfile import check_dockerfile
from reconciler.core.errors import GitError, ReconcilerError, SpecError
from reconciler.core.images import refusal
from reconciler.core.limits import spec_problems, too_large
from reconciler.core.model import CRONTAB_FILE, SPEC_FILE, AppSpec, DesiredEnvironment, Ref
from reconciler.core.settings import RepoSettings, Settings
from reconciler.core.spec import parse_app_spec
from reconciler.gitops.git import Mirror
from reconciler.storage.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommitFiles:
    spec: AppSpec | None
    error: str | None
    crontab: str | None
    contexts: dict[str, str]
    committed_at: float
    missing: bool = False  # no spec file at this commit
    bases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    crontab_error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    state: DesiredState
    fetch_error: GitError | None = None  # the pass goes on from the last fetched refs
    pr_decisions: list[PrDecision] = field(default_factory=list)
    pr_error: ReconcilerError | None = None  # listing open PRs failed: every PR is held


def load_hash_key(store: Store, state_dir: Path) -> bytes:
    """The key of spec hashes (labels never expose secrets), kept in the database so that
    every replica hashes alike; a key an older version kept in `state_dir/hash.key` is
    taken over, so an upgrade redeploys nothing."""
    path = state_dir / "hash.key"
    return store.hash_key(path.read_bytes() if path.exists() else None)


class SourceReader:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        key: bytes,
        provider_client: Callable[[RepoSettings], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.key = key
        self.clock = clock
        self._provider_client = provider_client
        self._mirrors: dict[str, Mirror] = {}
        self._files: dict[tuple[str, str], CommitFiles] = {}
        self._desired: dict[tuple[str, str, str], DesiredEnvironment] = {}
        self._lock = threading.Lock()

    def repo(self, name: str) -> RepoSettings:
        repo = self.settings.repo(name)
        if repo is None:
            raise ReconcilerError(f"unknown repo {name!r}")
        return repo

    def mirror(self, name: str) -> Mirror:
        with self._lock:
            if name not in self._mirrors:
                repo = self.repo(name)
                path = self.settings.state_dir / "git" / f"{name}.git"
                self._mirrors[name] = Mirror(repo.url, path, repo.provider)
            return self._mirrors[name]

    # -- commits ---------------------------------------------------------------------

    def commit_files(self, repo: RepoSettings, mirror: Mirror, commit: str) -> CommitFiles:
        """What .hoody/ holds at a commit; read once per commit, ever."""
        key = (repo.name, commit)
        cached = self._files.get(key)
        if cached is None:
            cached = self._files[key] = self._read(repo, mirror, commit)
        return cached

    def _read(self, repo: RepoSettings, mirror: Mirror, commit: str) -> CommitFiles:
        when = mirror.commit_time(commit)
        limits = self.settings.limits
        text, size = mirror.read_limited(commit, SPEC_FILE, limits.max_spec_bytes)
        if text is None:
            error = f"{SPEC_FILE}: not found at {commit[:12]}"
            return CommitFiles(None, error, None, {}, when, missing=True)
        if size > limits.max_spec_bytes:
            error = str(too_large(SPEC_FILE, size, text, limits, "max_spec_bytes"))
            return CommitFiles(None, error, None, {}, when)
        try:
            spec = parse_app_spec(text, SPEC_FILE, default_name=repo.name)
        except SpecError as e:
            return CommitFiles(None, str(e), None, {}, when)
        problems: list[SpecError] = spec_problems(spec, limits, SPEC_FILE)
        allow = self.settings.images.allow
        contexts: dict[str, str] = {}
        bases: dict[str, tuple[str, ...]] = {}
        errors: list[str] = []
        for svc in spec.services.values():
            if svc.image is not None and (why := refusal(svc.image, allow)):
                problems.append(SpecError(SPEC_FILE, None, f"services.{svc.name}.image", why))
            if svc.build is None:
                continue
            field_ = f"{SPEC_FILE}: services.{svc.name}.build"
            tree = mirror.tree_sha(commit, svc.build.context)
            if tree is None:
                errors.append(
                    f"{field_}.context: {svc.build.context!r} is not a directory at {commit[:12]}"
                )
                continue
            dockerfile = os.path.normpath(os.path.join(svc.build.context, svc.build.dockerfile))
            found, found_size = mirror.read_limited(commit, dockerfile, limits.max_spec_bytes)
            if found is None:
                errors.append(f"{field_}.dockerfile: {dockerfile} not found at {commit[:12]}")
            elif found_size > limits.max_spec_bytes:
                problems.append(too_large(dockerfile, found_size, found, limits, "max_spec_bytes"))
            else:
                refused, images = check_dockerfile(found, dockerfile)
                problems += refused
                for base in images:
                    if why := refusal(base.image, allow):
                        problems.append(SpecError(dockerfile, base.line, base.instruction, why))
                bases[svc.name] = tuple(b.image for b in images)
            contexts[svc.name] = tree
        errors += [str(p) for p in problems]
        if errors:
            return CommitFiles(None, "\n".join(errors), None, {}, when)
        crontab, size = mirror.read_limited(commit, CRONTAB_FILE, limits.max_crontab_bytes)
        crontab_error = None
        if crontab is not None and size > limits.max_crontab_bytes:  # rejected as a whole
            crontab_error = str(too_large(CRONTAB_FILE, size, crontab, limits, "max_crontab_bytes"))
            crontab = None
        return CommitFiles(spec, None, crontab, contexts, when, False, bases, crontab_error)

    def _source(
        self, repo: RepoSettings, mirror: Mirror, ref: Ref, secrets: bool = True
    ) -> RefSource:
        f = self.commit_files(repo, mirror, ref.commit)
        return RefSource(
            ref,
            f.spec,
            f.error,
            f.crontab,
            f.contexts,
            secrets,
            f.missing,
            f.bases,
            f.crontab_error,
        )

    # -- pull requests ---------------------------------------------------------------

    def pull_request_views(
        self, repo: RepoSettings
    ) -> tuple[dict[int, PullRequestView] | None, bool, ReconcilerError | None]:
        """(views, authoritative, error). With an API token the provider's list of open
        PRs is authoritative (a PR not in it is closed); otherwise the latest webhook state
        of each PR, stored durably, and a PR never heard of is unknown."""
        if repo.api_token and repo.api_url and repo.repository and self._provider_client:
            try:
                prs = self._provider_client(repo).open_pull_requests()
            except ReconcilerError as e:
                return None, False, e
            return (
                {
                    p.number: PullRequestView(p.number, True, p.is_fork, p.draft, tuple(p.labels))
                    for p in prs
                },
                True,
                None,
            )
        stored = self.store.pull_requests(repo.name)
        return (
            {
                n: PullRequestView(n, p.open, p.is_fork, p.draft, p.labels)
                for n, p in stored.items()
            },
            False,
            None,
        )

    # -- the snapshot ----------------------------------------------------------------

    def snapshot(self, repo: RepoSettings) -> Snapshot:
        mirror = self.mirror(repo.name)
        fetch_error = None
        try:
            mirror.fetch(pull_requests=repo.pull_requests.enabled)
        except GitError as e:
            fetch_error = e
        refs = mirror.list_refs()
        branch_refs = [r for r in refs if desired_mod.branch_selected(repo, r)]
        pr_refs = [r for r in refs if r.kind == "pr"]
        sources = [self._source(repo, mirror, r) for r in branch_refs]
        decisions: list[PrDecision] = []
        pr_held: list[desired_mod.Held] = []
        pr_error: ReconcilerError | None = None
        if pr_refs:
            views, authoritative, pr_error = (
                self.pull_request_views(repo) if repo.pull_requests.enabled else ({}, False, None)
            )
            if views is not None and authoritative:
                for r in pr_refs:
                    if r.pr_number is not None and r.pr_number not in views:
                        views[r.pr_number] = PullRequestView(r.pr_number, open=False)
            times = {r.commit: mirror.commit_time(r.commit) for r in pr_refs}
            decisions, pr_held = desired_mod.select_pull_requests(
                repo.pull_requests, pr_refs, views, times, self.clock()
            )
            by_ref = {r.name: r for r in pr_refs}
            sources += [
                self._source(repo, mirror, by_ref[d.ref], d.secrets)
                for d in decisions
                if d.selected
            ]
        state = desired_mod.build(
            repo,
            sources,
            self.key,
            complete=fetch_error is None,
            note="fetch failed; nothing is torn down" if fetch_error else "",
            cache=self._desired,
        )
        if pr_held:
            state = replace(state, held=state.held + tuple(pr_held))
        holders = self.store.name_holders(list(state.environments), repo.name)
        state = desired_mod.refuse_held_names(
            state, {n: (row["repo"], row["ref"]) for n, row in holders.items()}
        )
        return Snapshot(state, fetch_error, decisions, pr_error)
