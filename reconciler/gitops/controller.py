"""One reconcile pass per repo: fetch → read specs → desired → observe → diff → apply.

Level-triggered: whatever woke us, the pass reads the truth from git and the runtime.
Failures are contained: a failed fetch or unreachable runtime tears nothing down, and
one environment failing to apply never stops the others. Every decision is an event
(events and statuses are kept by `records.py`). A failed pass says when to try again
(`PassResult.retry_after`, from the error tree); the serve loop backs off from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import desired as desired_mod
from reconciler.core.desired import DesiredState, HoldKind
from reconciler.core.errors import (
    ProxyFailure,
    ProxyUnavailable,
    ReconcilerError,
    RuntimeUnavailable,
    retry_delay,
)
from reconciler.core.model import (
    Action,
    ActionOp,
    DesiredEnvironment,
    ObservedEnvironment,
    Reason,
)
from reconciler.core.plan import diff
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.apply import Applier, ApplyResult, Router
from reconciler.gitops.git import Mirror
from reconciler.gitops.records import EnvChange, EnvLog, Listener, Records, call_hook
from reconciler.gitops.sources import Snapshot, SourceReader, load_hash_key
from reconciler.runtime import Runtime
from reconciler.storage.store import Store

log = logging.getLogger(__name__)
__all__ = ["Controller", "EnvChange", "Listener", "PassPlan", "PassResult"]


@dataclass(frozen=True)
class PassPlan:
    snapshot: Snapshot
    state: DesiredState
    observed: dict[str, ObservedEnvironment]
    actions: list[Action]
    queued: list[str]  # PR environments waiting for room under max_environments
    waiting: list[str] = field(default_factory=list)  # over limits.max_environments_per_repo


@dataclass
class PassResult:
    repo: str
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fetch_error: str | None = None
    # The first delay before this repo is tried again: the soonest of the pass's retryable
    # errors (errors.retry_delay); None when nothing is to be retried. The serve loop backs
    # off from it (workqueue.WorkQueue.done).
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return not self.errors and self.fetch_error is None

    def retry(self, error: BaseException) -> None:
        delay = retry_delay(error)
        if delay is not None and (self.retry_after is None or delay < self.retry_after):
            self.retry_after = delay


@dataclass(frozen=True)
class _Failed:
    """One action that failed: the pass's error line and what it failed with."""

    message: str
    error: BaseException


