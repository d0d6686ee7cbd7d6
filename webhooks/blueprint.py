"""`POST /webhooks/<repo_name>`: verify, dedupe, enqueue. Nothing else.

Why it exists: a webhook is only a hint that a repository changed. The reconciler re-reads
git itself, so this endpoint must be fast and boring: it authenticates the delivery while
the body streams in, reduces it to a `GitEvent`, hands it to the sink (which drops
redeliveries and stale PR states, enqueues, and only then records the delivery) and
answers. It never does git or Docker work, and no input, however hostile, gets a 5xx
other than 503: every refusal is a JSON `{"error": {"code", "message"}}`.

Order of checks: 404 unknown repo -> 413 declared or streamed body over `max_body` ->
401 no secret configured / bad or missing signature -> 400 malformed -> 403 repository
mismatch -> 200 ping -> 200 duplicate (delivery id or identical body) -> 202 ignored
(incl. a PR state older than the one recorded) -> 202 accepted. A body above
`max_parse` but within `max_body` is verified while it streams and becomes a plain
"repository changed" pass without being parsed. A 503 only ever means the sink itself
failed; nothing was recorded, so the provider's retry is taken.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from flask import Blueprint, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webhooks import generic, gitea, github, gitlab
from webhooks._payload import IDEMPOTENCY_KEY, Headers, clip, delivery_id
from webhooks.events import (
    IGNORED,
    PING,
    PUSH,
    BodyTooLarge,
    GitEvent,
    MalformedPayload,
    SignatureError,
)
from webhooks.signing import Check, feed

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], int]
_CHUNK = 64 * 1024
MAX_BODY = 25 * 1024 * 1024  # GitHub's own cap on a delivery
MAX_PARSE = 5 * 1024 * 1024

# Verdicts of WebhookSink.deliver
ACCEPTED, DUPLICATE = "accepted", "duplicate"


@dataclass(frozen=True)
class WebhookRepo:
    """How one configured repository accepts webhooks."""

    name: str
    provider: str  # github | gitlab | gitea | generic
    secret: str | None
    repository: str | None  # expected owner/name (or GitLab path); None = do not check
    allow_unsigned: bool = False  # only consulted when no secret is configured
    max_body: int = MAX_BODY  # refused (413) above this
    max_parse: int = MAX_PARSE  # above this: verified while streaming, not parsed


class Verdict(NamedTuple):
    status: str  # accepted | duplicate | ignored
    reason: str | None = None  # why it was ignored


class WebhookSink(Protocol):
    def webhook_repo(self, name: str) -> WebhookRepo | None:
        """The repository's webhook settings, or None (-> 404)."""

    def deliver(self, repo: str, event: GitEvent, keys: tuple[str, ...]) -> Verdict:
        """`duplicate` if any of `keys` (delivery id, body digest) was seen within the
        dedupe window. Otherwise act on the event (enqueue; an IGNORED event is not
        enqueued), and only once that succeeded record `keys`. Raising means nothing
        was recorded. Must return quickly."""


class Provider(NamedTuple):
    check: Callable[[Headers, str], Check]
    parse: Callable[[Headers, bytes], GitEvent]
    delivery_headers: tuple[str, ...]
    dedupe_bodies: bool = True  # generic pokes carry no identity: identical on purpose


PROVIDERS: dict[str, Provider] = {
    "github": Provider(github.check, github.parse, (github.DELIVERY_HEADER, IDEMPOTENCY_KEY)),
    "gitlab": Provider(gitlab.check, gitlab.parse, gitlab.DELIVERY_HEADERS),
    "gitea": Provider(gitea.check, gitea.parse, gitea.DELIVERY_HEADERS),
    "generic": Provider(generic.check, generic.parse, generic.DELIVERY_HEADERS, False),
}


def create_blueprint(sink: WebhookSink) -> Blueprint:
    """A blueprint serving `POST /webhooks/<repo_name>` on behalf of `sink`."""
    bp = Blueprint("webhooks", __name__)

    @bp.post("/webhooks/<repo_name>")
    def receive(repo_name: str) -> Reply:
        return handle(sink, repo_name)

    @bp.errorhandler(Exception)
    def on_error(exc: Exception) -> Reply:
        # Safety net only: handle() is written not to raise.
        if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
            return error(exc.code, "http", exc.description or exc.name)
        log.error("webhook: unexpected error while handling a delivery", exc_info=exc)
        return error(400, "unprocessable", "the delivery could not be processed")

    return bp


def error(status: int, code: str, message: str) -> Reply:
    return {"error": {"code": code, "message": message}}, status


class Body(NamedTuple):
    data: bytes | None  # None: longer than the parse limit (streamed, not kept)
    digest: str | None  # sha256 of the whole body, when no check digests it


