"""Credentials out of text: the one scrub every message that leaves git goes through.

A repo `url` may carry credentials (`https://x-access-token:ghp_…@host/org/repo.git`,
`…?private_token=…`), and git repeats the URL in its errors. `scrub()` replaces the
userinfo of any `scheme://userinfo@host` and the value of token-like query parameters
with `***`. `GitError` applies it to its own message, so a failed fetch can reach the
API, the dashboard, events, logs and the database only without them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


class Masker:
    """Replaces known secret values in job output with `***` before it is stored.

    Values shorter than `MIN_SECRET` characters are left alone (masking "1" or "true"
    would shred the output and protect nothing). Output kept as head and tail (the
    middle dropped) is masked per part, and a part's edge that could be the start (or
    the end) of a secret cut in two is masked too.
    """

    MIN_SECRET = 4

    def __init__(self, values: Iterable[str]) -> None:
        found = {v for v in values if isinstance(v, str) and len(v) >= self.MIN_SECRET}
        self.values = sorted(found, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in self.values)) if found else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern is not None else text

    def mask_cut(self, head: str, tail: str) -> tuple[str, str]:
        """`head` and `tail` of one stream whose middle was dropped."""
        head, tail = self.mask(head), self.mask(tail)
        for value in self.values:
            for n in range(len(value) - 1, 0, -1):
                if head.endswith(value[:n]):
                    head = head[:-n] + MASK
                    break
            for n in range(len(value) - 1, 0, -1):
                if tail.startswith(value[-n:]):
                    tail = MASK + tail[n:]
                    break
        return head, tail
