"""Tell the pull request what its preview is doing: one comment per PR, edited in place,
and a `hoody/preview` commit status on the head commit.

It listens to the controller and works on its own thread: a slow or failing provider
API never blocks or fails a pass. Updates coalesce per PR (only the latest matters) and
unchanged text is never re-sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.errors import ReconcilerError
from reconciler.core.settings import RepoSettings, Settings
from reconciler.gitops.records import EnvChange

log = logging.getLogger(__name__)
MARKER = "<!-- hoody-preview -->"

_LOOK = {
    "building": ("⏳", "building", "pending"),
    "healthy": ("✅", "healthy", "success"),
    "failed": ("❌", "failed", "failure"),
    "degraded": ("⚠️", "degraded", "failure"),
    "removing": ("🧹", "being removed", None),
    "removed": ("🗑️", "destroyed", None),
}


class Client(Protocol):
    def upsert_comment(self, number: int, body: str) -> str: ...

    def set_status(
        self, sha: str, state: str, description: str, target_url: str | None
    ) -> None: ...


@dataclass(frozen=True)
class Update:
    repo: str
    number: int
    body: str
    sha: str | None = None
    state: str | None = None  # commit status
    description: str = ""
    target_url: str | None = None


def render(
    env: str | None,
    status: str,
    info: dict[str, Any],
    note: str | None = None,
    now: Callable[[], float] = time.time,
) -> tuple[str, str | None, str]:
    """(comment body, commit status state, status description)."""
    icon, word, state = _LOOK.get(status, ("💬", status, None))
    lines = [MARKER]
    title = f"**Preview environment** `{env}`" if env else "**Preview environment**"
    lines.append(f"{title}: {icon} {word}")
    lines.append("")
    detail = note or info.get("last_error") or info.get("reason")
    if status in ("failed", "degraded") and detail:
        lines.append(f"- Reason: {str(detail).splitlines()[0][:300]}")
    elif status == "removed" and detail:
        lines.append(f"- Why: {detail}")
    elif note:
        lines.append(f"- {note}")
    if info.get("url") and status not in ("removed", "removing"):
        lines.append(f"- URL: {info['url']}")
    if info.get("commit"):
        lines.append(f"- Commit: `{str(info['commit'])[:12]}`")
    lines.append(f"- Updated: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now()))}")
    description = f"{word}: {detail}" if detail and status != "healthy" else word
    return "\n".join(lines) + "\n", state, description[:140]


class Feedback:
    def __init__(
        self,
        settings: Settings,
        client_for: Callable[[RepoSettings], Client],
        retry_after: float = 30.0,
        max_attempts: int = 5,
    ) -> None:
        self.settings = settings
        self.client_for = client_for
        self.retry_after = retry_after
        self.max_attempts = max_attempts
        self._pending: dict[tuple[str, int], tuple[Update, int, float]] = {}
        self._sent_body: dict[tuple[str, int], str] = {}
        self._sent_status: dict[tuple[str, int], tuple[str | None, str | None, str]] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.errors = 0

    def _enabled(self, repo: str) -> RepoSettings | None:
        r = self.settings.repo(repo)
        return r if r is not None and r.api_token and r.api_url and r.repository else None

    # -- controller listener -----------------------------------------------------------

    def environment_changed(self, change: EnvChange) -> None:
        number = change.pr_number
        if number is None or not self._enabled(change.repo):
            return
        body, state, description = render(change.env, change.status, change.info)
        target = self._target(change.env, change.info)
        self.submit(
            Update(change.repo, number, body, change.info.get("commit"), state, description, target)
        )

    def pull_request_decided(
        self, repo: str, number: int, sha: str, message: str, queued: bool
    ) -> None:
        if not self._enabled(repo):
            return
        status = "queued" if queued else "skipped"
        body, _, _ = render(None, status, {"commit": sha} if sha else {}, note=message)
        state = "pending" if status == "queued" else None
        self.submit(Update(repo, number, body, sha or None, state, message[:140]))

    def _target(self, env: str, info: dict[str, Any]) -> str | None:
        base = self.settings.public_url
        if base:
            return f"{base.rstrip('/')}/environments/{env}"
        url = info.get("url")
        return str(url) if url else None

    # -- worker ------------------------------------------------------------------------

    def submit(self, update: Update) -> None:
        with self._cond:
            self._pending[(update.repo, update.number)] = (update, 0, 0.0)
            self._cond.notify()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="pr-feedback", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout)

    def _next(self) -> tuple[Update, int] | None:
        with self._cond:
            while not self._stop:
                now = time.monotonic()
                due = [(k, v) for k, v in self._pending.items() if v[2] <= now]
                if due:
                    key, (update, attempt, _) = due[0]
                    del self._pending[key]
                    return update, attempt
                waits = [v[2] - now for v in self._pending.values()]
                self._cond.wait(min(waits) if waits else None)
            return None

    def _run(self) -> None:
        while (item := self._next()) is not None:
            self._send(*item)

    def _send(self, update: Update, attempt: int) -> None:
        key = (update.repo, update.number)
        repo = self._enabled(update.repo)
        if repo is None:
            return
        try:
            client = self.client_for(repo)
            if self._sent_body.get(key) != _stable(update.body):
                client.upsert_comment(update.number, update.body)
                self._sent_body[key] = _stable(update.body)
            status = (update.sha, update.state, update.description)
            if update.sha and update.state and self._sent_status.get(key) != status:
                client.set_status(update.sha, update.state, update.description, update.target_url)
                self._sent_status[key] = status
        except ReconcilerError as e:
            self.errors += 1
            log.warning(
                "[%s] PR #%d: provider API failed (attempt %d): %s",
                update.repo,
                update.number,
                attempt + 1,
                e,
            )
            if e.retryable and attempt + 1 < self.max_attempts:
                with self._cond:
                    if key not in self._pending:  # a newer update supersedes this one
                        delay = self.retry_after * (2**attempt)
                        self._pending[key] = (update, attempt + 1, time.monotonic() + delay)
                        self._cond.notify()
        except Exception:
            self.errors += 1
            log.exception("[%s] PR #%d: feedback failed", update.repo, update.number)


def _stable(body: str) -> str:
    """The body without its timestamp line: an update that only moves the clock is no
    change worth an API call."""
    return "\n".join(ln for ln in body.splitlines() if not ln.startswith("- Updated: "))
