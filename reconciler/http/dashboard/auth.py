"""Dashboard sign-in: the API token, entered once in a form, becomes a signed cookie.

- The cookie is `<issued>.<nonce>.<HMAC-SHA256(api.token, issued.nonce)>`: it never holds
  the token itself, expires after `MAX_AGE`, and every cookie dies when the token is
  changed. It is HttpOnly and SameSite=Strict (Secure over HTTPS). The server also keeps
  the nonces it issued (in memory, at most `MAX_SESSIONS`): signing out forgets the nonce,
  so a copy of the cookie stops working at once; a restart signs everyone out.
- Sign-in attempts that fail are limited per client address (`LOGIN_LIMIT`, a moving
  window from the `limits` library); beyond it the form answers 429 with Retry-After,
  even for the right token, until the window has moved on.
- CSRF: every form that changes something carries `HMAC(api.token, "csrf." + cookie)`, a
  token tied to that one cookie, checked with `hmac.compare_digest`. On top of that a
  POST whose Origin (or, without one, Referer) names another host is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from urllib.parse import urlsplit

from flask import Request, Response
from limits import parse, storage, strategies

COOKIE = "hoody_session"
FLASH = "hoody_flash"
MAX_AGE = 12 * 3600
MAX_SESSIONS = 1000
LOGIN_LIMIT = "10/minute"  # failed sign-ins per client address


class Auth:
    def __init__(self, token: str | None, public_read: bool) -> None:
        self.token = token or None
        self.public_read = public_read
        self._sessions: OrderedDict[str, float] = OrderedDict()  # nonce -> issued
        self._lock = threading.Lock()
        self._limit = parse(LOGIN_LIMIT)
        self._attempts = strategies.MovingWindowRateLimiter(storage.MemoryStorage())

    # -- sign-in attempts ----------------------------------------------------------------

    def login_blocked(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may now."""
        if self._attempts.test(self._limit, address):
            return None
        reset = self._attempts.get_window_stats(self._limit, address).reset_time
        return max(1, int(reset - time.time()) + 1)

    def login_failed(self, address: str) -> None:
        self._attempts.hit(self._limit, address)

    def _sign(self, message: str) -> str:
        assert self.token
        return hmac.new(self.token.encode(), message.encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str) -> bool:
        if not self.token:
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    def new_session(self) -> str:
        now = time.time()
        nonce = secrets.token_hex(16)
        with self._lock:
            self._sessions[nonce] = now
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        stamp = f"{int(now)}.{nonce}"
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
        with self._lock:
            if nonce not in self._sessions:
                return None  # signed out, or issued before a restart
        return value

    def end_session(self, request: Request) -> None:
        """Sign the request's session out on the server: its cookie is dead from now on."""
        value = self.session(request)
        if value is not None:
            with self._lock:
                self._sessions.pop(value.split(".")[1], None)

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
