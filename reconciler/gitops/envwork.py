"""One environment's work item: what a worker of the per-environment queue runs.

The pass (controller.py) decides *that* an environment needs work; this applies it, on
its own: observe again when the plan is older than work that ran since, ask the replica
gate, create / update / remove through the applier with the `Work` as its watch, then the
status, the event and the hooks. Failures stay with the environment: a terminal one is
remembered per spec hash (the same broken version is not retried, a new commit is), a
retryable one goes back to the queue, which backs off per environment. Work stopped for a
newer version (`Superseded`) or because another replica leads the repo (`LeaseLost`) is
neither: the first leaves the newer version to run next, the second leaves everything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from reconciler.core.desired import DesiredState
from reconciler.core.errors import (
    Abandoned,
    ProxyFailure,
    ProxyUnavailable,
    ReconcilerError,
    Superseded,
    retry_delay,
)
from reconciler.core.model import Action, ActionOp, DesiredEnvironment, Reason
from reconciler.core.plan import diff
from reconciler.gitops.apply import Applier, ApplyResult
from reconciler.gitops.envqueue import OK, Intent, Outcome, Work
from reconciler.gitops.records import EnvLog, Records, call_hook
from reconciler.runtime import Runtime
from reconciler.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class Hooks:
    """What serve connects: the scheduler and the metrics. Lists shared with the
    controller, so appending to `controller.on_applied` reaches every worker."""

    on_applied: list[Callable[[DesiredEnvironment, frozenset[str]], None]]
    on_removed: list[Callable[[str], None]]
    on_action: list[Callable[[str, str], None]]
    problems: list[Callable[[str], str | None]]


class EnvWorker:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        records: Records,
        applier: Applier,
        hooks: Hooks,
        may_apply: Callable[[str], bool],
        progress: Callable[[str, str | None, str], None] | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.records = records
        self.note = records.note
        self.applier = applier
        self.hooks = hooks
        self.may_apply = may_apply
        self._progress = progress
        self.failed: dict[str, tuple[str, str]] = {}  # env -> (spec hash, error)

    # -- the queue's handler -----------------------------------------------------------

    def handle(self, intent: Intent, work: Work) -> Outcome:
        repo, a = intent.repo, intent.action
        if not self.may_apply(repo):
            log.warning("[%s] %s left to the replica that leads the repo now", repo, a.env)
            return OK
        if intent.stale:
            try:
                fresh = self.refresh(repo, a)
            except ReconcilerError as e:  # the engine: nothing is decided without it
                return Outcome(f"{a.env}: {e}", retry_delay(e))
            if fresh is None:
                return OK
            a = fresh
        if a.op is ActionOp.NOOP:
            if intent.verify and a.why is Reason.IN_SYNC:
                return self.verify(repo, a, work)
            self.noop(repo, a)
            return OK
        message, error = self.apply(repo, a, work)
        for report in self.hooks.on_action:
            call_hook(report, a.op.value, "error" if message else "ok")
        if message is None:
            return OK
        retry = retry_delay(error) if isinstance(error, ReconcilerError) else None
        return Outcome(message, retry)

    def refresh(self, repo: str, a: Action) -> Action | None:
        """The same intent against what runs now (work of this environment ran since the
        pass observed): the plan's per-environment rules, nothing new."""
        observed = self.runtime.observe(repo).get(a.env)
        if a.op is ActionOp.REMOVE or a.desired is None:
            return None if observed is None else replace(a, observed=observed)
        have = {a.env: observed} if observed is not None else {}
        state = DesiredState(repo, {a.env: a.desired})
        return next(x for x in diff(state, have, self.store.suspended()) if x.env == a.env)

    # -- converged environments --------------------------------------------------------

    def verify(self, repo: str, a: Action, work: Work) -> Outcome:
        """An adopted environment in sync: its containers must pass their health checks
        before it is called healthy (a restart may have cut its health wait short)."""
        assert a.desired is not None and a.observed is not None
        prev = self.failed.get(a.env)
        if prev and prev[0] == a.desired.spec_hash:
            return OK
        elog = EnvLog(log, {"repo": repo, "env": a.env})
        try:
            for c in a.observed.containers:
                if not c.role and c.service in a.desired.services:
                    svc = a.desired.services[c.service]
                    self.applier.wait_healthy(a.desired, svc, c.id, elog.info, work)
        except Superseded:
            return OK
        except Abandoned as e:
            elog.warning("%s; left as it is", e)
            return OK
        except ReconcilerError as e:
            if e.retryable:
                return Outcome(f"{a.env}: {e}", retry_delay(e))
            return Outcome(self._terminal(repo, a, e, str(e)))
        self.noop(repo, a)
        return OK

    def noop(self, repo: str, a: Action) -> None:
        if a.why.kept:
            self.reroute(a)
            self.note(repo, a.env, "kept", a.reason, level="warning")
        elif a.why is Reason.SUSPENDED:
            self.reroute(a)
            self.note(repo, a.env, "suspended", "suspended: left alone by the reconciler")
        elif a.desired is not None and a.observed is not None:
            prev = self.failed.get(a.env)
            if prev and prev[0] == a.desired.spec_hash:
                return  # its containers run but never became healthy: still failed
            self.failed.pop(a.env, None)
            proxy_error = self.reroute(a)
            for hook in self.hooks.on_applied:
                call_hook(hook, a.desired, frozenset())
            url = self.applier.url_for(
                a.env, a.desired, {c.service: c.ports for c in a.observed.containers if not c.role}
            )
            problem = self.problem(a.env) or proxy_error
            self.records.set_status(
                a.env,
                repo,
                "degraded" if problem else "healthy",
                ref=a.desired.ref.name,
                kind=a.desired.ref.kind,
                commit=a.desired.commit,
                url=url,
                last_error=problem,
            )

    def reroute(self, a: Action) -> str | None:
        """A converged (or left alone) environment's hosts follow what runs."""
        if self.applier.router is None or a.observed is None:
            return None
        try:
            self.applier.reroute(a.desired, a.observed)
        except (ProxyUnavailable, ProxyFailure) as e:
            return f"proxy: {e}"
        return None

    def problem(self, env: str) -> str | None:
        """Something wrong that is not the containers' fault (a rejected schedule)."""
        for check in self.hooks.problems:
            found = check(env)
            if found:
                return found
        return None

    # -- applying ----------------------------------------------------------------------

    def apply(self, repo: str, a: Action, work: Work) -> tuple[str | None, BaseException | None]:
        """(the pass-style error line, the error) of a failed action; (None, None) if not."""
        elog = EnvLog(log, {"repo": repo, "env": a.env})

        def progress(msg: str) -> None:
            elog.info("%s", msg)
            if self._progress:
                self._progress(repo, a.env, msg)

        try:
            if a.op is ActionOp.REMOVE:
                self._remove(repo, a, progress)
                return None, None
            assert a.desired is not None
            failed = self.failed.get(a.env)
            if failed and failed[0] == a.desired.spec_hash:
                self.note(
                    repo,
                    a.env,
                    "waiting",
                    f"not retried: this version failed ({failed[1]}); waiting for a new commit",
                    level="warning",
                )
                return None, None
            self._converge(repo, a, progress, work)
            return None, None
        except Superseded:
            self.note(
                repo,
                a.env,
                "superseded",
                f"{a.op.value} at {a.desired.commit[:12] if a.desired else '?'} abandoned: "
                "a newer version runs next",
                force=True,
            )
            return None, None
        except Abandoned as e:  # another replica leads, or the service stops
            elog.warning("%s; left as it is", e)
            return None, None
        except ReconcilerError as e:
            if not e.retryable:
                return self._terminal(repo, a, e, str(e)), e
            # Not this version's fault (engine gone, git read failed): retried, not remembered.
            self.note(
                repo,
                a.env,
                "apply_failed",
                f"{a.op.value} interrupted: {e}",
                level="error",
                force=True,
            )
            return f"{a.env}: {e}", e
        except Exception as e:
            log.exception("[%s/%s] unexpected error", repo, a.env)
            return self._terminal(repo, a, e, f"{type(e).__name__}: {e}"), e

    def _remove(self, repo: str, a: Action, progress: Callable[[str], None]) -> None:
        assert a.observed is not None
        self.records.set_status(a.env, repo, "removing")
        for gone in self.hooks.on_removed:
            call_hook(gone, a.env)
        self.applier.remove(a.observed, progress)
        self.store.forget_environment(a.env, repo)
        self.records.removed(a.env, repo, a.reason, a.observed.ref, a.observed.commit)
        self.note(repo, a.env, "removed", f"removed: {a.reason}", force=True)

    def _converge(self, repo: str, a: Action, progress: Callable[[str], None], work: Work) -> None:
        assert a.desired is not None
        self.records.set_status(
            a.env,
            repo,
            "building",
            ref=a.desired.ref.name,
            kind=a.desired.ref.kind,
            commit=a.desired.commit,
        )
        res: ApplyResult
        if a.op is ActionOp.CREATE:
            res = self.applier.create(a.desired, progress, work)
            verb = "created"
        else:
            assert a.observed is not None
            res = self.applier.update(a.desired, a.observed, list(a.services), progress, work)
            verb = "updated"
        self.failed.pop(a.env, None)
        self.note(
            repo,
            a.env,
            verb,
            f"{verb} at {a.desired.commit[:12]}: {a.reason}",
            force=True,
            details={"url": res.url, "commit": a.desired.commit},
        )
        started = frozenset(a.desired.services if a.op is ActionOp.CREATE else a.services)
        for hook in self.hooks.on_applied:
            call_hook(hook, a.desired, started)
        problem = self.problem(a.env)
        self.records.set_status(
            a.env, repo, "degraded" if problem else "healthy", url=res.url, last_error=problem
        )

    def _terminal(self, repo: str, a: Action, error: BaseException, msg: str) -> str:
        """This version failed: remembered per spec hash, so it waits for a new commit."""
        if a.desired is not None:
            self.failed[a.env] = (a.desired.spec_hash, msg.splitlines()[0] if msg else "")
            kept = " ; the previous version keeps running" if a.op is ActionOp.UPDATE else ""
            output = self.records.output_of(error)
            self.records.set_status(a.env, repo, "failed", last_error=msg, last_output=output)
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
        return f"{a.env}: {msg}"
