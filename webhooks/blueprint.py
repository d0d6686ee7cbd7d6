"""`POST /webhooks/<repo_name>`: verify, dedupe, enqueue. Nothing else.

Why it exists: a webhook is only a hint that a repository changed. The reconciler re-reads
git itself, so this endpoint must be fast and boring: it authenticates the delivery before
looking at the body, reduces it to a `GitEvent`, drops redeliveries, hands the event to the
sink (which enqueues) and answers. It never does git or Docker work, and no input, however
hostile, gets a 5xx: every refusal is a JSON `{"error": {"code", "message"}}`.

Order of checks: 404 unknown repo -> 413 body over `max_body` -> 401 no secret configured /
bad or missing signature -> 400 malformed -> 403 repository mismatch -> 200 ping ->
200 duplicate delivery -> 202 ignored -> 202 accepted. A 503 only ever means the sink
itself failed (the provider should retry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from flask import Blueprint, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from webhooks import generic, gitea, github, gitlab
from webhooks._payload import Headers, clip
from webhooks.events import IGNORED, PING, GitEvent, MalformedPayload, SignatureError

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], int]
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class WebhookRepo:
    """How one configured repository accepts webhooks."""

    name: str
    provider: str  # github | gitlab | gitea | generic
    secret: str | None
    repository: str | None  # expected owner/name (or GitLab path); None = do not check
    allow_unsigned: bool = False  # only consulted when no secret is configured
    max_body: int = 5 * 1024 * 1024


class WebhookSink(Protocol):
    def webhook_repo(self, name: str) -> WebhookRepo | None:
        """The repository's webhook settings, or None (-> 404)."""

    def remember_delivery(self, repo: str, delivery_id: str) -> bool:
        """True if this delivery id is new for `repo`, False if it was seen before."""

    def submit(self, repo: str, event: GitEvent) -> None:
        """Enqueue the event; must return quickly."""


class Provider(NamedTuple):
    verify: Callable[[Headers, bytes, str], None]
    parse: Callable[[Headers, bytes], GitEvent]


PROVIDERS: dict[str, Provider] = {
    "github": Provider(github.verify, github.parse),
    "gitlab": Provider(gitlab.verify, gitlab.parse),
    "gitea": Provider(gitea.verify, gitea.parse),
    "generic": Provider(generic.verify, generic.parse),
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

    body = read_body(repo.max_body)
    if body is None:
        return error(413, "too_large", f"body larger than {repo.max_body} bytes")
    headers: Headers = {key.lower(): value for key, value in request.headers.items()}

    if repo.secret:
        try:
            provider.verify(headers, body, repo.secret)
        except SignatureError as exc:
            log.info("webhook %s: rejected delivery: %s", repo.name, exc)
            return error(401, "bad_signature", str(exc))
    elif not repo.allow_unsigned:
        return error(401, "no_secret", "no webhook secret configured for this repository")

    try:
        event = provider.parse(headers, body)
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

    try:
        delivery = event.delivery_id
        if delivery is not None and not sink.remember_delivery(repo.name, delivery):
            return {"duplicate": True}, 200
        if event.kind == IGNORED:
            return {"ignored": event.ignored_reason or "ignored"}, 202
        sink.submit(repo.name, event)
    except Exception:
        log.exception("webhook %s: sink failed", repo.name)
        return error(503, "unavailable", "could not enqueue the delivery; retry later")
    return {"accepted": True, "kind": event.kind}, 202


def read_body(limit: int) -> bytes | None:
    """The request body, or None if it is (or claims to be) longer than `limit` bytes.

    Reads at most `limit + 1` bytes, whatever Content-Length says.
    """
    limit = max(0, limit)
    declared = request.content_length
    if declared is not None and declared > limit:
        return None
    chunks: list[bytes] = []
    total = 0
    try:
        stream = request.stream
        while total <= limit:
            chunk = stream.read(min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except RequestEntityTooLarge:  # the app's own MAX_CONTENT_LENGTH is lower
        return None
    return None if total > limit else b"".join(chunks)
