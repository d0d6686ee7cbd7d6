"""What a pass reports before any environment is applied: each pull request's decision
(to the PR through the listeners) and every held ref (an unreadable spec keeps the
running version). Apart from the pass because these are the rules of records, the same
whatever order the environments then finish in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from reconciler.core.desired import DesiredState, HoldKind
from reconciler.core.model import Action, ObservedEnvironment
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.records import Records, call_hook
from reconciler.gitops.sources import Snapshot


@dataclass(frozen=True)
class PassPlan:
    snapshot: Snapshot
    state: DesiredState
    observed: dict[str, ObservedEnvironment]
    actions: list[Action]
    queued: list[str]  # PR environments waiting for room under max_environments
    waiting: list[str] = field(default_factory=list)  # over limits.max_environments_per_repo


class PassReport:
    def __init__(
        self, settings: Settings, records: Records, repo: Callable[[str], RepoSettings]
    ) -> None:
        self.settings = settings
        self.records = records
        self.note = records.note
        self.repo = repo

    def prs(self, repo: str, pp: PassPlan) -> None:
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
            for listener in self.records.listeners:
                call_hook(listener.pull_request_decided, repo, d.number, sha, msg, waiting)

    def held(
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
                self.records.set_status(env, repo, "degraded", last_error=h.reason)
