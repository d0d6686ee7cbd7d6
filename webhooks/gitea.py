"""Gitea (and Forgejo) webhooks: verify `X-Gitea-Signature`, normalise into a `GitEvent`.

Why it exists: Gitea's payloads are GitHub-shaped, so the mapping itself is github.py's
`parse_payload`; what differs, and lives here, is the header names, the bare-hex signature
(no `sha256=` prefix) and a few action names (`synchronized`, `label_updated`, ...).

Gitea sends `X-Gitea-Event: pull_request` for every PR sub-event (sync, label, assign...)
and the detail in `X-Gitea-Event-Type`; review events arrive as `pull_request_approved`,
`pull_request_rejected`, `pull_request_comment` and are ignored. Forgejo sends the same
payloads; its `X-Forgejo-*` headers are accepted as fallbacks.
"""

from __future__ import annotations

from collections.abc import Mapping

from webhooks import github
from webhooks._payload import (
    IDEMPOTENCY_KEY,
    Headers,
    check_hex_signature,
    delivery_id,
    header,
    load_object,
    require_secret,
)
from webhooks.events import GitEvent, MalformedPayload, SignatureError

PROVIDER = "gitea"
EVENT_HEADERS = ("X-Gitea-Event", "X-Forgejo-Event")
SIGNATURE_HEADERS = ("X-Gitea-Signature", "X-Forgejo-Signature")
DELIVERY_HEADERS = ("X-Gitea-Delivery", "X-Forgejo-Delivery", IDEMPOTENCY_KEY)

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


def verify(headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless `X-Gitea-Signature: <hex>` is HMAC-SHA256(secret, body).

    Gitea also sends `X-Hub-Signature-256: sha256=<hex>`; it is accepted when the Gitea
    header is absent (e.g. behind a proxy that strips unknown headers).
    """
    require_secret(secret)
    for name in SIGNATURE_HEADERS:
        given = header(headers, name)
        if given is not None:
            check_hex_signature(given, secret, body, name)
            return
    if header(headers, github.SIGNATURE_HEADER) is not None:
        github.verify_hub_signature(headers, body, secret)
        return
    raise SignatureError(f"{SIGNATURE_HEADERS[0]} header: missing")


def parse(headers: Headers, body: bytes) -> GitEvent:
    """Normalise a Gitea delivery; raise MalformedPayload naming the bad field."""
    event = next((v for v in (header(headers, n) for n in EVENT_HEADERS) if v), None)
    if event is None:
        raise MalformedPayload(f"{EVENT_HEADERS[0]} header: missing")
    delivery = delivery_id(headers, *DELIVERY_HEADERS)
    payload = load_object(headers, body)
    return github.parse_payload(PROVIDER, event, payload, delivery, PR_ACTIONS)
