"""What passes leave behind for people and listeners: events, environment statuses and
the change notifications that PR feedback and the scheduler react to.

Kept apart from the pass itself (controller.py) because its rules are about records, not
decisions: an event is recorded once per change of message for its (repo, environment,
topic) unless forced, a status is written only when it changes, and a failing listener or
store write never fails a pass (invariants 5 and 6).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.core.errors import BuildFailed, HealthTimeout
from reconciler.storage.store import Store

log = logging.getLogger(__name__)
OUTPUT_LIMIT = 4096  # characters of build or container output kept with a failure


def failure_output(e: BaseException) -> str | None:
    """The tail of the output that came with a failure (the branch's own commands wrote
    it): stored apart from the status line, shown only to authenticated readers."""
    output = e.output if isinstance(e, BuildFailed | HealthTimeout) else ""
    output = output.strip()
    if len(output) > OUTPUT_LIMIT:
        output = "[…]\n" + output[-OUTPUT_LIMIT:]
    return output or None


class EnvLog(logging.LoggerAdapter[logging.Logger]):
    """Puts repo and environment identity on every record."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        kwargs.setdefault("extra", {}).update(extra)
        env = extra.get("env")
        prefix = f"[{extra.get('repo')}/{env}] " if env else f"[{extra.get('repo')}] "
        return prefix + str(msg), kwargs


@dataclass(frozen=True)
class EnvChange:
    """An environment's status moved; listeners (PR feedback, scheduler) react."""

    repo: str
    env: str
    status: str
    info: dict[str, Any]

    @property
    def pr_number(self) -> int | None:
        ref = str(self.info.get("ref") or "")
        parts = ref.split("/")
        return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


class Listener(Protocol):
    def environment_changed(self, change: EnvChange) -> None: ...

    def pull_request_decided(
        self, repo: str, number: int, sha: str, message: str, queued: bool
    ) -> None:
        """A PR got no environment (`queued`: it waits for room under the cap)."""
        ...


def call_hook(hook: Callable[..., None], *args: Any) -> None:
    """Run a hook or listener; its failure is logged, never raised into the pass."""
    try:
        hook(*args)
    except Exception:
        log.exception("hook %r failed", hook)


class Records:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.listeners: list[Listener] = []
        self._noted: dict[tuple[str, str | None, str], str] = {}  # last message per topic
        self._status: dict[str, tuple[Any, ...]] = {}  # env -> last written status
        self._info: dict[str, dict[str, Any]] = {}  # env -> what its changes carry
        # Apply threads of one pass write statuses of different environments at once.
        self._lock = threading.Lock()

    def note(
        self,
        repo: str,
        env: str | None,
        kind: str,
        message: str,
        level: str = "info",
        force: bool = False,
        record: bool = True,
        details: dict[str, Any] | None = None,
        topic: str | None = None,
    ) -> None:
        """Record an event, once per change of message for (repo, env, topic) unless
        forced; the topic defaults to the kind."""
        key = (repo, env, topic or kind)
        with self._lock:
            if not force and self._noted.get(key) == message:
                return
            self._noted[key] = message
        if not record:
            return
        EnvLog(log, {"repo": repo, "env": env}).log(
            logging.getLevelName(level.upper()), "%s", message
        )
        try:
            self.store.add_event(repo, env, kind, message, level, details)
        except Exception:
            log.exception("could not record event")

    def queued(self, repo: str, name: str, ref: str, limit: int) -> None:
        """A branch's environment waits: the repo is at limits.max_environments_per_repo."""
        self.note(
            repo,
            None,
            "queued",
            f"{name}: queued: the repo runs its maximum of {limit} environments "
            f"(limits.max_environments_per_repo); {ref} waits for a place",
            topic=f"queued:{ref}",
        )

    def last_note(self, repo: str, env: str | None, topic: str) -> str | None:
        return self._noted.get((repo, env, topic))

    output_of = staticmethod(failure_output)

    def set_status(self, name: str, repo: str, status: str, **fields: Any) -> None:
        """A new status line (`last_error`) replaces the output that came with the last."""
        if "last_error" in fields:
            fields.setdefault("last_output", None)
        sig = (status, *sorted(fields.items()))
        with self._lock:
            if self._status.get(name) == sig:
                return
            self._status[name] = sig
            info = self._info.setdefault(name, {})
            info.update(fields)
            change = EnvChange(repo, name, status, dict(info))
        try:
            self.store.set_status(name, repo, status, **fields)
        except Exception:
            log.exception("could not record status of %s", name)
        for listener in self.listeners:
            call_hook(listener.environment_changed, change)

    def known(self, name: str) -> bool:
        """This process has written a status of `name` (it is not just adopted)."""
        with self._lock:
            return name in self._status

    def removed(self, name: str, repo: str, reason: str, ref: str, commit: str) -> None:
        """The environment is gone: forget its status and tell the listeners, with what
        was known of it (its last ref and commit if nothing was)."""
        with self._lock:
            self._status.pop(name, None)
            info = self._info.pop(name, {"ref": ref, "commit": commit})
        change = EnvChange(repo, name, "removed", {**info, "reason": reason})
        for listener in self.listeners:
            call_hook(listener.environment_changed, change)
