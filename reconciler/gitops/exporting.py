"""Find what to export for an environment name: its recorded ref and commit (store),
the `.hoody/` files at that commit (mirror, read once per commit) and the repo's env
(whose values the exporters turn into placeholders). Works in `hoody serve` and in the
CLI alike, from the same state_dir.

A pull request's export carries the repo's env (as placeholder names) only when the
pull request is known not to come from a fork, exactly as it runs: a fork's, or one
whose origin cannot be told (no webhook or API answer, the API failing), carries none of
it, and its export says why.
"""

from __future__ import annotations

from dataclasses import replace

from exporters import ExportSource, source_from_desired
from reconciler.core.desired import RefSource, desired_environment
from reconciler.core.errors import ReconcilerError
from reconciler.core.model import Ref
from reconciler.core.settings import RepoSettings
from reconciler.gitops.git import parse_ref
from reconciler.gitops.sources import SourceReader
from reconciler.storage.store import Store


def export_source(store: Store, sources: SourceReader, name: str) -> ExportSource | None:
    row = store.environment(name)
    if row is None or not row.get("ref") or not row.get("commit"):
        return None
    repo = sources.settings.repo(row["repo"])
    ref = parse_ref(row["ref"], row["commit"])
    if repo is None or ref is None:
        return None
    files = sources.commit_files(repo, sources.mirror(repo.name), row["commit"])
    if files.spec is None:
        raise ReconcilerError(f"{name}: {files.error}")
    secrets, note = repo_env_allowed(sources, repo, ref)
    source = RefSource(ref, files.spec, None, files.crontab, files.contexts, secrets)
    desired = desired_environment(repo, source, sources.key, inject_secrets=secrets)
    exported = source_from_desired(desired, repo.env)
    return replace(exported, notes=(note,)) if note else exported


def repo_env_allowed(
    sources: SourceReader, repo: RepoSettings, ref: Ref
) -> tuple[bool, str | None]:
    """Whether `ref`'s environment gets the repo's env, and if not, why (for a warning)."""
    if ref.kind != "pr" or ref.pr_number is None:
        return True, None
    views, _, error = sources.pull_request_views(repo)
    view = views.get(ref.pr_number) if views is not None else None
    withheld = "exported without the repository's env (its names are not listed either)"
    if view is None:
        why = error or "no webhook or API answer says whether it comes from a fork"
        return False, f"pull request #{ref.pr_number}: {withheld}: {why}"
    if view.is_fork:
        return False, f"pull request #{ref.pr_number} comes from a fork: {withheld}, as it runs"
    return True, None
