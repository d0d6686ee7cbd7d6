"""One reconcile pass per repo: fetch → read specs → desired → observe → diff → apply.

Level-triggered: whatever woke us, the pass reads the truth from git and the runtime.
Failures are contained: a failed fetch or unreachable runtime tears nothing down, and
one environment failing to apply never stops the others. Every decision is an event.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import desired as desired_mod
from .apply import Applier, ApplyResult
from .desired import DesiredState, RefSource
from .errors import GitError, ReconcilerError, RuntimeUnavailable, SpecError
from .git import Mirror
from .model import (
    CRONTAB_FILE,
    SPEC_FILE,
    Action,
    ActionOp,
    AppSpec,
    DesiredEnvironment,
    ObservedEnvironment,
    Ref,
)
from .plan import diff
from .runtime import Runtime
from .settings import RepoSettings, Settings
from .spec import parse_app_spec
from .store import Store

log = logging.getLogger(__name__)


class EnvLog(logging.LoggerAdapter[logging.Logger]):
    """Puts repo and environment identity on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs.setdefault("extra", {}).update(extra)
        env = extra.get("env")
        prefix = f"[{extra.get('repo')}/{env}] " if env else f"[{extra.get('repo')}] "
        return prefix + str(msg), kwargs


@dataclass
class PassResult:
    repo: str
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requeue_after: float | None = None
    fetch_error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.fetch_error is None


@dataclass(frozen=True)
class _CommitFiles:
    spec: AppSpec | None
    error: str | None
    crontab: str | None
    contexts: dict[str, str]


def load_hash_key(state_dir: Path) -> bytes:
    """The key of spec hashes, kept beside the database so labels never expose secrets."""
    path = state_dir / "hash.key"
    if path.exists():
        return path.read_bytes()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


