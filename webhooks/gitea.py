"""Gitea (and Forgejo) webhooks: verify `X-Gitea-Signature`, normalise into a `GitEvent`.

Why it exists: Gitea's payloads are GitHub-shaped, so the mapping itself is github.py's
`parse_payload`; what differs, and lives here, is the header names, the bare-hex signature
(no `sha256=` prefix) and a few action names (`synchronized`, `label_updated`, ...).

Gitea sends `X-Gitea-Event: pull_request` for every PR sub-event (sync, label, assign...)
and the detail in `X-Gitea-Event-Type`; review events arrive as `pull_request_approved`,
`pull_request_rejected`, `pull_request_comment` and are ignored. Forgejo sends the same
payloads; its `X-Forgejo-*` headers (and Gogs' `X-Gogs-*`) are accepted as fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhooks import github
from webhooks._payload import (
    IDEMPOTENCY_KEY,
    Headers,
    delivery_id,
    header,
    load_object,
    require_secret,
)
from webhooks.events import GitEvent, MalformedPayload, SignatureError
from webhooks.signing import Check, DecodedHmac, HexHmac, verify_whole

PROVIDER = "gitea"
EVENT_HEADERS = ("X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event")
SIGNATURE_HEADERS = ("X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature")
DELIVERY_HEADERS = ("X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery", IDEMPOTENCY_KEY)
FORM = "application/x-www-form-urlencoded"

PR_ACTIONS: Mapping[str, str] = {
    "opened": "opened",
    "synchronized": "synchronize",
    "synchronize": "synchronize",
    "closed": "closed",
    "reopened": "reopened",
    "edited": "edited",
    "label_updated": "labeled",
    "label_cleared": "unlabeled",
}


def check(headers: Headers, secret: str) -> Check:
    """The check of `X-Gitea-Signature: <hex>` (or Forgejo's / Gogs' header, or
    `X-Hub-Signature-256: sha256=<hex>` when those are absent).

    Gitea signs the JSON payload: for a form-encoded delivery (`payload=<urlencoded
    JSON>`) that is the decoded `payload` field, not the bytes on the wire.
    """
    require_secret(secret)
    form = (header(headers, "Content-Type") or "").split(";")[0].strip().lower() == FORM
    for name in SIGNATURE_HEADERS:
        given = header(headers, name)
        if given is not None:
            return DecodedHmac(given, secret, name) if form else HexHmac(given, secret, name)
    if header(headers, github.SIGNATURE_HEADER) is not None:
        hub = github.hub_check(headers, secret)
        return DecodedHmac(hub.given, secret, hub.what) if form else hub
    raise SignatureError(f"{SIGNATURE_HEADERS[0]} header: missing")


def verify(headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless the delivery is signed with `secret` (see `check`)."""
    verify_whole(check(headers, secret), body)


def parse(headers: Headers, body: bytes) -> GitEvent:
    """Normalise a Gitea delivery; raise MalformedPayload naming the bad field."""
    event = next((v for v in (header(headers, n) for n in EVENT_HEADERS) if v), None)
    if event is None:
        raise MalformedPayload(f"{EVENT_HEADERS[0]} header: missing")
    delivery = delivery_id(headers, *DELIVERY_HEADERS)
    payload = load_object(headers, body)
    return github.parse_payload(PROVIDER, event, payload, delivery, PR_ACTIONS)
