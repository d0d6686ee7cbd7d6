"""Signature checks that run while the body streams in.

Why it exists: a delivery may be larger than the service is willing to parse (GitHub sends
up to 25 MB), yet it must still be authenticated before anything is done with it. So a
provider does not verify a finished body: it hands out a `Check` built from the headers
(a missing or malformed header fails at once), the body's chunks are fed to `update()` as
they are read, and `verify()` decides at the end. Every comparison is constant time.

Shapes:
- `HexHmac`: hex HMAC-SHA256 of the raw body (`X-Hub-Signature-256`, `X-Gitea-Signature`).
- `DecodedHmac`: hex HMAC-SHA256 of the JSON inside a form-encoded body (`payload=<json>`),
  which is what Gitea signs when it sends `application/x-www-form-urlencoded`. It needs the
  whole (kept) body; a form body above the parse limit cannot be verified.
- `TokenCheck`: a shared token compared with the secret (`X-Gitlab-Token`; no body).
- `StandardWebhook`: `webhook-signature: v1,<base64>` = HMAC-SHA256 over
  `<webhook-id>.<webhook-timestamp>.<body>` with the decoded `whsec_` key, the timestamp
  within `TOLERANCE` of now (GitLab signing tokens, the Standard Webhooks scheme).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from webhooks._payload import Headers, header, same
from webhooks.events import BodyTooLarge, SignatureError

TOLERANCE = 300.0  # seconds a signed timestamp may be away from our clock
# hashlib releases the GIL for every update of 2 KiB or more; a webhook body of a few
# dozen KiB is hashed faster than the threads of a busy server take turns, so bodies up
# to SMALL_BODY are fed in pieces below that threshold.
_PIECE = 2047
SMALL_BODY = 256 * 1024


def feed(mac: Any, chunk: bytes) -> None:
    """`mac.update(chunk)`, without handing the GIL around for a small body."""
    if len(chunk) > SMALL_BODY:
        mac.update(chunk)
        return
    view = memoryview(chunk)
    for start in range(0, len(view), _PIECE):
        mac.update(view[start : start + _PIECE])


class Check(Protocol):
    keyed_digest: bool  # digest() identifies the body: no separate hash of it is needed

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk of the raw body."""

    def verify(self, body: bytes | None) -> None:
        """Raise SignatureError unless authentic. `body` is the whole body when it was
        kept (within the parse limit), None when it was only streamed."""

    def digest(self) -> str | None:
        """After a successful `verify`: a keyed digest that identifies the body (the
        HMAC itself, so the body is hashed once), or None when the check has none."""


def _key(secret: str) -> bytes:
    return secret.encode("utf-8", "surrogatepass")


class HexHmac:
    keyed_digest = True

    def __init__(self, given: str, secret: str, what: str) -> None:
        self.given = given.strip().lower()
        self.what = what
        self._mac = hmac.new(_key(secret), digestmod=hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        feed(self._mac, chunk)

    def verify(self, body: bytes | None) -> None:
        if not same(self.given, self._mac.hexdigest()):
            raise SignatureError(f"{self.what}: signature does not match")

    def digest(self) -> str | None:
        return self._mac.hexdigest()


class DecodedHmac:
    """Gitea's form encoding: the signature covers the decoded `payload` field."""

    keyed_digest = False

    def __init__(self, given: str, secret: str, what: str) -> None:
        self.given = given.strip().lower()
        self.secret = secret
        self.what = what

    def update(self, chunk: bytes) -> None:
        pass  # the blueprint keeps the body; the form is decoded at the end

    def verify(self, body: bytes | None) -> None:
        if body is None:
            raise BodyTooLarge(
                "a form-encoded delivery above the parse limit cannot be verified: "
                "set the webhook's content type to application/json"
            )
        try:
            fields = parse_qs(body.decode("utf-8"), max_num_fields=100)
        except ValueError:
            raise SignatureError(f"{self.what}: body is not valid form data") from None
        payload = (fields.get("payload") or [""])[0].encode("utf-8", "surrogatepass")
        expected = hmac.new(_key(self.secret), payload, hashlib.sha256).hexdigest()
        if not same(self.given, expected):
            raise SignatureError(f"{self.what}: signature does not match")

    def digest(self) -> str | None:
        return None


class TokenCheck:
    keyed_digest = False

    def __init__(self, given: str, secret: str, what: str) -> None:
        self.ok = same(given, secret)
        self.what = what

    def update(self, chunk: bytes) -> None:
        pass

    def verify(self, body: bytes | None) -> None:
        if not self.ok:
            raise SignatureError(f"{self.what}: token does not match")

    def digest(self) -> str | None:
        return None


def standard_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` signing token (any other string: its bytes)."""
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            pass
    return _key(secret)


class StandardWebhook:
    keyed_digest = True

    ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"

    def __init__(
        self, headers: Headers, secret: str, clock: Callable[[], float] = time.time
    ) -> None:
        wid = header(headers, self.ID)
        stamp = header(headers, self.TIMESTAMP)
        signatures = header(headers, self.SIGNATURE) or ""
        if wid is None:
            raise SignatureError(f"{self.ID} header: missing")
        if stamp is None:
            raise SignatureError(f"{self.TIMESTAMP} header: missing")
        if not stamp.isdigit():
            raise SignatureError(f"{self.TIMESTAMP} header: expected Unix seconds")
        if abs(clock() - int(stamp)) > TOLERANCE:
            raise SignatureError(
                f"{self.TIMESTAMP} header: more than {TOLERANCE:.0f}s away from our clock"
            )
        self.given = [
            part.partition(",")[2] for part in signatures.split() if part.startswith("v1,")
        ]
        if not self.given:
            raise SignatureError(f"{self.SIGNATURE} header: expected 'v1,<base64>'")
        self._mac = hmac.new(standard_key(secret), digestmod=hashlib.sha256)
        self._mac.update(f"{wid}.{stamp}.".encode("utf-8", "surrogatepass"))

    def update(self, chunk: bytes) -> None:
        feed(self._mac, chunk)

    def verify(self, body: bytes | None) -> None:
        expected = base64.b64encode(self._mac.digest()).decode()
        # every entry is compared, so the time taken does not say which one matched
        matched = [same(given, expected) for given in self.given]
        if not any(matched):
            raise SignatureError(f"{self.SIGNATURE} header: signature does not match")

    def digest(self) -> str | None:
        return self._mac.hexdigest()


def verify_whole(check: Check, body: bytes) -> None:
    """Run a streaming check over a body already in memory."""
    check.update(body)
    check.verify(body)
