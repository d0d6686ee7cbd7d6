"""The service's side of the webhook blueprint: which repos accept deliveries, the
durable delivery-id record, and what an event changes — the stored state of a PR and one
more pass for its repo. Nothing here trusts a sha from a payload."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reconciler.core.settings import Settings
from reconciler.storage.store import PullRequestState, Store
from webhooks import PULL_REQUEST, GitEvent, WebhookRepo

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
        )

    def remember_delivery(self, repo: str, delivery_id: str) -> bool:
        return self.store.remember_delivery(repo, delivery_id)

    def submit(self, repo: str, event: GitEvent) -> None:
        if event.kind == PULL_REQUEST and event.pr_number is not None and event.pr_state:
            self._record_pull_request(repo, event)
        self.trigger(repo, f"{event.provider} {event.kind}")

    def _record_pull_request(self, repo: str, event: GitEvent) -> None:
        """The latest delivery wins (arrival order). Payload timestamps are not compared:
        providers' `updated_at` is not monotonic across actions (a reopen can carry an
        older one than the close before it); with an API token, the API list is the truth."""
        assert event.pr_number is not None and event.pr_state is not None
        self.store.record_pull_request(
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
            ),
        )
