"""Find what to export for an environment name: its recorded ref and commit (store),
the `.hoody/` files at that commit (mirror, read once per commit) and the repo's env
(whose values the exporters turn into placeholders). Works in `hoody serve` and in the
CLI alike, from the same state_dir."""

from __future__ import annotations

from exporters import ExportSource, source_from_desired
from reconciler.core.desired import RefSource, desired_environment
from reconciler.core.errors import ReconcilerError
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
    source = RefSource(ref, files.spec, None, files.crontab, files.contexts)
    desired = desired_environment(repo, source, sources.key)
    return source_from_desired(desired, repo.env)