class Controller:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        runtime: Runtime,
        progress: Callable[[str, str | None, str], None] | None = None,
        provider_client: Callable[[RepoSettings], Any] | None = None,
        router: Router | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.runtime = runtime
        self.key = load_hash_key(store, settings.state_dir)
        self.sources = SourceReader(settings, store, self.key, provider_client)
        self.records = Records(store)
        self.note = self.records.note  # public: the scheduler's notes go through it too
        self._set_status = self.records.set_status
        self._failed: dict[str, tuple[str, str]] = {}  # env -> (spec hash, error)
        self._progress = progress
        self.router = router
        self.applier = Applier.for_settings(runtime, self.mirror, settings, router=router)
        # Hooks for the scheduler: called after an env converges or goes.
        # (environment, services (re)started by this pass)
        self.on_applied: list[Callable[[DesiredEnvironment, frozenset[str]], None]] = []
        self.on_removed: list[Callable[[str], None]] = []
        self.on_action: list[Callable[[str, str], None]] = []  # (op, result) for metrics
        # Asked before each action: False once another replica leads the repo (serve sets
        # it); the action is left to the new leader, nothing is torn down on the way out.
        self.may_apply: Callable[[str], bool] = lambda _repo: True
        self.problems: list[Callable[[str], str | None]] = []

    @property
    def listeners(self) -> list[Listener]:
        return self.records.listeners

    # -- git side ----------------------------------------------------------------------

    def repo(self, name: str) -> RepoSettings:
        return self.sources.repo(name)

    def mirror(self, name: str) -> Mirror:
        return self.sources.mirror(name)

    # -- one pass ----------------------------------------------------------------------

    def plan(self, repo_name: str, allow_mass_prune: bool = False) -> PassPlan:
        repo = self.repo(repo_name)
        snap = self.sources.snapshot(repo)
        observed = self.runtime.observe(repo.name)
        state, queued = desired_mod.apply_cap(
            snap.state, repo.pull_requests.max_environments, set(observed)
        )
        state, waiting = desired_mod.apply_repo_limit(
            state, self.settings.limits.max_environments_per_repo, set(observed)
        )
        suspended = self.store.suspended()
        actions = diff(state, observed, suspended, repo.prune, allow_mass_prune)
        return PassPlan(snap, state, observed, actions, queued, waiting)

    def reconcile(
        self, repo_name: str, allow_mass_prune: bool = False, dry_run: bool = False
    ) -> PassResult:
        result = PassResult(repo_name)
        elog = EnvLog(log, {"repo": repo_name, "env": None})
        try:
            pp = self.plan(repo_name, allow_mass_prune)
        except ReconcilerError as e:
            if isinstance(e, RuntimeUnavailable):
                self.note(
                    repo_name,
                    None,
                    "runtime_unavailable",
                    f"{e}; nothing is torn down",
                    level="error",
                )
            else:
                self.note(repo_name, None, "pass_failed", str(e), level="error")
            result.errors.append(str(e))
            result.retry(e)
            return result
        state, observed, actions = pp.state, pp.observed, pp.actions
        fetch_error = pp.snapshot.fetch_error
        result.actions = actions
        if fetch_error:
            result.fetch_error = str(fetch_error)
            result.retry(fetch_error)
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
        if pp.snapshot.pr_error:
            result.retry(pp.snapshot.pr_error)
        self._report_held(repo_name, state, observed)
        if dry_run:
            return result
        self._report_prs(repo_name, pp)
        if self.router is not None:
            proxy_error = self._heal_routes(repo_name, set(observed) | set(state.environments))
            if proxy_error:
                result.retry(proxy_error)
        work = [a for a in actions if a.op is not ActionOp.NOOP]
        for a in actions:
            if a.op is ActionOp.NOOP:
                self._noop(repo_name, a)
        if work:
            elog.info("pass: %s", ", ".join(a.describe() for a in work))
            with ThreadPoolExecutor(
                max_workers=self.settings.workers, thread_name_prefix=f"apply-{repo_name}"
            ) as pool:
                for failed in pool.map(lambda a: self._apply(repo_name, a), work):
                    if failed:
                        result.errors.append(failed.message)
                        if isinstance(failed.error, ReconcilerError):
                            result.retry(failed.error)  # terminal ones wait for a new commit
        return result

    def _heal_routes(self, repo: str, envs: set[str]) -> ReconcilerError | None:
        """Every pass: the proxy has every route (healed after a restart) and none of an
        environment that is neither running nor wanted. Failing tears nothing down."""
        assert self.router is not None
        try:
            self.router.heal()
            self.router.retain(repo, envs)
        except (ProxyUnavailable, ProxyFailure) as e:
            self.note(repo, None, "proxy_unavailable", f"{e}", level="error", topic="proxy")
            return e
        self.note(repo, None, "proxy_ok", "proxy ok", record=False, topic="proxy")
        return None

    def _report_prs(self, repo: str, pp: PassPlan) -> None:
        """Each PR's decision is an event, and goes to the PR (comment) via listeners."""
        queued, over_limit = set(pp.queued), set(pp.waiting)
        limit = self.settings.limits.max_environments_per_repo
        for name in sorted(over_limit):
            if (ref := pp.snapshot.state.environments[name].ref).kind != "pr":
                self.records.queued(repo, name, ref.name, limit)
        by_number = {
            e.ref.pr_number: e
            for e in pp.snapshot.state.environments.values()
            if e.ref.kind == "pr"
        }
        if pp.snapshot.pr_error:
            self.note(
                repo,
                None,
                "provider_error",
                f"listing open pull requests failed: {pp.snapshot.pr_error}; "
                "pull request environments are kept as they are",
                level="error",
                topic="prs",
            )
        for d in pp.snapshot.pr_decisions:
            env = by_number.get(d.number)
            over = env is not None and env.name in over_limit
            waiting = over or (env is not None and env.name in queued)
            if over:
                msg = f"queued: the repo runs its maximum of {limit} environments"
            elif waiting:
                msg = (
                    "queued: the repo runs its maximum of "
                    f"{self.repo(repo).pull_requests.max_environments} environments"
                )
            elif d.selected:
                msg = d.message
            else:
                msg = f"no environment: {d.message}"
            sha = env.commit if env is not None else ""
            if self.records.last_note(repo, None, f"pr:{d.number}") == msg:
                continue
            self.note(
                repo,
                env.name if env else None,
                "pull_request",
                f"PR #{d.number}: {msg}",
                topic=f"pr:{d.number}",
            )
            if d.selected and not waiting:
                continue  # its environment's own status changes speak for it
            for listener in self.listeners:
                call_hook(listener.pull_request_decided, repo, d.number, sha, msg, waiting)

    def _report_held(
        self, repo: str, state: DesiredState, observed: dict[str, ObservedEnvironment]
    ) -> None:
        by_ref = {o.ref: o.name for o in observed.values()}
        for h in state.held:
            env = by_ref.get(h.ref)
            if h.kind is HoldKind.NO_SPEC and env is None:
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
        if a.why.kept:
            self._reroute(a)
            self.note(repo, a.env, "kept", a.reason, level="warning")
        elif a.why is Reason.SUSPENDED:
            self._reroute(a)
            self.note(repo, a.env, "suspended", "suspended: left alone by the reconciler")
        elif a.desired is not None and a.observed is not None:
            prev = self._failed.get(a.env)
            if prev and prev[0] == a.desired.spec_hash:
                return  # its containers run but never became healthy: still failed
            self._failed.pop(a.env, None)
            proxy_error = self._reroute(a)
            for hook in self.on_applied:
                call_hook(hook, a.desired, frozenset())
            url = self.applier.url_for(
                a.env, a.desired, {c.service: c.ports for c in a.observed.containers if not c.role}
            )
            problem = self._problem(a.env) or proxy_error
            self._set_status(
                a.env,
                repo,
                "degraded" if problem else "healthy",
                ref=a.desired.ref.name,
                kind=a.desired.ref.kind,
                commit=a.desired.commit,
                url=url,
                last_error=problem,
            )

    def _reroute(self, a: Action) -> str | None:
        """A converged (or left alone) environment's hosts follow what runs."""
        if self.router is None or a.observed is None:
            return None
        try:
            self.applier.reroute(a.desired, a.observed)
        except (ProxyUnavailable, ProxyFailure) as e:
            return f"proxy: {e}"
        return None

    def _problem(self, env: str) -> str | None:
        """Something wrong that is not the containers' fault (a rejected schedule)."""
        for check in self.problems:
            found = check(env)
            if found:
                return found
        return None

    def _apply(self, repo: str, a: Action) -> _Failed | None:
        if not self.may_apply(repo):
            log.warning("[%s] %s left to the replica that leads the repo now", repo, a.env)
            return None
        failed = self._apply_one(repo, a)
        for report in self.on_action:
            call_hook(report, a.op.value, "error" if failed else "ok")
        return failed

    def _apply_one(self, repo: str, a: Action) -> _Failed | None:
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
                    call_hook(gone, a.env)
                self.applier.remove(a.observed, progress)
                self.store.forget_environment(a.env, repo)
                self.records.removed(a.env, repo, a.reason, a.observed.ref, a.observed.commit)
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
            self.note(
                repo,
                a.env,
                verb,
                f"{verb} at {a.desired.commit[:12]}: {a.reason}",
                force=True,
                details={"url": res.url, "commit": a.desired.commit},
            )
            started = frozenset(a.desired.services if a.op is ActionOp.CREATE else a.services)
            for hook in self.on_applied:
                call_hook(hook, a.desired, started)
            problem = self._problem(a.env)
            self._set_status(
                a.env, repo, "degraded" if problem else "healthy", url=res.url, last_error=problem
            )
            return None
        except ReconcilerError as e:
            if not e.retryable:
                return self._terminal(repo, a, e, str(e))
            # Not this version's fault (engine gone, git read failed): retried, not remembered.
            self.note(
                repo,
                a.env,
                "apply_failed",
                f"{a.op.value} interrupted: {e}",
                level="error",
                force=True,
            )
            return _Failed(f"{a.env}: {e}", e)
        except Exception as e:
            log.exception("[%s/%s] unexpected error", repo, a.env)
            return self._terminal(repo, a, e, f"{type(e).__name__}: {e}")

    def _terminal(self, repo: str, a: Action, error: BaseException, msg: str) -> _Failed:
        """This version failed: remembered per spec hash, so it waits for a new commit."""
        if a.desired is not None:
            self._failed[a.env] = (a.desired.spec_hash, msg.splitlines()[0] if msg else "")
            kept = " ; the previous version keeps running" if a.op is ActionOp.UPDATE else ""
            output = self.records.output_of(error)
            self._set_status(a.env, repo, "failed", last_error=msg, last_output=output)
            self.note(
                repo,
                a.env,
                "apply_failed",
                f"{a.op.value} failed: {msg}{kept}",
                level="error",
                force=True,
                details={"output": output} if output else None,
            )
        else:
            self.note(
                repo, a.env, "apply_failed", f"remove failed: {msg}", level="error", force=True
            )
        return _Failed(f"{a.env}: {msg}", error)
