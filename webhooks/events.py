"""The one value every provider webhook is reduced to, and the errors on the way there.

Why it exists: the reconciler is level-triggered. A webhook only tells it *which* repository
(and, for pull requests, which PR in which open/closed state) to look at again; it then
reads git itself. So GitHub, GitLab and Gitea payloads are squeezed into one small frozen
`GitEvent` here, and nothing downstream ever sees provider JSON. The sha fields are
informational only: nobody trusts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# Re-exported: the parsers and `webhooks` name them from here; they live in the one tree.
from reconciler.core.errors import BodyTooLarge as BodyTooLarge
from reconciler.core.errors import MalformedPayload as MalformedPayload
from reconciler.core.errors import SignatureError as SignatureError
from reconciler.core.errors import WebhookError as WebhookError

# GitEvent.kind values
PUSH = "push"
BRANCH_DELETED = "branch_deleted"
PULL_REQUEST = "pull_request"
PING = "ping"
IGNORED = "ignored"
KINDS = frozenset({PUSH, BRANCH_DELETED, PULL_REQUEST, PING, IGNORED})

PROVIDER_NAMES = ("github", "gitlab", "gitea", "generic")


@dataclass(frozen=True)
class GitEvent:
    """A verified, normalised webhook delivery: "repository X changed" plus PR state."""

    provider: str  # github | gitlab | gitea | generic
    kind: str  # push | branch_deleted | pull_request | ping | ignored
    repository: str | None  # owner/name (GitHub/Gitea full_name) or GitLab path_with_namespace
    delivery_id: str | None
    ref: str | None = None  # full ref for pushes (refs/heads/x)
    pr_number: int | None = None
    pr_state: str | None = None  # "open" | "closed" (merged counts as closed)
    pr_action: str | None = None  # opened, synchronize, closed, reopened, edited, labeled, ...
    pr_head_ref: str | None = None  # head branch name
    pr_head_sha: str | None = None  # informational only
    pr_is_fork: bool = False  # head repo differs from base repo
    pr_draft: bool = False
    pr_labels: tuple[str, ...] = ()
    pr_updated_at: str | None = None
    ignored_reason: str | None = None  # for kind == "ignored", e.g. "tag push"

    @property
    def pr_updated_ts(self) -> float | None:
        """`pr_updated_at` as Unix seconds (None when absent or unreadable)."""
        return parse_time(self.pr_updated_at)

    @property
    def branch(self) -> str | None:
        """The branch name of a push/branch_deleted ref (`refs/heads/x` -> `x`)."""
        if self.ref is not None and self.ref.startswith("refs/heads/"):
            return self.ref[len("refs/heads/") :]
        return None


def parse_time(text: str | None) -> float | None:
    """A provider timestamp as Unix seconds: ISO 8601 (`2019-05-15T15:20:33Z`,
    `…+02:00`) or GitLab's older `2013-12-03 17:23:34 UTC`; None if unreadable."""
    if not text or len(text) > 64:
        return None
    value = text.strip()
    if value.endswith(" UTC"):
        value = value[:-4] + "+00:00"
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value.replace(" +", "+").replace(" -", "-"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def ignored(
    provider: str,
    reason: str,
    repository: str | None,
    delivery_id: str | None,
    ref: str | None = None,
) -> GitEvent:
    """A delivery that is acknowledged but changes nothing the reconciler cares about."""
    return GitEvent(
        provider=provider,
        kind=IGNORED,
        repository=repository,
        delivery_id=delivery_id,
        ref=ref,
        ignored_reason=reason,
    )
