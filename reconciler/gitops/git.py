"""One bare mirror per watched repository, driven through GitPython.

It fetches branch (and pull-request) refs, lists them, reads `.hoody/*` at a commit
without a checkout, and produces `git archive` tarballs of build contexts. It decides
nothing: a failed fetch raises GitError and the caller decides what that means.

Fetches are single-flight per mirror: a caller that arrives while a fetch of the same
refs runs waits for it and shares its outcome (its GitError too), and fetches never run
side by side in one mirror (two would race for the same ref locks).

Every message that leaves here is scrubbed of credentials (`core.redact`): GitError does
it itself, and a git error is raised `from None`, so the raw stderr is not chained.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import IO

import git

from reconciler.core.errors import GitError
from reconciler.core.model import Ref

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 120
BRANCH_SPEC = "+refs/heads/*:refs/heads/*"
PR_SPECS = {
    "github": ("+refs/pull/*/head:refs/pull/*/head",),
    "gitea": ("+refs/pull/*/head:refs/pull/*/head",),
    "gitlab": ("+refs/merge-requests/*/head:refs/merge-requests/*/head",),
    "generic": ("+refs/pull/*/head:refs/pull/*/head",),
}
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "LC_ALL": "C"}


class _Flight:
    """One fetch in progress, shared by every caller that asks for the same refs."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: GitError | None = None


class Mirror:
    def __init__(self, url: str, path: Path, provider: str = "generic") -> None:
        self.url = url
        self.path = path
        self.provider = provider
        self._repo: git.Repo | None = None
        self._flights: dict[bool, _Flight] = {}
        self._flights_lock = threading.Lock()
        self._fetching = threading.Lock()  # one `git fetch` at a time in this mirror
        self.fetches = 0  # git fetch processes run (single-flight shares the others)

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def _open(self) -> git.Repo:
        try:
            if (self.path / "HEAD").exists():
                repo = git.Repo(self.path)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                repo = git.Repo.init(self.path, bare=True)
            with repo.config_writer() as cw:
                cw.set_value('remote "origin"', "url", self.url)
            return repo
        except (git.GitError, OSError) as e:
            raise GitError(f"cannot open mirror {self.path}: {e}") from None

    def fetch(self, pull_requests: bool = False) -> None:
        """Bring the mirror's refs in line with the remote; GitError if that fails.
        Joins a fetch of the same refs already running instead of starting another."""
        with self._flights_lock:
            flight = self._flights.get(pull_requests)
            leader = flight is None
            if flight is None:
                flight = self._flights[pull_requests] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return
        try:
            with self._fetching:
                self.fetches += 1
                self._fetch(pull_requests)
        except GitError as e:
            flight.error = e
            raise
        finally:
            with self._flights_lock:
                del self._flights[pull_requests]
            flight.done.set()

    def _fetch(self, pull_requests: bool) -> None:
        specs = [BRANCH_SPEC]
        if pull_requests:
            specs.extend(PR_SPECS.get(self.provider, PR_SPECS["generic"]))
        try:
            self.repo.git.fetch(
                "--prune",
                "--no-tags",
                "--quiet",
                "origin",
                *specs,
                env=_GIT_ENV,
                kill_after_timeout=FETCH_TIMEOUT,
            )
        except git.GitCommandError as e:
            lines = str(e.stderr or "").strip().strip("'").splitlines()
            fatal = [ln.strip() for ln in lines if "fatal:" in ln or "error:" in ln] or lines
            why = fatal[0].strip() if fatal else f"exit code {e.status}"
            if why.startswith("stderr: "):
                why = why[len("stderr: ") :].strip("'")
            raise GitError(f"fetch from {self.url} failed: {why}") from None

    def list_refs(self) -> list[Ref]:
        """Every branch and PR head ref the mirror holds (as of the last fetch)."""
        try:
            out = self.repo.git.for_each_ref(
                "--format=%(objectname) %(refname)",
                "refs/heads",
                "refs/pull",
                "refs/merge-requests",
            )
        except git.GitCommandError as e:
            raise GitError(f"cannot list refs of {self.path}: {e}") from None
        refs = []
        for line in out.splitlines():
            sha, _, name = line.partition(" ")
            refs.append(parse_ref(name, sha))
        return [r for r in refs if r is not None]

    def read_file(self, commit: str, path: str) -> str | None:
        """The text of `path` at `commit`, or None if the file does not exist there."""
        blob = self._entry(commit, path)
        if blob is None or blob.type != "blob":
            return None
        data: bytes = blob.data_stream.read()
        return data.decode("utf-8", "replace")

    def read_limited(self, commit: str, path: str, limit: int) -> tuple[str | None, int]:
        """(text, size in bytes) of `path` at `commit`; (None, 0) if it does not exist. A
        file larger than `limit` is not read whole: the text is its first `limit` bytes,
        and the size says by how much it is over."""
        blob = self._entry(commit, path)
        if blob is None or blob.type != "blob":
            return None, 0
        size = int(blob.size)
        data: bytes = blob.data_stream.read(min(size, limit))
        return data.decode("utf-8", "replace"), size

    def commit_time(self, commit: str) -> float:
        """When `commit` was committed (seconds since the epoch)."""
        try:
            return float(self.repo.commit(commit).committed_date)
        except (ValueError, git.GitError) as e:
            raise GitError(f"cannot read commit {commit[:12]}: {e}") from e

    def tree_sha(self, commit: str, path: str) -> str | None:
        """The tree id of directory `path` at `commit` (`.` is the root)."""
        entry = self._entry(commit, path)
        return entry.hexsha if entry is not None and entry.type == "tree" else None

    def has_file(self, commit: str, path: str) -> bool:
        entry = self._entry(commit, path)
        return entry is not None and entry.type == "blob"

    def _entry(self, commit: str, path: str) -> git.Object | None:
        try:
            tree = self.repo.commit(commit).tree
            if path in ("", "."):
                return tree
            return tree / path
        except KeyError:
            return None
        except (ValueError, git.GitError) as e:
            raise GitError(f"cannot read {path} at {commit[:12]}: {e}") from e

    def archive(self, commit: str, path: str) -> IO[bytes]:
        """A tarball of directory `path` at `commit` (a build context), rewound for reading."""
        out = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller)
        treeish = commit if path in ("", ".") else f"{commit}:{path}"
        try:
            self.repo.git.archive("--format=tar", treeish, output_stream=out)
        except git.GitCommandError as e:
            out.close()
            raise GitError(f"git archive of {path} at {commit[:12]} failed: {e.stderr}") from None
        out.seek(0)
        return out


def parse_ref(name: str, sha: str) -> Ref | None:
    if name.startswith("refs/heads/"):
        return Ref(name, sha, "branch")
    parts = name.split("/")
    is_pr = len(parts) == 4 and parts[0] == "refs" and parts[3] == "head"
    if is_pr and parts[1] in ("pull", "merge-requests") and parts[2].isdigit():
        return Ref(name, sha, "pr", int(parts[2]))
    return None