class Controller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        progress: Callable[[str, str | None, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self.key = load_hash_key(settings.state_dir)
        self._mirrors: dict[str, Mirror] = {}
        self._files: dict[tuple[str, str], _CommitFiles] = {}
        self._desired: dict[tuple[str, str, str], DesiredEnvironment] = {}
        self._failed: dict[str, tuple[str, str]] = {}  # env -> (spec hash, error)
        self._noted: dict[tuple[str, str | None, str], str] = {}  # last message per topic
        self._status: dict[str, tuple[Any, ...]] = {}
        self._lock = threading.Lock()
        self._progress = progress
        self.applier = Applier(
            runtime, self.mirror, settings.docker.publish_host, settings.url_template
        )
        # Hooks for the scheduler and the PR feedback: called after an env converges or goes.
        self.on_applied: list[Callable[[DesiredEnvironment], None]] = []
        self.on_removed: list[Callable[[str], None]] = []

    # -- git side ----------------------------------------------------------------------

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

    def _commit_files(self, repo: RepoSettings, mirror: Mirror, commit: str) -> _CommitFiles:
        """What .hoody/ holds at a commit; read once per commit, ever."""
        key = (repo.name, commit)
        cached = self._files.get(key)
        if cached is not None:
            return cached
        text = mirror.read_file(commit, SPEC_FILE)
        if text is None:
            files = _CommitFiles(None, f"{SPEC_FILE}: not found at {commit[:12]}", None, {})
        else:
            try:
                spec = parse_app_spec(text, SPEC_FILE, default_name=repo.name)
                contexts: dict[str, str] = {}
                errors: list[str] = []
                for svc in spec.services.values():
                    if svc.build is None:
                        continue
                    tree = mirror.tree_sha(commit, svc.build.context)
                    if tree is None:
                        errors.append(
                            f"{SPEC_FILE}: services.{svc.name}.build.context: "
                            f"{svc.build.context!r} is not a directory at {commit[:12]}"
                        )
                        continue
                    dockerfile = os.path.normpath(
                        os.path.join(svc.build.context, svc.build.dockerfile)
                    )
                    if not mirror.has_file(commit, dockerfile):
                        errors.append(
                            f"{SPEC_FILE}: services.{svc.name}.build.dockerfile: "
                            f"{dockerfile} not found at {commit[:12]}"
                        )
                    contexts[svc.name] = tree
                crontab = mirror.read_file(commit, CRONTAB_FILE)
                files = (
                    _CommitFiles(None, "\n".join(errors), None, {})
                    if errors
                    else _CommitFiles(spec, None, crontab, contexts)
                )
            except SpecError as e:
                files = _CommitFiles(None, str(e), None, {})
        self._files[key] = files
        return files

    def sources(self, repo: RepoSettings, mirror: Mirror, refs: list[Ref]) -> list[RefSource]:
        out = []
        for ref in refs:
            if not desired_mod.branch_selected(repo, ref):
                continue
            f = self._commit_files(repo, mirror, ref.commit)
            out.append(RefSource(ref, f.spec, f.error, f.crontab, f.contexts))
        return out

    def desired(self, repo: RepoSettings) -> tuple[DesiredState, str | None]:
        mirror = self.mirror(repo.name)
        fetch_error = None
        try:
            mirror.fetch(pull_requests=repo.pull_requests.enabled)
        except GitError as e:
            fetch_error = str(e)
        refs = mirror.list_refs()
        sources = self.sources(repo, mirror, refs)
        state = desired_mod.build(
            repo,
            sources,
            self.key,
            complete=fetch_error is None,
            note="fetch failed; nothing is torn down" if fetch_error else "",
            cache=self._desired,
        )
        return state, fetch_error

    # -- one pass ----------------------------------------------------------------------

    def plan(
        self, repo_name: str, allow_mass_prune: bool = False
    ) -> tuple[DesiredState, dict[str, ObservedEnvironment], list[Action], str | None]:
        repo = self.repo(repo_name)
        state, fetch_error = self.desired(repo)
        observed = self.runtime.observe(repo.name)
        suspended = self.store.suspended()
        actions = diff(state, observed, suspended, repo.prune, allow_mass_prune)
        return state, observed, actions, fetch_error

    def reconcile(
        self, repo_name: str, allow_mass_prune: bool = False, dry_run: bool = False
    ) -> PassResult:
        result = PassResult(repo_name)
        elog = EnvLog(log, {"repo": repo_name, "env": None})
        try:
            state, observed, actions, fetch_error = self.plan(repo_name, allow_mass_prune)
        except RuntimeUnavailable as e:
            self.note(
                repo_name, None, "runtime_unavailable", f"{e}; nothing is torn down", level="error"
            )
            result.errors.append(str(e))
            result.requeue_after = 10.0
            return result
        except ReconcilerError as e:
            self.note(repo_name, None, "pass_failed", str(e), level="error")
            result.errors.append(str(e))
            result.requeue_after = 30.0
            return result
        result.actions = actions
        if fetch_error:
            result.fetch_error = fetch_error
            result.requeue_after = 15.0
            self.note(
                repo_name,
                None,
                "fetch_failed",
                f"{fetch_error}; using the last fetched refs, nothing is torn down",
                level="error",
                topic="fetch",
            )
        else:
            self.note(repo_name, None, "fetch_ok", "fetch ok", record=False, topic="fetch")
        self._report_held(repo_name, state, observed)
        if dry_run:
            return result
        work = [a for a in actions if a.op is not ActionOp.NOOP]
        for a in actions:
            if a.op is ActionOp.NOOP:
                self._noop(repo_name, a)
        if work:
            elog.info("pass: %s", ", ".join(a.describe() for a in work))
            with ThreadPoolExecutor(
                max_workers=self.settings.workers, thread_name_prefix=f"apply-{repo_name}"
            ) as pool:
                for err in pool.map(lambda a: self._apply(repo_name, a), work):
                    if err:
                        result.errors.append(err)
                        if result.requeue_after is None and "unreachable" in err:
                            result.requeue_after = 10.0
        return result

    def _report_held(
        self, repo: str, state: DesiredState, observed: dict[str, ObservedEnvironment]
    ) -> None:
        by_ref = {o.ref: o.name for o in observed.values()}
        for h in state.held:
            env = by_ref.get(h.ref)
            if "not found at" in h.reason and env is None:
                continue  # a branch without a spec simply has no environment
            suffix = "; the running version is kept" if env else ""
            self.note(
                repo,
                env,
                "spec_invalid",
                f"{h.ref}: {h.reason}{suffix}",
                level="error",
                topic=f"spec:{h.ref}",
            )
            if env:
                self._set_status(env, repo, "degraded", last_error=h.reason)

    def _noop(self, repo: str, a: Action) -> None:
        if a.reason.startswith("kept"):
            self.note(repo, a.env, "kept", a.reason, level="warning")
        elif a.reason == "suspended":
            self.note(repo, a.env, "suspended", "suspended: left alone by the reconciler")
        elif a.desired is not None and a.observed is not None:
            prev = self._failed.get(a.env)
            if prev and prev[0] == a.desired.spec_hash:
                return  # its containers run but never became healthy: still failed
            self._failed.pop(a.env, None)
            url = self.applier.url_for(
                a.env, a.desired, {c.service: c.ports for c in a.observed.containers if not c.role}
            )
            self._set_status(
                a.env,
                repo,
                "healthy",
                ref=a.desired.ref.name,
                kind=a.desired.ref.kind,
                commit=a.desired.commit,
                url=url,
                last_error=None,
            )
            for hook in self.on_applied:
                self._hook(hook, a.desired)

    def _apply(self, repo: str, a: Action) -> str | None:
        elog = EnvLog(log, {"repo": repo, "env": a.env})

        def progress(msg: str) -> None:
            elog.info("%s", msg)
            if self._progress:
                self._progress(repo, a.env, msg)

        try:
            if a.op is ActionOp.REMOVE:
                assert a.observed is not None
                self._set_status(a.env, repo, "removing")
                for gone in self.on_removed:
                    self._hook(gone, a.env)
                self.applier.remove(a.observed, progress)
                self.store.forget_environment(a.env)
                self._status.pop(a.env, None)
                self.note(repo, a.env, "removed", f"removed: {a.reason}", force=True)
                return None
            assert a.desired is not None
            failed = self._failed.get(a.env)
            if failed and failed[0] == a.desired.spec_hash:
                self.note(
                    repo,
                    a.env,
                    "waiting",
                    f"not retried: this version failed ({failed[1]}); waiting for a new commit",
                    level="warning",
                )
                return None
            self._set_status(
                a.env,
                repo,
                "building",
                ref=a.desired.ref.name,
                kind=a.desired.ref.kind,
                commit=a.desired.commit,
            )
            res: ApplyResult
            if a.op is ActionOp.CREATE:
                res = self.applier.create(a.desired, progress)
                verb = "created"
            else:
                assert a.observed is not None
                res = self.applier.update(a.desired, a.observed, list(a.services), progress)
                verb = "updated"
            self._failed.pop(a.env, None)
            self._set_status(a.env, repo, "healthy", url=res.url, last_error=None)
            self.note(
                repo,
                a.env,
                verb,
                f"{verb} at {a.desired.commit[:12]}: {a.reason}",
                force=True,
                details={"url": res.url, "commit": a.desired.commit},
            )
            for hook in self.on_applied:
                self._hook(hook, a.desired)
            return None
        except RuntimeUnavailable as e:
            self.note(
                repo,
                a.env,
                "apply_failed",
                f"{a.op.value} interrupted: {e}",
                level="error",
                force=True,
            )
            return f"{a.env}: {e}"
        except Exception as e:
            msg = str(e) if isinstance(e, ReconcilerError) else f"{type(e).__name__}: {e}"
            if a.desired is not None:
                self._failed[a.env] = (a.desired.spec_hash, msg.splitlines()[0] if msg else "")
                kept = " ; the previous version keeps running" if a.op is ActionOp.UPDATE else ""
                self._set_status(a.env, repo, "failed", last_error=msg)
                self.note(
                    repo,
                    a.env,
                    "apply_failed",
                    f"{a.op.value} failed: {msg}{kept}",
                    level="error",
                    force=True,
                )
            else:
                self.note(
                    repo, a.env, "apply_failed", f"remove failed: {msg}", level="error", force=True
                )
            if not isinstance(e, ReconcilerError):
                log.exception("[%s/%s] unexpected error", repo, a.env)
            return f"{a.env}: {msg}"

    def _hook(self, hook: Callable[..., None], arg: Any) -> None:
        try:
            hook(arg)
        except Exception:
            log.exception("hook %r failed", hook)

    # -- records -----------------------------------------------------------------------

    def note(
        self,
        repo: str,
        env: str | None,
        kind: str,
        message: str,
        level: str = "info",
        force: bool = False,
        record: bool = True,
        details: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> None:
        """Record an event, once per change of message for (repo, env, topic) unless
        forced; the topic defaults to the kind."""
        key = (repo, env, topic or kind)
        if not force and self._noted.get(key) == message:
            return
        self._noted[key] = message
        if not record:
            return
        EnvLog(log, {"repo": repo, "env": env}).log(
            logging.getLevelName(level.upper()), "%s", message
        )
        try:
            self.store.add_event(repo, env, kind, message, level, details)
        except Exception:
            log.exception("could not record event")

    def _set_status(self, name: str, repo: str, status: str, **fields: Any) -> None:
        sig = (status, *sorted(fields.items()))
        if self._status.get(name) == sig:
            return
        self._status[name] = sig
        try:
            self.store.set_status(name, repo, status, **fields)
        except Exception:
            log.exception("could not record status of %s", name)