def handle(sink: WebhookSink, repo_name: str) -> Reply:
    """Everything the route does, in the documented order."""
    try:
        repo = sink.webhook_repo(repo_name)
    except Exception:
        log.exception("webhook: sink.webhook_repo(%r) failed", repo_name)
        return error(503, "unavailable", "repository settings unavailable; retry later")
    if repo is None:
        return error(404, "not_found", f"no repository '{clip(repo_name)}' accepts webhooks")
    provider = PROVIDERS.get(repo.provider)
    if provider is None:
        log.error("webhook: repository %r has unknown provider %r", repo.name, repo.provider)
        return error(404, "not_found", f"repository '{clip(repo_name)}' has no webhook provider")
    too_large = error(413, "too_large", f"body larger than {repo.max_body} bytes")
    declared = request.content_length
    if declared is not None and declared > repo.max_body:
        return too_large
    headers: Headers = {key.lower(): value for key, value in request.headers.items()}

    check: Check | None = None
    try:
        if repo.secret:
            check = provider.check(headers, repo.secret)
        elif not repo.allow_unsigned:
            return error(401, "no_secret", "no webhook secret configured for this repository")
        body = read_body(repo.max_body, min(repo.max_parse, repo.max_body), check)
        if body is None:
            return too_large
        digest = body.digest
        if check is not None:
            check.verify(body.data)
            digest = check.digest() or digest
    except SignatureError as exc:
        log.info("webhook %s: rejected delivery: %s", repo.name, exc)
        return error(401, "bad_signature", str(exc))
    except BodyTooLarge as exc:
        return error(413, "too_large", str(exc))
    except MalformedPayload as exc:  # a malformed delivery-id header
        return error(400, "malformed", exc.reason)

    try:
        event = _event(repo, provider, headers, body)
    except MalformedPayload as exc:
        return error(400, "malformed", exc.reason)

    if (
        repo.repository
        and event.repository is not None
        and event.repository.casefold() != repo.repository.casefold()
    ):
        message = (
            f"repository mismatch: got '{clip(event.repository)}', expected '{repo.repository}'"
        )
        return error(403, "repository_mismatch", message)
    if event.kind == PING:
        return {"pong": True}, 200

    keys: tuple[str, ...] = ()
    if event.delivery_id is not None:
        keys += (event.delivery_id,)
    if provider.dedupe_bodies and digest is not None:
        keys += (f"body:{digest}",)
    try:
        verdict = sink.deliver(repo.name, event, keys)
    except Exception:
        log.exception("webhook %s: sink failed", repo.name)
        return error(503, "unavailable", "could not enqueue the delivery; retry later")
    if verdict.status == DUPLICATE:
        return {"duplicate": True}, 200
    if verdict.status != ACCEPTED or event.kind == IGNORED:
        return {"ignored": verdict.reason or event.ignored_reason or "ignored"}, 202
    if body.data is None:
        return {"accepted": True, "kind": event.kind, "parsed": False}, 202
    return {"accepted": True, "kind": event.kind}, 202


def _event(repo: WebhookRepo, provider: Provider, headers: Headers, body: Body) -> GitEvent:
    if body.data is not None:
        return provider.parse(headers, body.data)
    # Verified but too large to parse: the pass reads git anyway, so "it changed" is all
    # that is needed. Which repository it names cannot be checked without parsing; the
    # signature already says who sent it.
    delivery = delivery_id(headers, *provider.delivery_headers)
    return GitEvent(provider=repo.provider, kind=PUSH, repository=None, delivery_id=delivery)


def read_body(limit: int, keep: int, check: Check | None = None) -> Body | None:
    """The request body streamed through `check`; None if it is longer than `limit`
    bytes. Only a body of at most `keep` bytes is kept. Reads at most `limit + 1` bytes,
    whatever Content-Length says. A sha256 of the body is taken only when `check` does
    not digest it itself (each pass over the body hands the GIL around once more)."""
    limit = max(0, limit)
    kept: list[bytes] | None = []
    total = 0
    digest = None if check is not None and check.keyed_digest else hashlib.sha256()
    try:
        stream = request.stream
        while total <= limit:
            chunk = stream.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            total += len(chunk)
            if digest is not None:
                feed(digest, chunk)
            if check is not None and total <= limit:
                check.update(chunk)
            if kept is not None and total <= keep:
                kept.append(chunk)
            else:
                kept = None
    except RequestEntityTooLarge:  # the app's own MAX_CONTENT_LENGTH is lower
        return None
    if total > limit:
        return None
    data = b"".join(kept) if kept is not None else None
    return Body(data, digest.hexdigest() if digest is not None else None)
