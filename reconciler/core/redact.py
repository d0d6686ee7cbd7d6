"""Credentials out of text: the one scrub every message that leaves git goes through.

A repo `url` may carry credentials (`https://x-access-token:ghp_…@host/org/repo.git`,
`…?private_token=…`), and git repeats the URL in its errors. `scrub()` replaces the
userinfo of any `scheme://userinfo@host` and the value of token-like query parameters
with `***`. `GitError` applies it to its own message, so a failed fetch can reach the
API, the dashboard, events, logs and the database only without them.
"""

from __future__ import annotations

import re

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")
_QUERY = re.compile(
    r"(?P<key>[?&;](?:access_token|private_token|oauth_token|token|api_key|apikey|key|secret"
    r"|password|passwd|pass|auth|sig|signature|client_secret)=)(?P<value>[^&;\s'\"#<>]+)",
    re.IGNORECASE,
)


def scrub(text: str) -> str:
    """`text` without URL credentials or token-like query values."""
    if "@" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m['key']}{MASK}", text)
