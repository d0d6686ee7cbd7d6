"""GitHub webhooks: verify `X-Hub-Signature-256`, normalise the payload into a `GitEvent`.

Why it exists: GitHub says "something changed" in a dozen shapes (push, create, delete,
pull_request with many actions, ping, ...). The reconciler only needs to know which
repository to re-read and the open/closed state of a pull request, so this module maps each
shape onto a `GitEvent` and marks everything else as ignored, with a reason.

Gitea sends GitHub-shaped payloads, so `parse_payload` is shared with gitea.py; only the
headers and a few action names differ.
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
    opt_int,
    opt_str,
    req_int,
    req_obj,
    req_str,
    require_secret,
)
from webhooks.events import (
    BRANCH_DELETED,
    PING,
    PULL_REQUEST,
    PUSH,
    GitEvent,
    MalformedPayload,
    SignatureError,
    ignored,
)
from webhooks.signing import Check, HexHmac, verify_whole

PROVIDER = "github"
EVENT_HEADER = "X-GitHub-Event"
SIGNATURE_HEADER = "X-Hub-Signature-256"
DELIVERY_HEADER = "X-GitHub-Delivery"
# Gitea, Forgejo and Gogs send these next to GitHub's headers; their `synchronized` and
# label actions are not GitHub's, so such a delivery needs `provider: gitea`.
GITEA_EVENT_HEADERS = ("X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event")

# pull_request actions that can change what should run -> normalised action name.
PR_ACTIONS: Mapping[str, str] = {
    action: action
    for action in (
        "opened",
        "synchronize",
        "closed",
        "reopened",
        "edited",
        "labeled",
        "unlabeled",
        "ready_for_review",
        "converted_to_draft",
    )
}


def check(headers: Headers, secret: str) -> Check:
    """The streaming check of `X-Hub-Signature-256: sha256=<hex>` (HMAC of the raw body,
    form-encoded or not: GitHub signs what it sends)."""
    return hub_check(headers, secret)


def verify(headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless `X-Hub-Signature-256: sha256=<hex>` signs `body`."""
    verify_whole(check(headers, secret), body)


def hub_check(headers: Headers, secret: str) -> HexHmac:
    require_secret(secret)
    given = header(headers, SIGNATURE_HEADER)
    if given is None:
        raise SignatureError(f"{SIGNATURE_HEADER} header: missing")
    algorithm, sep, digest = given.partition("=")
    if not sep or algorithm.strip().lower() != "sha256":
        raise SignatureError(f"{SIGNATURE_HEADER} header: expected 'sha256=<hex>'")
    return HexHmac(digest, secret, SIGNATURE_HEADER)


def verify_hub_signature(headers: Headers, body: bytes, secret: str) -> None:
    verify_whole(hub_check(headers, secret), body)


def parse(headers: Headers, body: bytes) -> GitEvent:
    """Normalise a GitHub delivery; raise MalformedPayload naming the bad field."""
    for name in GITEA_EVENT_HEADERS:
        if header(headers, name) is not None:
            raise MalformedPayload(
                f"{name} header: this delivery comes from Gitea/Forgejo/Gogs; "
                "configure this repository with provider: gitea"
            )
    event = header(headers, EVENT_HEADER)
    if event is None:
        raise MalformedPayload(f"{EVENT_HEADER} header: missing")
    delivery = delivery_id(headers, DELIVERY_HEADER, IDEMPOTENCY_KEY)
    payload = load_object(headers, body)
    return parse_payload(PROVIDER, event, payload, delivery, PR_ACTIONS)


def parse_payload(
    provider: str,
    event: str,
    payload: JsonObject,
    delivery: str | None,
    pr_actions: Mapping[str, str],
) -> GitEvent:
    """Map one GitHub-shaped payload (GitHub or Gitea) onto a GitEvent."""
    if event == "ping":
        repository = best_effort_str(payload, "repository.full_name")
        return GitEvent(provider=provider, kind=PING, repository=repository, delivery_id=delivery)
    if event == "push":
        return _push(provider, payload, delivery)
    if event in ("create", "delete"):
        return _create_or_delete(provider, event, payload, delivery)
    if event == "pull_request":
        return _pull_request(provider, payload, delivery, pr_actions)
    repository = best_effort_str(payload, "repository.full_name")
    return ignored(provider, f"event '{clip(event)}' changes nothing", repository, delivery)


def _push(provider: str, payload: JsonObject, delivery: str | None) -> GitEvent:
    repository = req_str(payload, "repository.full_name")
    ref = req_str(payload, "ref")
    if ref.startswith("refs/tags/"):
        return ignored(provider, "tag push", repository, delivery, ref=ref)
    if not ref.startswith("refs/heads/") or ref == "refs/heads/":
        reason = f"push to '{clip(ref)}' is not a branch"
        return ignored(provider, reason, repository, delivery, ref=ref)
    deleted = opt_bool(payload, "deleted") or is_zero_sha(opt_str(payload, "after"))
    kind = BRANCH_DELETED if deleted else PUSH
    return GitEvent(
        provider=provider, kind=kind, repository=repository, delivery_id=delivery, ref=ref
    )


def _create_or_delete(
    provider: str, event: str, payload: JsonObject, delivery: str | None
) -> GitEvent:
    repository = req_str(payload, "repository.full_name")
    ref_type = req_str(payload, "ref_type")
    ref = req_str(payload, "ref")
    if ref_type != "branch":
        verb = "created" if event == "create" else "deleted"
        return ignored(provider, f"{clip(ref_type)} {verb}", repository, delivery)
    full_ref = ref if ref.startswith("refs/heads/") else f"refs/heads/{ref}"
    kind = PUSH if event == "create" else BRANCH_DELETED
    return GitEvent(
        provider=provider, kind=kind, repository=repository, delivery_id=delivery, ref=full_ref
    )


def _pull_request(
    provider: str, payload: JsonObject, delivery: str | None, pr_actions: Mapping[str, str]
) -> GitEvent:
    repository = req_str(payload, "repository.full_name")
    action = req_str(payload, "action")
    normalised = pr_actions.get(action)
    if normalised is None:
        reason = f"pull_request action '{clip(action)}' changes nothing"
        return ignored(provider, reason, repository, delivery)
    req_obj(payload, "pull_request")
    number = opt_int(payload, "number")
    if number is None:
        number = req_int(payload, "pull_request.number")
    state = req_str(payload, "pull_request.state")
    if normalised == "closed":
        state = "closed"
    elif state not in ("open", "closed"):
        raise MalformedPayload(
            f"pull_request.state: expected 'open' or 'closed', got '{clip(state)}'"
        )
    base_repo = opt_str(payload, "pull_request.base.repo.full_name") or repository
    head_repo = opt_str(payload, "pull_request.head.repo.full_name")
    return GitEvent(
        provider=provider,
        kind=PULL_REQUEST,
        repository=repository,
        delivery_id=delivery,
        pr_number=number,
        pr_state=state,
        pr_action=normalised,
        pr_head_ref=req_str(payload, "pull_request.head.ref"),
        pr_head_sha=opt_str(payload, "pull_request.head.sha"),
        pr_is_fork=head_repo is None or head_repo.casefold() != base_repo.casefold(),
        pr_draft=opt_bool(payload, "pull_request.draft"),
        pr_labels=names(payload, "pull_request.labels", "name"),
        pr_updated_at=opt_str(payload, "pull_request.updated_at"),
    )
