"""The `generic` provider: a signed "this repository changed, look again" poke.

Why it exists: not every git server speaks GitHub, GitLab or Gitea, and a CI job or a
post-receive hook often just wants to nudge the reconciler. Because the reconciler is
level-triggered, the body barely matters: any JSON (or an empty body) is a `push`, unless it
names a tag ref (`{"ref": "refs/tags/..."}`), which is ignored like provider tag pushes.
Authentication is a GitHub-style `X-Hub-Signature-256: sha256=<hex>` over the raw body.
"""

from __future__ import annotations

from typing import Any

from webhooks import github
from webhooks._payload import IDEMPOTENCY_KEY, Headers, delivery_id, load_json
from webhooks.events import PUSH, GitEvent, ignored
from webhooks.signing import Check

PROVIDER = "generic"
DELIVERY_HEADERS = (IDEMPOTENCY_KEY, github.DELIVERY_HEADER)


def check(headers: Headers, secret: str) -> Check:
    """The streaming check of `X-Hub-Signature-256: sha256=<hex>`."""
    return github.hub_check(headers, secret)


def verify(headers: Headers, body: bytes, secret: str) -> None:
    """Raise SignatureError unless `X-Hub-Signature-256: sha256=<hex>` signs `body`."""
    github.verify_hub_signature(headers, body, secret)


def parse(headers: Headers, body: bytes) -> GitEvent:
    """Any JSON body is a push; `{"ref": "refs/tags/..."}` is ignored as a tag push."""
    delivery = delivery_id(headers, *DELIVERY_HEADERS)
    data: Any = load_json(body) if body.strip() else {}
    ref = data.get("ref") if isinstance(data, dict) else None
    if not isinstance(ref, str) or not ref.startswith("refs/"):
        ref = None
    if ref is not None and ref.startswith("refs/tags/"):
        return ignored(PROVIDER, "tag push", None, delivery, ref=ref)
    return GitEvent(provider=PROVIDER, kind=PUSH, repository=None, delivery_id=delivery, ref=ref)
