"""Dashboard sign-in: the API token, entered once in a form, becomes a signed cookie.

- The cookie is `<issued>.<nonce>.<HMAC-SHA256(api.token, issued.nonce)>`: it never holds
  the token itself, needs no server-side state, expires after `MAX_AGE`, and every cookie
  dies when the token is changed. It is HttpOnly and SameSite=Strict (Secure over HTTPS).
- CSRF: every form that changes something carries `HMAC(api.token, "csrf." + cookie)`, a
  token tied to that one cookie, checked with `hmac.compare_digest`. On top of that a
  POST whose Origin (or, without one, Referer) names another host is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from flask import Request, Response

COOKIE = "hoody_session"
FLASH = "hoody_flash"
MAX_AGE = 12 * 3600


class Auth:
    def __init__(self, token: str | None, public_read: bool) -> None:
        self.token = token or None
        self.public_read = public_read

    def _sign(self, message: str) -> str:
        assert self.token
        return hmac.new(self.token.encode(), message.encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str) -> bool:
        if not self.token:
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def new_session(self) -> str:
        stamp = f"{int(time.time())}.{secrets.token_hex(16)}"
        return f"{stamp}.{self._sign('session.' + stamp)}"

    def session(self, request: Request) -> str | None:
        """The request's valid session cookie, if it has one."""
        value = request.cookies.get(COOKIE, "")
        if not self.token or value.count(".") != 2:
            return None
        issued, nonce, sig = value.split(".")
        if not hmac.compare_digest(sig.encode(), self._sign(f"session.{issued}.{nonce}").encode()):
            return None
        if not issued.isdigit() or time.time() - int(issued) > MAX_AGE:
            return None
        return value

    def logged_in(self, request: Request) -> bool:
        return self.session(request) is not None

    def can_read(self, request: Request) -> bool:
        return self.public_read or self.logged_in(request)

    def csrf(self, request: Request) -> str | None:
        value = self.session(request)
        return self._sign("csrf." + value) if value else None

    def check_csrf(self, request: Request) -> bool:
        expected = self.csrf(request)
        given = request.form.get("csrf", "")
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    @staticmethod
    def same_origin(request: Request) -> bool:
        """False when the browser says the form came from another host."""
        source = request.headers.get("Origin") or request.headers.get("Referer")
        if source is None:  # not a browser, or one that hides both: the CSRF token decides
            return True
        return urlsplit(source).netloc == request.host  # "null" has no host: refused

    def set_cookie(self, request: Request, resp: Response) -> None:
        resp.set_cookie(
            COOKIE,
            self.new_session(),
            max_age=MAX_AGE,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=request.is_secure,
        )

    @staticmethod
    def clear_cookie(resp: Response) -> None:
        resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="Strict")


def safe_next(target: str | None, default: str = "/") -> str:
    """Only a path on this site: never `//host`, a scheme, or a backslash trick."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target
