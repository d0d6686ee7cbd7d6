"""The service's side of the webhook blueprint: which repos accept deliveries, the
delivery keys seen (ids and body digests), what an event changes — the stored state of a
PR, ordered by the payload's own timestamp — and one more pass for its repo. Nothing here
trusts a sha from a payload."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reconciler.core.settings import Settings
from reconciler.storage.store import PullRequestState, Store
from webhooks import ACCEPTED, DUPLICATE, IGNORED, PULL_REQUEST, GitEvent, Verdict, WebhookRepo

log = logging.getLogger(__name__)


class WebhookIntake:
    def __init__(
        self, settings: Settings, store: Store, trigger: Callable[[str, str], None]
    ) -> None:
        self.settings = settings
        self.store = store
        self.trigger = trigger
        for repo in settings.repos:
            if not repo.webhook_secret and repo.allow_unsigned_webhooks:
                log.warning(
                    "[%s] accepts UNSIGNED webhooks (allow_unsigned_webhooks: true): "
                    "anyone who can reach the endpoint can trigger passes",
                    repo.name,
                    extra={"repo": repo.name},
                )
            if repo.webhook_secret and not repo.repository and repo.provider != "generic":
                log.warning(
                    "[%s] has a webhook_secret but no `repository:` filter: a delivery "
                    "signed with the same secret for another repository is accepted; set "
                    "repository: <owner/name>",
                    repo.name,
                    extra={"repo": repo.name},
                )

    def webhook_repo(self, name: str) -> WebhookRepo | None:
        repo = self.settings.repo(name)
        if repo is None:
            return None
        return WebhookRepo(
            name=repo.name,
            provider=repo.provider,
            secret=repo.webhook_secret,
            repository=repo.repository,
            allow_unsigned=repo.allow_unsigned_webhooks,
            max_body=self.settings.server.max_body,
            max_parse=self.settings.server.max_parse,
        )

    def deliver(self, repo: str, event: GitEvent, keys: tuple[str, ...]) -> Verdict:
        deliveries = self.store.deliveries
        if not deliveries.claim(repo, keys):
            return Verdict(DUPLICATE)
        try:
            verdict = self._act(repo, event)
        except BaseException:
            deliveries.release(repo, keys)  # not queued: the provider's retry must count
            raise
        deliveries.confirm(repo, keys)
        return verdict

    def _act(self, repo: str, event: GitEvent) -> Verdict:
        if event.kind == IGNORED:
            return Verdict(IGNORED, event.ignored_reason)
        has_state = event.kind == PULL_REQUEST and event.pr_number is not None and event.pr_state
        if has_state and not self._record_pull_request(repo, event):
            return Verdict(
                IGNORED,
                f"pull request #{event.pr_number}: older than the state already "
                "recorded (payload updated_at); nothing changes",
            )
        self.trigger(repo, f"{event.provider} {event.kind}")
        return Verdict(ACCEPTED)

    def _record_pull_request(self, repo: str, event: GitEvent) -> bool:
        """Ordered by the payload's `updated_at`: an older event (a replay, a late
        retry) never overrides a newer state; equal times go by arrival."""
        assert event.pr_number is not None and event.pr_state is not None
        return self.store.record_pull_request(
            repo,
            PullRequestState(
                number=event.pr_number,
                state=event.pr_state,
                action=event.pr_action,
                head_ref=event.pr_head_ref,
                is_fork=event.pr_is_fork,
                draft=event.pr_draft,
                labels=tuple(event.pr_labels),
                updated_at=time.time(),
                event_at=event.pr_updated_ts,
            ),
        )
