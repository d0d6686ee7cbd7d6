"""One reconcile pass per repo: fetch → read specs → desired → observe → diff → hand over.

Level-triggered: whatever woke us, the pass reads the truth from git and the runtime.
The pass is cheap and never waits for an environment: each environment that needs work
goes to the per-environment queue (envqueue.py, newest version wins), whose workers
apply it on its own (envwork.py). Failures are contained: a failed fetch or unreachable
runtime tears nothing down, and one environment failing never stops the others. Every
decision is an event (records.py). A failed pass says when to try again
(`PassResult.retry_after`, from the error tree); the serve loop backs off from it.
`reconcile(wait=True)` (the CLI, tests) also waits for the work it handed over and
reports its errors as the pass's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.core import desired as desired_mod
from reconciler.core.errors import (
    ProxyFailure,
    ProxyUnavailable,
    ReconcilerError,
    RuntimeUnavailable,
    retry_delay,
)
from reconciler.core.model import Action, ActionOp, DesiredEnvironment, Reason
from reconciler.core.plan import diff
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.apply import Applier, Router
from reconciler.gitops.envqueue import EnvQueue, Intent
from reconciler.gitops.envwork import EnvWorker, Hooks
from reconciler.gitops.git import Mirror
from reconciler.gitops.records import EnvChange, EnvLog, Listener, Records
from reconciler.gitops.reporting import PassPlan, PassReport
from reconciler.gitops.sources import SourceReader, load_hash_key
from reconciler.runtime import Runtime
from reconciler.storage.store import Store

log = logging.getLogger(__name__)
__all__ = ["Controller", "EnvChange", "Listener", "PassPlan", "PassResult"]


@dataclass
class PassResult:
    repo: str
    actions: list[Action] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    fetch_error: str | None = None
    # The first delay before this repo is tried again: the soonest of the pass's retryable
    # errors (errors.retry_delay); None when nothing is to be retried. The serve loop backs
    # off from it (workqueue.WorkQueue.done). Environments back off on their own.
    retry_after: float | None = None
    handed_over: list[str] = field(default_factory=list)  # environments given to the queue

    @property
    def ok(self) -> bool:
        return not self.errors and self.fetch_error is None

    def retry(self, error: BaseException) -> None:
        self.retry_delay(retry_delay(error))

    def retry_delay(self, delay: float | None) -> None:
        if delay is not None and (self.retry_after is None or delay < self.retry_after):
            self.retry_after = delay


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
        self.router = router
        self.applier = Applier.for_settings(runtime, self.mirror, settings, router=router)
        # Hooks for the scheduler: called after an env converges or goes.
        # (environment, services (re)started by this pass)
        self.on_applied: list[Callable[[DesiredEnvironment, frozenset[str]], None]] = []
        self.on_removed: list[Callable[[str], None]] = []
        self.on_action: list[Callable[[str, str], None]] = []  # (op, result) for metrics
        # Asked before each environment's work and at each of its steps: False once
        # another replica leads the repo (serve sets it); the work is left to the new
        # leader, nothing is torn down on the way out.
        self.may_apply: Callable[[str], bool] = lambda _repo: True
        self.problems: list[Callable[[str], str | None]] = []
        hooks = Hooks(self.on_applied, self.on_removed, self.on_action, self.problems)
        self.worker = EnvWorker(
            store,
            runtime,
            self.records,
            self.applier,
            hooks,
            lambda repo: self.may_apply(repo),
            progress,
        )
        self.envs = EnvQueue(
            self.worker.handle,
            workers=settings.in_flight,
            builds=settings.workers,
            may_apply=lambda repo: self.may_apply(repo),
        )
        self.report = PassReport(settings, self.records, self.repo)

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
        # What runs is read while git is fetched and read (neither waits for the other;
        # work handed over later observes again when its plan is stale).
        with ThreadPoolExecutor(1, thread_name_prefix=f"observe {repo.name}") as aside:
            observing = aside.submit(self.runtime.observe, repo.name)
            snap = self.sources.snapshot(repo)
            observed = observing.result()
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
        self,
        repo_name: str,
        allow_mass_prune: bool = False,
        dry_run: bool = False,
        wait: bool = True,
    ) -> PassResult:
        """One pass. `wait`: also wait until the environments it handed over are done
        (their failures become the pass's errors); without it (serve) the pass returns
        as soon as the work is queued."""
        result = PassResult(repo_name)
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
        result.actions = pp.actions
        fetch_error = pp.snapshot.fetch_error
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
        self.report.held(repo_name, pp.state, pp.observed)
        if dry_run:
            return result
        self.report.prs(repo_name, pp)
        if self.router is not None:
            proxy_error = self._heal_routes(
                repo_name, set(pp.observed) | set(pp.state.environments)
            )
            if proxy_error:
                result.retry(proxy_error)
        self._hand_over(repo_name, pp.actions, result, explicit=wait)
        if wait and result.handed_over:
            outcomes = self.envs.wait((repo_name, env) for env in result.handed_over)
            for env in result.handed_over:
                outcome = outcomes[(repo_name, env)]
                if outcome.error:
                    result.errors.append(outcome.error)
                    result.retry_delay(outcome.retry_after)  # terminal ones: a new commit
        return result

    def _hand_over(
        self, repo: str, actions: list[Action], result: PassResult, explicit: bool
    ) -> None:
        """Environments that need work go to the queue; converged ones are reported here
        unless work of theirs is queued or in flight (which then reports them)."""
        work = []
        for a in actions:
            left_alone = a.op is ActionOp.NOOP and (a.why.kept or a.desired is None)
            adopted = a.why is Reason.IN_SYNC and not self.records.known(a.env)
            idle = not self.envs.busy(repo, a.env)
            if a.op is ActionOp.NOOP and (left_alone or (idle and not adopted)):
                self.worker.noop(repo, a)
                continue
            if a.op is not ActionOp.NOOP:
                work.append(a)
            # `explicit` (hoody apply): one attempt, waited for, starting a backoff over
            intent = Intent(repo, a, retry=not explicit, verify=adopted)
            self.envs.submit(intent, reset=explicit)
            result.handed_over.append(a.env)
        if work:
            EnvLog(log, {"repo": repo, "env": None}).info(
                "pass: %s", ", ".join(a.describe() for a in work)
            )

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
