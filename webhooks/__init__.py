"""Provider webhooks, reduced to one level-triggered `GitEvent`.

Why it exists: GitHub, GitLab and Gitea (plus a `generic` signed poke) all tell the service
"a repository changed", each in its own headers and JSON. This package authenticates those
deliveries (`<provider>.check`, streaming; `<provider>.verify` for a body in memory),
normalises them (`<provider>.parse`), and serves them over HTTP through
`create_blueprint(sink)`, which only verifies and hands over to the sink.
"""

from __future__ import annotations

from webhooks import generic, gitea, github, gitlab
from webhooks.blueprint import (
    ACCEPTED,
    DUPLICATE,
    PROVIDERS,
    Provider,
    Verdict,
    WebhookRepo,
    WebhookSink,
    create_blueprint,
)
from webhooks.events import (
    BRANCH_DELETED,
    IGNORED,
    PING,
    PULL_REQUEST,
    PUSH,
    GitEvent,
    MalformedPayload,
    SignatureError,
    WebhookError,
)

__all__ = [
    "ACCEPTED",
    "BRANCH_DELETED",
    "DUPLICATE",
    "IGNORED",
    "PING",
    "PROVIDERS",
    "PULL_REQUEST",
    "PUSH",
    "GitEvent",
    "MalformedPayload",
    "Provider",
    "SignatureError",
    "Verdict",
    "WebhookError",
    "WebhookRepo",
    "WebhookSink",
    "create_blueprint",
    "generic",
    "gitea",
    "github",
    "gitlab",
]
