"""GitLab webhooks: check `X-Gitlab-Token` or the signing token's `webhook-signature`,
normalise the payload into a `GitEvent`.

Why it exists: GitLab authenticates with a shared token (or, with a signing token, an
HMAC over id, timestamp and body in the Standard Webhooks form), names
events in the header (`Push Hook`, `Merge Request Hook`, ...) and shapes merge requests
quite differently from GitHub (`object_attributes.iid`, `open/update/merge` actions,
`opened/merged` states, project ids for forks). This module maps that onto the same
`GitEvent` the other providers produce.

A System Hook at its defaults sends `repository_update` (push events are opt-in there):
that is "the repository changed", a push without a ref.

Delivery id: `Idempotency-Key` (equal to `webhook-id`) is preferred over
`X-Gitlab-Event-UUID`. GitLab keeps the
former stable across retries of one delivery, while the latter is shared by "recursive"
hooks (a hook whose handler triggers another event), which must not be deduplicated.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhooks._payload import (
    IDEMPOTENCY_KEY,
    Headers,
    JsonObject,
    best_effort_str,
    clip,
    delivery_id,
    header,
    is_zero_sha,
    load_object,
    names,
    opt_bool,
    opt_str,
    req_int,
    req_str,
    require_secret,
)
from webhooks.events import (
    BRANCH_DELETED,
    PULL_REQUEST,
    PUSH,
    GitEvent,
    MalformedPayload,
    SignatureError,
    ignored,
)
from webhooks.signing import Check, StandardWebhook, TokenCheck, verify_whole

PROVIDER = "gitlab"
EVENT_HEADER = "X-Gitlab-Event"
TOKEN_HEADER = "X-Gitlab-Token"
DELIVERY_HEADERS = (IDEMPOTENCY_KEY, StandardWebhook.ID, "X-Gitlab-Event-UUID")

MR_ACTIONS: Mapping[str, str] = {
    "open": "opened",
    "update": "synchronize",
    "close": "closed",
    "merge": "closed",
    "reopen": "reopened",
}
MR_STATES: Mapping[str, str] = {
    "opened": "open",
    "locked": "open",  # transient state while a merge is in progress
    "closed": "closed",
    "merged": "closed",
}
# A System Hook says what it is in `object_kind`; map that to the project-hook header.
SYSTEM_HOOK_KINDS: Mapping[str, str] = {
    "push": "Push Hook",
    "tag_push": "Tag Push Hook",
    "merge_request": "Merge Request Hook",
    # a System Hook's default (push events are opt-in there): some refs of a project moved
    "repository_update": "Repository Update",
}


def check(headers: Headers, secret: str) -> Check:
    """A signing-token delivery (`webhook-signature`, HMAC-SHA256 over
    `<webhook-id>.<webhook-timestamp>.<body>`, timestamp within 5 minutes) is checked by
    its signature; any other by `X-Gitlab-Token` equal to `secret` (constant time)."""
    require_secret(secret)
    if header(headers, StandardWebhook.SIGNATURE) is not None:
        return StandardWebhook(headers, secret)
    token = header(headers, TOKEN_HEADER)
    if token is None:
        raise SignatureError(f"{TOKEN_HEADER} header: missing")
    return TokenCheck(token, secret, TOKEN_HEADER)


def verify(headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless the delivery is authenticated with `secret`."""
    verify_whole(check(headers, secret), body)


def parse(headers: Headers, body: bytes) -> GitEvent:
    """Normalise a GitLab delivery; raise MalformedPayload naming the bad field."""
    event = header(headers, EVENT_HEADER)
    if event is None:
        raise MalformedPayload(f"{EVENT_HEADER} header: missing")
    delivery = delivery_id(headers, *DELIVERY_HEADERS)
    payload = load_object(headers, body)
    if event == "System Hook":
        kind = opt_str(payload, "object_kind") or opt_str(payload, "event_name") or "unknown"
        event = SYSTEM_HOOK_KINDS.get(kind, f"System Hook ({clip(kind)})")
    if event == "Push Hook":
        return _push(payload, delivery)
    if event == "Tag Push Hook":
        project = req_str(payload, "project.path_with_namespace")
        return ignored(PROVIDER, "tag push", project, delivery, ref=opt_str(payload, "ref"))
    if event == "Merge Request Hook":
        return _merge_request(payload, delivery)
    if event == "Repository Update":
        project = req_str(payload, "project.path_with_namespace")
        return GitEvent(provider=PROVIDER, kind=PUSH, repository=project, delivery_id=delivery)
    repository = best_effort_str(payload, "project.path_with_namespace")
    return ignored(PROVIDER, f"event '{clip(event)}' changes nothing", repository, delivery)


def _push(payload: JsonObject, delivery: str | None) -> GitEvent:
    repository = req_str(payload, "project.path_with_namespace")
    ref = req_str(payload, "ref")
    if ref.startswith("refs/tags/"):
        return ignored(PROVIDER, "tag push", repository, delivery, ref=ref)
    if not ref.startswith("refs/heads/") or ref == "refs/heads/":
        reason = f"push to '{clip(ref)}' is not a branch"
        return ignored(PROVIDER, reason, repository, delivery, ref=ref)
    kind = BRANCH_DELETED if is_zero_sha(opt_str(payload, "after")) else PUSH
    return GitEvent(
        provider=PROVIDER, kind=kind, repository=repository, delivery_id=delivery, ref=ref
    )


def _merge_request(payload: JsonObject, delivery: str | None) -> GitEvent:
    repository = req_str(payload, "project.path_with_namespace")
    action = opt_str(payload, "object_attributes.action")
    normalised: str | None = None
    if action is not None:
        normalised = MR_ACTIONS.get(action)
        if normalised is None:
            reason = f"merge request action '{clip(action)}' changes nothing"
            return ignored(PROVIDER, reason, repository, delivery)
    raw_state = req_str(payload, "object_attributes.state")
    state = MR_STATES.get(raw_state)
    if state is None:
        raise MalformedPayload(
            f"object_attributes.state: expected one of {sorted(MR_STATES)}, got '{clip(raw_state)}'"
        )
    if normalised == "closed":
        state = "closed"
    source = req_int(payload, "object_attributes.source_project_id")
    target = req_int(payload, "object_attributes.target_project_id")
    draft = opt_bool(payload, "object_attributes.draft") or opt_bool(
        payload, "object_attributes.work_in_progress"
    )
    return GitEvent(
        provider=PROVIDER,
        kind=PULL_REQUEST,
        repository=repository,
        delivery_id=delivery,
        pr_number=req_int(payload, "object_attributes.iid"),
        pr_state=state,
        pr_action=normalised,
        pr_head_ref=req_str(payload, "object_attributes.source_branch"),
        pr_head_sha=opt_str(payload, "object_attributes.last_commit.id"),
        pr_is_fork=source != target,
        pr_draft=draft,
        pr_labels=names(payload, "labels", "title"),
        pr_updated_at=opt_str(payload, "object_attributes.updated_at"),
    )
